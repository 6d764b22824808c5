package apiserver

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// notReadyNoSchedule is the taint upstream's TaintNodesByCondition puts on every new Node.
var notReadyNoSchedule = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}

// admitNodeTaint is upstream's TaintNodesByCondition for a new Node: it taints the Node
// node.kubernetes.io/not-ready:NoSchedule unless a taint of that key and effect is there
// already. Without it a Node would be schedulable from its create until the node lifecycle
// controller first saw its conditions; with it, that controller is what makes a Node usable,
// by lifting the taint once the Node reports Ready.
func (a admission) admitNodeTaint(node *corev1.Node) {
	if !a.enabled("TaintNodesByCondition") {
		return
	}
	if slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.MatchTaint(&notReadyNoSchedule) }) {
		return
	}
	node.Spec.Taints = append(node.Spec.Taints, notReadyNoSchedule)
}
