package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"
)

// ExpectationsTimeout is how long a controller trusts its expectations: past it, a controller
// that never saw its creations or deletions arrive syncs anyway (a watch event was lost).
const ExpectationsTimeout = 5 * time.Minute

// Expectations remember, per controller key, how many pod creations and which pod deletions a
// controller has asked for and not yet seen in its informer. A controller does not act on a key
// until its expectations are met, so informer lag never makes it create or delete twice. They are
// upstream's UIDTrackingControllerExpectations: deletions are tracked by pod key, so that a pod
// deleted by someone else while we wait does not count twice.
type Expectations struct {
	mu    sync.Mutex
	now   func() time.Time
	byKey map[string]*expectation
}

type expectation struct {
	add, del  int
	deleting  sets.Set[string] // pod keys whose deletion we wait to see
	timestamp time.Time
}

// NewExpectations makes empty expectations.
func NewExpectations() *Expectations {
	return &Expectations{now: time.Now, byKey: map[string]*expectation{}}
}

// Satisfied reports whether the controller of key may act: it expects nothing, or everything it
// expected has been observed, or it has waited longer than ExpectationsTimeout.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.byKey[key]
	if !ok {
		return true
	}
	return (x.add <= 0 && x.del <= 0) || e.now().Sub(x.timestamp) > ExpectationsTimeout
}

// ExpectCreations records that the controller of key has asked for n pods.
func (e *Expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.byKey[key] = &expectation{add: n, timestamp: e.now()}
}

// ExpectDeletions records that the controller of key has asked for the deletion of these pods.
func (e *Expectations) ExpectDeletions(key string, podKeys []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.byKey[key] = &expectation{del: len(podKeys), deleting: sets.New(podKeys...), timestamp: e.now()}
}

// Expect records that the controller of key has asked for n pods and for the deletion of these
// pods in one go (a DaemonSet does both in one sync).
func (e *Expectations) Expect(key string, n int, podKeys []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.byKey[key] = &expectation{add: n, del: len(podKeys), deleting: sets.New(podKeys...), timestamp: e.now()}
}

// CreationObserved lowers the creations the controller of key waits for by one: a pod it
// created arrived, or a creation failed and will never arrive.
func (e *Expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.byKey[key]; ok {
		x.add--
	}
}

// DeletionObserved records that a pod the controller of key deleted (or failed to delete) is
// gone or going; other pods do not count.
func (e *Expectations) DeletionObserved(key, podKey string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.byKey[key]; ok && x.deleting.Has(podKey) {
		x.deleting.Delete(podKey)
		x.del--
	}
}

// Delete forgets the expectations of key: its object is gone, and one made again under the same
// name starts clean.
func (e *Expectations) Delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.byKey, key)
}

// Pending reports the creations and deletions the controller of key still waits for.
func (e *Expectations) Pending(key string) (add, del int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.byKey[key]; ok {
		return x.add, x.del
	}
	return 0, 0
}
