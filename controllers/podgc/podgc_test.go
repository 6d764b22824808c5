package podgc

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

func newGC(t *testing.T, threshold int, objects ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objects...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(factory.Core().V1().Pods(), factory.Core().V1().Nodes(), client, threshold, controllers.Reporting{})
	c.quarantine = 0
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); c.missingNodes.ShutDown() })
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return c, client
}

func pod(name string, phase corev1.PodPhase, age time.Duration) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name), CreationTimestamp: metav1.NewTime(time.Now().Add(-age))},
		Status:     corev1.PodStatus{Phase: phase},
	}
}

func node(name string, ready corev1.ConditionStatus, taints ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
	for _, k := range taints {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: k, Effect: corev1.TaintEffectNoExecute})
	}
	return n
}

func deleted(client *fake.Clientset) []string {
	var names []string
	for _, a := range client.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			d := a.(clienttesting.DeleteAction)
			if g := d.GetDeleteOptions().GracePeriodSeconds; g == nil || *g != 0 {
				continue
			}
			names = append(names, d.GetName())
		}
	}
	sort.Strings(names)
	return names
}

func TestTerminatedPodsBeyondTheThresholdGoEvictedAndOldestFirst(t *testing.T) {
	evicted := pod("evicted-young", corev1.PodFailed, time.Minute)
	evicted.Status.Reason = "Evicted"
	c, client := newGC(t, 2,
		pod("old", corev1.PodSucceeded, 3*time.Hour),
		pod("middle", corev1.PodFailed, 2*time.Hour),
		pod("young", corev1.PodSucceeded, time.Hour),
		evicted,
		pod("running", corev1.PodRunning, 5*time.Hour),
	)
	if err := c.sync(context.Background(), passKey); err != nil {
		t.Fatal(err)
	}
	if got := deleted(client); len(got) != 2 || got[0] != "evicted-young" || got[1] != "old" {
		t.Errorf("deleted %v, want the evicted pod and the oldest", got)
	}
}

func TestPodsOfAMissingNodeAreMarkedFailedAndDeleted(t *testing.T) {
	orphan := pod("orphan", corev1.PodRunning, time.Hour)
	orphan.Spec.NodeName = "gone"
	kept := pod("kept", corev1.PodRunning, time.Hour)
	kept.Spec.NodeName = "here"
	c, client := newGC(t, 0, orphan, kept, node("here", corev1.ConditionTrue))
	// the first pass quarantines the node, the second finds it still missing
	for range 2 {
		if err := c.sync(context.Background(), passKey); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := deleted(client); len(got) != 1 || got[0] != "orphan" {
		t.Fatalf("deleted %v, want the orphan", got)
	}
	var statusPatch string
	for _, a := range client.Actions() {
		if a.GetVerb() == "patch" && a.GetSubresource() == "status" {
			statusPatch = string(a.(clienttesting.PatchAction).GetPatch())
		}
	}
	if statusPatch == "" || !strings.Contains(statusPatch, `"phase":"Failed"`) || !strings.Contains(statusPatch, `"reason":"DeletionByPodGC"`) {
		t.Errorf("status patch %s, want Failed with the DisruptionTarget condition", statusPatch)
	}
}

func TestTerminatingPodsGoOnlyFromUnreachableOrOutOfServiceNodes(t *testing.T) {
	past := ptr.To(metav1.NewTime(time.Now().Add(-time.Minute)))
	future := ptr.To(metav1.NewTime(time.Now().Add(time.Hour)))
	mk := func(name, nodeName string, deadline *metav1.Time) *corev1.Pod {
		p := pod(name, corev1.PodRunning, time.Hour)
		p.Spec.NodeName, p.DeletionTimestamp = nodeName, deadline
		return p
	}
	c, client := newGC(t, 0,
		node("healthy", corev1.ConditionTrue),
		node("unreachable", corev1.ConditionUnknown, corev1.TaintNodeUnreachable),
		node("out", corev1.ConditionFalse, corev1.TaintNodeOutOfService),
		mk("on-healthy", "healthy", past),
		mk("grace-over", "unreachable", past),
		mk("in-grace", "unreachable", future),
		mk("out-of-service", "out", future),
		mk("never-scheduled", "", future),
	)
	if err := c.sync(context.Background(), passKey); err != nil {
		t.Fatal(err)
	}
	want := []string{"grace-over", "never-scheduled", "out-of-service"}
	if got := deleted(client); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("deleted %v, want %v", got, want)
	}
}
