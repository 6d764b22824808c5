package replicaset

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

// fixture is a ReplicaSet controller on a fake clientset whose informers have synced.
type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	c        *Controller
	recorder *record.FakeRecorder
}

var nameSeq atomic.Int64

func newFixture(t *testing.T, objects ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objects...)
	generateNames(client)
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(1000)
	c, err := New(factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(), client, controllers.Reporting{
		Recorder: func(string) record.EventRecorder { return recorder },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("informer of %v did not sync", typ)
		}
	}
	return &fixture{t: t, client: client, c: c, recorder: recorder}
}

// generateNames makes the fake tracker, which does not, fill in generated names and UIDs.
func generateNames(client *fake.Clientset) {
	client.PrependReactor("create", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		obj := a.(clienttesting.CreateAction).GetObject().(metav1.Object)
		if obj.GetName() == "" && obj.GetGenerateName() != "" {
			obj.SetName(fmt.Sprintf("%s%05d", obj.GetGenerateName(), nameSeq.Add(1)))
		}
		if obj.GetUID() == "" {
			obj.SetUID(types.UID(fmt.Sprintf("uid-%d", nameSeq.Add(1))))
		}
		return false, nil, nil
	})
}

func (f *fixture) sync(key string) error {
	f.t.Helper()
	return f.c.sync(context.Background(), key)
}

func (f *fixture) actions(verb, resource string) []clienttesting.Action {
	var out []clienttesting.Action
	for _, a := range f.client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource && a.GetSubresource() == "" {
			out = append(out, a)
		}
	}
	return out
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (f *fixture) rs(name string) *appsv1.ReplicaSet {
	f.t.Helper()
	rs, err := f.client.AppsV1().ReplicaSets("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return rs
}

func newRS(name string, replicas int32) *appsv1.ReplicaSet {
	labels := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"), Generation: 1},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
}

func newPod(name string, rs *appsv1.ReplicaSet) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "default", UID: types.UID(name + "-uid"),
			Labels:            map[string]string{"app": rs.Name},
			CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Hour)),
			ResourceVersion:   "1",
		},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	p.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}
	return p
}

func running(p *corev1.Pod, node string, readySince time.Time) *corev1.Pod {
	p.Spec.NodeName = node
	p.Status.Phase = corev1.PodRunning
	if !readySince.IsZero() {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(readySince)}}
	}
	return p
}

func TestSyncCreatesMissingPodsOwnedByTheReplicaSetWithEvents(t *testing.T) {
	rs := newRS("web", 5)
	f := newFixture(t, rs)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	creates := f.actions("create", "pods")
	if len(creates) != 5 {
		t.Fatalf("created %d pods, want 5", len(creates))
	}
	pod := creates[0].(clienttesting.CreateAction).GetObject().(*corev1.Pod)
	if pod.GenerateName != "web-" || pod.Labels["app"] != "web" {
		t.Errorf("pod generateName %q labels %v, want web- and the template's", pod.GenerateName, pod.Labels)
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.UID != rs.UID || ref.Kind != "ReplicaSet" || ref.APIVersion != "apps/v1" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
		t.Errorf("controllerRef = %+v, want the ReplicaSet blocking owner deletion", ref)
	}
	events := f.events()
	if len(events) != 5 || !strings.HasPrefix(events[0], "Normal SuccessfulCreate Created pod: web-") {
		t.Errorf("events = %q, want 5 × Normal SuccessfulCreate Created pod: web-…", events)
	}
	// the informer has not shown the pods yet: a second sync must not create more
	f.client.ClearActions()
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.actions("create", "pods")); n != 0 {
		t.Errorf("second sync before the creations were observed created %d pods, want 0", n)
	}
}

func TestSyncCreatesAtMostBurstReplicasPerSync(t *testing.T) {
	f := newFixture(t, newRS("big", 30))
	f.c.burstReplicas = 7
	if err := f.sync("default/big"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.actions("create", "pods")); n != 7 {
		t.Errorf("created %d pods, want the burst of 7", n)
	}
}

func TestSlowStartStopsAfterTheFirstBatchWithARefusal(t *testing.T) {
	f := newFixture(t, newRS("quota", 20))
	var attempts atomic.Int32
	f.client.PrependReactor("create", "pods", func(clienttesting.Action) (bool, runtime.Object, error) {
		if attempts.Add(1) > 3 {
			return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", fmt.Errorf("exceeded quota"))
		}
		return false, nil, nil
	})
	err := f.sync("default/quota")
	if err == nil {
		t.Fatal("sync succeeded, want the refusal")
	}
	// batches of 1 and 2 succeed, the batch of 4 fails: 7 attempts, no batch of 8
	if n := attempts.Load(); n != 7 {
		t.Errorf("%d create attempts, want 7 (batches 1, 2, 4)", n)
	}
	// the 17 creations not made are never awaited; the 3 made may have been observed already
	if add, _ := f.c.expectations.Pending("default/quota"); add > 3 || add < 0 {
		t.Errorf("expecting %d creations, want at most the 3 that succeeded", add)
	}
	st := f.rs("quota").Status
	if len(st.Conditions) != 1 || st.Conditions[0].Type != appsv1.ReplicaSetReplicaFailure ||
		st.Conditions[0].Reason != "FailedCreate" || !strings.Contains(st.Conditions[0].Message, "exceeded quota") {
		t.Errorf("conditions = %+v, want ReplicaFailure FailedCreate with the refusal", st.Conditions)
	}
	var failed int
	for _, e := range f.events() {
		if strings.HasPrefix(e, "Warning FailedCreate Error creating: ") {
			failed++
		}
	}
	if failed != 4 {
		t.Errorf("%d FailedCreate events, want 4", failed)
	}
}

func TestReplicaFailureConditionIsRemovedOnceCreatesSucceed(t *testing.T) {
	rs := newRS("heal", 0)
	rs.Status.Conditions = []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate"}}
	f := newFixture(t, rs)
	if err := f.sync("default/heal"); err != nil {
		t.Fatal(err)
	}
	if c := f.rs("heal").Status.Conditions; len(c) != 0 {
		t.Errorf("conditions = %+v, want none", c)
	}
}

func TestScaleDownDeletesInUpstreamOrder(t *testing.T) {
	rs := newRS("web", 2)
	now := time.Now()
	ready := func(name string, since time.Duration) *corev1.Pod {
		return running(newPod(name, rs), "n1", now.Add(-since))
	}
	old := ready("ready-old", 10*time.Hour)
	old.CreationTimestamp = metav1.NewTime(now.Add(-20 * time.Hour))
	young := ready("ready-young", time.Minute)
	restarts := ready("ready-restarts", 10*time.Hour)
	restarts.CreationTimestamp = old.CreationTimestamp
	restarts.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: 5}}
	notReady := running(newPod("running-not-ready", rs), "n1", time.Time{})
	pending := newPod("pending-scheduled", rs)
	pending.Spec.NodeName = "n1"
	unscheduled := newPod("unscheduled", rs)
	cheap := ready("ready-cheap", 10*time.Hour)
	cheap.Annotations = map[string]string{controllers.PodDeletionCostAnnotation: "-10"}

	pods := []*corev1.Pod{old, young, restarts, notReady, pending, unscheduled, cheap}
	want := []string{"unscheduled", "pending-scheduled", "running-not-ready", "ready-cheap", "ready-young", "ready-restarts", "ready-old"}
	got := podsToDelete(pods, pods, len(pods)-1, now)
	for i := range got {
		if got[i].Name != want[i] {
			names := make([]string, len(got))
			for j, p := range got {
				names[j] = p.Name
			}
			t.Fatalf("deletion order = %v, want %v", names, want)
		}
	}

	objs := []runtime.Object{rs}
	for _, p := range pods {
		objs = append(objs, p)
	}
	f := newFixture(t, objs...)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	deleted := map[string]bool{}
	for _, a := range f.actions("delete", "pods") {
		deleted[a.(clienttesting.DeleteAction).GetName()] = true
	}
	if len(deleted) != 5 || deleted["ready-old"] || deleted["ready-restarts"] {
		t.Errorf("deleted %v, want the 5 first in order, keeping ready-old and ready-restarts", deleted)
	}
	var n int
	for _, e := range f.events() {
		if strings.HasPrefix(e, "Normal SuccessfulDelete Deleted pod: ") {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d SuccessfulDelete events, want 5", n)
	}
}

func TestScaleDownPrefersNodesDoubledUpWithRelatedPods(t *testing.T) {
	now := time.Now()
	rs := newRS("web", 1)
	a := running(newPod("alone", rs), "n1", now.Add(-time.Hour))
	b := running(newPod("crowded", rs), "n2", now.Add(-time.Hour))
	sibling := newRS("web-old", 1)
	other := running(newPod("sibling", sibling), "n2", now.Add(-time.Hour))
	got := podsToDelete([]*corev1.Pod{a, b}, []*corev1.Pod{a, b, other}, 1, now)
	if got[0].Name != "crowded" {
		t.Errorf("deleted %s first, want the pod on the node with more related pods", got[0].Name)
	}
}

func TestAdoptsMatchingOrphansAndReleasesPodsThatStopMatching(t *testing.T) {
	rs := newRS("web", 2)
	orphan := newPod("orphan", rs)
	orphan.OwnerReferences = nil
	strayed := newPod("strayed", rs)
	strayed.Labels = map[string]string{"app": "other"}
	theirs := newPod("theirs", rs)
	theirs.OwnerReferences[0].UID = "someone-else"
	f := newFixture(t, rs, orphan, strayed, theirs)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	patches := map[string]string{}
	for _, a := range f.actions("patch", "pods") {
		p := a.(clienttesting.PatchAction)
		patches[p.GetName()] = string(p.GetPatch())
	}
	if p := patches["orphan"]; !strings.Contains(p, `"controller":true`) || !strings.Contains(p, `"uid":"orphan-uid"`) {
		t.Errorf("orphan patch = %s, want a controllerRef guarded by its UID", p)
	}
	if p := patches["strayed"]; !strings.Contains(p, `"$patch":"delete"`) || !strings.Contains(p, `"uid":"web-uid"`) {
		t.Errorf("strayed patch = %s, want the owner reference deleted", p)
	}
	if _, ok := patches["theirs"]; ok {
		t.Error("a pod controlled by someone else was patched")
	}
	// orphan adopted: one replica exists, one more is created
	if n := len(f.actions("create", "pods")); n != 1 {
		t.Errorf("created %d pods, want 1 beside the adopted orphan", n)
	}
}

func TestDoesNotAdoptWhileTheReplicaSetIsBeingDeleted(t *testing.T) {
	rs := newRS("web", 2)
	rs.DeletionTimestamp = ptr.To(metav1.Now())
	rs.Finalizers = []string{metav1.FinalizerOrphanDependents}
	orphan := newPod("orphan", rs)
	orphan.OwnerReferences = nil
	f := newFixture(t, rs, orphan)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.actions("patch", "pods")) + len(f.actions("create", "pods")); n != 0 {
		t.Errorf("%d pod writes for a ReplicaSet being deleted, want 0", n)
	}
}

func TestStatusCountsReadyAndAvailableHonouringMinReadySeconds(t *testing.T) {
	rs := newRS("web", 3)
	rs.Generation = 4
	rs.Spec.MinReadySeconds = 60
	now := time.Now()
	long := running(newPod("long", rs), "n1", now.Add(-time.Hour))
	fresh := running(newPod("fresh", rs), "n1", now.Add(-time.Second))
	notReady := running(newPod("not-ready", rs), "n1", time.Time{})
	notReady.Labels["extra"] = "x"
	partial := newPod("partial", rs)
	rs.Spec.Template.Labels = map[string]string{"app": "web", "tier": "front"}
	long.Labels["tier"], fresh.Labels["tier"] = "front", "front"
	partial.Status.Phase = corev1.PodSucceeded // terminal: not a replica
	terminating := running(newPod("terminating", rs), "n1", now.Add(-time.Hour))
	terminating.DeletionTimestamp = ptr.To(metav1.Now())
	f := newFixture(t, rs, long, fresh, notReady, partial, terminating)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	st := f.rs("web").Status
	if st.Replicas != 3 || st.FullyLabeledReplicas != 2 || st.ReadyReplicas != 2 || st.AvailableReplicas != 1 ||
		st.ObservedGeneration != 4 || ptr.Deref(st.TerminatingReplicas, -1) != 1 {
		t.Errorf("status = %+v, want replicas 3, fullyLabeled 2, ready 2, available 1, terminating 1, observedGeneration 4", st)
	}
	if n := len(f.actions("create", "pods")); n != 0 {
		t.Errorf("created %d pods, want none: 3 active replicas", n)
	}
}

func TestSyncOfADeletedReplicaSetForgetsItsExpectations(t *testing.T) {
	f := newFixture(t)
	f.c.expectations.ExpectCreations("default/gone", 3)
	if err := f.sync("default/gone"); err != nil {
		t.Fatal(err)
	}
	if add, _ := f.c.expectations.Pending("default/gone"); add != 0 {
		t.Errorf("expectations kept for a deleted ReplicaSet: %d", add)
	}
}
