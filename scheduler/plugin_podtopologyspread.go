package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// Upstream's PodTopologySpread reasons.
const (
	reasonSpreadConstraintsNotMatch = "node(s) didn't match pod topology spread constraints"
	reasonSpreadMissingLabel        = "node(s) didn't match pod topology spread constraints (missing required label)"
)

// podTopologySpread spreads matching pods over topology domains, as upstream's
// PodTopologySpread:
//
//   - a DoNotSchedule constraint rejects a node when putting the pod there would make its
//     domain hold more than maxSkew matching pods above the least-populated eligible domain
//     (taken as 0 while there are fewer than minDomains domains); a node without the
//     topology key is rejected outright;
//   - ScheduleAnyway constraints score nodes higher the fewer matching pods their domains
//     hold, each constraint weighted by log(number of domains + 2).
//
// Eligible nodes have every constraint's topology key and, per the constraint's inclusion
// policies, match the pod's node affinity (Honor by default) and have no taint it does not
// tolerate (Ignore by default). Only pods of the pod's namespace that are not terminating
// count. Upstream's cluster-level default constraints (for pods of services and controllers)
// are not applied.
type podTopologySpread struct{}

var (
	_ filterPlugin      = podTopologySpread{}
	_ preFilterPlugin   = podTopologySpread{}
	_ podCountingPlugin = podTopologySpread{}
	_ scorePlugin       = podTopologySpread{}
)

func (podTopologySpread) name() string { return podTopologySpreadName }

// spreadConstraint is a parsed v1.TopologySpreadConstraint.
type spreadConstraint struct {
	maxSkew           int32
	minDomains        int32
	topologyKey       string
	selector          labels.Selector
	honorNodeAffinity bool
	honorNodeTaints   bool
}

// spreadConstraints parses the pod's constraints with the given action; matchLabelKeys add the
// pod's own values of those labels to the selector.
func spreadConstraints(pod *corev1.Pod, action corev1.UnsatisfiableConstraintAction) []spreadConstraint {
	var out []spreadConstraint
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != action {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			continue
		}
		for _, key := range c.MatchLabelKeys {
			if v, ok := pod.Labels[key]; ok {
				if r, err := labels.NewRequirement(key, selection.In, []string{v}); err == nil {
					sel = sel.Add(*r)
				}
			}
		}
		sc := spreadConstraint{
			maxSkew:           c.MaxSkew,
			minDomains:        1,
			topologyKey:       c.TopologyKey,
			selector:          sel,
			honorNodeAffinity: c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor,
			honorNodeTaints:   c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor,
		}
		if c.MinDomains != nil {
			sc.minDomains = *c.MinDomains
		}
		out = append(out, sc)
	}
	return out
}

// includesNode says whether the node counts for the constraint under its inclusion policies.
func (c *spreadConstraint) includesNode(pod *corev1.Pod, node *corev1.Node, affinity *requiredNodeAffinity) bool {
	if c.honorNodeAffinity && !affinity.matches(node) {
		return false
	}
	if c.honorNodeTaints {
		for i := range node.Spec.Taints {
			t := &node.Spec.Taints[i]
			if (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute) &&
				!tolerationsTolerate(pod.Spec.Tolerations, t) {
				return false
			}
		}
	}
	return true
}

func nodeHasAllTopologyKeys(node *corev1.Node, constraints []spreadConstraint) bool {
	for i := range constraints {
		if _, ok := node.Labels[constraints[i].topologyKey]; !ok {
			return false
		}
	}
	return true
}

// countMatchingPods counts the pods of namespace on a node that the selector matches and that
// are not terminating.
func countMatchingPods(pods []*podInfo, sel labels.Selector, namespace string) int {
	n := 0
	for _, p := range pods {
		if p.pod.Namespace != namespace || p.pod.DeletionTimestamp != nil {
			continue
		}
		if sel.Matches(labels.Set(p.pod.Labels)) {
			n++
		}
	}
	return n
}

// criticalPaths holds the two least-populated domains of a topology key; [0] always has the
// minimum. Two suffice because preemption only ever removes pods from one node at a time.
type criticalPaths [2]struct {
	value string
	num   int
}

func newCriticalPaths() *criticalPaths {
	return &criticalPaths{{num: math.MaxInt32}, {num: math.MaxInt32}}
}

func (p *criticalPaths) update(value string, num int) {
	i := -1
	if value == p[0].value {
		i = 0
	} else if value == p[1].value {
		i = 1
	}
	if i >= 0 {
		p[i].num = num
		if p[0].num > p[1].num {
			p[0], p[1] = p[1], p[0]
		}
		return
	}
	if num < p[0].num {
		p[1] = p[0]
		p[0].value, p[0].num = value, num
	} else if num < p[1].num {
		p[1].value, p[1].num = value, num
	}
}

// spreadFilterState counts matching pods per domain over the eligible nodes.
type spreadFilterState struct {
	constraints []spreadConstraint
	matchNum    map[topologyPair]int
	domains     map[string]int
	critical    map[string]*criticalPaths
	affinity    *requiredNodeAffinity
	pod         *corev1.Pod
}

func (s *spreadFilterState) clone() stateData {
	c := *s
	c.matchNum = make(map[topologyPair]int, len(s.matchNum))
	for k, v := range s.matchNum {
		c.matchNum[k] = v
	}
	c.critical = make(map[string]*criticalPaths, len(s.critical))
	for k, v := range s.critical {
		cp := *v
		c.critical[k] = &cp
	}
	return &c
}

// minMatchNum is the global minimum for the skew: 0 while there are fewer domains than
// minDomains.
func (s *spreadFilterState) minMatchNum(c *spreadConstraint) int {
	if s.domains[c.topologyKey] < int(c.minDomains) {
		return 0
	}
	return s.critical[c.topologyKey][0].num
}

func (podTopologySpread) preFilter(cs *cycleState, pod *podInfo, snap *snapshot) (bool, *status) {
	constraints := spreadConstraints(pod.pod, corev1.DoNotSchedule)
	if len(constraints) == 0 {
		return true, nil
	}
	s := &spreadFilterState{
		constraints: constraints,
		matchNum:    make(map[topologyPair]int),
		domains:     make(map[string]int),
		critical:    make(map[string]*criticalPaths, len(constraints)),
		affinity:    newRequiredNodeAffinity(pod.pod),
		pod:         pod.pod,
	}
	for _, n := range snap.list {
		if !nodeHasAllTopologyKeys(n.node, constraints) {
			continue
		}
		for i := range constraints {
			c := &constraints[i]
			if !c.includesNode(pod.pod, n.node, s.affinity) {
				continue
			}
			p := topologyPair{c.topologyKey, n.node.Labels[c.topologyKey]}
			s.matchNum[p] += countMatchingPods(n.pods, c.selector, pod.pod.Namespace)
		}
	}
	for p := range s.matchNum {
		s.domains[p.key]++
	}
	for i := range constraints {
		s.critical[constraints[i].topologyKey] = newCriticalPaths()
	}
	for p, num := range s.matchNum {
		s.critical[p.key].update(p.value, num)
	}
	cs.write(podTopologySpreadName, s)
	return false, nil
}

func (pl podTopologySpread) addPod(cs *cycleState, _, added *podInfo, node *nodeInfo) {
	pl.updateWithPod(cs, added, node, 1)
}

func (pl podTopologySpread) removePod(cs *cycleState, _, removed *podInfo, node *nodeInfo) {
	pl.updateWithPod(cs, removed, node, -1)
}

func (podTopologySpread) updateWithPod(cs *cycleState, other *podInfo, node *nodeInfo, delta int) {
	s, _ := cs.read(podTopologySpreadName).(*spreadFilterState)
	if s == nil || node.node == nil || other.pod.Namespace != s.pod.Namespace {
		return
	}
	if !nodeHasAllTopologyKeys(node.node, s.constraints) {
		return
	}
	for i := range s.constraints {
		c := &s.constraints[i]
		if !c.selector.Matches(labels.Set(other.pod.Labels)) || !c.includesNode(s.pod, node.node, s.affinity) {
			continue
		}
		p := topologyPair{c.topologyKey, node.node.Labels[c.topologyKey]}
		s.matchNum[p] += delta
		s.critical[c.topologyKey].update(p.value, s.matchNum[p])
	}
}

func (podTopologySpread) filter(cs *cycleState, pod *podInfo, node *nodeInfo) *status {
	s, _ := cs.read(podTopologySpreadName).(*spreadFilterState)
	if s == nil {
		return nil
	}
	podLabels := labels.Set(pod.pod.Labels)
	for i := range s.constraints {
		c := &s.constraints[i]
		value, ok := node.node.Labels[c.topologyKey]
		if !ok {
			return newStatus(unresolvable, podTopologySpreadName, reasonSpreadMissingLabel)
		}
		self := 0
		if c.selector.Matches(podLabels) {
			self = 1
		}
		if s.matchNum[topologyPair{c.topologyKey, value}]+self-s.minMatchNum(c) > int(c.maxSkew) {
			return newStatus(unschedulable, podTopologySpreadName, reasonSpreadConstraintsNotMatch)
		}
	}
	return nil
}

// spreadScoreState counts matching pods per domain of the ScheduleAnyway constraints.
type spreadScoreState struct {
	constraints []spreadConstraint
	// ignored are the feasible nodes missing a topology key; they score 0. ignoredAt says
	// the same by position among the feasible nodes, for normalize.
	ignored   map[string]bool
	ignoredAt []bool
	// counts[i] maps the domains of constraint i among the feasible nodes to their matching
	// pods; hostname domains are counted per node when scoring.
	counts  []map[string]int64
	weights []float64
}

func (s *spreadScoreState) clone() stateData { return s }

const podTopologySpreadScoreKey = podTopologySpreadName + "/score"

func (podTopologySpread) prepare(cs *cycleState, pod *podInfo, feasible []*nodeInfo, snap *snapshot) bool {
	constraints := spreadConstraints(pod.pod, corev1.ScheduleAnyway)
	if len(constraints) == 0 || len(snap.list) == 0 {
		return false
	}
	s := &spreadScoreState{
		constraints: constraints,
		ignored:     make(map[string]bool),
		ignoredAt:   make([]bool, len(feasible)),
		counts:      make([]map[string]int64, len(constraints)),
		weights:     make([]float64, len(constraints)),
	}
	sizes := make([]int, len(constraints))
	for i := range constraints {
		s.counts[i] = make(map[string]int64)
	}
	for j, n := range feasible {
		if !nodeHasAllTopologyKeys(n.node, constraints) {
			s.ignored[n.name] = true
			s.ignoredAt[j] = true
			continue
		}
		for i := range constraints {
			if constraints[i].topologyKey == corev1.LabelHostname {
				continue
			}
			v := n.node.Labels[constraints[i].topologyKey]
			if _, ok := s.counts[i][v]; !ok {
				s.counts[i][v] = 0
				sizes[i]++
			}
		}
	}
	for i := range constraints {
		size := sizes[i]
		if constraints[i].topologyKey == corev1.LabelHostname {
			size = len(feasible) - len(s.ignored)
		}
		s.weights[i] = math.Log(float64(size + 2))
	}
	affinity := newRequiredNodeAffinity(pod.pod)
	for _, n := range snap.list {
		if !nodeHasAllTopologyKeys(n.node, constraints) {
			continue
		}
		for i := range constraints {
			c := &constraints[i]
			if c.topologyKey == corev1.LabelHostname || !c.includesNode(pod.pod, n.node, affinity) {
				continue
			}
			v := n.node.Labels[c.topologyKey]
			if _, ok := s.counts[i][v]; !ok {
				continue
			}
			s.counts[i][v] += int64(countMatchingPods(n.pods, c.selector, pod.pod.Namespace))
		}
	}
	cs.write(podTopologySpreadScoreKey, s)
	return true
}

// score is the number of matching pods in the node's domains, weighted; normalize turns fewer
// into better.
func (podTopologySpread) score(cs *cycleState, pod *podInfo, node *nodeInfo) int64 {
	s, _ := cs.read(podTopologySpreadScoreKey).(*spreadScoreState)
	if s == nil || s.ignored[node.name] {
		return 0
	}
	var score float64
	for i := range s.constraints {
		c := &s.constraints[i]
		v, ok := node.node.Labels[c.topologyKey]
		if !ok {
			continue
		}
		var cnt int64
		if c.topologyKey == corev1.LabelHostname {
			cnt = int64(countMatchingPods(node.pods, c.selector, pod.pod.Namespace))
		} else {
			cnt = s.counts[i][v]
		}
		score += float64(cnt)*s.weights[i] + float64(c.maxSkew-1)
	}
	return int64(math.Round(score))
}

// ignoredScore marks, during normalize, a node that takes no part.
const ignoredScore = -1

// normalize maps fewer matching pods to a higher score; scores come in the order of the
// feasible nodes given to prepare.
func (podTopologySpread) normalize(cs *cycleState, _ *podInfo, scores []int64) {
	s, _ := cs.read(podTopologySpreadScoreKey).(*spreadScoreState)
	if s == nil {
		return
	}
	lo, hi := int64(math.MaxInt64), int64(0)
	for i, sc := range scores {
		if i < len(s.ignoredAt) && s.ignoredAt[i] {
			scores[i] = ignoredScore
			continue
		}
		lo, hi = min(lo, sc), max(hi, sc)
	}
	for i, sc := range scores {
		switch {
		case sc == ignoredScore:
			scores[i] = 0
		case hi == 0:
			scores[i] = maxNodeScore
		default:
			scores[i] = maxNodeScore * (hi + lo - sc) / hi
		}
	}
}
