package etcd3

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/registry/storage"
)

const (
	// resultBufferSize is how many decoded events wait for a slow consumer before the
	// watcher blocks (and with it, its etcd watch stream stops being read); upstream's size.
	resultBufferSize = 100
	// initialListPageSize bounds the memory of a watch's initial listing.
	initialListPageSize = 1000
)

// Watch implements storage.Interface straight on an etcd watch (one etcd watch per call; the
// watch cache is what shares one among many watchers). An RV that etcd has compacted ends the
// watch with an ERROR event carrying a 410 Expired Status, as upstream does: the HTTP answer
// is then 200 and the client relists.
//
// Bookmarks follow etcd's progress notifications (every 10 minutes on a default etcd, or on
// RequestProgress); the initial-events-end bookmark is sent when SendInitialEvents and
// AllowWatchBookmarks are both set, as upstream.
func (s *Store) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	rv, err := storage.ParseResourceVersion(key, opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	if opts.Recursive && !strings.HasSuffix(key, "/") {
		key += "/"
	}
	initial := InitialEventsWanted(opts)
	startRev := rv
	if initial || opts.ResourceVersion == "" {
		current, err := s.CurrentRevision(ctx)
		if err != nil {
			return nil, err
		}
		if rv > current {
			return nil, storage.NewTooLargeResourceVersionError(key, rv, current)
		}
		startRev = current
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &etcdWatcher{
		store:     s,
		key:       key,
		opts:      opts,
		startRev:  startRev,
		initial:   initial,
		result:    make(chan watch.Event, resultBufferSize),
		cancel:    cancel,
		newObject: opts.NewFunc,
	}
	go w.run(ctx)
	return w, nil
}

// InitialEventsWanted reports whether a watch starts with ADDED events for the current state:
// when asked with SendInitialEvents, or by the legacy resourceVersion "0".
func InitialEventsWanted(opts storage.ListOptions) bool {
	if opts.SendInitialEvents != nil {
		return *opts.SendInitialEvents
	}
	return opts.ResourceVersion == "0"
}

// etcdWatcher turns one etcd watch into watch.Events. One goroutine (run) reads etcd, decodes,
// filters and sends on result; it closes result when it ends, which Stop or ctx causes.
type etcdWatcher struct {
	store    *Store
	key      string
	opts     storage.ListOptions
	startRev int64 // events after this revision are sent
	initial  bool

	result   chan watch.Event
	cancel   context.CancelFunc
	stopOnce sync.Once

	// newObject makes the object a bookmark carries: opts.NewFunc, or else an empty object
	// like the first one decoded (nil until then).
	newObject func() runtime.Object
}

func (w *etcdWatcher) ResultChan() <-chan watch.Event { return w.result }

func (w *etcdWatcher) Stop() { w.stopOnce.Do(w.cancel) }

func (w *etcdWatcher) run(ctx context.Context) {
	defer close(w.result)
	defer w.cancel()
	if w.initial {
		if err := w.sendInitialEvents(ctx); err != nil {
			w.sendError(ctx, err)
			return
		}
		if w.opts.Predicate.AllowWatchBookmarks {
			if !w.sendBookmark(ctx, w.startRev, true) {
				return
			}
		}
	}
	ops := []clientv3.OpOption{clientv3.WithRev(w.startRev + 1), clientv3.WithPrevKV()}
	if w.opts.Recursive {
		ops = append(ops, clientv3.WithPrefix())
	}
	if w.opts.Predicate.AllowWatchBookmarks {
		ops = append(ops, clientv3.WithProgressNotify())
	}
	// WithRequireLeader: a member cut off from its cluster closes the watch instead of
	// silently serving nothing.
	for resp := range w.store.client.Watch(clientv3.WithRequireLeader(ctx), w.key, ops...) {
		if resp.CompactRevision != 0 {
			w.sendError(ctx, storage.NewTooOldResourceVersionError(w.key, w.startRev, resp.CompactRevision))
			return
		}
		if err := resp.Err(); err != nil {
			w.sendError(ctx, fmt.Errorf("watch %q: %w", w.key, err))
			return
		}
		if resp.IsProgressNotify() {
			if w.opts.Predicate.AllowWatchBookmarks && !w.sendBookmark(ctx, resp.Header.Revision, false) {
				return
			}
			continue
		}
		for _, ev := range resp.Events {
			e, err := w.transform(ev)
			if err != nil {
				w.sendError(ctx, err)
				return
			}
			if e != nil && !w.send(ctx, *e) {
				return
			}
		}
	}
}

// sendInitialEvents sends ADDED for every matching object at startRev, a page at a time.
func (w *etcdWatcher) sendInitialEvents(ctx context.Context) error {
	start := w.key
	ops := []clientv3.OpOption{clientv3.WithRev(w.startRev)}
	if w.opts.Recursive {
		ops = append(ops, clientv3.WithRange(clientv3.GetPrefixRangeEnd(w.key)), clientv3.WithLimit(initialListPageSize))
	}
	for {
		resp, err := w.store.client.Get(ctx, start, ops...)
		if err != nil {
			return fmt.Errorf("initial events of %q: %w", w.key, err)
		}
		for _, kv := range resp.Kvs {
			obj, err := w.decode(kv.Key, kv.Value, kv.ModRevision)
			if err != nil {
				return fmt.Errorf("key %q: %w", kv.Key, err)
			}
			if ok, err := w.opts.Predicate.Matches(obj); err != nil {
				return err
			} else if ok && !w.send(ctx, watch.Event{Type: watch.Added, Object: obj}) {
				return ctx.Err()
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// transform applies the predicate to an etcd event: an object that starts matching is ADDED,
// one that stops matching is DELETED (carrying its previous state), as upstream.
func (w *etcdWatcher) transform(ev *clientv3.Event) (*watch.Event, error) {
	pred := w.opts.Predicate
	if ev.Type == clientv3.EventTypeDelete {
		if ev.PrevKv == nil {
			// Only when the previous value was compacted away; nothing to say what was deleted.
			slog.Warn("etcd delete event without previous value", "key", string(ev.Kv.Key), "revision", ev.Kv.ModRevision)
			return nil, nil
		}
		// The previous object, at the revision of the delete.
		old, err := w.decode(ev.Kv.Key, ev.PrevKv.Value, ev.Kv.ModRevision)
		if err != nil {
			return nil, err
		}
		if ok, err := pred.Matches(old); err != nil || !ok {
			return nil, err
		}
		return &watch.Event{Type: watch.Deleted, Object: old}, nil
	}
	cur, err := w.decode(ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
	if err != nil {
		return nil, err
	}
	curOK, err := pred.Matches(cur)
	if err != nil {
		return nil, err
	}
	if ev.IsCreate() || ev.PrevKv == nil {
		if !curOK {
			return nil, nil
		}
		return &watch.Event{Type: watch.Added, Object: cur}, nil
	}
	oldOK := true
	var old runtime.Object
	if !pred.Empty() {
		if old, err = w.decode(ev.Kv.Key, ev.PrevKv.Value, ev.Kv.ModRevision); err != nil {
			return nil, err
		}
		if oldOK, err = pred.Matches(old); err != nil {
			return nil, err
		}
	}
	switch {
	case curOK && oldOK:
		return &watch.Event{Type: watch.Modified, Object: cur}, nil
	case curOK:
		return &watch.Event{Type: watch.Added, Object: cur}, nil
	case oldOK:
		return &watch.Event{Type: watch.Deleted, Object: old}, nil
	}
	return nil, nil
}

// decode reads a value into a new object of the watched resource (opts.NewFunc), or by the
// value's own kind when the caller did not say.
func (w *etcdWatcher) decode(key, value []byte, rev int64) (runtime.Object, error) {
	var into runtime.Object
	if w.opts.NewFunc != nil {
		into = w.opts.NewFunc()
	}
	obj, err := w.store.decode(key, value, into, rev)
	if err != nil {
		return nil, err
	}
	if w.newObject == nil {
		w.newObject = func() runtime.Object {
			o, _ := newEmptyLike(obj)
			return o
		}
	}
	return obj, nil
}

func (w *etcdWatcher) sendBookmark(ctx context.Context, rev int64, initialEventsEnd bool) bool {
	if w.newObject == nil {
		// No type to say it with (no opts.NewFunc, no event yet): a periodic bookmark is only
		// an optimisation, but the end of the initial events is lost to the client.
		return true
	}
	obj := w.newObject()
	if err := setResourceVersion(obj, rev); err != nil {
		return true
	}
	if initialEventsEnd {
		if err := MarkInitialEventsEnd(obj); err != nil {
			return true
		}
	}
	return w.send(ctx, watch.Event{Type: watch.Bookmark, Object: obj})
}

func (w *etcdWatcher) sendError(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // stopped: the error is ours, not the client's
	}
	w.send(ctx, storage.WatchErrorEvent(err))
}

func (w *etcdWatcher) send(ctx context.Context, e watch.Event) bool {
	select {
	case w.result <- e:
		return true
	case <-ctx.Done():
		return false
	}
}

// MarkInitialEventsEnd sets the annotation that makes a BOOKMARK the end of a watch's
// initial events (metav1.InitialEventsAnnotationKey: "true").
func MarkInitialEventsEnd(obj runtime.Object) error {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	accessor.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	return nil
}
