package proxy

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const node = "node-1"

var clusterCIDR = netip.MustParsePrefix("10.244.0.0/16")

func svc(name string, mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: "10.96.0.20",
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

type ep struct {
	ip                          string
	node                        string
	ready, serving, terminating bool
}

func slice(svcName string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svcName + "-x", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{e.ip}, NodeName: ptr.To(e.node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e.ready), Serving: ptr.To(e.serving), Terminating: ptr.To(e.terminating)},
		})
	}
	return s
}

func ready(ip, node string) ep { return ep{ip: ip, node: node, ready: true, serving: true} }

// table is the full transaction for one Service and its slices.
func table(t *testing.T, s *corev1.Service, slices ...*discoveryv1.EndpointSlice) string {
	t.Helper()
	rules := buildRules(servicePorts(s, slices, node), ruleConfig{clusterCIDR: clusterCIDR})
	return rules.transaction("ip", "skiff", nil)
}

func mustHave(t *testing.T, tx string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(tx, l) {
			t.Errorf("missing %q in:\n%s", l, tx)
		}
	}
}

func mustNotHave(t *testing.T, tx string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if strings.Contains(tx, l) {
			t.Errorf("unexpected %q in:\n%s", l, tx)
		}
	}
}

func TestClusterIPLoadBalancesOverReadyEndpoints(t *testing.T) {
	tx := table(t, svc("web"), slice("web", 8080, ready("10.244.1.2", node), ready("10.244.2.2", "node-2"),
		ep{ip: "10.244.1.3", node: node})) // not ready: left out
	sc := serviceChainName("service", &servicePort{namespace: "ns", name: "web", portName: "http", protocol: corev1.ProtocolTCP})
	mustHave(t, tx,
		"delete table ip skiff\n",
		"add chain ip skiff nat-prerouting { type nat hook prerouting priority dstnat ; }",
		"add element ip skiff service-ips { 10.96.0.20 . tcp . 80 : goto "+sc+" }",
		"add rule ip skiff "+sc+" ip daddr 10.96.0.20 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
		"add rule ip skiff "+sc+" numgen random mod 2 vmap { 0 : goto endpoint-",
		"-ns/web/tcp/http__10.244.1.2/8080 ip saddr 10.244.1.2 jump mark-for-masquerade",
		"-ns/web/tcp/http__10.244.1.2/8080 meta l4proto tcp dnat to 10.244.1.2:8080",
		"-ns/web/tcp/http__10.244.2.2/8080 meta l4proto tcp dnat to 10.244.2.2:8080",
		"add element ip skiff cluster-ips { 10.96.0.20 }",
		"add rule ip skiff masquerading masquerade fully-random",
	)
	mustNotHave(t, tx, "10.244.1.3", "add element ip skiff no-endpoint-services")
}

func TestServiceWithoutEndpointsIsRejected(t *testing.T) {
	tx := table(t, svc("web", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = 30080
	}), slice("web", 8080, ep{ip: "10.244.1.3", node: node}))
	mustHave(t, tx,
		"add element ip skiff no-endpoint-services { 10.96.0.20 . tcp . 80 : goto reject-chain }",
		"add element ip skiff no-endpoint-nodeports { tcp . 30080 : goto reject-chain }",
		"add rule ip skiff reject-chain meta l4proto tcp reject with tcp reset",
		"add rule ip skiff filter-output ct state new jump service-endpoints-check",
		"add rule ip skiff filter-input ct state new jump nodeport-endpoints-check",
	)
	sc := serviceChainName("service", &servicePort{namespace: "ns", name: "web", portName: "http", protocol: corev1.ProtocolTCP})
	mustNotHave(t, tx, "add chain ip skiff "+sc, "add chain ip skiff endpoint-", "add element ip skiff service-ips")
}

func TestNodePortMasqueradesThenBalances(t *testing.T) {
	s := svc("web", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = 30080
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	})
	tx := table(t, s, slice("web", 8080, ready("10.244.1.2", "node-2")))
	sp := &servicePort{namespace: "ns", name: "web", portName: "http", protocol: corev1.ProtocolTCP}
	ext, sc := serviceChainName("external", sp), serviceChainName("service", sp)
	mustHave(t, tx,
		"add element ip skiff service-nodeports { tcp . 30080 : goto "+ext+" }",
		"add rule ip skiff "+ext+" jump mark-for-masquerade\nadd rule ip skiff "+ext+" goto "+sc+"\n",
		"add rule ip skiff services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
	)
}

func TestExternalTrafficPolicyLocalSendsNodePortTrafficOnlyToLocalEndpoints(t *testing.T) {
	s := svc("web", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = 30080
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	sp := &servicePort{namespace: "ns", name: "web", portName: "http", protocol: corev1.ProtocolTCP}
	ext, sc, local := serviceChainName("external", sp), serviceChainName("service", sp), serviceChainName("local", sp)

	tx := table(t, s, slice("web", 8080, ready("10.244.1.2", node), ready("10.244.2.2", "node-2")))
	mustHave(t, tx,
		"add element ip skiff service-nodeports { tcp . 30080 : goto "+ext+" }",
		"add rule ip skiff "+ext+" ip saddr 10.244.0.0/16 goto "+sc,
		"add rule ip skiff "+ext+" fib saddr type local jump mark-for-masquerade",
		"add rule ip skiff "+ext+" goto "+local,
		"add rule ip skiff "+local+" numgen random mod 1 vmap { 0 : goto endpoint-",
		// the cluster IP still reaches both
		"add rule ip skiff "+sc+" numgen random mod 2 vmap",
	)

	// no endpoint on this node: external traffic is dropped, the cluster IP still works
	tx = table(t, s, slice("web", 8080, ready("10.244.2.2", "node-2")))
	mustHave(t, tx,
		"add element ip skiff no-endpoint-nodeports { tcp . 30080 : drop }",
		"add element ip skiff service-ips { 10.96.0.20 . tcp . 80 : goto "+sc+" }",
	)
	mustNotHave(t, tx, "add chain ip skiff "+local, "service-nodeports { tcp . 30080")
}

func TestInternalTrafficPolicyLocal(t *testing.T) {
	s := svc("web", func(s *corev1.Service) {
		s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
	})
	sp := &servicePort{namespace: "ns", name: "web", portName: "http", protocol: corev1.ProtocolTCP}
	local := serviceChainName("local", sp)
	tx := table(t, s, slice("web", 8080, ready("10.244.1.2", node), ready("10.244.2.2", "node-2")))
	mustHave(t, tx,
		"add element ip skiff service-ips { 10.96.0.20 . tcp . 80 : goto "+local+" }",
		"add rule ip skiff "+local+" numgen random mod 1 vmap { 0 : goto endpoint-"+chainHash(sp.id()+"10.244.1.2:8080"),
	)
	tx = table(t, s, slice("web", 8080, ready("10.244.2.2", "node-2")))
	mustHave(t, tx, "add element ip skiff no-endpoint-services { 10.96.0.20 . tcp . 80 : drop }")
	mustNotHave(t, tx, "add element ip skiff service-ips")
}

func TestClientIPAffinityRemembersClientsPerEndpoint(t *testing.T) {
	s := svc("web", func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](600)}}
	})
	tx := table(t, s, slice("web", 8080, ready("10.244.1.2", node), ready("10.244.1.3", node)))
	sp := &servicePort{namespace: "ns", name: "web", portName: "http", protocol: corev1.ProtocolTCP, affinitySeconds: 600}
	for _, ip := range []string{"10.244.1.2", "10.244.1.3"} {
		e := endpoint{ip: netip.MustParseAddr(ip), port: 8080}
		set, epChain := affinitySetName(sp, e), endpointChainName(sp, e)
		mustHave(t, tx,
			"add set ip skiff "+set+" { type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }",
			"add rule ip skiff "+serviceChainName("service", sp)+" ip saddr @"+set+" goto "+epChain,
			"add rule ip skiff "+epChain+" update @"+set+" { ip saddr }",
		)
	}
}

func TestTerminatingServingEndpointsAreUsedOnlyWhenNoneIsReady(t *testing.T) {
	terminating := ep{ip: "10.244.1.9", node: node, serving: true, terminating: true}
	tx := table(t, svc("web"), slice("web", 8080, terminating))
	mustHave(t, tx, "dnat to 10.244.1.9:8080", "numgen random mod 1 vmap")

	tx = table(t, svc("web"), slice("web", 8080, terminating, ready("10.244.1.2", node)))
	mustHave(t, tx, "dnat to 10.244.1.2:8080", "numgen random mod 1 vmap")
	mustNotHave(t, tx, "10.244.1.9")
}

func TestHeadlessAndExternalNameServicesGetNoRules(t *testing.T) {
	headless := svc("db", func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone })
	external := svc("ext", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeExternalName
		s.Spec.ClusterIP = ""
		s.Spec.ExternalName = "example.org"
	})
	for _, s := range []*corev1.Service{headless, external} {
		if ports := servicePorts(s, []*discoveryv1.EndpointSlice{slice(s.Name, 8080, ready("10.244.1.2", node))}, node); len(ports) != 0 {
			t.Errorf("%s: got %d service ports", s.Name, len(ports))
		}
	}
}

func TestExternalIPsAreRoutedAsExternalTraffic(t *testing.T) {
	s := svc("web", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"203.0.113.7"} })
	sp := &servicePort{namespace: "ns", name: "web", portName: "http", protocol: corev1.ProtocolTCP}
	tx := table(t, s, slice("web", 8080, ready("10.244.1.2", node)))
	mustHave(t, tx, "203.0.113.7 . tcp . 80 : goto "+serviceChainName("external", sp))
}

func TestTransactionChangesOnlyWhatDiffers(t *testing.T) {
	cfg := ruleConfig{clusterCIDR: clusterCIDR}
	two := buildRules(servicePorts(svc("web"), []*discoveryv1.EndpointSlice{slice("web", 8080, ready("10.244.1.2", node), ready("10.244.1.3", node))}, node), cfg)
	one := buildRules(servicePorts(svc("web"), []*discoveryv1.EndpointSlice{slice("web", 8080, ready("10.244.1.2", node))}, node), cfg)
	sp := &servicePort{namespace: "ns", name: "web", portName: "http", protocol: corev1.ProtocolTCP}
	gone := endpointChainName(sp, endpoint{ip: netip.MustParseAddr("10.244.1.3"), port: 8080})
	sc := serviceChainName("service", sp)

	if tx := two.transaction("ip", "skiff", two); strings.Count(tx, "\n") != 1 {
		t.Errorf("an unchanged table should need only its add table line, got:\n%s", tx)
	}
	tx := one.transaction("ip", "skiff", two)
	mustHave(t, tx,
		"flush chain ip skiff "+sc+"\nadd rule ip skiff "+sc+" ip daddr",
		"numgen random mod 1 vmap",
		"flush chain ip skiff "+gone+"\n",
		"delete chain ip skiff "+gone+"\n",
	)
	mustNotHave(t, tx, "delete table", "flush map ip skiff service-ips", "add chain ip skiff nat-prerouting")
	if strings.Index(tx, "delete chain ip skiff "+gone) < strings.Index(tx, "flush chain ip skiff "+sc) {
		t.Errorf("a chain must be deleted after the chains that jump to it are rewritten:\n%s", tx)
	}

	// the service goes: its element and chains go, the table stays
	empty := buildRules(nil, cfg)
	tx = empty.transaction("ip", "skiff", one)
	mustHave(t, tx, "flush map ip skiff service-ips\n", "delete chain ip skiff "+sc+"\n", "flush set ip skiff cluster-ips\n")
}
