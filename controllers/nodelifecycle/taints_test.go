package nodelifecycle

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/controllers"
)

// syncNode runs the controller's sync once on a fake clientset holding node and returns the
// node as stored afterwards, with how many writes sync made.
func syncNode(t *testing.T, node *corev1.Node) (*corev1.Node, int) {
	t.Helper()
	client := fake.NewClientset(node)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Core().V1().Nodes(), factory.Coordination().V1().Leases(), factory.Core().V1().Pods(), client, Options{}, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); factory.Shutdown() }()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	client.ClearActions()
	if err := c.sync(ctx, node.Name); err != nil {
		t.Fatal(err)
	}
	writes := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "update" || a.GetVerb() == "patch" {
			writes++
		}
	}
	got, err := client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got, writes
}

// taintNames are the node's taints as key:effect (key=value:effect when there is a value).
func taintNames(n *corev1.Node) []string {
	var out []string
	for _, t := range n.Spec.Taints {
		out = append(out, t.ToString())
	}
	slices.Sort(out)
	return out
}

func TestSyncKeepsNoScheduleTaintsInStepWithConditions(t *testing.T) {
	T, F, U := corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown
	cond := func(typ corev1.NodeConditionType, s corev1.ConditionStatus) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: s}
	}
	noSchedule := func(key string) corev1.Taint { return corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule} }
	admitted := noSchedule(corev1.TaintNodeNotReady) // what TaintNodesByCondition puts on a new Node
	cases := []struct {
		name          string
		conditions    []corev1.NodeCondition
		unschedulable bool
		taints        []corev1.Taint
		want          []string
	}{
		{name: "a new node that reports Ready loses the admission's taint",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, T)}, taints: []corev1.Taint{admitted}},
		{name: "a new node that reports NotReady keeps it",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, F)}, taints: []corev1.Taint{admitted},
			want: []string{"node.kubernetes.io/not-ready:NoSchedule"}},
		{name: "a node without conditions loses it, as upstream's (no condition calls for a taint)",
			taints: []corev1.Taint{admitted}},
		{name: "NotReady is tainted not-ready",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, F)},
			want:       []string{"node.kubernetes.io/not-ready:NoSchedule"}},
		{name: "Ready Unknown swaps not-ready for unreachable",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, U)}, taints: []corev1.Taint{admitted},
			want: []string{"node.kubernetes.io/unreachable:NoSchedule"}},
		{name: "Ready again lifts unreachable",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, T)}, taints: []corev1.Taint{noSchedule(corev1.TaintNodeUnreachable)}},
		{name: "each pressure and an unavailable network have their taint",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, T), cond(corev1.NodeMemoryPressure, T),
				cond(corev1.NodeDiskPressure, T), cond(corev1.NodePIDPressure, T), cond(corev1.NodeNetworkUnavailable, T)},
			want: []string{"node.kubernetes.io/disk-pressure:NoSchedule", "node.kubernetes.io/memory-pressure:NoSchedule",
				"node.kubernetes.io/network-unavailable:NoSchedule", "node.kubernetes.io/pid-pressure:NoSchedule"}},
		{name: "pressures that clear lift their taints",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, T), cond(corev1.NodeMemoryPressure, F),
				cond(corev1.NodeDiskPressure, U), cond(corev1.NodePIDPressure, F), cond(corev1.NodeNetworkUnavailable, F)},
			taints: []corev1.Taint{noSchedule(corev1.TaintNodeMemoryPressure), noSchedule(corev1.TaintNodeDiskPressure),
				noSchedule(corev1.TaintNodePIDPressure), noSchedule(corev1.TaintNodeNetworkUnavailable)}},
		{name: "a cordoned node is tainted unschedulable",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, T)}, unschedulable: true,
			want: []string{"node.kubernetes.io/unschedulable:NoSchedule"}},
		{name: "an uncordoned node loses it",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, T)}, taints: []corev1.Taint{noSchedule(corev1.TaintNodeUnschedulable)}},
		{name: "NoExecute taints, other effects and other keys are not sync's",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, T)},
			taints: []corev1.Taint{NotReadyTaint, {Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectPreferNoSchedule},
				noSchedule("example.com/gpu")},
			want: []string{"example.com/gpu:NoSchedule", "node.kubernetes.io/memory-pressure:PreferNoSchedule", "node.kubernetes.io/not-ready:NoExecute"}},
		{name: "a condition taint with a value counts as there",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, F)},
			taints:     []corev1.Taint{{Key: corev1.TaintNodeNotReady, Value: "booting", Effect: corev1.TaintEffectNoSchedule}},
			want:       []string{"node.kubernetes.io/not-ready=booting:NoSchedule"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			node := &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "n"},
				Spec:       corev1.NodeSpec{Unschedulable: tc.unschedulable, Taints: tc.taints},
				Status:     corev1.NodeStatus{Conditions: tc.conditions},
			}
			got, _ := syncNode(t, node)
			if names := taintNames(got); !slices.Equal(names, tc.want) {
				t.Errorf("taints after sync %q, want %q", names, tc.want)
			}
		})
	}
}

func TestSyncWritesNothingWhenTaintsAreInStep(t *testing.T) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n"},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}}},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}},
	}
	if _, writes := syncNode(t, node); writes != 0 {
		t.Errorf("sync of a node whose taints match its conditions made %d writes", writes)
	}
}

func TestSyncStampsTheTaintsItAdds(t *testing.T) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n"},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}},
	}
	got, _ := syncNode(t, node)
	if len(got.Spec.Taints) != 1 || got.Spec.Taints[0].TimeAdded == nil {
		t.Errorf("taints %+v, want unreachable:NoSchedule with the time it was added", got.Spec.Taints)
	}
}
