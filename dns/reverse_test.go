package dns

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func ptrTargets(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if p, ok := rr.(*dns.PTR); ok {
			out = append(out, p.Ptr)
		}
	}
	slices.Sort(out)
	return out
}

// Reverse lookups answer as CoreDNS's kubernetes plugin with "fallthrough in-addr.arpa
// ip6.arpa" (kubeadm's Corefile): a cluster IP names its Service, a ready endpoint's address
// its hostname (or dashed address) under its Service, and every other address goes upstream.
// Upstream's DNS conformance specs ask for the PTR of a Service's cluster IP.
func TestReverseLookupsNameServicesAndEndpoints(t *testing.T) {
	c := startDNS(t)
	c.create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.50", Ports: []corev1.ServicePort{namedPort("http", 80)}}})
	c.create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{namedPort("sql", 5432)}}})
	c.create(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.1.2"}, Hostname: ptr.To("db-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.244.1.3"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.244.1.4"}, Hostname: ptr.To("db-2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
	})
	c.create(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-v6", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv6,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"fd00:10:244::7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	})

	// a cluster IP: its Service, authoritatively, over UDP and TCP
	m := c.eventually("50.0.96.10.in-addr.arpa.", dns.TypePTR, func(m *dns.Msg) bool { return len(ptrTargets(m)) > 0 })
	if got := ptrTargets(m); !slices.Equal(got, []string{"web.default.svc.cluster.local."}) || !m.Authoritative || m.Answer[0].Header().Ttl != TTL {
		t.Errorf("PTR of the cluster IP: %v aa %v", got, m.Authoritative)
	}
	if got := ptrTargets(c.query("tcp", "50.0.96.10.in-addr.arpa.", dns.TypePTR)); !slices.Equal(got, []string{"web.default.svc.cluster.local."}) {
		t.Errorf("PTR of the cluster IP over TCP: %v", got)
	}
	// endpoints: by hostname, else by dashed address; IPv6 too
	c.eventually("2.1.244.10.in-addr.arpa.", dns.TypePTR, func(m *dns.Msg) bool {
		return slices.Equal(ptrTargets(m), []string{"db-0.db.default.svc.cluster.local."})
	})
	if got := ptrTargets(c.query("udp", "3.1.244.10.in-addr.arpa.", dns.TypePTR)); !slices.Equal(got, []string{"10-244-1-3.db.default.svc.cluster.local."}) {
		t.Errorf("PTR of an endpoint without a hostname: %v", got)
	}
	v6, err := dns.ReverseAddr("fd00:10:244::7")
	if err != nil {
		t.Fatal(err)
	}
	c.eventually(v6, dns.TypePTR, func(m *dns.Msg) bool {
		return slices.Equal(ptrTargets(m), []string{"fd00-10-244--7.db.default.svc.cluster.local."})
	})

	// an unready endpoint, an address the cluster does not hold and a partial reverse name are
	// not the cluster's: they go to the host's resolver (which answers everything with an A)
	for _, name := range []string{"4.1.244.10.in-addr.arpa.", "9.9.0.192.in-addr.arpa.", "244.10.in-addr.arpa."} {
		m := c.query("udp", name, dns.TypePTR)
		if len(ptrTargets(m)) != 0 || !slices.Equal(addresses(m), []string{"192.0.2.55"}) {
			t.Errorf("%s: %v, want the upstream's answer", name, m.Answer)
		}
	}
}

func TestReverseNameParsesFullNamesOnly(t *testing.T) {
	for name, want := range map[string]string{
		"50.0.96.10.in-addr.arpa.": "10.96.0.50",
		"7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.": "fd00:10:244::7",
		"0.96.10.in-addr.arpa.":          "",
		"x.0.96.10.in-addr.arpa.":        "",
		"300.0.96.10.in-addr.arpa.":      "",
		"1.0.ip6.arpa.":                  "",
		"web.default.svc.cluster.local.": "",
	} {
		ip, ok := reverseName(name)
		if got := ""; ok {
			got = ip.String()
			if got != want {
				t.Errorf("%s: %s, want %q", name, got, want)
			}
		} else if want != "" {
			t.Errorf("%s: not parsed, want %s", name, want)
		}
	}
}
