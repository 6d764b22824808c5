package dns

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver"
)

func TestDualStackServicesAnswerAAndAAAA(t *testing.T) {
	c := startDNS(t, func(cfg *apiserver.Config) { cfg.ServiceClusterIPRange = "10.96.0.0/12,fd00:10:96::/112" })
	c.create(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			ClusterIP: "10.96.7.7", ClusterIPs: []string{"10.96.7.7", "fd00:10:96::77"},
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack),
			Selector:       map[string]string{"app": "web"}, Ports: []corev1.ServicePort{namedPort("http", 80)}},
	})
	c.eventually("web.default.svc.cluster.local.", dns.TypeAAAA, func(m *dns.Msg) bool {
		return slices.Equal(addresses(m), []string{"fd00:10:96::77"})
	})
	c.eventually("web.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) bool {
		return slices.Equal(addresses(m), []string{"10.96.7.7"})
	})

	// a headless service's IPv6 endpoints answer AAAA, by the service's name and by hostname
	c.create(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack),
			Selector: map[string]string{"app": "db"}, Ports: []corev1.ServicePort{namedPort("pg", 5432)}},
	})
	ready := discoveryv1.EndpointConditions{Ready: ptr.To(true)}
	c.create(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-v6", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv6,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"fd00:10:244::5"}, Hostname: ptr.To("db-0"), Conditions: ready}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("pg"), Port: ptr.To[int32](5432), Protocol: ptr.To(corev1.ProtocolTCP)}},
	})
	c.create(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-v4", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.5"}, Hostname: ptr.To("db-0"), Conditions: ready}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("pg"), Port: ptr.To[int32](5432), Protocol: ptr.To(corev1.ProtocolTCP)}},
	})
	c.eventually("db.default.svc.cluster.local.", dns.TypeAAAA, func(m *dns.Msg) bool {
		return slices.Equal(addresses(m), []string{"fd00:10:244::5"})
	})
	c.eventually("db-0.db.default.svc.cluster.local.", dns.TypeAAAA, func(m *dns.Msg) bool {
		return slices.Equal(addresses(m), []string{"fd00:10:244::5"})
	})
	c.eventually("db-0.db.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) bool {
		return slices.Equal(addresses(m), []string{"10.244.0.5"})
	})
}
