package proxy

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestADualStackServiceWithIPv6FirstIsRoutedOnItsIPv4ClusterIP(t *testing.T) {
	s := svc("web", func(s *corev1.Service) {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "fd00:10:96::20", []string{"fd00:10:96::20", "10.96.0.21"}
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
	})
	tx := table(t, s, slice("web", 8080, ready("10.244.1.2", node)))
	mustHave(t, tx, "10.96.0.21", "dnat to 10.244.1.2:8080")
	mustNotHave(t, tx, "fd00:10:96::20")

	v6only := svc("v6", func(s *corev1.Service) {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "fd00:10:96::30", []string{"fd00:10:96::30"}
	})
	if ports := servicePorts(v6only, nil, node); len(ports) != 0 {
		t.Errorf("an IPv6-only Service: got %d service ports in the IPv4 table", len(ports))
	}
}

// ipv6Slice is an EndpointSlice of addressType IPv6, as the endpointslice controller writes
// for a dual-stack Service beside the IPv4 one.
func ipv6Slice(svcName string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	s := slice(svcName, port, eps...)
	s.Name = svcName + "-v6"
	s.AddressType = discoveryv1.AddressTypeIPv6
	return s
}

// ipv6Table is the ip6 table's full transaction for one Service and its slices.
func ipv6Table(t *testing.T, s *corev1.Service, slices ...*discoveryv1.EndpointSlice) string {
	t.Helper()
	ports := familyServicePorts(s, slices, node, ipv6Family)
	return buildRules(ports, ruleConfig{clusterCIDR: netip.MustParsePrefix("fd42::/56"), family: ipv6Family}).transaction("ip6", "skiff", nil)
}

func dualStack(s *corev1.Service) {
	s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.20", []string{"10.96.0.20", "fd00:10:96::20"}
	s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	s.Spec.Type = corev1.ServiceTypeNodePort
	s.Spec.Ports[0].NodePort = 30080
	s.Spec.ExternalIPs = []string{"192.0.2.7", "2001:db8::7"}
	s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
}

func TestTheIPv6TableRoutesTheIPv6ClusterIPToTheIPv6Endpoints(t *testing.T) {
	s := svc("web", dualStack)
	slices := []*discoveryv1.EndpointSlice{
		slice("web", 8080, ready("10.244.1.2", node)),
		ipv6Slice("web", 8080, ready("fd42::1:2", node)),
	}
	tx := ipv6Table(t, s, slices...)
	mustHave(t, tx,
		"add table ip6 skiff",
		"add map ip6 skiff service-ips { type ipv6_addr . inet_proto . inet_service : verdict ; }",
		"add set ip6 skiff cluster-ips { type ipv6_addr ; }",
		"ip6 daddr . meta l4proto . th dport vmap @service-ips",
		"fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @service-nodeports",
		"fd00:10:96::20 . tcp . 80 : goto service-",
		"2001:db8::7 . tcp . 80 : goto external-",
		"tcp . 30080 : goto external-",
		"ip6 daddr fd00:10:96::20 tcp dport 80 ip6 saddr != fd42::/56 jump mark-for-masquerade",
		"meta l4proto tcp dnat to [fd42::1:2]:8080",
		"ip6 saddr fd42::1:2 jump mark-for-masquerade",
		"type ipv6_addr ; flags dynamic,timeout ; timeout 10800s",
		"update @affinity-",
		"{ ip6 saddr }",
	)
	// nothing of the other family, and no ':' in a chain's or set's name (nft takes none)
	mustNotHave(t, tx, "10.96.0.20", "10.244.1.2", "192.0.2.7", "ip daddr", "ipv4_addr")
	for _, line := range strings.Split(tx, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && (f[1] == "chain" || f[1] == "set") && strings.Contains(f[4], ":") {
			t.Errorf("a name with ':' in %q", line)
		}
	}

	// and the ip table of the same Service has only the IPv4 half
	v4 := table(t, s, slices...)
	mustHave(t, v4, "10.96.0.20 . tcp . 80", "dnat to 10.244.1.2:8080", "192.0.2.7 . tcp . 80")
	mustNotHave(t, v4, "fd00:10:96::20", "fd42::1:2", "2001:db8::7")
}

func TestAnIPv6ServiceWithoutIPv6EndpointsIsRefused(t *testing.T) {
	s := svc("web", dualStack)
	tx := ipv6Table(t, s, slice("web", 8080, ready("10.244.1.2", node))) // IPv4 endpoints only
	mustHave(t, tx, "fd00:10:96::20 . tcp . 80 : goto reject-chain")
	mustNotHave(t, tx, "dnat to")
}
