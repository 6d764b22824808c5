package garbagecollector

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/scheme"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

// gcFixture is a collector on a fake dynamic client whose graph the test fills by hand.
type gcFixture struct {
	t      *testing.T
	client *dynamicfake.FakeDynamicClient
	c      *Controller
}

func newGCFixture(t *testing.T, objects ...runtime.Object) *gcFixture {
	t.Helper()
	client := dynamicfake.NewSimpleDynamicClient(scheme.Scheme, objects...)
	disco := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Kind: "Pod", Namespaced: true, Verbs: []string{"get", "list", "watch", "delete", "patch", "update"}},
			{Name: "configmaps", Kind: "ConfigMap", Namespaced: true, Verbs: []string{"get", "list", "watch", "delete", "patch", "update"}},
			{Name: "nodes", Kind: "Node", Verbs: []string{"get", "list", "watch", "delete"}},
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
			{Name: "replicasets", Kind: "ReplicaSet", Namespaced: true, Verbs: []string{"get", "list", "watch", "delete", "patch", "update"}},
		}},
	}}}
	// the fake tracker cannot apply strategic merge patches to unstructured objects: record them
	client.PrependReactor("patch", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, nil
	})
	c := New(nil, client, memory.NewMemCacheClient(disco), controllers.Reporting{})
	return &gcFixture{t: t, client: client, c: c}
}

func (f *gcFixture) observe(obj metav1.Object, gvk schema.GroupVersionKind) {
	f.c.graph.apply(&graphEvent{eventType: addEvent, obj: obj, gvk: gvk})
}

func (f *gcFixture) sync(uid string) error {
	f.t.Helper()
	return f.c.sync(context.Background(), uid)
}

func (f *gcFixture) writes() []clienttesting.Action {
	var out []clienttesting.Action
	for _, a := range f.client.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			out = append(out, a)
		}
	}
	return out
}

func replicaSet(uid string, mutate ...func(*appsv1.ReplicaSet)) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "rs-" + uid, Namespace: "ns", UID: types.UID(uid)},
	}
	for _, f := range mutate {
		f(rs)
	}
	return rs
}

func typedPod(uid string, owners ...string) *corev1.Pod {
	p := podOwnedBy(uid, owners...)
	p.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	return p
}

func TestDependentWhoseOwnersAreAllGoneIsDeletedInTheBackgroundWithItsUID(t *testing.T) {
	pod := typedPod("p1", "rs1")
	f := newGCFixture(t, pod)
	f.observe(pod, podKind)
	if err := f.sync("p1"); err != nil {
		t.Fatal(err)
	}
	w := f.writes()
	if len(w) != 1 || w[0].GetVerb() != "delete" || w[0].GetResource().Resource != "pods" {
		t.Fatalf("writes = %v, want one pod delete", w)
	}
	opts := w[0].(clienttesting.DeleteActionImpl).DeleteOptions
	if opts.Preconditions == nil || *opts.Preconditions.UID != "p1" || *opts.PropagationPolicy != metav1.DeletePropagationBackground {
		t.Errorf("delete options %+v, want UID precondition and background propagation", opts)
	}
}

func TestDependentWithALiveOwnerLosesOnlyItsDanglingReferences(t *testing.T) {
	pod := typedPod("p1", "rs1", "rs2")
	f := newGCFixture(t, pod, replicaSet("rs1"))
	f.observe(pod, podKind)
	if err := f.sync("p1"); err != nil {
		t.Fatal(err)
	}
	w := f.writes()
	if len(w) != 1 || w[0].GetVerb() != "patch" {
		t.Fatalf("writes = %v, want one patch", w)
	}
	p := string(w[0].(clienttesting.PatchAction).GetPatch())
	if !strings.Contains(p, `{"$patch":"delete","uid":"rs2"}`) || strings.Contains(p, `"uid":"rs1"`) {
		t.Errorf("patch %s, want the reference to rs2 deleted and rs1 kept", p)
	}
}

func TestDependentWithOnlyLiveOwnersIsLeftAlone(t *testing.T) {
	pod := typedPod("p1", "rs1")
	f := newGCFixture(t, pod, replicaSet("rs1"))
	f.observe(pod, podKind)
	if err := f.sync("p1"); err != nil {
		t.Fatal(err)
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("writes = %v, want none", w)
	}
}

func TestDependentOfAnOwnerDeletingInTheForegroundIsDeleted(t *testing.T) {
	pod := typedPod("p1", "rs1")
	owner := replicaSet("rs1", func(rs *appsv1.ReplicaSet) {
		rs.DeletionTimestamp = ptr.To(metav1.Now())
		rs.Finalizers = []string{metav1.FinalizerDeleteDependents}
	})
	f := newGCFixture(t, pod, owner)
	f.observe(owner, rsKind)
	f.observe(pod, podKind)
	if err := f.sync("p1"); err != nil {
		t.Fatal(err)
	}
	w := f.writes()
	if len(w) != 1 || w[0].GetVerb() != "delete" {
		t.Fatalf("writes = %v, want the pod deleted", w)
	}
}

func TestForegroundOwnerWithoutBlockingDependentsLosesItsFinalizer(t *testing.T) {
	owner := replicaSet("rs1", func(rs *appsv1.ReplicaSet) {
		rs.DeletionTimestamp = ptr.To(metav1.Now())
		rs.Finalizers = []string{metav1.FinalizerDeleteDependents, "example.com/other"}
	})
	f := newGCFixture(t, owner)
	f.observe(owner, rsKind)
	if err := f.sync("rs1"); err != nil {
		t.Fatal(err)
	}
	w := f.writes()
	if len(w) != 1 || w[0].GetVerb() != "update" {
		t.Fatalf("writes = %v, want one update", w)
	}
	obj := w[0].(clienttesting.UpdateAction).GetObject().(metav1.Object)
	if fs := obj.GetFinalizers(); len(fs) != 1 || fs[0] != "example.com/other" {
		t.Errorf("finalizers after = %v, want only example.com/other", fs)
	}
}

func TestForegroundOwnerWaitsForBlockingDependents(t *testing.T) {
	owner := replicaSet("rs1", func(rs *appsv1.ReplicaSet) {
		rs.DeletionTimestamp = ptr.To(metav1.Now())
		rs.Finalizers = []string{metav1.FinalizerDeleteDependents}
	})
	pod := typedPod("p1", "rs1")
	f := newGCFixture(t, owner, pod)
	f.observe(owner, rsKind)
	f.observe(pod, podKind)
	drain(f.c.graph.attemptToDelete)
	if err := f.sync("rs1"); err != nil {
		t.Fatal(err)
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("writes = %v, want none while a dependent blocks", w)
	}
	if got := drain(f.c.graph.attemptToDelete); len(got) != 1 || got[0] != "p1" {
		t.Errorf("attemptToDelete = %v, want the blocking dependent", got)
	}
}

func TestOrphaningStripsReferencesThenTheFinalizer(t *testing.T) {
	owner := replicaSet("rs1", func(rs *appsv1.ReplicaSet) {
		rs.DeletionTimestamp = ptr.To(metav1.Now())
		rs.Finalizers = []string{metav1.FinalizerOrphanDependents}
	})
	p1, p2 := typedPod("p1", "rs1"), typedPod("p2", "rs1")
	f := newGCFixture(t, owner, p1, p2)
	f.observe(owner, rsKind)
	f.observe(p1, podKind)
	f.observe(p2, podKind)
	if err := f.c.syncOrphan(context.Background(), "rs1"); err != nil {
		t.Fatal(err)
	}
	w := f.writes()
	if len(w) != 3 {
		t.Fatalf("writes = %v, want two patches and an update", w)
	}
	patched := map[string]bool{}
	for _, a := range w[:2] {
		p := a.(clienttesting.PatchAction)
		if !strings.Contains(string(p.GetPatch()), `{"$patch":"delete","uid":"rs1"}`) {
			t.Errorf("patch %s, want the owner reference deleted", p.GetPatch())
		}
		patched[p.GetName()] = true
	}
	if !patched["pod-p1"] || !patched["pod-p2"] {
		t.Errorf("patched %v, want both pods", patched)
	}
	if w[2].GetVerb() != "update" || len(w[2].(clienttesting.UpdateAction).GetObject().(metav1.Object).GetFinalizers()) != 0 {
		t.Errorf("last write %v, want the orphan finalizer removed", w[2])
	}
}

func TestVirtualOwnerThatDoesNotExistIsDroppedFromTheGraph(t *testing.T) {
	pod := typedPod("p1", "rs1")
	f := newGCFixture(t, pod)
	f.observe(pod, podKind)
	if err := f.sync("rs1"); err != nil {
		t.Fatal(err)
	}
	e, _ := f.c.graph.changes.Get()
	if !e.virtual || e.eventType != deleteEvent || e.obj.GetUID() != "rs1" {
		t.Errorf("graph change %+v, want a virtual delete of rs1", e)
	}
}
