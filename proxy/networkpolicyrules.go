package proxy

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The NetworkPolicy rules, in a table of their own (`ip skiff-netpol`), for the pods of this
// node; on a dual-stack node the same rules for the pods' IPv6 addresses in `ip6 skiff-netpol`
// (a policy applies to every address of its pods, an ipBlock to the addresses of its own
// family):
//
//	forward-egress  (filter hook forward, priority 0) → ct state established,related accept
//	                    (replies); ip saddr . ip daddr @pod-self accept (a pod reaching itself,
//	                    hairpinned through its Service); ip saddr vmap @egress-dispatch
//	forward-ingress (filter hook forward, priority 1) → the same, then ip daddr vmap
//	                    @ingress-dispatch
//	egress-dispatch, ingress-dispatch: a pod's address → goto out-…/in-…, the chain of the
//	                    policies that select it (pods selected by the same policies share one)
//	in-…, out-…     → jump np-…-in (np-…-out) for each of those policies; drop at the end
//	np-…-in         → one rule per ingress rule of the policy and kind of peer and port: its
//	                    peers as source, its ports; accept. np-…-out the same for egress.
//
// An accept ends only its own base chain: a packet an egress policy allows still meets the
// destination's ingress policies at priority 1. Both run after the proxy's DNAT (nat
// prerouting at -100), so traffic to a Service is judged by its backend pod's policies. Nothing
// hooks input or output: traffic between a pod and its own node (the kubelet's probes, the
// node's DNS) is always allowed, as upstream defines; it never passes forward. Pods on one
// bridge reach each other through forward only with bridge-nf-call-iptables (and
// bridge-nf-call-ip6tables). The ip6 table's base chains accept neighbor discovery before
// any policy: it is IPv6's ARP, which never meets the ip family's hooks, and without it an
// isolated pod could not even answer the peers its policies allow.
//
// A packet meets one map lookup and then the rules of the policies that select its pod, never
// every policy's. Sets are keyed by address, per rule for its peers and ports, so a pod coming,
// going or being relabelled changes elements, not rules, unless it makes a new combination of
// policies: a sync writes the few elements that differ (nftMap.incremental).

const (
	// ingressIsolatedSet and egressIsolatedSet carry a policy's selected pods in its own
	// ruleset (policyRuleset); they become the dispatch maps' keys.
	ingressIsolatedSet = "ingress-isolated"
	egressIsolatedSet  = "egress-isolated"
	ingressDispatchMap = "ingress-dispatch"
	egressDispatchMap  = "egress-dispatch"
	podSelfSet         = "pod-self"
)

// policyPod is what the rules need of a pod: where it is, what it is called by selectors,
// and its named ports.
type policyPod struct {
	key       string // namespace/name
	namespace string
	labels    labels.Set
	// ip is the pod's address of the family the rules are built for.
	ip    netip.Addr
	addr  string // ip, written once: every sync writes it into many sets
	local bool
	// ports maps a named port ("http/TCP") to its numbers in the pod's containers.
	ports map[string][]int32
}

// policyPodFrom returns the policy's view of a pod in one IP family, or nil for a pod that
// policies neither select nor name as a peer there: one without an address of the family, on
// the host's network, or finished.
func policyPodFrom(pod *corev1.Pod, hostname string, family ipFamily) *policyPod {
	if pod.Spec.HostNetwork || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	var ip netip.Addr
	for _, a := range pod.Status.PodIPs {
		if addr, err := netip.ParseAddr(a.IP); err == nil && family.has(addr) {
			ip = addr
			break
		}
	}
	if !ip.IsValid() {
		if addr, err := netip.ParseAddr(pod.Status.PodIP); err == nil && family.has(addr) {
			ip = addr
		}
	}
	if !ip.IsValid() {
		return nil
	}
	p := &policyPod{key: pod.Namespace + "/" + pod.Name, namespace: pod.Namespace, labels: labels.Set(pod.Labels), ip: ip, addr: ip.String(), local: pod.Spec.NodeName == hostname}
	for _, c := range pod.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == "" {
				continue
			}
			proto := cmp.Or(port.Protocol, corev1.ProtocolTCP)
			if p.ports == nil {
				p.ports = map[string][]int32{}
			}
			key := port.Name + "/" + string(proto)
			p.ports[key] = append(p.ports[key], port.ContainerPort)
		}
	}
	return p
}

// equal says whether two views of a pod are the same to the rules.
func (p *policyPod) equal(o *policyPod) bool {
	return p.key == o.key && p.addr == o.addr && p.local == o.local && maps.Equal(p.labels, o.labels) &&
		maps.EqualFunc(p.ports, o.ports, func(a, b []int32) bool { return slices.Equal(a, b) })
}

// policyState is everything the rules of one IP family are built from.
type policyState struct {
	// family is the rules' IP family; its pods are those with an address of it.
	family ipFamily
	pods   []*policyPod
	// byNamespace holds the same pods by namespace.
	byNamespace map[string][]*policyPod
	// namespaces maps a namespace's name to its labels.
	namespaces map[string]labels.Set
	policies   []*networkingv1.NetworkPolicy
}

// buildPolicyRules makes the whole NetworkPolicy table for the state.
func buildPolicyRules(st *policyState) *ruleset {
	return (&policyRuleCache{}).build(st)
}

// policyRuleCache keeps each policy's sets and rules from one build to the next, so that a
// build after a few pods changed recomputes only the policies those pods may concern (the
// policies of their namespace, those whose namespaceSelectors select theirs, and those whose
// egress named ports look at every pod), not every policy against every pod.
type policyRuleCache struct {
	// pods and namespaces are the state of the last build; pods keyed by namespace/name.
	pods       map[string]*policyPod
	namespaces map[string]labels.Set
	policies   map[string]cachedPolicy // by namespace/name
}

type cachedPolicy struct {
	uid             string
	resourceVersion string
	// rules holds the policy's sets, its rules in pod-ingress and pod-egress, and its pods in
	// ingress-isolated and egress-isolated; never changed once built.
	rules *ruleset
}

// build makes the whole table for the state, reusing what it can of the last build.
func (c *policyRuleCache) build(st *policyState) *ruleset {
	// what changed since the last build: pods (old and new versions), namespaces' labels
	pods := make(map[string]*policyPod, len(st.pods))
	for _, p := range st.pods {
		pods[p.key] = p
	}
	var changed []*policyPod
	for key, p := range pods {
		if old, ok := c.pods[key]; !ok || !old.equal(p) {
			changed = append(changed, p)
			if ok {
				changed = append(changed, old)
			}
		}
	}
	for key, old := range c.pods {
		if _, ok := pods[key]; !ok {
			changed = append(changed, old)
		}
	}
	allStale := !maps.EqualFunc(c.namespaces, st.namespaces, func(a, b labels.Set) bool { return maps.Equal(a, b) })
	prevPolicies := c.policies
	c.pods, c.namespaces, c.policies = pods, st.namespaces, make(map[string]cachedPolicy, len(st.policies))

	r := newRuleset()
	r.comment = "NetworkPolicy rules of skiff"
	addrType, ip := st.family.addrType, st.family.match
	ingressDispatch := &nftMap{kind: "map", decl: "type " + addrType + " : verdict", incremental: true}
	egressDispatch := &nftMap{kind: "map", decl: "type " + addrType + " : verdict", incremental: true}
	self := &nftMap{kind: "set", decl: "type " + addrType + " . " + addrType, incremental: true}
	r.maps[ingressDispatchMap], r.maps[egressDispatchMap], r.maps[podSelfSet] = ingressDispatch, egressDispatch, self

	for _, base := range []struct{ chain, priority, dispatch string }{
		{"forward-egress", "0", ip + " saddr vmap @" + egressDispatchMap},
		{"forward-ingress", "1", ip + " daddr vmap @" + ingressDispatchMap},
	} {
		r.chain(base.chain).base = "type filter hook forward priority " + base.priority + " ; policy accept"
		r.rule(base.chain, "ct state established,related accept")
		if st.family == ipv6Family {
			r.rule(base.chain, "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept")
		}
		r.rule(base.chain, "%s saddr . %s daddr @%s accept", ip, ip, podSelfSet)
		r.rule(base.chain, "%s", base.dispatch)
	}

	for _, p := range st.pods {
		if p.local {
			self.elements = append(self.elements, p.addr+" . "+p.addr)
		}
	}
	policies := slices.SortedFunc(slices.Values(st.policies), func(a, b *networkingv1.NetworkPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	// the policy chains each isolated pod's packets go through, in policy order
	ingressOf, egressOf := map[string][]string{}, map[string][]string{}
	for _, np := range policies {
		key := np.Namespace + "/" + np.Name
		cached, ok := prevPolicies[key]
		if !ok || allStale || cached.uid != string(np.UID) || cached.resourceVersion != np.ResourceVersion ||
			slices.ContainsFunc(changed, func(p *policyPod) bool { return policyMayConcern(st, np, p) }) {
			cached = cachedPolicy{uid: string(np.UID), resourceVersion: np.ResourceVersion, rules: policyRuleset(st, np)}
		}
		c.policies[key] = cached
		pr := cached.rules
		for name, m := range pr.maps {
			if name != ingressIsolatedSet && name != egressIsolatedSet {
				r.maps[name] = m
			}
		}
		maps.Copy(r.chains, pr.chains)
		id := policyChainID(np)
		for _, addr := range pr.maps[ingressIsolatedSet].elements {
			ingressOf[addr] = append(ingressOf[addr], id+"-in")
		}
		for _, addr := range pr.maps[egressIsolatedSet].elements {
			egressOf[addr] = append(egressOf[addr], id+"-out")
		}
	}
	dispatch(r, ingressDispatch, "in-", ingressOf)
	dispatch(r, egressDispatch, "out-", egressOf)
	for _, m := range []*nftMap{ingressDispatch, egressDispatch, self} {
		slices.Sort(m.elements)
		m.elements = slices.Compact(m.elements)
	}
	return r
}

// dispatch writes, for each isolated pod, the chain of the policy chains it must go through
// (one per combination of policies, named by it) and the map element that sends it there.
func dispatch(r *ruleset, m *nftMap, prefix string, chainsOf map[string][]string) {
	for addr, chains := range chainsOf {
		name := prefix + chainHash(strings.Join(chains, " "))
		if _, ok := r.chains[name]; !ok {
			c := r.chain(name)
			for _, pc := range chains {
				c.rules = append(c.rules, "jump "+pc)
			}
			c.rules = append(c.rules, "drop")
		}
		m.elements = append(m.elements, addr+" : goto "+name)
	}
}

// policyChainID names a policy's sets and chains.
func policyChainID(np *networkingv1.NetworkPolicy) string {
	return "np-" + chainHash(np.Namespace+"/"+np.Name)
}

// policyMayConcern says whether a pod, as it is or was, may be among a policy's pods, peers or
// named-port destinations: if not, its change leaves the policy's rules as they were.
func policyMayConcern(st *policyState, np *networkingv1.NetworkPolicy, p *policyPod) bool {
	if p.namespace == np.Namespace {
		return true
	}
	nsLabels := st.namespaces[p.namespace]
	peersMayConcern := func(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort, egress bool) bool {
		namedEgress := egress && slices.ContainsFunc(ports, func(port networkingv1.NetworkPolicyPort) bool {
			return port.Port != nil && port.Port.Type == intstr.String
		})
		if namedEgress && len(peers) == 0 {
			return true // every pod is a destination whose ports count
		}
		for _, peer := range peers {
			if peer.IPBlock != nil && namedEgress {
				return true
			}
			if peer.NamespaceSelector != nil {
				sel, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
				if err == nil && sel.Matches(nsLabels) {
					return true
				}
			}
		}
		return false
	}
	for _, rule := range np.Spec.Ingress {
		if peersMayConcern(rule.From, rule.Ports, false) {
			return true
		}
	}
	for _, rule := range np.Spec.Egress {
		if peersMayConcern(rule.To, rule.Ports, true) {
			return true
		}
	}
	return false
}

// policyRuleset is one policy's part of the table, in a ruleset of its own: its sets, its
// chains, and its pods in ingress-isolated and egress-isolated.
func policyRuleset(st *policyState, np *networkingv1.NetworkPolicy) *ruleset {
	r := newRuleset()
	r.maps[ingressIsolatedSet] = &nftMap{kind: "set"}
	r.maps[egressIsolatedSet] = &nftMap{kind: "set"}
	policyRules(r, st, np)
	for _, m := range r.maps {
		slices.Sort(m.elements)
		m.elements = slices.Compact(m.elements)
	}
	return r
}

// policyRules adds one policy's sets and chains: nothing when it selects no pod of this node.
func policyRules(r *ruleset, st *policyState, np *networkingv1.NetworkPolicy) {
	selector, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		return // validation makes this impossible; a policy we cannot read selects nothing
	}
	var selected []*policyPod
	for _, p := range st.byNamespace[np.Namespace] {
		if p.local && selector.Matches(p.labels) {
			selected = append(selected, p)
		}
	}
	if len(selected) == 0 {
		return
	}
	id := policyChainID(np)
	var addrs []string
	for _, p := range selected {
		addrs = append(addrs, p.addr)
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			r.maps[ingressIsolatedSet].elements = append(r.maps[ingressIsolatedSet].elements, addrs...)
			d := direction{name: "ingress", chain: id + "-in", peer: "saddr"}
			r.chain(d.chain)
			for i, rule := range np.Spec.Ingress {
				directionRule(r, st, np, d, fmt.Sprintf("%s-in%d", id, i), selected, rule.From, rule.Ports, i)
			}
		case networkingv1.PolicyTypeEgress:
			r.maps[egressIsolatedSet].elements = append(r.maps[egressIsolatedSet].elements, addrs...)
			d := direction{name: "egress", chain: id + "-out", peer: "daddr"}
			r.chain(d.chain)
			for i, rule := range np.Spec.Egress {
				directionRule(r, st, np, d, fmt.Sprintf("%s-out%d", id, i), selected, rule.To, rule.Ports, i)
			}
		}
	}
}

// direction is what differs between an ingress and an egress rule.
type direction struct {
	name, chain string
	// peer is the address field of the other end: saddr for ingress, daddr for egress.
	peer string
}

// directionRule adds the sets and rules of one ingress or egress rule of a policy. A rule
// none of whose peers or ports exist allows nothing and gets no nftables rule.
func directionRule(r *ruleset, st *policyState, np *networkingv1.NetworkPolicy, d direction, prefix string,
	selected []*policyPod, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort, index int) {
	comment := fmt.Sprintf("comment %q", fmt.Sprintf("%s/%s %s rule %d", np.Namespace, np.Name, d.name, index))
	// matches are the alternatives a packet must meet one of: any other end, or the other end
	// among the peer pods (a hash set, rewritten as pods come and go) or in the ipBlocks
	// (intervals, which change only with the policy); the chain is only reached for the
	// policy's own pods
	matches := []string{""}
	var peerPodList []*policyPod
	var blocks []ipRange
	if len(peers) > 0 {
		matches = nil
		peerPodList = peerPods(st, np.Namespace, peers)
		for _, peer := range peers {
			if peer.IPBlock != nil {
				blocks = append(blocks, ipBlockRanges(st.family, peer.IPBlock)...)
			}
		}
		if len(peerPodList) > 0 {
			set := prefix + "-peers"
			m := &nftMap{kind: "set", decl: "type " + st.family.addrType, incremental: true}
			for _, p := range peerPodList {
				m.elements = append(m.elements, p.addr)
			}
			r.maps[set] = m
			matches = append(matches, fmt.Sprintf("%s %s @%s ", st.family.match, d.peer, set))
		}
		if len(blocks) > 0 {
			set := prefix + "-blocks"
			r.maps[set] = &nftMap{kind: "set", decl: "type " + st.family.addrType + " ; flags interval", incremental: true, elements: rangeElements(mergeRanges(blocks))}
			matches = append(matches, fmt.Sprintf("%s %s @%s ", st.family.match, d.peer, set))
		}
	}
	if len(matches) == 0 {
		return
	}
	if len(ports) == 0 {
		for _, m := range matches {
			r.rule(d.chain, "%saccept %s", m, comment)
		}
		return
	}
	var numeric []portRange
	var named []string
	for _, port := range ports {
		proto := strings.ToLower(string(cmp.Or(ptrValue(port.Protocol), corev1.ProtocolTCP)))
		switch {
		case port.Port == nil:
			numeric = append(numeric, portRange{proto, 0, 65535})
		case port.Port.Type == intstr.Int && port.EndPort != nil && *port.EndPort > port.Port.IntVal:
			numeric = append(numeric, portRange{proto, port.Port.IntVal, *port.EndPort})
		case port.Port.Type == intstr.Int:
			numeric = append(numeric, portRange{proto, port.Port.IntVal, port.Port.IntVal})
		default:
			// a named port means each destination pod's own port of that name: the policy's
			// pods for ingress, the peers for egress
			key := port.Port.StrVal + "/" + strings.ToUpper(proto)
			targets := selected
			if d.name == "egress" {
				targets = st.pods
				if len(peers) > 0 {
					targets = peerPodList
					if len(blocks) > 0 {
						for _, p := range st.pods {
							if inRanges(blocks, p.ip) {
								targets = append(targets, p)
							}
						}
					}
				}
			}
			for _, p := range targets {
				for _, n := range p.ports[key] {
					named = append(named, p.addr+" . "+proto+" . "+strconv.Itoa(int(n)))
				}
			}
		}
	}
	if len(numeric) > 0 {
		set := prefix + "-ports"
		r.maps[set] = &nftMap{kind: "set", decl: "type inet_proto . inet_service ; flags interval", incremental: true, elements: portElements(numeric)}
		for _, m := range matches {
			r.rule(d.chain, "%smeta l4proto . th dport @%s accept %s", m, set, comment)
		}
	}
	if len(named) > 0 {
		// the destination is the pod whose port it is, for ingress and egress alike
		set := prefix + "-named"
		r.maps[set] = &nftMap{kind: "set", decl: "type " + st.family.addrType + " . inet_proto . inet_service", incremental: true, elements: named}
		for _, m := range matches {
			r.rule(d.chain, "%s%s daddr . meta l4proto . th dport @%s accept %s", m, st.family.match, set, comment)
		}
	}
}

// portRange is the ports from lo to hi of one protocol ("tcp").
type portRange struct {
	proto  string
	lo, hi int32
}

// portElements writes port ranges as interval set elements, joining those of one protocol
// that overlap or touch: an interval set refuses overlapping elements.
func portElements(ports []portRange) []string {
	slices.SortFunc(ports, func(a, b portRange) int { return cmp.Or(cmp.Compare(a.proto, b.proto), cmp.Compare(a.lo, b.lo)) })
	var merged []portRange
	for _, p := range ports {
		if n := len(merged); n > 0 && merged[n-1].proto == p.proto && p.lo <= merged[n-1].hi+1 {
			merged[n-1].hi = max(merged[n-1].hi, p.hi)
			continue
		}
		merged = append(merged, p)
	}
	out := make([]string, 0, len(merged))
	for _, p := range merged {
		if p.lo == p.hi {
			out = append(out, fmt.Sprintf("%s . %d", p.proto, p.lo))
		} else {
			out = append(out, fmt.Sprintf("%s . %d-%d", p.proto, p.lo, p.hi))
		}
	}
	return out
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// peerPods are the pods the peers' pod and namespace selectors name (ipBlocks are
// addresses, matched apart). A podSelector alone means pods of the policy's namespace; a
// namespaceSelector alone, every pod of the namespaces it selects; both, the pods it selects
// in those namespaces. A pod two peers name is there twice.
func peerPods(st *policyState, namespace string, peers []networkingv1.NetworkPolicyPeer) []*policyPod {
	var out []*policyPod
	for _, peer := range peers {
		if peer.PodSelector == nil && peer.NamespaceSelector == nil {
			continue
		}
		pods := labels.Everything()
		if peer.PodSelector != nil {
			var err error
			if pods, err = metav1.LabelSelectorAsSelector(peer.PodSelector); err != nil {
				continue
			}
		}
		inNamespace := func(ns string) {
			for _, p := range st.byNamespace[ns] {
				if pods.Matches(p.labels) {
					out = append(out, p)
				}
			}
		}
		if peer.NamespaceSelector == nil {
			inNamespace(namespace)
			continue
		}
		namespaces, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
		if err != nil {
			continue
		}
		for ns, nsLabels := range st.namespaces {
			if namespaces.Matches(nsLabels) {
				inNamespace(ns)
			}
		}
	}
	return out
}

func inRanges(ranges []ipRange, ip netip.Addr) bool {
	for _, r := range ranges {
		if r.first.Compare(ip) <= 0 && ip.Compare(r.last) <= 0 {
			return true
		}
	}
	return false
}

// ipRange is the addresses of one family from first to last, both included.
type ipRange struct{ first, last netip.Addr }

func prefixRange(p netip.Prefix) ipRange {
	p = p.Masked()
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(b)
	return ipRange{p.Addr(), last}
}

// ipBlockRanges is an ipBlock's CIDR without its exceptions, as ranges of the family: none
// for a block of the other family, which matches none of this family's traffic.
func ipBlockRanges(family ipFamily, b *networkingv1.IPBlock) []ipRange {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil || !family.has(cidr.Addr()) {
		return nil
	}
	ranges := []ipRange{prefixRange(cidr)}
	for _, e := range b.Except {
		ex, err := netip.ParsePrefix(e)
		if err != nil || !family.has(ex.Addr()) {
			continue
		}
		cut := prefixRange(ex)
		var rest []ipRange
		for _, r := range ranges {
			rest = append(rest, subtractRange(r, cut)...)
		}
		ranges = rest
	}
	return ranges
}

// subtractRange is r without the addresses of cut: none, one or two ranges.
func subtractRange(r, cut ipRange) []ipRange {
	if cut.last.Less(r.first) || r.last.Less(cut.first) {
		return []ipRange{r}
	}
	var out []ipRange
	if r.first.Less(cut.first) {
		out = append(out, ipRange{r.first, cut.first.Prev()})
	}
	if cut.last.Less(r.last) {
		out = append(out, ipRange{cut.last.Next(), r.last})
	}
	return out
}

// mergeRanges sorts ranges and joins those that overlap or touch: an interval set refuses
// overlapping elements.
func mergeRanges(ranges []ipRange) []ipRange {
	slices.SortFunc(ranges, func(a, b ipRange) int { return a.first.Compare(b.first) })
	var out []ipRange
	for _, r := range ranges {
		if n := len(out); n > 0 {
			// past the family's last address there is nothing to touch: Next is invalid
			if next := out[n-1].last.Next(); !next.IsValid() || r.first.Compare(next) <= 0 {
				if r.last.Compare(out[n-1].last) > 0 {
					out[n-1].last = r.last
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

func rangeElements(ranges []ipRange) []string {
	out := make([]string, 0, len(ranges))
	for _, r := range ranges {
		if r.first == r.last {
			out = append(out, r.first.String())
		} else {
			out = append(out, r.first.String()+"-"+r.last.String())
		}
	}
	return out
}
