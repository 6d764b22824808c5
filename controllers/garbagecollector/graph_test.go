package garbagecollector

import (
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

var (
	rsKind  = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}
	podKind = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
)

func testGraph() *graph {
	return newGraph(controllers.NewQueue("", controllers.Reporting{}), controllers.NewQueue("", controllers.Reporting{}))
}

// drain returns the keys waiting in q, sorted.
func drain(q Queue) []string {
	var keys []string
	for q.Len() > 0 {
		k, _ := q.Get()
		q.Done(k)
		q.Forget(k)
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func rsObj(uid string, mutate ...func(*metav1.ObjectMeta)) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "rs-" + uid, Namespace: "ns", UID: types.UID(uid)}}
	for _, f := range mutate {
		f(&m.ObjectMeta)
	}
	return m
}

func podOwnedBy(uid string, owners ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pod-" + uid, Namespace: "ns", UID: types.UID(uid)}}
	for _, o := range owners {
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{
			APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs-" + o, UID: types.UID(o), BlockOwnerDeletion: ptr.To(true), Controller: ptr.To(true),
		})
	}
	return p
}

func TestDependentOfAnUnseenOwnerMakesAVirtualOwnerToVerify(t *testing.T) {
	g := testGraph()
	g.apply(&graphEvent{eventType: addEvent, obj: podOwnedBy("p1", "rs1"), gvk: podKind})
	owner, ok := g.uidToNode["rs1"]
	if !ok || !owner.virtual || len(owner.dependents) != 1 {
		t.Fatalf("owner node %+v, want a virtual node with the pod as dependent", owner)
	}
	if got := drain(g.attemptToDelete); len(got) != 1 || got[0] != "rs1" {
		t.Errorf("attemptToDelete = %v, want the virtual owner", got)
	}
	// the informer then shows the owner: it is no longer virtual
	g.apply(&graphEvent{eventType: addEvent, obj: rsObj("rs1"), gvk: rsKind})
	if owner.virtual {
		t.Error("owner still virtual after being observed")
	}
}

func TestOwnerDeletionQueuesItsDependents(t *testing.T) {
	g := testGraph()
	g.apply(&graphEvent{eventType: addEvent, obj: rsObj("rs1"), gvk: rsKind})
	for _, p := range []string{"p1", "p2"} {
		g.apply(&graphEvent{eventType: addEvent, obj: podOwnedBy(p, "rs1"), gvk: podKind})
	}
	drain(g.attemptToDelete)
	g.apply(&graphEvent{eventType: deleteEvent, obj: rsObj("rs1"), gvk: rsKind})
	if got := drain(g.attemptToDelete); len(got) != 2 || got[0] != "p1" || got[1] != "p2" {
		t.Errorf("attemptToDelete = %v, want both pods", got)
	}
	if _, ok := g.uidToNode["rs1"]; ok {
		t.Error("deleted owner still in the graph")
	}
	if !g.absentOwners.has(objectReference{OwnerReference: metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs-rs1", UID: "rs1"}, Namespace: "ns"}) {
		t.Error("deleted owner not remembered as absent")
	}
}

func TestForegroundDeletionMarksTheOwnerAndQueuesDependents(t *testing.T) {
	g := testGraph()
	live := rsObj("rs1")
	g.apply(&graphEvent{eventType: addEvent, obj: live, gvk: rsKind})
	g.apply(&graphEvent{eventType: addEvent, obj: podOwnedBy("p1", "rs1"), gvk: podKind})
	drain(g.attemptToDelete)
	deleting := rsObj("rs1", func(m *metav1.ObjectMeta) {
		m.DeletionTimestamp = ptr.To(metav1.Now())
		m.Finalizers = []string{metav1.FinalizerDeleteDependents}
	})
	g.apply(&graphEvent{eventType: updateEvent, obj: deleting, oldObj: live, gvk: rsKind})
	if n := g.uidToNode["rs1"]; !n.deletingDependents || !n.beingDeleted {
		t.Errorf("owner deletingDependents %v beingDeleted %v, want both", n.deletingDependents, n.beingDeleted)
	}
	if got := drain(g.attemptToDelete); len(got) != 2 {
		t.Errorf("attemptToDelete = %v, want the pod and the owner", got)
	}
	// the pod goes: the owner is looked at again
	g.apply(&graphEvent{eventType: deleteEvent, obj: podOwnedBy("p1", "rs1"), gvk: podKind})
	if got := drain(g.attemptToDelete); len(got) != 1 || got[0] != "rs1" {
		t.Errorf("attemptToDelete after the dependent went = %v, want the owner", got)
	}
}

func TestOrphanDeletionQueuesTheOwnerForOrphaning(t *testing.T) {
	g := testGraph()
	live := rsObj("rs1")
	g.apply(&graphEvent{eventType: addEvent, obj: live, gvk: rsKind})
	orphaning := rsObj("rs1", func(m *metav1.ObjectMeta) {
		m.DeletionTimestamp = ptr.To(metav1.Now())
		m.Finalizers = []string{metav1.FinalizerOrphanDependents}
	})
	g.apply(&graphEvent{eventType: updateEvent, obj: orphaning, oldObj: live, gvk: rsKind})
	if got := drain(g.attemptToOrphan); len(got) != 1 || got[0] != "rs1" {
		t.Errorf("attemptToOrphan = %v, want the owner", got)
	}
	// a later update of the same deletion does not start it again
	g.apply(&graphEvent{eventType: updateEvent, obj: orphaning, oldObj: orphaning, gvk: rsKind})
	if got := drain(g.attemptToOrphan); len(got) != 0 {
		t.Errorf("attemptToOrphan = %v after a repeated update, want nothing", got)
	}
}

func TestDroppingABlockingReferenceWakesTheOwner(t *testing.T) {
	g := testGraph()
	g.apply(&graphEvent{eventType: addEvent, obj: rsObj("rs1"), gvk: rsKind})
	owned := podOwnedBy("p1", "rs1")
	g.apply(&graphEvent{eventType: addEvent, obj: owned, gvk: podKind})
	drain(g.attemptToDelete)
	released := podOwnedBy("p1")
	g.apply(&graphEvent{eventType: updateEvent, obj: released, oldObj: owned, gvk: podKind})
	if got := drain(g.attemptToDelete); len(got) != 1 || got[0] != "rs1" {
		t.Errorf("attemptToDelete = %v, want the owner the pod stopped blocking", got)
	}
	if n := len(g.uidToNode["rs1"].dependents); n != 0 {
		t.Errorf("owner has %d dependents after the release, want 0", n)
	}
}

func TestVirtualDeleteRemovesTheVirtualOwnerAndQueuesDependents(t *testing.T) {
	g := testGraph()
	g.apply(&graphEvent{eventType: addEvent, obj: podOwnedBy("p1", "rs1"), gvk: podKind})
	drain(g.attemptToDelete)
	g.enqueueVirtualDelete(g.uidToNode["rs1"].identity)
	e, _ := g.changes.Get()
	g.apply(e)
	g.changes.Done(e)
	if _, ok := g.uidToNode["rs1"]; ok {
		t.Error("virtual owner still in the graph")
	}
	if got := drain(g.attemptToDelete); len(got) != 1 || got[0] != "p1" {
		t.Errorf("attemptToDelete = %v, want the dependent", got)
	}
}

func TestBlockingDependentsAreThoseThatBlockOwnerDeletion(t *testing.T) {
	g := testGraph()
	g.apply(&graphEvent{eventType: addEvent, obj: rsObj("rs1"), gvk: rsKind})
	g.apply(&graphEvent{eventType: addEvent, obj: podOwnedBy("blocks", "rs1"), gvk: podKind})
	free := podOwnedBy("free", "rs1")
	free.OwnerReferences[0].BlockOwnerDeletion = nil
	g.apply(&graphEvent{eventType: addEvent, obj: free, gvk: podKind})
	s, _ := g.snapshot("rs1")
	if len(s.dependents) != 2 || len(s.blockingDependents) != 1 || s.blockingDependents[0].uid != "blocks" {
		t.Errorf("snapshot %+v, want 2 dependents of which 1 blocks", s)
	}
}
