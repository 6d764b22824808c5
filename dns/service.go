package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// The kube-system/kube-dns Service, as upstream's cluster add-on names it: clients (the
// kubelet's resolv.conf) use its cluster IP, and the proxy forwards that to where this server
// listens. The server is no pod, so the Service has no selector and this component writes its
// EndpointSlice and Endpoints itself.

const (
	// ServiceName and ServiceNamespace name the DNS Service.
	ServiceName      = "kube-dns"
	ServiceNamespace = metav1.NamespaceSystem
	// DefaultServiceIP is the cluster IP of kube-dns, the tenth of the default service range
	// as kubeadm chooses.
	DefaultServiceIP = "10.96.0.10"
	// MetricsPort is the metrics port CoreDNS publishes on the Service.
	MetricsPort = 9153
	// ManagedBy marks the EndpointSlice this component writes.
	ManagedBy = "dns.skiff.dev"
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

// EnsureService creates the kube-dns Service with cluster IP clusterIP when it is absent
// (kube-system too), and makes its EndpointSlice and Endpoints point at ep. An existing
// Service is left as it is.
func EnsureService(ctx context.Context, client kubernetes.Interface, clusterIP string, ep Endpoint) error {
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
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(ep.Port)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(ep.Port)},
				{Name: "metrics", Port: MetricsPort, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(MetricsPort)},
			},
		},
	}
	if _, err := client.CoreV1().Services(ServiceNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("service %s/%s: %w", ServiceNamespace, ServiceName, err)
	}
	return errors.Join(ensureSlice(ctx, client, ep), ensureEndpoints(ctx, client, ep))
}

func ensureSlice(ctx context.Context, client kubernetes.Interface, ep Endpoint) error {
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
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName + "-" + ManagedBy, Namespace: ServiceNamespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: ServiceName, discoveryv1.LabelManagedBy: ManagedBy}},
		AddressType: addressType,
		Endpoints:   []discoveryv1.Endpoint{endpoint},
		Ports:       ports,
	}
	slices := client.DiscoveryV1().EndpointSlices(ServiceNamespace)
	cur, err := slices.Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = slices.Create(ctx, want, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if cur.AddressType == want.AddressType && reflect.DeepEqual(cur.Endpoints, want.Endpoints) && reflect.DeepEqual(cur.Ports, want.Ports) {
		return nil
	}
	if cur.AddressType != want.AddressType { // immutable: make it again
		if err := slices.Delete(ctx, want.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		_, err = slices.Create(ctx, want, metav1.CreateOptions{})
		return err
	}
	want.ResourceVersion = cur.ResourceVersion
	_, err = slices.Update(ctx, want, metav1.UpdateOptions{})
	return err
}

func ensureEndpoints(ctx context.Context, client kubernetes.Interface, ep Endpoint) error {
	addr := corev1.EndpointAddress{IP: ep.IP.String()}
	if ep.NodeName != "" {
		addr.NodeName = ptr.To(ep.NodeName)
	}
	ports := []corev1.EndpointPort{
		{Name: "dns", Port: ep.Port, Protocol: corev1.ProtocolUDP},
		{Name: "dns-tcp", Port: ep.Port, Protocol: corev1.ProtocolTCP},
	}
	if ep.MetricsPort != 0 {
		ports = append(ports, corev1.EndpointPort{Name: "metrics", Port: ep.MetricsPort, Protocol: corev1.ProtocolTCP})
	}
	want := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: ServiceNamespace,
			Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr}, Ports: ports}},
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
