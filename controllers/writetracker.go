package controllers

import (
	"fmt"
	"strconv"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WriteTracker remembers the resourceVersion of each object a controller wrote (0 for one it
// deleted), per controller key, until the controller's informer cache shows it: a sync on a
// cache that has not seen the controller's own writes yet retries instead of creating
// duplicates or undoing them. resourceVersion is the etcd revision in skiff, so versions
// compare as numbers.
type WriteTracker[T metav1.Object] struct {
	stale   error
	mu      sync.Mutex
	written map[string]map[string]uint64 // key → object name → resourceVersion (0: deleted)
}

// NewWriteTracker tracks writes of objects of kind (for the error a stale cache gives).
func NewWriteTracker[T metav1.Object](kind string) *WriteTracker[T] {
	return &WriteTracker[T]{
		stale:   fmt.Errorf("the %s cache has not caught up with this controller's writes yet", kind),
		written: map[string]map[string]uint64{},
	}
}

// Check returns an error when cached, the key's objects in the cache, lacks one of the key's
// writes, and forgets the writes it shows.
func (t *WriteTracker[T]) Check(key string, cached []T) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := t.written[key]
	if len(want) == 0 {
		return nil
	}
	seen := make(map[string]uint64, len(cached))
	for _, o := range cached {
		rv, _ := strconv.ParseUint(o.GetResourceVersion(), 10, 64)
		seen[o.GetName()] = rv
	}
	stale := false
	for name, rv := range want {
		got, ok := seen[name]
		switch {
		case rv == 0 && !ok, rv > 0 && ok && got >= rv:
			delete(want, name)
		default:
			stale = true
		}
	}
	if len(want) == 0 {
		delete(t.written, key)
	}
	if stale {
		return t.stale
	}
	return nil
}

// Wrote records o as the server returned it from a create or an update.
func (t *WriteTracker[T]) Wrote(key string, o T) {
	if rv, _ := strconv.ParseUint(o.GetResourceVersion(), 10, 64); rv > 0 {
		t.set(key, o.GetName(), rv)
	}
	// a version that is not a number leaves nothing to wait for
}

// Deleted records the deletion of the key's object name.
func (t *WriteTracker[T]) Deleted(key, name string) { t.set(key, name, 0) }

// Gone forgets a write to an object the cache saw deleted: it will never show that write.
func (t *WriteTracker[T]) Gone(key, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.written[key], name)
}

// Forget drops everything recorded for key, whose objects are all gone.
func (t *WriteTracker[T]) Forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.written, key)
}

func (t *WriteTracker[T]) set(key, name string, rv uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.written[key] == nil {
		t.written[key] = map[string]uint64{}
	}
	t.written[key][name] = rv
}
