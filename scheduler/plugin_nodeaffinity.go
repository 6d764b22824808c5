package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// nodeAffinity keeps a pod on nodes that match its spec.nodeSelector and its required node
// affinity, and scores nodes by the weights of the preferred terms they match, as upstream's
// NodeAffinity.
type nodeAffinity struct{}

var (
	_ filterPlugin    = nodeAffinity{}
	_ preFilterPlugin = nodeAffinity{}
	_ scorePlugin     = nodeAffinity{}
)

func (nodeAffinity) name() string { return nodeAffinityName }

// requiredNodeAffinity is a pod's nodeSelector and required node affinity, parsed: the node
// must match the selector and at least one term.
type requiredNodeAffinity struct {
	selector labels.Selector // nil: no nodeSelector
	// terms is nil when the pod has no required node affinity. An empty term matches nothing
	// and is left out, so a required affinity of only empty terms has no terms and matches no
	// node.
	terms    []nodeSelectorTerm
	hasTerms bool
}

func (r *requiredNodeAffinity) clone() stateData { return r }

// nodeSelectorTerm is one parsed term: labels and fields must all match.
type nodeSelectorTerm struct {
	labels labels.Selector // nil: no matchExpressions
	// names are the matchFields on metadata.name, each "In" or "NotIn" one name.
	names []fieldRequirement
}

type fieldRequirement struct {
	in   bool
	name string
}

// newRequiredNodeAffinity parses what a pod requires of its node.
func newRequiredNodeAffinity(pod *corev1.Pod) *requiredNodeAffinity {
	r := &requiredNodeAffinity{}
	if len(pod.Spec.NodeSelector) > 0 {
		r.selector = labels.SelectorFromSet(pod.Spec.NodeSelector)
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return r
	}
	r.hasTerms = true
	for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
			continue
		}
		term, err := newNodeSelectorTerm(&t)
		if err != nil {
			// a term that cannot be parsed matches no node
			continue
		}
		r.terms = append(r.terms, term)
	}
	return r
}

func newNodeSelectorTerm(t *corev1.NodeSelectorTerm) (nodeSelectorTerm, error) {
	var term nodeSelectorTerm
	if len(t.MatchExpressions) > 0 {
		sel := labels.NewSelector()
		for _, e := range t.MatchExpressions {
			var op selection.Operator
			switch e.Operator {
			case corev1.NodeSelectorOpIn:
				op = selection.In
			case corev1.NodeSelectorOpNotIn:
				op = selection.NotIn
			case corev1.NodeSelectorOpExists:
				op = selection.Exists
			case corev1.NodeSelectorOpDoesNotExist:
				op = selection.DoesNotExist
			case corev1.NodeSelectorOpGt:
				op = selection.GreaterThan
			case corev1.NodeSelectorOpLt:
				op = selection.LessThan
			default:
				return term, fmt.Errorf("node selector operator %q is not supported", e.Operator)
			}
			req, err := labels.NewRequirement(e.Key, op, e.Values)
			if err != nil {
				return term, err
			}
			sel = sel.Add(*req)
		}
		term.labels = sel
	}
	for _, f := range t.MatchFields {
		if f.Key != "metadata.name" || len(f.Values) != 1 ||
			(f.Operator != corev1.NodeSelectorOpIn && f.Operator != corev1.NodeSelectorOpNotIn) {
			return term, fmt.Errorf("node field selector %s %s %v is not supported", f.Key, f.Operator, f.Values)
		}
		term.names = append(term.names, fieldRequirement{in: f.Operator == corev1.NodeSelectorOpIn, name: f.Values[0]})
	}
	return term, nil
}

func (t *nodeSelectorTerm) matches(node *corev1.Node) bool {
	if t.labels != nil && !t.labels.Matches(labels.Set(node.Labels)) {
		return false
	}
	for _, f := range t.names {
		if (node.Name == f.name) != f.in {
			return false
		}
	}
	return true
}

// matches says whether the node satisfies both the nodeSelector and the required terms (one
// of them).
func (r *requiredNodeAffinity) matches(node *corev1.Node) bool {
	if r.selector != nil && !r.selector.Matches(labels.Set(node.Labels)) {
		return false
	}
	if !r.hasTerms {
		return true
	}
	for i := range r.terms {
		if r.terms[i].matches(node) {
			return true
		}
	}
	return false
}

func (nodeAffinity) preFilter(cs *cycleState, pod *podInfo, _ *snapshot) (bool, *status) {
	r := newRequiredNodeAffinity(pod.pod)
	if r.selector == nil && !r.hasTerms {
		return true, nil
	}
	cs.write(nodeAffinityName, r)
	return false, nil
}

func (nodeAffinity) filter(cs *cycleState, pod *podInfo, node *nodeInfo) *status {
	r, _ := cs.read(nodeAffinityName).(*requiredNodeAffinity)
	if r == nil {
		r = newRequiredNodeAffinity(pod.pod)
	}
	if r.matches(node.node) {
		return nil
	}
	return newStatus(unresolvable, nodeAffinityName, reasonNodeAffinity)
}

// preferredNodeAffinity is a pod's preferred node affinity terms, parsed.
type preferredNodeAffinity []weightedNodeSelectorTerm

func (p preferredNodeAffinity) clone() stateData { return p }

type weightedNodeSelectorTerm struct {
	nodeSelectorTerm
	weight int64
}

const nodeAffinityScoreKey = nodeAffinityName + "/score"

func (nodeAffinity) prepare(cs *cycleState, pod *podInfo, _ []*nodeInfo, _ *snapshot) bool {
	a := pod.pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		return false
	}
	var terms preferredNodeAffinity
	for _, t := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		if t.Weight == 0 || (len(t.Preference.MatchExpressions) == 0 && len(t.Preference.MatchFields) == 0) {
			continue
		}
		term, err := newNodeSelectorTerm(&t.Preference)
		if err != nil {
			continue
		}
		terms = append(terms, weightedNodeSelectorTerm{nodeSelectorTerm: term, weight: int64(t.Weight)})
	}
	cs.write(nodeAffinityScoreKey, terms)
	return true
}

func (nodeAffinity) score(cs *cycleState, _ *podInfo, node *nodeInfo) int64 {
	terms, _ := cs.read(nodeAffinityScoreKey).(preferredNodeAffinity)
	var s int64
	for i := range terms {
		if terms[i].matches(node.node) {
			s += terms[i].weight
		}
	}
	return s
}

func (nodeAffinity) normalize(_ *cycleState, _ *podInfo, scores []int64) {
	defaultNormalizeScore(scores, false)
}
