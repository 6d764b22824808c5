package cacher

import (
	"context"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/registry/storage"
	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

const (
	// watcherInputSize is how many events a watcher may fall behind the cache before it is
	// stopped (see FLOW.md: a slow watcher is closed, never waited for).
	watcherInputSize = 1024
	// watcherResultSize smooths the hand-off to the consumer; the input is the real buffer.
	watcherResultSize = 16
)

// cacheWatcher is one Watch served from the cache. The Cacher's reflector puts events on input
// (never blocking); the watcher's own goroutine (run) first sends its replay (initial state or
// history), then turns input into watch.Events on result: predicate transitions, a shallow
// copy per event so that consumers may set TypeMeta, bookmarks only when they say something
// new. result is closed when run ends.
type cacheWatcher struct {
	id        int
	key       string
	recursive bool
	pred      storage.SelectionPredicate
	bookmarks bool
	// indexed says the Cacher keeps w under indexValue, the value its predicate requires of
	// the Cacher's indexed field.
	indexed    bool
	indexValue string
	// readOnly sends the cache's own objects, not copies (storage.ListOptions.ReadOnly)
	readOnly bool

	// input is written and closed only under the Cacher's lock, by the reflector (events,
	// bookmark offers) or by removeWatcher (stop, overflow, relist, shutdown).
	input  chan *event
	result chan watch.Event

	ctx    context.Context // the caller's, ended by Stop too
	cancel context.CancelFunc
	once   sync.Once
	remove func(*cacheWatcher)

	newObject func() runtime.Object
	// lastRev is the revision of the last event or bookmark sent; a bookmark not after it
	// says nothing and is dropped. Only run touches it.
	lastRev int64
}

func (w *cacheWatcher) ResultChan() <-chan watch.Event { return w.result }

// Stop ends the watch: run returns, result is closed, and the Cacher forgets the watcher.
func (w *cacheWatcher) Stop() {
	w.once.Do(func() {
		w.cancel()
		w.remove(w)
	})
}

// replay is what a watcher sends before live events: the initial state, or history.
type replay struct {
	initial      []keyedObject // ADDED events (initial state), filtered by run
	history      []*event      // past events after the start revision
	rev          int64         // the revision the replay brings the watcher to
	initialEnded bool          // end the initial events with the annotated bookmark
}

func (w *cacheWatcher) run(r replay) {
	defer close(w.result)
	defer w.Stop()
	w.lastRev = r.rev
	for _, ko := range r.initial {
		if ok, err := w.pred.Matches(ko.obj); err != nil {
			w.send(storage.WatchErrorEvent(err))
			return
		} else if ok && !w.send(watch.Event{Type: watch.Added, Object: w.copy(ko.obj)}) {
			return
		}
	}
	if r.initialEnded {
		if !w.sendBookmark(r.rev, true) {
			return
		}
	}
	for _, e := range r.history {
		if !w.process(e) {
			return
		}
	}
	for {
		select {
		case e, ok := <-w.input:
			if !ok {
				return
			}
			if !w.process(e) {
				return
			}
		case <-w.ctx.Done():
			return
		}
	}
}

// process sends what e means to this watcher, if anything; false when the watch is over.
func (w *cacheWatcher) process(e *event) bool {
	if e.typ == watch.Bookmark {
		if !w.bookmarks || e.rev <= w.lastRev {
			return true
		}
		return w.sendBookmark(e.rev, false)
	}
	out, err := w.convert(e)
	if err != nil {
		w.send(storage.WatchErrorEvent(err))
		return false
	}
	if out == nil {
		return true
	}
	w.lastRev = e.rev
	return w.send(*out)
}

// convert applies the predicate: an object that starts matching is ADDED, one that stops
// matching is DELETED carrying its previous state at this event's revision.
func (w *cacheWatcher) convert(e *event) (*watch.Event, error) {
	curOK, err := w.pred.Matches(e.obj)
	if err != nil {
		return nil, err
	}
	if e.typ != watch.Modified {
		if !curOK {
			return nil, nil
		}
		return &watch.Event{Type: e.typ, Object: w.copy(e.obj)}, nil
	}
	prevOK := true
	if !w.pred.Empty() {
		if prevOK, err = w.pred.Matches(e.prev); err != nil {
			return nil, err
		}
	}
	switch {
	case curOK && prevOK:
		return &watch.Event{Type: watch.Modified, Object: w.copy(e.obj)}, nil
	case curOK:
		return &watch.Event{Type: watch.Added, Object: w.copy(e.obj)}, nil
	case prevOK:
		old := etcd3.ShallowCopy(e.prev)
		if err := setRV(old, e.rev); err != nil {
			return nil, err
		}
		return &watch.Event{Type: watch.Deleted, Object: old}, nil
	}
	return nil, nil
}

// copy returns what the consumer is handed of a cached object: a shallow copy it may set
// apiVersion and kind on, or the object itself for a read-only consumer.
func (w *cacheWatcher) copy(obj runtime.Object) runtime.Object {
	if w.readOnly {
		return obj
	}
	return etcd3.ShallowCopy(obj)
}

func (w *cacheWatcher) sendBookmark(rev int64, initialEventsEnd bool) bool {
	obj := w.newObject()
	if err := setRV(obj, rev); err != nil {
		return true
	}
	if initialEventsEnd {
		if err := etcd3.MarkInitialEventsEnd(obj); err != nil {
			return true
		}
	}
	w.lastRev = rev
	return w.send(watch.Event{Type: watch.Bookmark, Object: obj})
}

func (w *cacheWatcher) send(e watch.Event) bool {
	select {
	case w.result <- e:
		return true
	case <-w.ctx.Done():
		return false
	}
}

func setRV(obj runtime.Object, rev int64) error {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	accessor.SetResourceVersion(strconv.FormatInt(rev, 10))
	return nil
}
