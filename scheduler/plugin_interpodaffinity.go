package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Upstream's InterPodAffinity reasons.
const (
	reasonAffinityRulesNotMatch                   = "node(s) didn't match pod affinity rules"
	reasonAntiAffinityRulesNotMatch               = "node(s) didn't match pod anti-affinity rules"
	reasonExistingAntiAffinityRulesNotMatch       = "node(s) didn't satisfy existing pods anti-affinity rules"
	hardPodAffinityWeight                   int64 = 1
)

// interPodAffinity places pods relative to other pods, as upstream's InterPodAffinity:
//
//   - a node passes the pod's required affinity when, in each term's topology domain of the
//     node (its value of the term's topologyKey), some pod matches all the terms; a pod that
//     matches its own terms may start a group where no pod matches yet;
//   - it passes the pod's required anti-affinity when no pod in the node's domain matches a
//     term, and the existing pods' required anti-affinity when the pod matches none of their
//     terms in the node's domain;
//   - nodes score by the weights of preferred terms (both the pod's and the existing pods'),
//     and existing pods' required affinity terms that the pod matches count 1 each.
type interPodAffinity struct {
	// namespaceLabels returns the labels of a namespace, for terms with a namespaceSelector.
	namespaceLabels func(namespace string) labels.Set
	// namespaces lists the cluster's namespaces with their labels.
	namespaces func() map[string]labels.Set
}

var (
	_ filterPlugin      = (*interPodAffinity)(nil)
	_ preFilterPlugin   = (*interPodAffinity)(nil)
	_ podCountingPlugin = (*interPodAffinity)(nil)
	_ scorePlugin       = (*interPodAffinity)(nil)
)

func (*interPodAffinity) name() string { return interPodAffinityName }

type topologyPair struct{ key, value string }

// topologyCounts counts matching pods per topology domain.
type topologyCounts map[topologyPair]int64

func (m topologyCounts) update(node *corev1.Node, key string, delta int64) {
	if v, ok := node.Labels[key]; ok {
		p := topologyPair{key, v}
		m[p] += delta
		if m[p] == 0 {
			delete(m, p)
		}
	}
}

// updateWithAffinityTerms counts pod in the node's domains when it matches every term.
func (m topologyCounts) updateWithAffinityTerms(terms []affinityTerm, pod *corev1.Pod, node *corev1.Node, delta int64) {
	if podMatchesAllTerms(terms, pod) {
		for i := range terms {
			m.update(node, terms[i].topologyKey, delta)
		}
	}
}

// updateWithAntiAffinityTerms counts pod in the domain of each term it matches.
func (m topologyCounts) updateWithAntiAffinityTerms(terms []affinityTerm, pod *corev1.Pod, nsLabels labels.Set, node *corev1.Node, delta int64) {
	for i := range terms {
		if terms[i].matches(pod, nsLabels) {
			m.update(node, terms[i].topologyKey, delta)
		}
	}
}

func podMatchesAllTerms(terms []affinityTerm, pod *corev1.Pod) bool {
	if len(terms) == 0 {
		return false
	}
	for i := range terms {
		if !terms[i].matches(pod, nil) {
			return false
		}
	}
	return true
}

// interPodAffinityState is what the filter needs, counted once per pod over the cluster.
type interPodAffinityState struct {
	// the pod's required terms, with namespace selectors resolved to namespaces
	affinity, antiAffinity []affinityTerm
	// nsLabels are the labels of the pod's namespace.
	nsLabels labels.Set
	// existingAntiAffinity counts, per domain, existing pods whose required anti-affinity
	// the pod matches; affinityCounts and antiAffinityCounts count existing pods matching the
	// pod's required terms.
	existingAntiAffinity, affinityCounts, antiAffinityCounts topologyCounts
	pod                                                      *corev1.Pod
}

func (s *interPodAffinityState) clone() stateData {
	c := *s
	c.existingAntiAffinity = cloneCounts(s.existingAntiAffinity)
	c.affinityCounts = cloneCounts(s.affinityCounts)
	c.antiAffinityCounts = cloneCounts(s.antiAffinityCounts)
	return &c
}

func cloneCounts(m topologyCounts) topologyCounts {
	c := make(topologyCounts, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// resolveNamespaces returns the terms with their namespace selectors turned into the
// namespaces they select now, as upstream merges them at the start of the cycle.
func (pl *interPodAffinity) resolveNamespaces(terms []affinityTerm) []affinityTerm {
	out := make([]affinityTerm, len(terms))
	var all map[string]labels.Set
	for i, t := range terms {
		out[i] = t
		if isNothing(t.namespaceSelector) {
			continue
		}
		if all == nil && pl.namespaces != nil {
			all = pl.namespaces()
		}
		ns := sets.New[string]()
		ns.Insert(t.namespaces.UnsortedList()...)
		for name, l := range all {
			if t.namespaceSelector.Matches(l) {
				ns.Insert(name)
			}
		}
		out[i].namespaces = ns
		out[i].namespaceSelector = labels.Nothing()
	}
	return out
}

// isNothing says whether s is the selector of a nil namespaceSelector, which selects nothing.
func isNothing(s labels.Selector) bool {
	_, selectable := s.Requirements()
	return !selectable
}

func (pl *interPodAffinity) nsLabelsOf(ns string) labels.Set {
	if pl.namespaceLabels == nil {
		return nil
	}
	return pl.namespaceLabels(ns)
}

func (pl *interPodAffinity) preFilter(cs *cycleState, pod *podInfo, snap *snapshot) (bool, *status) {
	if pod.affinityErr != nil {
		return false, newStatus(unresolvable, interPodAffinityName, pod.affinityErr.Error())
	}
	s := &interPodAffinityState{
		pod:                  pod.pod,
		affinity:             pl.resolveNamespaces(pod.requiredAffinity),
		antiAffinity:         pl.resolveNamespaces(pod.requiredAntiAffinity),
		nsLabels:             pl.nsLabelsOf(pod.pod.Namespace),
		existingAntiAffinity: topologyCounts{},
		affinityCounts:       topologyCounts{},
		antiAffinityCounts:   topologyCounts{},
	}
	for _, n := range snap.havePodsWithRequiredAntiAffinity {
		for _, existing := range n.podsWithRequiredAntiAffinity {
			s.existingAntiAffinity.updateWithAntiAffinityTerms(existing.requiredAntiAffinity, pod.pod, s.nsLabels, n.node, 1)
		}
	}
	if len(s.affinity) == 0 && len(s.antiAffinity) == 0 {
		if len(s.existingAntiAffinity) == 0 {
			// no term of the pod's, and no existing pod's term that selects it
			return true, nil
		}
	} else {
		for _, n := range snap.list {
			for _, existing := range n.pods {
				s.affinityCounts.updateWithAffinityTerms(s.affinity, existing.pod, n.node, 1)
				s.antiAffinityCounts.updateWithAntiAffinityTerms(s.antiAffinity, existing.pod, nil, n.node, 1)
			}
		}
	}
	cs.write(interPodAffinityName, s)
	return false, nil
}

func (pl *interPodAffinity) addPod(cs *cycleState, _, added *podInfo, node *nodeInfo) {
	pl.updateWithPod(cs, added, node, 1)
}

func (pl *interPodAffinity) removePod(cs *cycleState, _, removed *podInfo, node *nodeInfo) {
	pl.updateWithPod(cs, removed, node, -1)
}

func (pl *interPodAffinity) updateWithPod(cs *cycleState, other *podInfo, node *nodeInfo, delta int64) {
	s, _ := cs.read(interPodAffinityName).(*interPodAffinityState)
	if s == nil || node.node == nil {
		return
	}
	s.existingAntiAffinity.updateWithAntiAffinityTerms(other.requiredAntiAffinity, s.pod, s.nsLabels, node.node, delta)
	s.affinityCounts.updateWithAffinityTerms(s.affinity, other.pod, node.node, delta)
	s.antiAffinityCounts.updateWithAntiAffinityTerms(s.antiAffinity, other.pod, nil, node.node, delta)
}

func (pl *interPodAffinity) filter(cs *cycleState, pod *podInfo, node *nodeInfo) *status {
	s, _ := cs.read(interPodAffinityName).(*interPodAffinityState)
	if s == nil {
		return nil
	}
	labels := node.node.Labels
	// required affinity: every term's domain on this node must hold a matching pod
	podsExist := true
	for i := range s.affinity {
		v, ok := labels[s.affinity[i].topologyKey]
		if !ok {
			return newStatus(unresolvable, interPodAffinityName, reasonAffinityRulesNotMatch)
		}
		if s.affinityCounts[topologyPair{s.affinity[i].topologyKey, v}] <= 0 {
			podsExist = false
		}
	}
	// the first pod of a group that selects itself may go anywhere with the topology labels
	if !podsExist && !(len(s.affinityCounts) == 0 && podMatchesAllTerms(s.affinity, pod.pod)) {
		return newStatus(unresolvable, interPodAffinityName, reasonAffinityRulesNotMatch)
	}
	if len(s.antiAffinityCounts) > 0 {
		for i := range s.antiAffinity {
			if v, ok := labels[s.antiAffinity[i].topologyKey]; ok && s.antiAffinityCounts[topologyPair{s.antiAffinity[i].topologyKey, v}] > 0 {
				return newStatus(unschedulable, interPodAffinityName, reasonAntiAffinityRulesNotMatch)
			}
		}
	}
	if len(s.existingAntiAffinity) > 0 {
		for k, v := range labels {
			if s.existingAntiAffinity[topologyPair{k, v}] > 0 {
				return newStatus(unschedulable, interPodAffinityName, reasonExistingAntiAffinityRulesNotMatch)
			}
		}
	}
	return nil
}

// topologyScores adds up preferred-term weights per topology key and value.
type topologyScores map[string]map[string]int64

func (t topologyScores) clone() stateData { return t }

func (t topologyScores) add(node *corev1.Node, key string, weight int64) {
	if key == "" {
		return
	}
	if v, ok := node.Labels[key]; ok {
		m := t[key]
		if m == nil {
			m = make(map[string]int64)
			t[key] = m
		}
		m[v] += weight
	}
}

const interPodAffinityScoreKey = interPodAffinityName + "/score"

func (pl *interPodAffinity) prepare(cs *cycleState, pod *podInfo, _ []*nodeInfo, snap *snapshot) bool {
	hasPreferred := len(pod.preferredAffinity)+len(pod.preferredAntiAffinity) > 0
	nodes := snap.havePodsWithAffinity
	if hasPreferred {
		nodes = snap.list
	}
	if len(nodes) == 0 {
		return false
	}
	resolve := func(terms []weightedAffinityTerm) []weightedAffinityTerm {
		plain := make([]affinityTerm, len(terms))
		for i := range terms {
			plain[i] = terms[i].affinityTerm
		}
		plain = pl.resolveNamespaces(plain)
		out := make([]weightedAffinityTerm, len(terms))
		for i := range terms {
			out[i] = weightedAffinityTerm{affinityTerm: plain[i], weight: terms[i].weight}
		}
		return out
	}
	preferredAffinity, preferredAnti := resolve(pod.preferredAffinity), resolve(pod.preferredAntiAffinity)
	nsLabels := pl.nsLabelsOf(pod.pod.Namespace)
	scores := topologyScores{}
	for _, n := range nodes {
		if len(n.node.Labels) == 0 {
			continue
		}
		pods := n.podsWithAffinity
		if hasPreferred {
			pods = n.pods
		}
		for _, existing := range pods {
			for i := range preferredAffinity {
				if preferredAffinity[i].matches(existing.pod, nil) {
					scores.add(n.node, preferredAffinity[i].topologyKey, int64(preferredAffinity[i].weight))
				}
			}
			for i := range preferredAnti {
				if preferredAnti[i].matches(existing.pod, nil) {
					scores.add(n.node, preferredAnti[i].topologyKey, -int64(preferredAnti[i].weight))
				}
			}
			for i := range existing.requiredAffinity {
				if existing.requiredAffinity[i].matches(pod.pod, nsLabels) {
					scores.add(n.node, existing.requiredAffinity[i].topologyKey, hardPodAffinityWeight)
				}
			}
			for i := range existing.preferredAffinity {
				if existing.preferredAffinity[i].matches(pod.pod, nsLabels) {
					scores.add(n.node, existing.preferredAffinity[i].topologyKey, int64(existing.preferredAffinity[i].weight))
				}
			}
			for i := range existing.preferredAntiAffinity {
				if existing.preferredAntiAffinity[i].matches(pod.pod, nsLabels) {
					scores.add(n.node, existing.preferredAntiAffinity[i].topologyKey, -int64(existing.preferredAntiAffinity[i].weight))
				}
			}
		}
	}
	if len(scores) == 0 {
		return false
	}
	cs.write(interPodAffinityScoreKey, scores)
	return true
}

func (pl *interPodAffinity) score(cs *cycleState, _ *podInfo, node *nodeInfo) int64 {
	scores, _ := cs.read(interPodAffinityScoreKey).(topologyScores)
	var s int64
	for key, values := range scores {
		if v, ok := node.node.Labels[key]; ok {
			s += values[v]
		}
	}
	return s
}

// normalize maps the raw scores linearly from [min, max] onto [0, 100].
func (pl *interPodAffinity) normalize(_ *cycleState, _ *podInfo, scores []int64) {
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, s := range scores {
		lo, hi = min(lo, s), max(hi, s)
	}
	diff := hi - lo
	for i, s := range scores {
		if diff > 0 {
			scores[i] = int64(float64(maxNodeScore) * float64(s-lo) / float64(diff))
		} else {
			scores[i] = 0
		}
	}
}
