package proxy

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func policyTestPod(ns, name, ip, nodeName string, lbls map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls},
		Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

func policyTestNamespaces(names ...string) []*corev1.Namespace {
	var out []*corev1.Namespace
	for _, n := range names {
		out = append(out, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"team": n}}})
	}
	return out
}

func ingressPolicy(ns, name string, sel map[string]string, rules ...networkingv1.NetworkPolicyIngressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: sel},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     rules,
		},
	}
}

// policySet is the elements of the one set whose name ends with suffix.
func policySet(t *testing.T, r *ruleset, suffix string) []string {
	t.Helper()
	var found []string
	for name := range r.maps {
		if strings.HasSuffix(name, suffix) {
			found = append(found, name)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one set named *%s, have %v", suffix, found)
	}
	return r.maps[found[0]].elements
}

func TestIPBlockWithExceptionsBecomesTheRangesLeft(t *testing.T) {
	got := rangeElements(mergeRanges(ipBlockRanges(ipv4Family, &networkingv1.IPBlock{CIDR: "10.0.0.0/24", Except: []string{"10.0.0.128/25", "10.0.0.5/32"}})))
	want := []string{"10.0.0.0-10.0.0.4", "10.0.0.6-10.0.0.127"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := rangeElements(ipBlockRanges(ipv4Family, &networkingv1.IPBlock{CIDR: "0.0.0.0/0"})); !slices.Equal(got, []string{"0.0.0.0-255.255.255.255"}) {
		t.Errorf("0.0.0.0/0: got %v", got)
	}
	if got := ipBlockRanges(ipv4Family, &networkingv1.IPBlock{CIDR: "fd00::/8"}); len(got) != 0 {
		t.Errorf("an IPv6 block has no place in the IPv4 table, got %v", got)
	}
}

func TestPeerPodsAndIPBlocksGetSetsOfTheirOwn(t *testing.T) {
	st := newPolicyState([]*corev1.Pod{
		policyTestPod("a", "db", "10.244.1.10", node, map[string]string{"app": "db"}),
		policyTestPod("a", "web1", "10.244.1.11", node, map[string]string{"app": "web"}),
		policyTestPod("a", "web2", "10.244.2.12", "node-2", map[string]string{"app": "web"}),
		policyTestPod("a", "web3", "10.244.1.12", node, map[string]string{"app": "web"}),
	}, policyTestNamespaces("a"), []*networkingv1.NetworkPolicy{
		ingressPolicy("a", "p", map[string]string{"app": "db"}, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{
			{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
			{IPBlock: &networkingv1.IPBlock{CIDR: "10.244.2.0/24"}},
		}}),
	}, node)
	r := buildPolicyRules(st)
	// pod addresses change with pods: a hash set; blocks only with the policy: intervals
	if got, want := policySet(t, r, "-in0-peers"), []string{"10.244.1.11", "10.244.1.12", "10.244.2.12"}; !slices.Equal(got, want) {
		t.Errorf("peers: got %v, want %v", got, want)
	}
	if got, want := policySet(t, r, "-in0-blocks"), []string{"10.244.2.0-10.244.2.255"}; !slices.Equal(got, want) {
		t.Errorf("blocks: got %v, want %v", got, want)
	}
	tx := r.transaction("ip", "t", nil)
	mustHave(t, tx, "ip saddr @"+setNameWithSuffix(r, "-in0-peers")+" accept", "ip saddr @"+setNameWithSuffix(r, "-in0-blocks")+" accept")
	if got := dispatched(r, ingressDispatchMap); !slices.Equal(got, []string{"10.244.1.10"}) {
		t.Errorf("isolated for ingress: %v", got)
	}
	if got := dispatched(r, egressDispatchMap); len(got) != 0 {
		t.Errorf("an ingress policy isolates nothing for egress: %v", got)
	}
}

func TestPortsOfOneProtocolMergeAndNamedPortsResolvePerPod(t *testing.T) {
	st := newPolicyState([]*corev1.Pod{
		policyTestPod("a", "db1", "10.244.1.10", node, map[string]string{"app": "db"}, corev1.ContainerPort{Name: "sql", ContainerPort: 5432}),
		policyTestPod("a", "db2", "10.244.1.11", node, map[string]string{"app": "db"}, corev1.ContainerPort{Name: "sql", ContainerPort: 5433},
			corev1.ContainerPort{Name: "sql", ContainerPort: 53, Protocol: corev1.ProtocolUDP}),
		policyTestPod("a", "db3", "10.244.1.12", node, map[string]string{"app": "db"}),
	}, policyTestNamespaces("a"), []*networkingv1.NetworkPolicy{
		ingressPolicy("a", "p", map[string]string{"app": "db"}, networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(80))},
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(81)), EndPort: ptr.To[int32](90)},
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(85))},
			{Protocol: ptr.To(corev1.ProtocolSCTP)},
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString("sql"))},
		}}),
	}, node)
	r := buildPolicyRules(st)
	if got, want := policySet(t, r, "-in0-ports"), []string{"sctp . 0-65535", "tcp . 80-90"}; !slices.Equal(got, want) {
		t.Errorf("ports: got %v, want %v", got, want)
	}
	// TCP only: db2's UDP port of that name is not this rule's
	if got, want := policySet(t, r, "-in0-named"), []string{"10.244.1.10 . tcp . 5432", "10.244.1.11 . tcp . 5433"}; !slices.Equal(got, want) {
		t.Errorf("named: got %v, want %v", got, want)
	}
	tx := r.transaction("ip", "t", nil)
	id := policyChainID(st.policies[0])
	mustHave(t, tx, "add rule ip t "+id+"-in meta l4proto . th dport @np-", "add rule ip t "+id+"-in ip daddr . meta l4proto . th dport @np-",
		" : goto in-", "jump "+id+"-in\n")
	for _, addr := range []string{"10.244.1.10", "10.244.1.11", "10.244.1.12"} {
		if !slices.Contains(dispatched(r, ingressDispatchMap), addr) {
			t.Errorf("%s is not dispatched to its policies", addr)
		}
	}
}

func TestEgressNamedPortsResolveOnTheDestinationPods(t *testing.T) {
	st := newPolicyState([]*corev1.Pod{
		policyTestPod("a", "web", "10.244.1.10", node, map[string]string{"app": "web"}),
		policyTestPod("b", "db", "10.244.2.10", "node-2", map[string]string{"app": "db"}, corev1.ContainerPort{Name: "sql", ContainerPort: 5432}),
		policyTestPod("a", "db", "10.244.2.11", "node-2", map[string]string{"app": "db"}, corev1.ContainerPort{Name: "sql", ContainerPort: 6432}),
	}, policyTestNamespaces("a", "b"), []*networkingv1.NetworkPolicy{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p"},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromString("sql"))}},
			}},
		},
	}}, node)
	r := buildPolicyRules(st)
	if got, want := policySet(t, r, "-out0-named"), []string{"10.244.2.10 . tcp . 5432"}; !slices.Equal(got, want) {
		t.Errorf("named: got %v, want %v", got, want)
	}
	if got := dispatched(r, egressDispatchMap); !slices.Equal(got, []string{"10.244.1.10"}) {
		t.Errorf("isolated for egress: %v", got)
	}
	mustHave(t, r.transaction("ip", "t", nil), "accept comment \"a/p egress rule 0\"", "add element ip t egress-dispatch { 10.244.1.10 : goto out-")
}

func TestAPolicyWithoutPodsOnThisNodeWritesNothing(t *testing.T) {
	st := newPolicyState([]*corev1.Pod{
		policyTestPod("a", "db", "10.244.2.10", "node-2", map[string]string{"app": "db"}),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "host", Labels: map[string]string{"app": "db"}},
			Spec:   corev1.PodSpec{NodeName: node, HostNetwork: true},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "172.31.0.1"}},
	}, policyTestNamespaces("a"), []*networkingv1.NetworkPolicy{ingressPolicy("a", "p", map[string]string{"app": "db"})}, node)
	r := buildPolicyRules(st)
	for name := range r.maps {
		if strings.HasPrefix(name, "np-") {
			t.Errorf("unexpected set %s", name)
		}
	}
	if got := dispatched(r, ingressDispatchMap); len(got) != 0 {
		t.Errorf("host-network pods are never isolated: %v", got)
	}
}

func TestARuleWhosePeersMatchNothingAllowsNothing(t *testing.T) {
	st := newPolicyState([]*corev1.Pod{policyTestPod("a", "db", "10.244.1.10", node, map[string]string{"app": "db"})},
		policyTestNamespaces("a"), []*networkingv1.NetworkPolicy{
			ingressPolicy("a", "p", map[string]string{"app": "db"}, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "nobody"}}},
			}}),
		}, node)
	r := buildPolicyRules(st)
	id := policyChainID(st.policies[0])
	if rules := r.chains[id+"-in"].rules; len(rules) != 0 {
		t.Errorf("%s-in: %v", id, rules)
	}
	if got := r.maps[ingressDispatchMap].elements; len(got) != 1 || !strings.HasPrefix(got[0], "10.244.1.10 : goto in-") {
		t.Fatalf("still isolated: %v", got)
	}
	_, combo, _ := strings.Cut(r.maps[ingressDispatchMap].elements[0], " : goto ")
	if rules := r.chains[combo].rules; !slices.Equal(rules, []string{"jump " + id + "-in", "drop"}) {
		t.Errorf("%s: %v", combo, rules)
	}
}

func TestAPodComingChangesElementsNotRules(t *testing.T) {
	pods := []*corev1.Pod{
		policyTestPod("a", "db", "10.244.1.10", node, map[string]string{"app": "db"}),
		policyTestPod("a", "web1", "10.244.1.20", node, map[string]string{"app": "web"}),
	}
	policies := []*networkingv1.NetworkPolicy{ingressPolicy("a", "p", map[string]string{"app": "db"}, networkingv1.NetworkPolicyIngressRule{
		From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
	})}
	before := buildPolicyRules(newPolicyState(pods, policyTestNamespaces("a"), policies, node))
	pods = append(pods, policyTestPod("a", "web2", "10.244.1.30", node, map[string]string{"app": "web"}))
	after := buildPolicyRules(newPolicyState(pods, policyTestNamespaces("a"), policies, node))
	tx := after.transaction("ip", "t", before)
	lines := strings.Split(strings.TrimSpace(tx), "\n")[1:] // after "add table"
	slices.Sort(lines)
	want := []string{
		"add element ip t pod-self { 10.244.1.30 . 10.244.1.30 }",
		"add element ip t " + setNameWithSuffix(after, "-in0-peers") + " { 10.244.1.30 }",
	}
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		t.Errorf("transaction:\n%s\nwant only:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	// a pod leaving: its elements deleted, nothing flushed
	tx = before.transaction("ip", "t", after)
	mustHave(t, tx, "delete element ip t pod-self { 10.244.1.30 . 10.244.1.30 }", "delete element ip t "+setNameWithSuffix(after, "-in0-peers")+" { 10.244.1.30 }")
	if strings.Contains(tx, "flush") {
		t.Errorf("nothing should be flushed:\n%s", tx)
	}
}

// dispatched is the addresses a dispatch map sends to policy chains.
func dispatched(r *ruleset, name string) []string {
	var out []string
	for _, e := range r.maps[name].elements {
		addr, _, _ := strings.Cut(e, " : ")
		out = append(out, addr)
	}
	return out
}

func setNameWithSuffix(r *ruleset, suffix string) string {
	for name := range r.maps {
		if strings.HasSuffix(name, suffix) {
			return name
		}
	}
	return ""
}

func TestElementChanges(t *testing.T) {
	gone, added := elementChanges([]string{"a", "c", "d"}, []string{"b", "c", "e"})
	if !slices.Equal(gone, []string{"a", "d"}) || !slices.Equal(added, []string{"b", "e"}) {
		t.Errorf("gone %v, added %v", gone, added)
	}
}

// TestCachedBuildsEqualFreshBuilds changes pods, namespaces and policies one at a time and
// checks that the cache's build always equals a build from nothing.
func TestCachedBuildsEqualFreshBuilds(t *testing.T) {
	pods := map[string]*corev1.Pod{}
	put := func(p *corev1.Pod) { pods[p.Namespace+"/"+p.Name] = p }
	put(policyTestPod("a", "db", "10.244.1.10", node, map[string]string{"app": "db"}, corev1.ContainerPort{Name: "sql", ContainerPort: 5432}))
	put(policyTestPod("a", "web", "10.244.1.11", node, map[string]string{"app": "web"}))
	put(policyTestPod("b", "web", "10.244.2.11", "node-2", map[string]string{"app": "web"}, corev1.ContainerPort{Name: "sql", ContainerPort: 6432}))
	put(policyTestPod("c", "job", "10.244.2.12", "node-2", map[string]string{"app": "job"}))
	namespaces := policyTestNamespaces("a", "b", "c")
	egress := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "egress", UID: "u2", ResourceVersion: "1"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromString("sql"))}}}},
		},
	}
	ingress := ingressPolicy("a", "ingress", map[string]string{"app": "db"}, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{
		{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}},
	}})
	ingress.UID, ingress.ResourceVersion = "u1", "1"
	policies := []*networkingv1.NetworkPolicy{ingress, egress}

	cache := &policyRuleCache{}
	check := func(step string) {
		t.Helper()
		var list []*corev1.Pod
		for _, p := range pods {
			list = append(list, p)
		}
		st := newPolicyState(list, namespaces, policies, node)
		cached := cache.build(st)
		fresh := buildPolicyRules(newPolicyState(list, namespaces, policies, node))
		if tx := fresh.transaction("ip", "t", cached); strings.Count(tx, "\n") != 1 {
			t.Errorf("%s: the cached build differs from a fresh one by:\n%s", step, tx)
		}
	}
	check("first build")
	put(policyTestPod("b", "api", "10.244.2.20", "node-2", map[string]string{"app": "api"}))
	check("a pod added in a namespace a namespaceSelector selects")
	put(policyTestPod("c", "db2", "10.244.2.30", "node-2", map[string]string{"app": "db"}, corev1.ContainerPort{Name: "sql", ContainerPort: 7432}))
	check("a pod with a named port an egress rule of every destination counts")
	put(policyTestPod("a", "web", "10.244.1.11", node, map[string]string{"app": "batch"}))
	check("a pod relabelled out of a policy's pods and peers")
	namespaces = policyTestNamespaces("a", "c", "b-renamed")
	namespaces[2].Name = "b"
	check("a namespace relabelled")
	ingress = ingress.DeepCopy()
	ingress.ResourceVersion = "2"
	ingress.Spec.Ingress[0].From = ingress.Spec.Ingress[0].From[:1]
	policies = []*networkingv1.NetworkPolicy{ingress, egress}
	check("a policy changed")
	delete(pods, "a/db")
	check("a selected pod deleted")
}

func TestPodsOfOnePolicyCombinationShareAChainAndJoinItByElement(t *testing.T) {
	pods := []*corev1.Pod{
		policyTestPod("a", "db1", "10.244.1.10", node, map[string]string{"app": "db", "tier": "data"}),
		policyTestPod("a", "db2", "10.244.1.11", node, map[string]string{"app": "db", "tier": "data"}),
		policyTestPod("a", "cache", "10.244.1.12", node, map[string]string{"tier": "data"}),
	}
	policies := []*networkingv1.NetworkPolicy{
		ingressPolicy("a", "db", map[string]string{"app": "db"}),
		ingressPolicy("a", "data", map[string]string{"tier": "data"}),
	}
	r := buildPolicyRules(newPolicyState(pods, policyTestNamespaces("a"), policies, node))
	targets := map[string]string{}
	for _, e := range r.maps[ingressDispatchMap].elements {
		addr, chain, _ := strings.Cut(e, " : goto ")
		targets[addr] = chain
	}
	if targets["10.244.1.10"] != targets["10.244.1.11"] || targets["10.244.1.10"] == targets["10.244.1.12"] {
		t.Fatalf("dispatch: %v", targets)
	}
	// policies in order of namespace and name: "data" before "db"
	want := []string{"jump " + policyChainID(policies[1]) + "-in", "jump " + policyChainID(policies[0]) + "-in", "drop"}
	if got := r.chains[targets["10.244.1.10"]].rules; !slices.Equal(got, want) {
		t.Errorf("the db pods' chain: %v, want %v", got, want)
	}

	pods = append(pods, policyTestPod("a", "db3", "10.244.1.13", node, map[string]string{"app": "db", "tier": "data"}))
	after := buildPolicyRules(newPolicyState(pods, policyTestNamespaces("a"), policies, node))
	changes, ok := elementOnlyChanges(r, after)
	if !ok {
		t.Fatalf("a pod joining a combination of policies should change elements only:\n%s", after.transaction("ip", "t", r))
	}
	var added []string
	for _, c := range changes {
		added = append(added, c.added...)
	}
	slices.Sort(added)
	if want := []string{"10.244.1.13 . 10.244.1.13", "10.244.1.13 : goto " + targets["10.244.1.10"]}; !slices.Equal(added, want) {
		t.Errorf("added %v, want %v", added, want)
	}
}
