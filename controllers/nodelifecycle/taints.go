package nodelifecycle

import (
	"context"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// The NoExecute taints that mirror a node's Ready condition: Unknown is unreachable, False is
// not-ready. They exclude each other.
var (
	UnreachableTaint = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	NotReadyTaint    = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}
)

// conditionTaints are the NoSchedule taints upstream keeps in step with node conditions
// (TaintNodesByCondition): the condition type and status that call for each.
var conditionTaints = []struct {
	condition corev1.NodeConditionType
	status    corev1.ConditionStatus
	key       string
}{
	{corev1.NodeReady, corev1.ConditionFalse, corev1.TaintNodeNotReady},
	{corev1.NodeReady, corev1.ConditionUnknown, corev1.TaintNodeUnreachable},
	{corev1.NodeMemoryPressure, corev1.ConditionTrue, corev1.TaintNodeMemoryPressure},
	{corev1.NodeDiskPressure, corev1.ConditionTrue, corev1.TaintNodeDiskPressure},
	{corev1.NodeNetworkUnavailable, corev1.ConditionTrue, corev1.TaintNodeNetworkUnavailable},
	{corev1.NodePIDPressure, corev1.ConditionTrue, corev1.TaintNodePIDPressure},
}

// isConditionTaintKey says whether key is one conditionTaints or the unschedulable taint use:
// only NoSchedule taints of those keys are the controller's to add and remove.
func isConditionTaintKey(key string) bool {
	if key == corev1.TaintNodeUnschedulable {
		return true
	}
	for _, c := range conditionTaints {
		if c.key == key {
			return true
		}
	}
	return false
}

// wantedNoScheduleTaints are the NoSchedule taints a node's conditions and spec call for.
func wantedNoScheduleTaints(node *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	for _, c := range conditionTaints {
		if cond := nodeCondition(&node.Status, c.condition); cond != nil && cond.Status == c.status {
			out = append(out, corev1.Taint{Key: c.key, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	if node.Spec.Unschedulable {
		out = append(out, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	}
	return out
}

func nodeCondition(s *corev1.NodeStatus, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			return &s.Conditions[i]
		}
	}
	return nil
}

func taintExists(taints []corev1.Taint, t *corev1.Taint) bool {
	return slices.ContainsFunc(taints, func(x corev1.Taint) bool { return x.MatchTaint(t) })
}

// swapTaints adds add and removes remove on the node, reading it again on conflicts; it
// returns nil once the node has that change (writing nothing when it had it already).
func swapTaints(ctx context.Context, client kubernetes.Interface, node string, add, remove []corev1.Taint, now time.Time) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		taints := slices.DeleteFunc(slices.Clone(n.Spec.Taints), func(t corev1.Taint) bool {
			return slices.ContainsFunc(remove, func(r corev1.Taint) bool { return r.MatchTaint(&t) })
		})
		for _, a := range add {
			if !taintExists(taints, &a) {
				a.TimeAdded = &metav1.Time{Time: now.Truncate(time.Second)}
				taints = append(taints, a)
			}
		}
		if slices.EqualFunc(taints, n.Spec.Taints, func(a, b corev1.Taint) bool { return a.MatchTaint(&b) && a.Value == b.Value }) {
			return nil
		}
		n.Spec.Taints = taints
		_, err = client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// ignoreNotFound treats a node that is gone as done with.
func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
