package proxy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// dualStackPolicyTestPod is a pod with an IPv4 and an IPv6 address, in the order given.
func dualStackPolicyTestPod(ns, name, nodeName string, lbls map[string]string, ips ...string) *corev1.Pod {
	pod := policyTestPod(ns, name, ips[0], nodeName, lbls)
	pod.Status.PodIPs = nil
	for _, ip := range ips {
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	return pod
}

func TestAnIPv6BlockWithExceptionsBecomesTheRangesLeft(t *testing.T) {
	got := rangeElements(mergeRanges(ipBlockRanges(ipv6Family, &networkingv1.IPBlock{
		CIDR: "fd00:1::/120", Except: []string{"fd00:1::80/121", "fd00:1::5/128", "10.0.0.0/8"}})))
	want := []string{"fd00:1::-fd00:1::4", "fd00:1::6-fd00:1::7f"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := rangeElements(ipBlockRanges(ipv6Family, &networkingv1.IPBlock{CIDR: "::/0"})); !slices.Equal(got, []string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}) {
		t.Errorf("::/0: got %v", got)
	}
	if got := ipBlockRanges(ipv6Family, &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}); len(got) != 0 {
		t.Errorf("an IPv4 block matches no IPv6 traffic, got %v", got)
	}
	if got := rangeElements(mergeRanges([]ipRange{prefixRange(netip.MustParsePrefix("fd00::/64")), prefixRange(netip.MustParsePrefix("fd00:0:0:1::/64"))})); !slices.Equal(got, []string{"fd00::-fd00::1:ffff:ffff:ffff:ffff"}) {
		t.Errorf("touching IPv6 ranges are joined: got %v", got)
	}
}

// The same policies over dual-stack pods: the IPv4 rules see the pods' IPv4 addresses and the
// IPv4 blocks, the IPv6 rules the IPv6 addresses (whichever comes first in podIPs) and the
// IPv6 blocks.
func TestDualStackPodsArePolicedOnEachFamilysAddress(t *testing.T) {
	pods := []*corev1.Pod{
		dualStackPolicyTestPod("a", "db", node, map[string]string{"app": "db"}, "10.244.1.10", "fd44:1::10"),
		dualStackPolicyTestPod("a", "web", node, map[string]string{"app": "web"}, "fd44:1::11", "10.244.1.11"),
		dualStackPolicyTestPod("b", "other", "node-2", map[string]string{"app": "other"}, "10.244.2.12", "fd44:2::12"),
		policyTestPod("a", "web-v4only", "10.244.1.13", node, map[string]string{"app": "web"}),
	}
	// pods of a and of every namespace labelled team=b, and two blocks of each family
	policies := []*networkingv1.NetworkPolicy{ingressPolicy("a", "p", map[string]string{"app": "db"}, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{
		{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}},
		{IPBlock: &networkingv1.IPBlock{CIDR: "172.31.0.0/24", Except: []string{"172.31.0.128/25"}}},
		{IPBlock: &networkingv1.IPBlock{CIDR: "fd31::/120", Except: []string{"fd31::80/121"}}},
	}})}
	namespaces := policyTestNamespaces("a", "b")

	v4 := buildPolicyRules(newFamilyPolicyState(ipv4Family, pods, namespaces, policies, node))
	v6 := buildPolicyRules(newFamilyPolicyState(ipv6Family, pods, namespaces, policies, node))

	for _, c := range []struct {
		family                             string
		r                                  *ruleset
		isolated, peers, blocks, podSelves []string
	}{
		{"ip", v4, []string{"10.244.1.10"}, []string{"10.244.1.11", "10.244.1.13", "10.244.2.12"}, []string{"172.31.0.0-172.31.0.127"},
			[]string{"10.244.1.10 . 10.244.1.10", "10.244.1.11 . 10.244.1.11", "10.244.1.13 . 10.244.1.13"}},
		{"ip6", v6, []string{"fd44:1::10"}, []string{"fd44:1::11", "fd44:2::12"}, []string{"fd31::-fd31::7f"},
			[]string{"fd44:1::10 . fd44:1::10", "fd44:1::11 . fd44:1::11"}},
	} {
		if got := dispatched(c.r, ingressDispatchMap); !slices.Equal(got, c.isolated) {
			t.Errorf("%s: isolated %v, want %v", c.family, got, c.isolated)
		}
		if got := policySet(t, c.r, "-in0-peers"); !slices.Equal(got, c.peers) {
			t.Errorf("%s: peers %v, want %v", c.family, got, c.peers)
		}
		if got := policySet(t, c.r, "-in0-blocks"); !slices.Equal(got, c.blocks) {
			t.Errorf("%s: blocks %v, want %v", c.family, got, c.blocks)
		}
		if got := c.r.maps[podSelfSet].elements; !slices.Equal(got, c.podSelves) {
			t.Errorf("%s: pod-self %v, want %v", c.family, got, c.podSelves)
		}
	}

	tx := v6.transaction("ip6", "t", nil)
	addrType := "ipv6_addr"
	mustHave(t, tx,
		"add map ip6 t ingress-dispatch { type "+addrType+" : verdict ; }",
		"add set ip6 t pod-self { type "+addrType+" . "+addrType+" ; }",
		"add rule ip6 t forward-ingress icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept",
		"add rule ip6 t forward-ingress ip6 saddr . ip6 daddr @pod-self accept",
		"add rule ip6 t forward-ingress ip6 daddr vmap @ingress-dispatch",
		"add rule ip6 t forward-egress ip6 saddr vmap @egress-dispatch",
		"ip6 saddr @"+setNameWithSuffix(v6, "-in0-peers")+" accept",
		"ip6 saddr @"+setNameWithSuffix(v6, "-in0-blocks")+" accept",
	)
	if strings.Contains(tx, " ip saddr") || strings.Contains(tx, "ipv4_addr") {
		t.Errorf("the IPv6 table speaks of IPv4:\n%s", tx)
	}
	if tx4 := v4.transaction("ip", "t", nil); strings.Contains(tx4, "icmpv6") || strings.Contains(tx4, "ip6 ") {
		t.Errorf("the IPv4 table speaks of IPv6:\n%s", tx4)
	}
}

// A named port resolves per pod and family: the IPv6 table's named-port set holds the IPv6
// address of the pod whose port it is.
func TestNamedPortsResolveOnTheIPv6Address(t *testing.T) {
	db := dualStackPolicyTestPod("a", "db", node, map[string]string{"app": "db"}, "10.244.1.10", "fd44:1::10")
	db.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	st := newFamilyPolicyState(ipv6Family, []*corev1.Pod{db}, policyTestNamespaces("a"), []*networkingv1.NetworkPolicy{
		ingressPolicy("a", "p", map[string]string{"app": "db"}, networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromString("http"))}}}),
	}, node)
	r := buildPolicyRules(st)
	if got, want := policySet(t, r, "-in0-named"), []string{"fd44:1::10 . tcp . 8080"}; !slices.Equal(got, want) {
		t.Errorf("named: got %v, want %v", got, want)
	}
	mustHave(t, r.transaction("ip6", "t", nil), "ip6 daddr . meta l4proto . th dport @"+setNameWithSuffix(r, "-in0-named")+" accept")
}

// A pod with only an IPv4 address is in no IPv6 set, and its policies isolate nothing there.
func TestAnIPv4OnlyPodIsNotInTheIPv6Table(t *testing.T) {
	r := buildPolicyRules(newFamilyPolicyState(ipv6Family, []*corev1.Pod{
		policyTestPod("a", "db", "10.244.1.10", node, map[string]string{"app": "db"}),
	}, policyTestNamespaces("a"), []*networkingv1.NetworkPolicy{ingressPolicy("a", "p", nil)}, node))
	if got := dispatched(r, ingressDispatchMap); len(got) != 0 {
		t.Errorf("isolated over IPv6: %v", got)
	}
}
