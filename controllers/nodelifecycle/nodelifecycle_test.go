package nodelifecycle

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/controllers"
)

func TestZoneStateFollowsUpstreamThresholds(t *testing.T) {
	c := &Controller{opts: Options{}}
	c.opts.setDefaults()
	cond := func(s corev1.ConditionStatus) *corev1.NodeCondition {
		return &corev1.NodeCondition{Type: corev1.NodeReady, Status: s}
	}
	T, F, U := corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown
	cases := []struct {
		conds []*corev1.NodeCondition
		want  zoneState
	}{
		{[]*corev1.NodeCondition{cond(T), cond(U)}, stateNormal},
		{[]*corev1.NodeCondition{cond(U), cond(F)}, stateFullDisruption},
		{[]*corev1.NodeCondition{cond(T), cond(U), cond(U), cond(F)}, statePartialDisruption},
		{[]*corev1.NodeCondition{cond(T), cond(T), cond(U), cond(U)}, stateNormal}, // only 2 not ready
		{[]*corev1.NodeCondition{nil, cond(T)}, stateNormal},
	}
	for i, tc := range cases {
		if got := c.computeZoneState(tc.conds); got != tc.want {
			t.Errorf("case %d: %s, want %s", i, got, tc.want)
		}
	}
}

func TestTaintQueueHandsOutNodesAtItsRate(t *testing.T) {
	q := newTaintQueue(1) // one node per second, burst one
	now := time.Now()
	for _, n := range []string{"a", "b", "c"} {
		q.add(n, now)
	}
	var got []string
	q.try(now, func(name string) (bool, time.Duration) { got = append(got, name); return true, 0 })
	if len(got) != 1 || got[0] != "a" || q.len() != 2 {
		t.Errorf("first pass tainted %v, %d left; want a alone", got, q.len())
	}
	q.swapLimiter(0)
	q.try(now, func(name string) (bool, time.Duration) { got = append(got, name); return true, 0 })
	if len(got) != 1 {
		t.Errorf("a stopped queue handed out %v", got[1:])
	}
}

func TestNodeThatNeverPostedStatusIsUnknownAfterStartupGrace(t *testing.T) {
	created := metav1.NewTime(time.Now().Add(-time.Hour))
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "mute", CreationTimestamp: created}}
	client := fake.NewClientset([]runtime.Object{node}...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Core().V1().Nodes(), factory.Coordination().V1().Leases(), factory.Core().V1().Pods(), client, Options{}, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	if err := c.monitorNodeHealth(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := client.CoreV1().Nodes().Get(ctx, "mute", metav1.GetOptions{})
	r := nodeCondition(&got.Status, corev1.NodeReady)
	if r == nil || r.Status != corev1.ConditionUnknown || r.Reason != "NodeStatusNeverUpdated" || r.Message != "Kubelet never posted node status." {
		t.Fatalf("Ready = %+v, want Unknown NodeStatusNeverUpdated", r)
	}
	if len(got.Status.Conditions) != 4 {
		t.Errorf("conditions %v, want Ready and the three pressures Unknown", got.Status.Conditions)
	}
}

func TestConditionTaintsFollowConditions(t *testing.T) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n"},
		Spec: corev1.NodeSpec{Unschedulable: true, Taints: []corev1.Taint{
			{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule},
			{Key: "example.com/mine", Effect: corev1.TaintEffectNoSchedule},
		}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionTrue},
		}},
	}
	client := fake.NewClientset(node)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Core().V1().Nodes(), factory.Coordination().V1().Leases(), factory.Core().V1().Pods(), client, Options{}, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	if err := c.sync(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	got, _ := client.CoreV1().Nodes().Get(ctx, "n", metav1.GetOptions{})
	keys := map[string]bool{}
	for _, tt := range got.Spec.Taints {
		keys[tt.Key] = true
	}
	if keys[corev1.TaintNodeNotReady] || !keys[corev1.TaintNodeDiskPressure] || !keys[corev1.TaintNodeUnschedulable] || !keys["example.com/mine"] {
		t.Errorf("taints %v, want disk-pressure and unschedulable added, not-ready gone, others kept", got.Spec.Taints)
	}
}
