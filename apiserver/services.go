package apiserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// The API server's own services work: the default/kubernetes Service that points in-cluster
// clients at the API servers (with its Endpoints and EndpointSlice, kept in step as upstream's
// lease endpoint reconciler does: masterleases.go), and the repair loop that frees cluster IPs and node ports a crash
// left reserved by no service.

// DefaultServiceClusterIPRange is the range cluster IPs come from when Config gives none
// (kubeadm's default).
const DefaultServiceClusterIPRange = "10.96.0.0/12"

// KubernetesServiceIP is the kubernetes Service's cluster IP for a service cluster IP range
// ("" for the default): in-cluster clients reach the server at this address
// (KUBERNETES_SERVICE_HOST), so the serving certificate must name it, as kube-apiserver's does.
func KubernetesServiceIP(serviceClusterIPRange string) (netip.Addr, error) {
	if serviceClusterIPRange == "" {
		serviceClusterIPRange = DefaultServiceClusterIPRange
	}
	cidr, err := netip.ParsePrefix(serviceClusterIPRange)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("service cluster IP range: %w", err)
	}
	return registry.KubernetesServiceIP(cidr), nil
}

// advertisedIP is the address the kubernetes Service's endpoints name: the configured one, or
// the host's first global unicast IPv4 address, or loopback.
func advertisedIP(configured string) netip.Addr {
	if ip, err := netip.ParseAddr(configured); err == nil {
		return ip
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() && ip.IsGlobalUnicast() {
				return ip.Unmap()
			}
		}
	}
	return netip.MustParseAddr("127.0.0.1")
}

func (s *Server) securePort() int32 {
	_, port, _ := net.SplitHostPort(s.advertise)
	if len(s.addresses) > 0 {
		_, port, _ = net.SplitHostPort(s.addresses[0])
	}
	n, _ := strconv.Atoi(port)
	return int32(n)
}

func (s *Server) store(gv, resource string) *registry.Store {
	v, err := schema.ParseGroupVersion(gv)
	if err != nil {
		return nil
	}
	if h := s.current().handler(v, resource); h != nil {
		return h.store
	}
	return nil
}

// reconcileKubernetesService creates or corrects default/kubernetes and its endpoints.
func (s *Server) reconcileKubernetesService(ctx context.Context) error {
	port := s.securePort()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: s.allocator.KubernetesServiceIP().String(),
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP,
				TargetPort: intstr.FromInt32(port)}},
		},
	}
	apis.Scheme.Default(svc)
	services := s.store("v1", "services")
	if _, err := services.Create(ctx, metav1.NamespaceDefault, svc, false); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := s.renewMasterLease(ctx, masterLeaseTTL); err != nil {
		return err
	}
	ips, err := s.liveAPIServers(ctx, true)
	if err != nil {
		return err
	}
	return s.writeKubernetesEndpoints(ctx, ips, port)
}

// writeKubernetesEndpoints makes the kubernetes Service's Endpoints and EndpointSlice name the
// API servers at ips (in order), all serving on port.
func (s *Server) writeKubernetesEndpoints(ctx context.Context, ips []string, port int32) error {
	addresses := make([]corev1.EndpointAddress, 0, len(ips))
	endpoints := make([]discoveryv1.Endpoint, 0, len(ips))
	for _, ip := range ips {
		addresses = append(addresses, corev1.EndpointAddress{IP: ip})
		endpoints = append(endpoints, discoveryv1.Endpoint{Addresses: []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses: addresses,
			Ports:     []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
		}},
	}
	if err := upsert(ctx, s.store("v1", "endpoints"), ep, func(cur runtime.Object) bool {
		c := cur.(*corev1.Endpoints)
		return len(c.Subsets) == 1 && slices.Equal(c.Subsets[0].Addresses, addresses) &&
			len(c.Subsets[0].Ports) == 1 && c.Subsets[0].Ports[0].Port == port
	}); err != nil {
		return err
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "kube-apiserver"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   endpoints,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	return upsert(ctx, s.store("discovery.k8s.io/v1", "endpointslices"), slice, func(cur runtime.Object) bool {
		c := cur.(*discoveryv1.EndpointSlice)
		return slices.EqualFunc(c.Endpoints, ips, func(e discoveryv1.Endpoint, ip string) bool {
			return len(e.Addresses) == 1 && e.Addresses[0] == ip
		}) && len(c.Ports) == 1 && c.Ports[0].Port != nil && *c.Ports[0].Port == port
	})
}

// upsert creates obj, or replaces the stored one unless same says it already is what we want.
func upsert(ctx context.Context, store *registry.Store, obj runtime.Object, same func(runtime.Object) bool) error {
	m := obj.(metav1.Object)
	_, err := store.Create(ctx, m.GetNamespace(), obj.DeepCopyObject(), false)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	_, _, err = store.Update(ctx, m.GetNamespace(), m.GetName(), nil, func(_ context.Context, cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(store.GroupResource(), m.GetName())
		}
		if same(cur) {
			return cur, nil
		}
		out := obj.DeepCopyObject()
		out.(metav1.Object).SetResourceVersion(cur.(metav1.Object).GetResourceVersion())
		return out, nil
	}, false)
	return err
}

// maintainServices repairs leaked reservations once a minute. (The kubernetes Service itself is
// kept right by maintainKubernetesEndpoints, every masterLeaseInterval.)
func (s *Server) maintainServices(ctx context.Context) {
	leaks := map[string]int{}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.repairServiceAllocations(ctx, leaks)
	}
}

// leakRounds is how many repair rounds in a row a reservation must be found without its
// service before it is freed, so that one being made right now is never taken away (upstream
// waits the same way).
const leakRounds = 3

// repairServiceAllocations frees cluster IPs and node ports reserved for services that do
// not hold them.
func (s *Server) repairServiceAllocations(ctx context.Context, leaks map[string]int) {
	list, err := s.store("v1", "services").List(ctx, "", registry.ListOptions{})
	if err != nil {
		return
	}
	held := map[string]bool{}
	for _, svc := range list.(*corev1.ServiceList).Items {
		if svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
			held["/registry/ipaddresses/"+svc.Spec.ClusterIP] = true
		}
		for _, p := range svc.Spec.Ports {
			if p.NodePort != 0 {
				held["/registry/servicenodeports/"+strconv.Itoa(int(p.NodePort))] = true
			}
		}
	}
	for _, prefix := range []string{"/registry/ipaddresses/", "/registry/servicenodeports/"} {
		resp, err := s.cfg.Etcd.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return
		}
		for _, kv := range resp.Kvs {
			key := string(kv.Key)
			if held[key] {
				delete(leaks, key)
				continue
			}
			leaks[key]++
			if leaks[key] < leakRounds {
				continue
			}
			delete(leaks, key)
			if _, err := s.cfg.Etcd.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
				Then(clientv3.OpDelete(key)).Commit(); err == nil {
				slog.Info("freed a reservation no service holds", "key", key)
			}
		}
	}
}
