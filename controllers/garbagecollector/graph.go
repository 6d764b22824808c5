package garbagecollector

import (
	"fmt"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
)

// objectReference names an object completely: its owner-reference coordinates (apiVersion,
// kind, name, uid) and its namespace ("" for cluster-scoped objects).
type objectReference struct {
	metav1.OwnerReference
	Namespace string
}

func (r objectReference) String() string {
	return fmt.Sprintf("[%s/%s, namespace: %s, name: %s, uid: %s]", r.APIVersion, r.Kind, r.Namespace, r.Name, r.UID)
}

// coordinates keeps only what identifies the owner an ownerReference names.
func coordinates(ref metav1.OwnerReference) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID}
}

// node is one object in the owner graph. Nodes are read and written only under graph.mu.
type node struct {
	identity objectReference
	// dependents are the nodes whose ownerReferences name this one.
	dependents map[*node]struct{}
	// owners are the object's ownerReferences as last observed.
	owners []metav1.OwnerReference
	// beingDeleted: the object has a deletionTimestamp.
	beingDeleted bool
	// deletingDependents: being deleted in the foreground, waiting for its blocking dependents.
	deletingDependents bool
	// virtual: only named by a dependent's ownerReference, never observed by an informer. The
	// collector asks the API server whether it exists.
	virtual bool
}

// blockingDependents are the dependents whose reference to n blocks its deletion.
func (n *node) blockingDependents() []*node {
	var out []*node
	for dep := range n.dependents {
		for _, o := range dep.owners {
			if o.UID == n.identity.UID && o.BlockOwnerDeletion != nil && *o.BlockOwnerDeletion {
				out = append(out, dep)
				break
			}
		}
	}
	return out
}

// eventType is what an informer (or the collector itself) says happened to an object.
type eventType int

const (
	addEvent eventType = iota
	updateEvent
	deleteEvent
)

// graphEvent is one change to the graph, in the order informers delivered it.
type graphEvent struct {
	// virtual: the collector found that a node's object does not exist (not an informer event).
	virtual   bool
	eventType eventType
	obj       metav1.Object
	oldObj    metav1.Object
	gvk       schema.GroupVersionKind
}

// graph is the owner graph built from every monitored resource, with the queues of work it
// causes. One goroutine (processGraphChanges) writes it; workers read it under mu.
type graph struct {
	mu        sync.RWMutex
	uidToNode map[types.UID]*node

	changes workqueue.TypedInterface[*graphEvent]
	// attemptToDelete holds UIDs of nodes that may have to be deleted (or whose dependents may
	// let them go); attemptToOrphan holds UIDs of owners whose dependents must be orphaned.
	attemptToDelete Queue
	attemptToOrphan Queue
	absentOwners    *absentOwnerCache
	// invalidNamespaceOwnerRef reports a dependent that names an owner in another namespace.
	invalidNamespaceOwnerRef func(dependent objectReference, ownerUID types.UID)
}

func newGraph(attemptToDelete, attemptToOrphan Queue) *graph {
	return &graph{
		uidToNode:                map[types.UID]*node{},
		changes:                  workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[*graphEvent]{Name: "garbage_collector_graph_changes"}),
		attemptToDelete:          attemptToDelete,
		attemptToOrphan:          attemptToOrphan,
		absentOwners:             newAbsentOwnerCache(500),
		invalidNamespaceOwnerRef: func(objectReference, types.UID) {},
	}
}

// nodeSnapshot is what a worker needs of a node, copied under the lock.
type nodeSnapshot struct {
	identity           objectReference
	virtual            bool
	beingDeleted       bool
	deletingDependents bool
	dependents         []objectReference
	// blockingDependents are the dependents that block deletion, with whether they are being
	// deleted in the foreground themselves.
	blockingDependents []blockingDependent
	// dependentsDeletingDependents: some dependent is itself deleting its dependents.
	dependentsDeletingDependents bool
}

type blockingDependent struct {
	uid                types.UID
	deletingDependents bool
}

func (g *graph) snapshot(uid types.UID) (nodeSnapshot, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	n, ok := g.uidToNode[uid]
	if !ok {
		return nodeSnapshot{}, false
	}
	s := nodeSnapshot{identity: n.identity, virtual: n.virtual, beingDeleted: n.beingDeleted, deletingDependents: n.deletingDependents}
	for dep := range n.dependents {
		s.dependents = append(s.dependents, dep.identity)
		s.dependentsDeletingDependents = s.dependentsDeletingDependents || dep.deletingDependents
	}
	for _, dep := range n.blockingDependents() {
		s.blockingDependents = append(s.blockingDependents, blockingDependent{uid: dep.identity.UID, deletingDependents: dep.deletingDependents})
	}
	return s, true
}

func (g *graph) enqueueVirtualDelete(ref objectReference) {
	gv, _ := schema.ParseGroupVersion(ref.APIVersion)
	obj := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name, UID: ref.UID}}
	g.changes.Add(&graphEvent{virtual: true, eventType: deleteEvent, obj: obj, gvk: gv.WithKind(ref.Kind)})
}

func identityOf(e *graphEvent) objectReference {
	return objectReference{
		OwnerReference: metav1.OwnerReference{
			APIVersion: e.gvk.GroupVersion().String(), Kind: e.gvk.Kind, Name: e.obj.GetName(), UID: e.obj.GetUID(),
		},
		Namespace: e.obj.GetNamespace(),
	}
}

// processGraphChanges applies graph events until the changes queue shuts down.
func (g *graph) processGraphChanges() {
	for {
		e, quit := g.changes.Get()
		if quit {
			return
		}
		g.mu.Lock()
		g.apply(e)
		g.mu.Unlock()
		g.changes.Done(e)
	}
}

// apply is upstream's GraphBuilder.processGraphChanges for one event; g.mu is held.
func (g *graph) apply(e *graphEvent) {
	obj := e.obj
	uid := obj.GetUID()
	existing, found := g.uidToNode[uid]
	if found && !e.virtual && existing.virtual {
		// an informer shows the object a dependent only named so far
		observed := identityOf(e)
		if observed != existing.identity {
			// dependents that named it with other coordinates may be wrong: check them
			_, mismatched := partitionDependents(existing, observed)
			for _, dep := range mismatched {
				if observed.Namespace != "" && dep.identity.Namespace != observed.Namespace {
					g.invalidNamespaceOwnerRef(dep.identity, observed.UID)
				}
				g.attemptToDelete.Add(string(dep.identity.UID))
			}
			existing.identity = observed
		}
		existing.virtual = false
	}

	switch {
	case (e.eventType == addEvent || e.eventType == updateEvent) && !found:
		n := &node{
			identity:           identityOf(e),
			dependents:         map[*node]struct{}{},
			owners:             obj.GetOwnerReferences(),
			beingDeleted:       beingDeleted(obj),
			deletingDependents: beingDeleted(obj) && hasFinalizer(obj, metav1.FinalizerDeleteDependents),
		}
		g.uidToNode[uid] = n
		g.addDependentToOwners(n, n.owners)
		// the informer may fold a creation and a deletion into one event
		g.processTransitions(e.oldObj, obj, n)

	case e.eventType == addEvent || e.eventType == updateEvent:
		added, removed, changed := referencesDiffs(existing.owners, obj.GetOwnerReferences())
		if len(added) != 0 || len(removed) != 0 || len(changed) != 0 {
			g.addUnblockedOwnersToDeleteQueue(removed, changed)
			existing.owners = obj.GetOwnerReferences()
			g.addDependentToOwners(existing, added)
			g.removeDependentFromOwners(existing, removed)
		}
		if beingDeleted(obj) {
			existing.beingDeleted = true
		}
		g.processTransitions(e.oldObj, obj, existing)

	case e.eventType == deleteEvent:
		if !found {
			return
		}
		remove := true
		if e.virtual {
			deleted := identityOf(e)
			if existing.virtual {
				// not sure of a virtual node's coordinates: dependents may name it differently
				matching, mismatched := partitionDependents(existing, deleted)
				if len(mismatched) > 0 {
					remove = false
					if len(matching) > 0 {
						g.absentOwners.add(deleted)
						for _, dep := range matching {
							g.attemptToDelete.Add(string(dep.identity.UID))
						}
					}
					if existing.identity == deleted {
						// try the coordinates another dependent gives
						alt := alternateOwnerIdentity(mismatched, deleted)
						if alt != nil {
							existing.identity = *alt
							g.attemptToDelete.AddRateLimited(string(uid))
						}
					}
				}
			} else if existing.identity != deleted {
				// an observed object is not removed for a virtual delete of other coordinates
				remove = false
				matching, _ := partitionDependents(existing, deleted)
				if len(matching) > 0 {
					g.absentOwners.add(deleted)
					for _, dep := range matching {
						g.attemptToDelete.Add(string(dep.identity.UID))
					}
				}
			}
		}
		if remove {
			delete(g.uidToNode, uid)
			g.removeDependentFromOwners(existing, existing.owners)
			if len(existing.dependents) > 0 {
				g.absentOwners.add(identityOf(e))
			}
			for dep := range existing.dependents {
				g.attemptToDelete.Add(string(dep.identity.UID))
			}
			for _, o := range existing.owners {
				if owner, ok := g.uidToNode[o.UID]; ok && owner.deletingDependents {
					// its foreground deletion may now be able to finish
					g.attemptToDelete.Add(string(owner.identity.UID))
				}
			}
		}
	}
}

// processTransitions starts orphaning or foreground deletion when an object's deletion with
// that finalizer begins.
func (g *graph) processTransitions(oldObj, obj metav1.Object, n *node) {
	if deletionStartsWithFinalizer(oldObj, obj, metav1.FinalizerOrphanDependents) {
		g.attemptToOrphan.Add(string(n.identity.UID))
		return
	}
	if deletionStartsWithFinalizer(oldObj, obj, metav1.FinalizerDeleteDependents) {
		n.deletingDependents = true
		for dep := range n.dependents {
			g.attemptToDelete.Add(string(dep.identity.UID))
		}
		g.attemptToDelete.Add(string(n.identity.UID))
	}
}

func deletionStartsWithFinalizer(oldObj, obj metav1.Object, finalizer string) bool {
	if !beingDeleted(obj) || !hasFinalizer(obj, finalizer) {
		return false
	}
	return oldObj == nil || !beingDeleted(oldObj) || !hasFinalizer(oldObj, finalizer)
}

func beingDeleted(obj metav1.Object) bool { return obj.GetDeletionTimestamp() != nil }

func hasFinalizer(obj metav1.Object, finalizer string) bool {
	return slices.Contains(obj.GetFinalizers(), finalizer)
}

// addDependentToOwners links n under each owner, making virtual nodes for owners not seen yet
// and asking the collector to verify them.
func (g *graph) addDependentToOwners(n *node, owners []metav1.OwnerReference) {
	suspicious := false
	for _, o := range owners {
		owner, ok := g.uidToNode[o.UID]
		if !ok {
			owner = &node{
				identity:   objectReference{OwnerReference: coordinates(o), Namespace: n.identity.Namespace},
				dependents: map[*node]struct{}{},
				virtual:    true,
			}
			g.uidToNode[o.UID] = owner
		}
		owner.dependents[n] = struct{}{}
		if !ok {
			// the collector deletes the virtual node again if the owner does not exist
			g.attemptToDelete.Add(string(o.UID))
			continue
		}
		if suspicious {
			continue
		}
		ownerNamespaced := owner.identity.Namespace != ""
		switch {
		case ownerNamespaced && owner.identity.Namespace != n.identity.Namespace:
			if !owner.virtual {
				g.invalidNamespaceOwnerRef(n.identity, o.UID)
			}
			suspicious = true
		case coordinates(o) != owner.identity.OwnerReference:
			suspicious = true
		case !ownerNamespaced && owner.identity.Namespace != n.identity.Namespace && owner.virtual:
			suspicious = true
		}
	}
	if suspicious {
		g.attemptToDelete.Add(string(n.identity.UID))
	}
}

func (g *graph) removeDependentFromOwners(n *node, owners []metav1.OwnerReference) {
	for _, o := range owners {
		if owner, ok := g.uidToNode[o.UID]; ok {
			delete(owner.dependents, n)
		}
	}
}

// addUnblockedOwnersToDeleteQueue wakes owners deleting in the foreground that a dependent
// stopped blocking, by dropping its reference or its blockOwnerDeletion.
func (g *graph) addUnblockedOwnersToDeleteQueue(removed []metav1.OwnerReference, changed []ownerRefPair) {
	for _, ref := range removed {
		if ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
			if owner, ok := g.uidToNode[ref.UID]; ok {
				g.attemptToDelete.Add(string(owner.identity.UID))
			}
		}
	}
	for _, c := range changed {
		wasBlocked := c.oldRef.BlockOwnerDeletion != nil && *c.oldRef.BlockOwnerDeletion
		isBlocked := c.newRef.BlockOwnerDeletion != nil && *c.newRef.BlockOwnerDeletion
		if wasBlocked && !isBlocked {
			if owner, ok := g.uidToNode[c.newRef.UID]; ok {
				g.attemptToDelete.Add(string(owner.identity.UID))
			}
		}
	}
}

type ownerRefPair struct {
	oldRef, newRef metav1.OwnerReference
}

func referencesDiffs(old, cur []metav1.OwnerReference) (added, removed []metav1.OwnerReference, changed []ownerRefPair) {
	oldByUID := map[types.UID]metav1.OwnerReference{}
	for _, r := range old {
		oldByUID[r.UID] = r
	}
	for _, r := range cur {
		if o, ok := oldByUID[r.UID]; ok {
			if !equalRefs(o, r) {
				changed = append(changed, ownerRefPair{oldRef: o, newRef: r})
			}
			delete(oldByUID, r.UID)
		} else {
			added = append(added, r)
		}
	}
	for _, r := range old {
		if _, ok := oldByUID[r.UID]; ok {
			removed = append(removed, r)
		}
	}
	return added, removed, changed
}

func equalRefs(a, b metav1.OwnerReference) bool {
	boolEq := func(x, y *bool) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.APIVersion == b.APIVersion && a.Kind == b.Kind && a.Name == b.Name && a.UID == b.UID &&
		boolEq(a.Controller, b.Controller) && boolEq(a.BlockOwnerDeletion, b.BlockOwnerDeletion)
}

// partitionDependents splits n's dependents into those whose reference to n matches identity
// (coordinates, and namespace for a namespaced owner) and the others.
func partitionDependents(n *node, identity objectReference) (matching, mismatched []*node) {
	ownerNamespaced := identity.Namespace != ""
	for dep := range n.dependents {
		found := false
		for _, o := range dep.owners {
			if o.UID != identity.UID {
				continue
			}
			found = true
			if (ownerNamespaced && dep.identity.Namespace != identity.Namespace) || coordinates(o) != identity.OwnerReference {
				mismatched = append(mismatched, dep)
			} else {
				matching = append(matching, dep)
			}
			break
		}
		if !found {
			mismatched = append(mismatched, dep)
		}
	}
	return matching, mismatched
}

// alternateOwnerIdentity is another identity dependents give the owner that was verified
// absent, preferring one that sorts after it so that tries make progress.
func alternateOwnerIdentity(deps []*node, verifiedAbsent objectReference) *objectReference {
	var first *objectReference
	for _, dep := range deps {
		for _, o := range dep.owners {
			if o.UID != verifiedAbsent.UID {
				continue
			}
			ns := dep.identity.Namespace
			if verifiedAbsent.Namespace == "" {
				ns = ""
			}
			candidate := objectReference{OwnerReference: coordinates(o), Namespace: ns}
			if candidate == verifiedAbsent {
				continue
			}
			if first == nil {
				c := candidate
				first = &c
			}
		}
	}
	return first
}

// absentOwnerCache remembers owners verified absent, so that many dependents of one deleted
// owner cost one lookup; the oldest entries go first.
type absentOwnerCache struct {
	mu    sync.Mutex
	max   int
	set   map[objectReference]struct{}
	order []objectReference
}

func newAbsentOwnerCache(max int) *absentOwnerCache {
	return &absentOwnerCache{max: max, set: map[objectReference]struct{}{}}
}

func (c *absentOwnerCache) add(r objectReference) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.set[r]; ok {
		return
	}
	if len(c.order) >= c.max {
		delete(c.set, c.order[0])
		c.order = c.order[1:]
	}
	c.set[r] = struct{}{}
	c.order = append(c.order, r)
}

func (c *absentOwnerCache) has(r objectReference) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.set[r]
	return ok
}

// accessor is meta.Accessor for objects informers deliver (typed, metadata-only or
// unstructured).
func accessor(obj any) (metav1.Object, error) { return meta.Accessor(obj) }
