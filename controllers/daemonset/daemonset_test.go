package daemonset

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/flowcontrol"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/deployment"
)

var seq atomic.Int64

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	c      *Controller
}

func newFixture(t *testing.T, objects ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objects...)
	client.PrependReactor("create", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		obj := a.(clienttesting.CreateAction).GetObject().(metav1.Object)
		if obj.GetName() == "" && obj.GetGenerateName() != "" {
			obj.SetName(fmt.Sprintf("%s%05d", obj.GetGenerateName(), seq.Add(1)))
		}
		if obj.GetUID() == "" {
			obj.SetUID(types.UID(fmt.Sprintf("uid-%d", seq.Add(1))))
		}
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Apps().V1().DaemonSets(), factory.Apps().V1().ControllerRevisions(), factory.Core().V1().Pods(),
		factory.Core().V1().Nodes(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), c.synced...)
	return &fixture{t: t, client: client, c: c}
}

func newDaemonSet(name string) *appsv1.DaemonSet {
	labels := map[string]string{"app": name}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"), Generation: 1,
			Annotations: map[string]string{TemplateGenerationAnnotation: "1"}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.FromInt32(1)), MaxSurge: ptr.To(intstr.FromInt32(0))}},
			RevisionHistoryLimit: ptr.To[int32](10),
		},
	}
}

func newNode(name string, labels map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
}

func (f *fixture) createdPods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "pods" {
			out = append(out, a.(clienttesting.CreateAction).GetObject().(*corev1.Pod))
		}
	}
	return out
}

func TestSyncStartsOnePodBoundByAffinityOnEveryEligibleNode(t *testing.T) {
	ds := newDaemonSet("agent")
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	f := newFixture(t, ds,
		newNode("ssd-1", map[string]string{"disk": "ssd"}),
		newNode("ssd-cordoned", map[string]string{"disk": "ssd"}, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}),
		newNode("ssd-dedicated", map[string]string{"disk": "ssd"}, corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}),
		newNode("hdd-1", map[string]string{"disk": "hdd"}),
	)
	if err := f.c.sync(context.Background(), "default/agent"); err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, pod := range f.createdPods() {
		nodes = append(nodes, targetNode(pod))
		if pod.Spec.NodeName != "" {
			t.Errorf("pod %s bound by the controller to %s; the scheduler binds", pod.Name, pod.Spec.NodeName)
		}
		if pod.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == "" || pod.Labels[TemplateGenerationLabel] != "1" {
			t.Errorf("pod labels %v lack the revision hash or template generation", pod.Labels)
		}
		if !slices.ContainsFunc(pod.Spec.Tolerations, func(t corev1.Toleration) bool { return t.Key == corev1.TaintNodeUnschedulable }) ||
			!slices.ContainsFunc(pod.Spec.Tolerations, func(t corev1.Toleration) bool { return t.Key == corev1.TaintNodeNotReady }) {
			t.Errorf("pod tolerations %v lack the daemon ones", pod.Spec.Tolerations)
		}
		if ref := metav1.GetControllerOf(pod); ref == nil || ref.Kind != "DaemonSet" || ref.UID != ds.UID {
			t.Errorf("pod controllerRef %+v", ref)
		}
	}
	slices.Sort(nodes)
	if !slices.Equal(nodes, []string{"ssd-1", "ssd-cordoned"}) {
		t.Errorf("pods for nodes %v, want ssd-1 and the cordoned ssd-cordoned", nodes)
	}
	revs, err := f.client.AppsV1().ControllerRevisions("default").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(revs.Items) != 1 {
		t.Fatalf("revisions %v, %v; want one", revs, err)
	}
	rev := revs.Items[0]
	if rev.Revision != 1 || rev.Name != "agent-"+rev.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] || !metav1.IsControlledBy(&rev, ds) {
		t.Errorf("revision %s number %d labels %v", rev.Name, rev.Revision, rev.Labels)
	}
	got, _ := f.client.AppsV1().DaemonSets("default").Get(context.Background(), "agent", metav1.GetOptions{})
	if s := got.Status; s.DesiredNumberScheduled != 2 || s.NumberAvailable != 0 || s.NumberUnavailable != 2 || s.ObservedGeneration != 1 {
		t.Errorf("status = %+v", s)
	}
}

func TestShouldRunFollowsTaintEffects(t *testing.T) {
	spec := &corev1.PodSpec{}
	addDaemonTolerations(spec)
	for _, tc := range []struct {
		taint     corev1.Taint
		run, keep bool
	}{
		{corev1.Taint{Key: "x", Effect: corev1.TaintEffectNoSchedule}, false, true},
		{corev1.Taint{Key: "x", Effect: corev1.TaintEffectNoExecute}, false, false},
		{corev1.Taint{Key: "x", Effect: corev1.TaintEffectPreferNoSchedule}, true, true},
		{corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}, true, true},
	} {
		run, keep := shouldRun(spec, newNode("n", nil, tc.taint))
		if run != tc.run || keep != tc.keep {
			t.Errorf("taint %v: run %v keep %v, want %v %v", tc.taint, run, keep, tc.run, tc.keep)
		}
	}
}

// onNode is a running, ready pod of ds on node, made from the revision hash.
func onNode(ds *appsv1.DaemonSet, name, node, hash string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name), ResourceVersion: "1",
			Labels:          map[string]string{"app": ds.Name, appsv1.DefaultDaemonSetUniqueLabelKey: hash},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, controllerKind)}},
		Spec: corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	return p
}

func TestRollingUpdateReplacesAtMostMaxUnavailablePodsAtOnce(t *testing.T) {
	ds := newDaemonSet("agent")
	ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(2))
	objs := []runtime.Object{ds}
	for i := range 5 {
		node := fmt.Sprintf("n%d", i)
		objs = append(objs, newNode(node, nil), onNode(ds, "old-"+node, node, "oldhash"))
	}
	f := newFixture(t, objs...)
	if err := f.c.sync(context.Background(), "default/agent"); err != nil {
		t.Fatal(err)
	}
	var deleted int
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			deleted++
		}
	}
	if deleted != 2 || len(f.createdPods()) != 0 {
		t.Errorf("deleted %d and created %d pods, want 2 old ones deleted first", deleted, len(f.createdPods()))
	}
}

// TestRollingUpdateCountsUnavailableOldPodsAgainstMaxUnavailable: an old pod that is not
// available is replaced at once, and counts as unavailable, as upstream's rollingUpdate counts
// it: the node lifecycle controller marking a silent node's pods not ready must not let a
// rollout take more than maxUnavailable pods down.
func TestRollingUpdateCountsUnavailableOldPodsAgainstMaxUnavailable(t *testing.T) {
	ds := newDaemonSet("agent")
	ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(2))
	objs := []runtime.Object{ds}
	for i := range 5 {
		node := fmt.Sprintf("n%d", i)
		pod := onNode(ds, "old-"+node, node, "oldhash")
		if i == 3 {
			pod.Status.Conditions[0].Status = corev1.ConditionFalse
		}
		objs = append(objs, newNode(node, nil), pod)
	}
	f := newFixture(t, objs...)
	if err := f.c.sync(context.Background(), "default/agent"); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			deleted = append(deleted, a.(clienttesting.DeleteAction).GetName())
		}
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, []string{"old-n0", "old-n3"}) {
		t.Errorf("deleted %v, want the unavailable old-n3 and one more (old-n0): 2 unavailable at most", deleted)
	}
}

func TestSurgeStartsNewPodsBesideOldOnes(t *testing.T) {
	ds := newDaemonSet("agent")
	ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(0))
	ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(1))
	objs := []runtime.Object{ds}
	for i := range 3 {
		node := fmt.Sprintf("n%d", i)
		objs = append(objs, newNode(node, nil), onNode(ds, "old-"+node, node, "oldhash"))
	}
	f := newFixture(t, objs...)
	if err := f.c.sync(context.Background(), "default/agent"); err != nil {
		t.Fatal(err)
	}
	created := f.createdPods()
	if len(created) != 1 {
		t.Fatalf("created %d pods, want one surge pod", len(created))
	}
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			t.Errorf("deleted %v while surging; the old pod stays until the new one is available", a)
		}
	}
}

func TestFailedPodsAreReplacedWithBackOff(t *testing.T) {
	ds := newDaemonSet("agent")
	ds.Status.ObservedGeneration = ds.Generation // the back-off is per generation
	// of the current template, so that the rolling update leaves it to manage
	failed := onNode(ds, "failed", "n0", deployment.ComputeHash(&ds.Spec.Template, nil))
	failed.Status.Phase = corev1.PodFailed
	f := newFixture(t, ds, newNode("n0", nil), failed)
	// a clock that stands still: the second sync comes within the back-off however slow the
	// machine
	clock := testingclock.NewFakeClock(time.Now())
	f.c.now = clock.Now
	f.c.failedPodsBackoff = flowcontrol.NewFakeBackOff(time.Second, 15*time.Minute, clock)
	// the kubelet holds on to the pod: it stays failed in the cache
	f.client.PrependReactor("delete", "pods", func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, nil })
	if err := f.c.sync(context.Background(), "default/agent"); err != nil {
		t.Fatal(err)
	}
	deletes := func() (n int) {
		for _, a := range f.client.Actions() {
			if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
				n++
			}
		}
		return n
	}
	if deletes() != 1 {
		t.Fatalf("deleted %d pods, want the failed one", deletes())
	}
	// the same failure seen again at once waits for the back-off
	f.c.expectations.Delete("default/agent")
	if err := f.c.sync(context.Background(), "default/agent"); err != nil {
		t.Fatal(err)
	}
	if deletes() != 1 {
		t.Errorf("deleted %d pods, want no second deletion within the back-off", deletes())
	}
}

func TestSyncWaitsToSeeItsCreationsAndDeletionsBeforeActingAgain(t *testing.T) {
	ds := newDaemonSet("agent")
	stray := onNode(ds, "stray", "gone", "h") // waiting for a node that is not there
	stray.Spec.NodeName = ""
	stray.Spec.Affinity = &corev1.Affinity{}
	bindToNode(&stray.Spec, "gone")
	f := newFixture(t, ds, newNode("n0", nil), stray)
	// nothing the controller does reaches its informer
	f.client.PrependReactor("create", "pods", func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, nil })
	f.client.PrependReactor("delete", "pods", func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, nil })
	if err := f.c.sync(context.Background(), "default/agent"); err != nil {
		t.Fatal(err)
	}
	if add, del := f.c.expectations.Pending("default/agent"); add != 1 || del != 1 {
		t.Fatalf("expecting %d creations and %d deletions, want 1 and 1", add, del)
	}
	if err := f.c.sync(context.Background(), "default/agent"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.createdPods()); n != 1 {
		t.Errorf("created %d pods for n0 across two syncs, want 1", n)
	}
}
