package dns

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// The kube-system/kube-dns Service, as upstream's cluster add-on names it: clients (the
// kubelet's resolv.conf) use its cluster IP, and the proxy forwards that to where the DNS
// servers listen. A server is no pod, so the Service has no selector and the servers write its
// endpoints themselves. There may be several (one per server machine of an HA cluster): each
// publishes an EndpointSlice of its own, kube-dns-<node>, and holds a Lease of the same name
// in kube-system that it renews every RenewInterval; the Endpoints kube-dns name the
// addresses of every live slice. A server drops another's slice (and Lease) once that Lease
// has not changed for its duration, as the node lifecycle controller judges node Leases: by
// when it saw the change on its own clock, so that servers whose clocks disagree agree. A
// server that stops cleanly deletes its own slice and Lease itself (Withdraw), as an API
// server takes itself out of the kubernetes Service, so that clients stop being sent to it
// at once.

const (
	// ServiceName and ServiceNamespace name the DNS Service.
	ServiceName      = "kube-dns"
	ServiceNamespace = metav1.NamespaceSystem
	// DefaultServiceIP is the cluster IP of kube-dns, the tenth of the default service range
	// as kubeadm chooses.
	DefaultServiceIP = "10.96.0.10"
	// MetricsPort is the metrics port CoreDNS publishes on the Service.
	MetricsPort = 9153
	// ManagedBy marks the EndpointSlices the DNS servers write.
	ManagedBy = "dns.skiff.dev"
	// LeaseDuration is how long a server's Lease holds without a renewal, upstream's TTL of
	// the API servers' endpoint leases; RenewInterval is how often a server renews its own and
	// looks at the others'.
	LeaseDuration = 15 * time.Second
	RenewInterval = 5 * time.Second
	// serviceCheckInterval is how often the Service itself is looked for again.
	serviceCheckInterval = time.Minute
	// withdrawTimeout bounds a stopping server's Withdraw: past it, the Lease running out
	// takes the server out as it would a dead one.
	withdrawTimeout = 5 * time.Second
)

// Endpoint is where the DNS server can be reached from pods and nodes.
type Endpoint struct {
	IP netip.Addr
	// Port is the DNS port, UDP and TCP.
	Port int32
	// MetricsPort is where /metrics is served, 0 when it is not.
	MetricsPort int32
	// NodeName is the node the server runs on.
	NodeName string
}

// name is the name of the EndpointSlice and the Lease of the server at ep: kube-dns-<node>,
// or kube-dns-<address> for a server that names no node.
func (ep Endpoint) name() string {
	id := ep.NodeName
	if id == "" {
		id = strings.NewReplacer(":", "-", ".", "-").Replace(ep.IP.String())
	}
	return ServiceName + "-" + id
}

// Publisher keeps one DNS server in the kube-dns Service's endpoints, and the servers that
// stopped renewing their Leases out of them.
type Publisher struct {
	client    kubernetes.Interface
	clusterIP string
	ep        Endpoint
	now       func() time.Time
	// serviceChecked is when the namespace and Service were last found or made
	serviceChecked time.Time
	// seen is, per other server's Lease, its resourceVersion and when this one saw it change
	seen map[string]leaseSighting
}

type leaseSighting struct {
	resourceVersion string
	at              time.Time
}

// NewPublisher publishes the server at ep in the kube-dns Service, which it creates with
// cluster IP clusterIP when it is absent (kube-system too); an existing Service is left as
// it is.
func NewPublisher(client kubernetes.Interface, clusterIP string, ep Endpoint) *Publisher {
	return &Publisher{client: client, clusterIP: clusterIP, ep: ep, now: time.Now, seen: map[string]leaseSighting{}}
}

// Run syncs every RenewInterval until ctx is done, then withdraws this server (Withdraw,
// within withdrawTimeout). A server that dies, or cannot withdraw, leaves its endpoint for the
// others to drop when its Lease runs out.
func (p *Publisher) Run(ctx context.Context) {
	defer func() {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), withdrawTimeout)
		defer cancel()
		if err := p.Withdraw(wctx); err != nil {
			slog.Warn("cannot take this DNS server out of the kube-dns service; its lease will run out", "err", err)
			return
		}
		slog.Info("this DNS server left the kube-dns service", "endpointslice", p.ep.name())
	}()
	for {
		if err := p.Sync(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("cannot publish this DNS server in the kube-dns service", "err", err, "retryIn", RenewInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(RenewInterval):
		}
	}
}

// Sync renews this server's Lease and slice, deletes those of servers whose Lease ran out, and
// writes the Endpoints from the slices left.
func (p *Publisher) Sync(ctx context.Context) error {
	if p.now().Sub(p.serviceChecked) >= serviceCheckInterval {
		if err := ensureService(ctx, p.client, p.clusterIP, p.ep.Port); err != nil {
			return err
		}
		p.serviceChecked = p.now()
	}
	if err := p.renewLease(ctx); err != nil {
		return fmt.Errorf("lease %s/%s: %w", ServiceNamespace, p.ep.name(), err)
	}
	own, err := ensureSlice(ctx, p.client, p.ep)
	if err != nil {
		return fmt.Errorf("endpointslice %s/%s: %w", ServiceNamespace, p.ep.name(), err)
	}
	live, err := p.liveSlices(ctx, own)
	if err != nil {
		return err
	}
	return ensureEndpoints(ctx, p.client, live)
}

// Withdraw takes this server out of the kube-dns Service: it deletes its own EndpointSlice
// (the proxies stop sending to it) and Lease, and writes the Endpoints from the other
// servers' slices. A slice or Lease already gone is no error.
func (p *Publisher) Withdraw(ctx context.Context) error {
	err := p.client.DiscoveryV1().EndpointSlices(ServiceNamespace).Delete(ctx, p.ep.name(), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("endpointslice %s/%s: %w", ServiceNamespace, p.ep.name(), err)
	}
	err = p.client.CoordinationV1().Leases(ServiceNamespace).Delete(ctx, p.ep.name(), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("lease %s/%s: %w", ServiceNamespace, p.ep.name(), err)
	}
	list, err := p.client.DiscoveryV1().EndpointSlices(ServiceNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + ServiceName + "," + discoveryv1.LabelManagedBy + "=" + ManagedBy})
	if err != nil {
		return err
	}
	// the others as they are: whose Lease ran out is theirs to judge on their next sync
	others := slices.DeleteFunc(list.Items, func(s discoveryv1.EndpointSlice) bool { return s.Name == p.ep.name() })
	return ensureEndpoints(ctx, p.client, others)
}

func ensureService(ctx context.Context, client kubernetes.Interface, clusterIP string, port int32) error {
	// the namespace is looked at before it is made: the DNS server's own identity may read
	// it but not create namespaces, and the API server makes kube-system itself
	if _, err := client.CoreV1().Namespaces().Get(ctx, ServiceNamespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ServiceNamespace}}
		if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("namespace %s: %w", ServiceNamespace, err)
		}
	} else if err != nil {
		return fmt.Errorf("namespace %s: %w", ServiceNamespace, err)
	}
	labels := map[string]string{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: ServiceNamespace, Labels: labels},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: clusterIP,
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(port)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(port)},
				{Name: "metrics", Port: MetricsPort, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(MetricsPort)},
			},
		},
	}
	if _, err := client.CoreV1().Services(ServiceNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("service %s/%s: %w", ServiceNamespace, ServiceName, err)
	}
	return nil
}

// renewLease creates or renews this server's Lease.
func (p *Publisher) renewLease(ctx context.Context) error {
	leases := p.client.CoordinationV1().Leases(ServiceNamespace)
	now := metav1.NewMicroTime(p.now())
	holder := strings.TrimPrefix(p.ep.name(), ServiceName+"-")
	spec := coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: ptr.To(int32(LeaseDuration / time.Second)), RenewTime: &now}
	cur, err := leases.Get(ctx, p.ep.name(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		spec.AcquireTime = &now
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: p.ep.name(), Namespace: ServiceNamespace,
				Labels: map[string]string{discoveryv1.LabelManagedBy: ManagedBy}},
			Spec: spec,
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	spec.AcquireTime = cur.Spec.AcquireTime
	cur.Spec = spec
	_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// liveSlices are own and the other servers' slices whose Lease holds; the others' are
// deleted, with their Leases.
func (p *Publisher) liveSlices(ctx context.Context, own *discoveryv1.EndpointSlice) ([]discoveryv1.EndpointSlice, error) {
	list, err := p.client.DiscoveryV1().EndpointSlices(ServiceNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + ServiceName + "," + discoveryv1.LabelManagedBy + "=" + ManagedBy})
	if err != nil {
		return nil, err
	}
	live := []discoveryv1.EndpointSlice{*own}
	for _, s := range list.Items {
		if s.Name == own.Name {
			continue
		}
		lease, alive, err := p.leaseHolds(ctx, s.Name)
		if err != nil {
			return nil, err
		}
		if alive {
			live = append(live, s)
			continue
		}
		slog.Info("a DNS server's lease ran out: its endpoint leaves kube-dns", "endpointslice", s.Name)
		err = p.client.DiscoveryV1().EndpointSlices(ServiceNamespace).Delete(ctx, s.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{ResourceVersion: &s.ResourceVersion}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return nil, err
		}
		if lease != nil {
			// only the Lease as it was seen: a server back in time keeps its renewal
			err := p.client.CoordinationV1().Leases(ServiceNamespace).Delete(ctx, lease.Name, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{ResourceVersion: &lease.ResourceVersion}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return nil, err
			}
			delete(p.seen, lease.Name)
		}
	}
	return live, nil
}

// leaseHolds is the Lease named name (nil when there is none) and whether it holds: it has
// changed within its duration of this server's seeing it change (or first seeing it).
func (p *Publisher) leaseHolds(ctx context.Context, name string) (*coordinationv1.Lease, bool, error) {
	lease, err := p.client.CoordinationV1().Leases(ServiceNamespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		delete(p.seen, name)
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	now := p.now()
	last, ok := p.seen[name]
	if !ok || last.resourceVersion != lease.ResourceVersion {
		p.seen[name] = leaseSighting{resourceVersion: lease.ResourceVersion, at: now}
		return lease, true, nil
	}
	duration := LeaseDuration
	if d := lease.Spec.LeaseDurationSeconds; d != nil {
		duration = time.Duration(*d) * time.Second
	}
	return lease, now.Sub(last.at) <= duration, nil
}

// ensureSlice makes the server's own EndpointSlice name ep, and returns it as it should be.
func ensureSlice(ctx context.Context, client kubernetes.Interface, ep Endpoint) (*discoveryv1.EndpointSlice, error) {
	addressType := discoveryv1.AddressTypeIPv4
	if ep.IP.Is6() {
		addressType = discoveryv1.AddressTypeIPv6
	}
	ports := []discoveryv1.EndpointPort{
		{Name: ptr.To("dns"), Port: ptr.To(ep.Port), Protocol: ptr.To(corev1.ProtocolUDP)},
		{Name: ptr.To("dns-tcp"), Port: ptr.To(ep.Port), Protocol: ptr.To(corev1.ProtocolTCP)},
	}
	if ep.MetricsPort != 0 {
		ports = append(ports, discoveryv1.EndpointPort{Name: ptr.To("metrics"), Port: ptr.To(ep.MetricsPort), Protocol: ptr.To(corev1.ProtocolTCP)})
	}
	endpoint := discoveryv1.Endpoint{
		Addresses:  []string{ep.IP.String()},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
	}
	if ep.NodeName != "" {
		endpoint.NodeName = ptr.To(ep.NodeName)
	}
	want := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: ep.name(), Namespace: ServiceNamespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: ServiceName, discoveryv1.LabelManagedBy: ManagedBy}},
		AddressType: addressType,
		Endpoints:   []discoveryv1.Endpoint{endpoint},
		Ports:       ports,
	}
	sliceClient := client.DiscoveryV1().EndpointSlices(ServiceNamespace)
	cur, err := sliceClient.Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = sliceClient.Create(ctx, want, metav1.CreateOptions{})
		return want, err
	}
	if err != nil {
		return nil, err
	}
	if cur.AddressType == want.AddressType && reflect.DeepEqual(cur.Endpoints, want.Endpoints) && reflect.DeepEqual(cur.Ports, want.Ports) {
		return want, nil
	}
	if cur.AddressType != want.AddressType { // immutable: make it again
		if err := sliceClient.Delete(ctx, want.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		_, err = sliceClient.Create(ctx, want, metav1.CreateOptions{})
		return want, err
	}
	want.ResourceVersion = cur.ResourceVersion
	_, err = sliceClient.Update(ctx, want, metav1.UpdateOptions{})
	return want, err
}

// ensureEndpoints makes the Endpoints kube-dns name the ready addresses of live, one subset
// per set of ports, addresses and subsets in a stable order so that servers agreeing on the
// slices write nothing.
func ensureEndpoints(ctx context.Context, client kubernetes.Interface, live []discoveryv1.EndpointSlice) error {
	var subsets []corev1.EndpointSubset
	for _, s := range live {
		var ports []corev1.EndpointPort
		for _, p := range s.Ports {
			ports = append(ports, corev1.EndpointPort{Name: ptr.Deref(p.Name, ""), Port: ptr.Deref(p.Port, 0), Protocol: ptr.Deref(p.Protocol, corev1.ProtocolTCP)})
		}
		i := slices.IndexFunc(subsets, func(ss corev1.EndpointSubset) bool { return reflect.DeepEqual(ss.Ports, ports) })
		if i < 0 {
			subsets = append(subsets, corev1.EndpointSubset{Ports: ports})
			i = len(subsets) - 1
		}
		for _, e := range s.Endpoints {
			if !ptr.Deref(e.Conditions.Ready, true) {
				continue
			}
			for _, ip := range e.Addresses {
				subsets[i].Addresses = append(subsets[i].Addresses, corev1.EndpointAddress{IP: ip, NodeName: e.NodeName})
			}
		}
	}
	subsets = slices.DeleteFunc(subsets, func(ss corev1.EndpointSubset) bool { return len(ss.Addresses) == 0 })
	for _, ss := range subsets {
		slices.SortFunc(ss.Addresses, func(a, b corev1.EndpointAddress) int { return cmp.Compare(a.IP, b.IP) })
	}
	slices.SortFunc(subsets, func(a, b corev1.EndpointSubset) int { return cmp.Compare(a.Addresses[0].IP, b.Addresses[0].IP) })
	want := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: ServiceNamespace,
			Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}},
		Subsets: subsets,
	}
	endpoints := client.CoreV1().Endpoints(ServiceNamespace)
	cur, err := endpoints.Get(ctx, ServiceName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = endpoints.Create(ctx, want, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if reflect.DeepEqual(cur.Subsets, want.Subsets) {
		return nil
	}
	want.ResourceVersion = cur.ResourceVersion
	_, err = endpoints.Update(ctx, want, metav1.UpdateOptions{})
	return err
}
