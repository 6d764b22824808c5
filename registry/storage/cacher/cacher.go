// Package cacher is the watch cache: one per resource prefix, it keeps every object under the
// prefix in memory, fed by ONE etcd watch, and serves Get, GetList and Watch from memory so that
// N watchers never become N etcd watches. Writes, exact-revision reads and continued lists go
// to the etcd3 store underneath. FLOW.md beside this file describes its goroutines, channels
// and buffers.
//
// Objects handed out (Get's out, list items, watch event objects) are shallow copies of the
// cached objects: the top-level struct is the caller's, so setting TypeMeta or an ObjectMeta
// scalar (as an encoder does) is safe, but maps, slices and pointers inside are shared with
// the cache and every other caller. Callers must DeepCopy before changing anything else. The
// cache itself never mutates an object once stored. Unstructured objects (custom resources)
// are handed out with their own top-level and metadata maps, sharing everything below. The
// one exception is GetListShared, whose items are the cached objects themselves, for readers
// that only encode them (the API server's list writers) and must not touch them at all.
//
// A cache lives until the context given to New ends or Stop is called (its resource was
// removed, e.g. a CustomResourceDefinition deleted); it must never outlive both.
package cacher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/internal/intern"
	"github.com/skiff-dev/skiff/registry/storage"
	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

const (
	// DefaultHistorySize is how many recent events a cache keeps for watches that resume from
	// a resourceVersion; older ones are answered 410 Expired.
	DefaultHistorySize = 10000
	// DefaultBookmarkInterval is how often watchers that allow bookmarks are offered one.
	// Upstream waits about a minute; a second keeps clients' resourceVersions fresh (fewer
	// 410s after a reconnect) at the price of one small event per second per such watcher,
	// and only when the cache's revision moved.
	DefaultBookmarkInterval = time.Second
	// freshnessTimeout is how long a read waits for the cache to reach a revision (upstream's
	// 3 s) before a consistent read falls back to etcd or a NotOlderThan read fails.
	freshnessTimeout = 3 * time.Second
	// progressRequestInterval paces etcd progress requests while a read waits.
	progressRequestInterval = 100 * time.Millisecond
	// listPageSize is the page size of the cache's own (re)lists from etcd.
	listPageSize = 1000
	// relistBackoff paces re-lists after the etcd watch fails.
	relistBackoff = time.Second
)

// Cacher is storage.Interface for the objects under one key prefix, served from memory.
type Cacher struct {
	store   storage.Interface
	client  *clientv3.Client
	prefix  string
	newFunc func() runtime.Object
	objType reflect.Type // *T of newFunc()

	historySize      int
	bookmarkInterval time.Duration
	// indexField, when set, is the field whose exact value indexedWatchers are keyed by, and
	// indexValue reads it from an object.
	indexField string
	indexValue func(runtime.Object) string
	// transformer reads values encrypted at rest (nil: stored as encoded); the store under
	// the cache, which writes them, must have the same one.
	transformer storage.Transformer
	// interner shares equal managedFields between cached objects, pods the parts the pods of
	// one template hold alike (intern.Pods); only the reflector uses them.
	interner *managedFieldsInterner
	pods     *intern.Pods

	// ctx ends when New's ctx does or Stop is called; everything the cache started ends then.
	ctx  context.Context
	stop context.CancelFunc
	// stopped: Stop was called, and every call is refused with ErrStopped.
	stopped atomic.Bool
	// goroutines counts the reflector, progress requester, bookmarker and watchers; Stop
	// waits for them. Watchers are added only under mu while !closed.
	goroutines sync.WaitGroup
	// watchCtx carries the metadata of the cache's etcd watch: RequestProgress must be sent
	// with the same metadata to reach that watch's gRPC stream.
	watchCtx context.Context

	mu       sync.RWMutex
	ready    bool
	closed   bool  // the reflector has shut down: no watcher may be added
	rev      int64 // every event up to rev is applied
	objects  *objectSet
	history  *history
	watchers map[int]*cacheWatcher
	// Every watcher is in watchers, and in exactly one of indexedWatchers (under the value its
	// predicate requires of indexField) or unindexedWatchers.
	indexedWatchers   map[string]map[int]*cacheWatcher
	unindexedWatchers map[int]*cacheWatcher
	nextID            int
	// advanced is closed (and replaced) whenever rev grows or readiness changes.
	advanced chan struct{}

	// waiting counts reads waiting for a revision; while > 0 the progress requester asks
	// etcd for progress notifications.
	waiting        atomic.Int32
	progressWanted chan struct{}
}

var _ storage.Interface = &Cacher{}

// ErrStopped is what every call on a stopped Cacher returns (wrapped, with the prefix).
var ErrStopped = errors.New("the watch cache was stopped")

// Option tunes a Cacher.
type Option func(*Cacher)

// WithHistorySize sets how many events the cache keeps for resuming watches.
func WithHistorySize(n int) Option { return func(c *Cacher) { c.historySize = max(n, 1) } }

// WithTransformer makes the cache read values through t (encryption at rest), as the store
// it writes through does.
func WithTransformer(t storage.Transformer) Option { return func(c *Cacher) { c.transformer = t } }

// WithBookmarkInterval sets how often bookmarks are offered to watchers that allow them.
func WithBookmarkInterval(d time.Duration) Option { return func(c *Cacher) { c.bookmarkInterval = d } }

// WithIndexedField makes the cache key its watchers by the exact value their field selector
// requires of field (value reads it from an object), so that an event reaches only the
// watchers of the values its object had before and after, plus those that require none. With
// a thousand kubelets each watching its own pods, an event costs two map lookups instead of a
// thousand predicate evaluations.
func WithIndexedField(field string, value func(runtime.Object) string) Option {
	return func(c *Cacher) { c.indexField, c.indexValue = field, value }
}

// New starts a cache of the objects under prefix (a key ending in "/"), read and written
// through store, watched through client (the client store uses). newFunc and newListFunc make
// the resource's object and list: a typed pair (*corev1.Pod, *corev1.PodList), or for a
// custom resource *unstructured.Unstructured (with apiVersion and kind set, which its
// bookmarks then carry) and *unstructured.UnstructuredList. The cache fills in the
// background; until it is ready, reads go to store and watches wait. Everything it started
// stops when ctx is done or Stop is called; its watchers' result channels are closed then.
func New(ctx context.Context, store storage.Interface, client *clientv3.Client, prefix string,
	newFunc, newListFunc func() runtime.Object, opts ...Option) (*Cacher, error) {
	if !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("cacher prefix %q must end in /", prefix)
	}
	objType := reflect.TypeOf(newFunc())
	if objType.Kind() != reflect.Pointer || objType.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("cacher for %s: newFunc must return a pointer to a struct, got %v", prefix, objType)
	}
	itemsPtr, err := meta.GetItemsPtr(newListFunc())
	if err != nil || reflect.TypeOf(itemsPtr).Elem().Elem() != objType.Elem() {
		return nil, fmt.Errorf("cacher for %s: newListFunc must return a list of %v", prefix, objType.Elem())
	}
	c := &Cacher{
		store:             store,
		client:            client,
		prefix:            prefix,
		newFunc:           newFunc,
		objType:           objType,
		historySize:       DefaultHistorySize,
		bookmarkInterval:  DefaultBookmarkInterval,
		objects:           newObjectSet(),
		watchers:          map[int]*cacheWatcher{},
		indexedWatchers:   map[string]map[int]*cacheWatcher{},
		unindexedWatchers: map[int]*cacheWatcher{},
		advanced:          make(chan struct{}),
		progressWanted:    make(chan struct{}, 1),
		interner:          newManagedFieldsInterner(),
		pods:              intern.NewPods(),
	}
	for _, o := range opts {
		o(c)
	}
	c.ctx, c.stop = context.WithCancel(ctx)
	c.watchCtx = clientv3.WithRequireLeader(c.ctx)
	c.history = newHistory(c.historySize, 0)
	c.goroutines.Add(2)
	go func() { defer c.goroutines.Done(); c.reflect() }()
	go func() { defer c.goroutines.Done(); c.requestProgress() }()
	if c.bookmarkInterval > 0 {
		c.goroutines.Add(1)
		go func() { defer c.goroutines.Done(); c.offerBookmarks() }()
	}
	return c, nil
}

// Stop ends the cache on its own, before New's ctx (its resource is gone: a deleted
// CustomResourceDefinition). Its etcd watch and goroutines end; every watcher ends at once
// (events it had not delivered are dropped) and its result channel closes; calls in progress
// that wait for the cache fail; and every later call returns an error wrapping ErrStopped.
// Stop returns when the cache's goroutines and watchers have ended. Watches the cache had
// passed on to etcd are ended too; their channels close as their etcd watches unwind.
// Calling Stop again does nothing more.
func (c *Cacher) Stop() {
	c.stopped.Store(true)
	c.stop()
	c.goroutines.Wait()
}

// refused is the error of a call on a stopped cache, nil while it is not stopped.
func (c *Cacher) refused() error {
	if c.stopped.Load() {
		return fmt.Errorf("watch cache for %s: %w", c.prefix, ErrStopped)
	}
	return nil
}

// endedError is the error of a wait the cache's end interrupted.
func (c *Cacher) endedError() error {
	if err := c.refused(); err != nil {
		return err
	}
	return fmt.Errorf("watch cache for %s stopped: %w", c.prefix, c.ctx.Err())
}

// Ready reports whether the cache has listed its prefix and is following etcd.
func (c *Cacher) Ready() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ready
}

// Count is how many objects the cache holds now: what API priority and fairness's work
// estimator charges a LIST of the prefix by, as upstream's estimator reads its object counts.
func (c *Cacher) Count() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.objects == nil {
		return 0
	}
	return int64(c.objects.len())
}

// ---- the reflector: one list, then one etcd watch, for the whole prefix ----

// reflect keeps the cache in step with etcd until ctx is done: list, watch, and when the
// watch fails (compaction while disconnected, etcd gone) list again. A relist ends every
// watcher, as upstream: they resume from their last resourceVersion.
func (c *Cacher) reflect() {
	defer c.shutdown()
	for c.ctx.Err() == nil {
		rev, err := c.list()
		if err == nil {
			err = c.watch(rev)
		}
		if c.ctx.Err() != nil {
			return
		}
		slog.Warn("watch cache lost etcd, relisting", "prefix", c.prefix, "err", err)
		c.setNotReady()
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(relistBackoff):
		}
	}
}

// list reads the prefix at one revision, a page at a time, and replaces the cache with it.
func (c *Cacher) list() (int64, error) {
	objects := newObjectSet()
	var rev int64
	start := c.prefix
	end := clientv3.GetPrefixRangeEnd(c.prefix)
	for {
		ops := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPageSize)}
		if rev != 0 {
			ops = append(ops, clientv3.WithRev(rev))
		}
		resp, err := c.client.Get(c.ctx, start, ops...)
		if err != nil {
			return 0, fmt.Errorf("listing %s: %w", c.prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			obj, err := c.decode(kv, kv.ModRevision)
			if err != nil {
				slog.Error("watch cache skips an undecodable object", "key", string(kv.Key), "err", err)
				continue
			}
			objects.put(string(kv.Key), obj)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeAllWatchersLocked()
	c.objects = objects
	c.history = newHistory(c.historySize, rev)
	c.rev = rev
	c.ready = true
	c.advanceLocked()
	return rev, nil
}

// decode reads a value from etcd into a new object of the cache's resource. Only the
// reflector calls it.
func (c *Cacher) decode(kv *mvccpb.KeyValue, rev int64) (runtime.Object, error) {
	value := kv.Value
	if c.transformer != nil {
		var err error
		if value, _, err = c.transformer.FromStorage(kv.Value, string(kv.Key)); err != nil {
			return nil, err
		}
	}
	obj, err := etcd3.Decode(value, c.newFunc(), rev)
	if err != nil {
		return nil, err
	}
	c.interner.intern(obj)
	if pod, ok := obj.(*corev1.Pod); ok {
		c.pods.Pod(pod)
	}
	return obj, nil
}

// watch follows etcd from rev until the watch fails or ctx is done.
func (c *Cacher) watch(rev int64) error {
	ctx, cancel := context.WithCancel(c.watchCtx)
	defer cancel()
	wch := c.client.Watch(ctx, c.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return err
		}
		if resp.IsProgressNotify() {
			c.progress(resp.Header.Revision)
			continue
		}
		for _, ev := range resp.Events {
			c.apply(ev)
		}
	}
	return errors.New("etcd watch closed")
}

// apply puts one etcd event into the cache and hands it to the watchers it concerns.
func (c *Cacher) apply(ev *clientv3.Event) {
	key := string(ev.Kv.Key)
	rev := ev.Kv.ModRevision
	var obj runtime.Object
	if ev.Type != clientv3.EventTypeDelete {
		var err error
		obj, err = c.decode(ev.Kv, rev)
		if err != nil {
			// As in list: an object the cache cannot read is not served (and its stale
			// predecessor must not be either), so it leaves the cache.
			slog.Error("watch cache drops an undecodable object", "key", key, "revision", rev, "err", err)
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	e := &event{key: key, rev: rev}
	switch {
	case obj == nil: // a delete, or an undecodable put
		prev, existed := c.objects.remove(key)
		if existed {
			last := etcd3.ShallowCopy(prev)
			_ = setRV(last, rev)
			e.typ, e.obj, e.prev = watch.Deleted, last, prev
		}
	default:
		prev, existed := c.objects.put(key, obj)
		e.typ, e.obj, e.prev = watch.Added, obj, prev
		if existed {
			e.typ = watch.Modified
		}
	}
	if e.obj != nil {
		c.history.add(e)
		c.dispatchEventLocked(e)
	}
	if rev > c.rev {
		c.rev = rev
		c.advanceLocked()
	}
}

// dispatchEventLocked hands e to every watcher it may concern.
func (c *Cacher) dispatchEventLocked(e *event) {
	all := c.watchers
	if c.indexField != "" {
		all = c.unindexedWatchers
		cur := c.indexValue(e.obj)
		c.dispatchToLocked(c.indexedWatchers[cur], e)
		if e.prev != nil {
			if prev := c.indexValue(e.prev); prev != cur {
				c.dispatchToLocked(c.indexedWatchers[prev], e)
			}
		}
	}
	c.dispatchToLocked(all, e)
}

func (c *Cacher) dispatchToLocked(watchers map[int]*cacheWatcher, e *event) {
	for _, w := range watchers {
		if e.matchesKey(w.key, w.recursive) {
			c.dispatchLocked(w, e)
		}
	}
}

// dispatchLocked hands e to w without waiting: a watcher whose input is full is stopped (its
// result channel closes after what it already holds) rather than slowing everyone.
func (c *Cacher) dispatchLocked(w *cacheWatcher, e *event) {
	select {
	case w.input <- e:
	default:
		slog.Warn("watch cache stops a watcher that fell behind", "prefix", c.prefix, "key", w.key,
			"buffered", watcherInputSize)
		c.removeWatcherLocked(w)
	}
}

// progress records that etcd has sent every event up to rev.
func (c *Cacher) progress(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rev > c.rev {
		c.rev = rev
		c.advanceLocked()
	}
}

func (c *Cacher) advanceLocked() {
	close(c.advanced)
	c.advanced = make(chan struct{})
}

func (c *Cacher) setNotReady() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = false
	c.removeAllWatchersLocked()
	c.advanceLocked()
}

// shutdown ends every watcher at once: with the cache gone there is nothing to catch up to,
// and a consumer that stopped reading must not keep Stop waiting.
func (c *Cacher) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = false
	c.closed = true
	for _, w := range c.watchers {
		w.cancel()
	}
	c.removeAllWatchersLocked()
	c.advanceLocked()
}

// ---- freshness: waiting for a revision ----

// waitFor blocks until the cache has applied everything up to rev, asking etcd for progress
// notifications meanwhile (so the revision advances even when nothing under the prefix
// changes). It gives up after timeout with a TooLargeResourceVersion error.
func (c *Cacher) waitFor(ctx context.Context, key string, rev int64, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	registered := false
	defer func() {
		if registered {
			c.waiting.Add(-1)
		}
	}()
	for {
		c.mu.RLock()
		ready, current, advanced := c.ready, c.rev, c.advanced
		c.mu.RUnlock()
		if ready && current >= rev {
			return nil
		}
		if ready && !registered {
			registered = true
			c.waiting.Add(1)
			select {
			case c.progressWanted <- struct{}{}:
			default:
			}
		}
		select {
		case <-advanced:
		case <-timer.C:
			return storage.NewTooLargeResourceVersionError(key, rev, current)
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return c.endedError()
		}
	}
}

// requestProgress asks etcd for a progress notification on the cache's watch stream every
// progressRequestInterval while any read waits for a revision (upstream's progressRequester).
func (c *Cacher) requestProgress() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.progressWanted:
		}
		for c.waiting.Load() > 0 {
			if err := c.client.RequestProgress(c.watchCtx); err != nil && c.ctx.Err() == nil {
				slog.Debug("watch cache progress request failed", "prefix", c.prefix, "err", err)
			}
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(progressRequestInterval):
			}
		}
	}
}

// offerBookmarks offers every bookmark-enabled watcher the cache's revision each interval;
// a watcher drops the offer when it has nothing newer to say.
func (c *Cacher) offerBookmarks() {
	ticker := time.NewTicker(c.bookmarkInterval)
	defer ticker.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-ticker.C:
		}
		// A read lock suffices: inputs are only closed under the write lock.
		c.mu.RLock()
		if c.ready {
			offer := &event{typ: watch.Bookmark, rev: c.rev}
			for _, w := range c.watchers {
				if w.bookmarks {
					select {
					case w.input <- offer:
					default: // a full input already has events to send; skip, don't punish
					}
				}
			}
		}
		c.mu.RUnlock()
	}
}

// ---- storage.Interface ----

// Create implements storage.Interface by writing through to etcd.
func (c *Cacher) Create(ctx context.Context, key string, obj, out runtime.Object) error {
	if err := c.refused(); err != nil {
		return err
	}
	return c.store.Create(ctx, key, obj, out)
}

// GuaranteedUpdate implements storage.Interface by writing through to etcd.
func (c *Cacher) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool,
	preconditions *storage.Preconditions, tryUpdate storage.UpdateFunc, cachedExisting runtime.Object) error {
	if err := c.refused(); err != nil {
		return err
	}
	return c.store.GuaranteedUpdate(ctx, key, out, ignoreNotFound, preconditions, tryUpdate, cachedExisting)
}

// Delete implements storage.Interface by writing through to etcd.
func (c *Cacher) Delete(ctx context.Context, key string, out runtime.Object, preconditions *storage.Preconditions,
	validateDeletion storage.ValidateDeleteFunc, cachedExisting runtime.Object) error {
	if err := c.refused(); err != nil {
		return err
	}
	return c.store.Delete(ctx, key, out, preconditions, validateDeletion, cachedExisting)
}

// CurrentRevision implements storage.Interface (etcd's, not the cache's).
func (c *Cacher) CurrentRevision(ctx context.Context) (int64, error) {
	if err := c.refused(); err != nil {
		return 0, err
	}
	return c.store.CurrentRevision(ctx)
}

// Get implements storage.Interface. "" is a consistent read: the cache waits until it has
// seen etcd's current revision (fetched once for many concurrent reads) and answers from
// memory, or lets etcd answer when it cannot catch up in time; "0" is whatever the cache
// holds; "N" waits for the cache to reach N.
func (c *Cacher) Get(ctx context.Context, key string, opts storage.GetOptions, out runtime.Object) error {
	if err := c.refused(); err != nil {
		return err
	}
	if !c.covers(key) || reflect.TypeOf(out) != c.objType || !c.Ready() {
		return c.store.Get(ctx, key, opts, out)
	}
	if opts.ResourceVersion == "" {
		current, err := c.store.CurrentRevision(ctx)
		if err != nil {
			return err
		}
		if err := c.waitFor(ctx, key, current, freshnessTimeout); err != nil {
			if storage.HasCode(err, storage.ErrCodeTooLargeResourceVersion) {
				return c.store.Get(ctx, key, opts, out)
			}
			return err
		}
		return c.getFromCache(key, opts, out)
	}
	rv, err := storage.ParseResourceVersion(key, opts.ResourceVersion)
	if err != nil {
		return err
	}
	if rv > 0 {
		if err := c.waitFor(ctx, key, rv, freshnessTimeout); err != nil {
			return err
		}
	}
	return c.getFromCache(key, opts, out)
}

// getFromCache copies the cached object at key into out.
func (c *Cacher) getFromCache(key string, opts storage.GetOptions, out runtime.Object) error {
	c.mu.RLock()
	obj, ok := c.objects.get(key)
	c.mu.RUnlock()
	if !ok {
		if opts.IgnoreNotFound {
			return runtime.SetZeroValue(out)
		}
		return storage.NewError(storage.ErrCodeKeyNotFound, key, 0, "key not found")
	}
	return etcd3.ShallowCopyInto(out, obj)
}

// GetList implements storage.Interface. Exact revisions and continue tokens go to etcd (the
// cache has only "now"); everything else is served from memory, consistent reads after the
// cache has caught up with etcd's current revision. Paged lists from memory carry the same
// continue token etcd3 would, at the cache's revision, so the next page is read from etcd at
// exactly that revision.
func (c *Cacher) GetList(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object) error {
	if err := c.refused(); err != nil {
		return err
	}
	l, ok, err := c.listFromMemory(ctx, key, opts, listObj)
	if err != nil {
		return err
	}
	if !ok {
		return c.store.GetList(ctx, key, opts, listObj)
	}
	if err := fillList(listObj, l.items); err != nil {
		return err
	}
	return setListMeta(listObj, l.rev, l.next, l.remaining)
}

// GetListShared implements storage.SharedLister: GetList without the copies. A list served
// from memory returns the cached objects themselves (a LIST of 5,000 pods no longer copies
// 5,000 structs into a new slice, which was most of its time and garbage); one served by etcd
// returns the items it decoded, which nobody else holds.
func (c *Cacher) GetListShared(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object) ([]runtime.Object, error) {
	if err := c.refused(); err != nil {
		return nil, err
	}
	l, ok, err := c.listFromMemory(ctx, key, opts, listObj)
	if err != nil {
		return nil, err
	}
	if !ok {
		return getListItems(ctx, c.store, key, opts, listObj)
	}
	items := make([]runtime.Object, len(l.items))
	for i, ko := range l.items {
		items[i] = ko.obj
	}
	return items, setListMeta(listObj, l.rev, l.next, l.remaining)
}

var _ storage.SharedLister = &Cacher{}

// getListItems lists through s into a new list of listObj's type and returns its items,
// setting listObj's list metadata.
func getListItems(ctx context.Context, s storage.Interface, key string, opts storage.ListOptions, listObj runtime.Object) ([]runtime.Object, error) {
	full := reflect.New(reflect.TypeOf(listObj).Elem()).Interface().(runtime.Object)
	if u, ok := listObj.(*unstructured.UnstructuredList); ok {
		full = &unstructured.UnstructuredList{Object: maps.Clone(u.Object)}
	}
	if err := s.GetList(ctx, key, opts, full); err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(full)
	if err != nil {
		return nil, err
	}
	lm, err := meta.ListAccessor(full)
	if err != nil {
		return nil, err
	}
	dst, err := meta.ListAccessor(listObj)
	if err != nil {
		return nil, err
	}
	dst.SetResourceVersion(lm.GetResourceVersion())
	dst.SetContinue(lm.GetContinue())
	dst.SetRemainingItemCount(lm.GetRemainingItemCount())
	return items, nil
}

// memoryList is a list served from memory: the cached objects selected, in key order, and
// the list metadata.
type memoryList struct {
	items     []keyedObject
	rev       int64
	next      string
	remaining *int64
}

// listFromMemory selects what a list asks for from the cache, after waiting for the
// freshness it needs; false when etcd must answer instead.
func (c *Cacher) listFromMemory(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object) (memoryList, bool, error) {
	if !c.servesList(key, opts, listObj) {
		return memoryList{}, false, nil
	}
	rv, err := storage.ParseResourceVersion(key, opts.ResourceVersion)
	if err != nil {
		return memoryList{}, false, err
	}
	switch {
	case opts.ResourceVersion == "":
		// Consistent: reach etcd's current revision, or let etcd answer.
		current, err := c.store.CurrentRevision(ctx)
		if err != nil {
			return memoryList{}, false, err
		}
		if err := c.waitFor(ctx, key, current, freshnessTimeout); err != nil {
			if storage.HasCode(err, storage.ErrCodeTooLargeResourceVersion) {
				return memoryList{}, false, nil
			}
			return memoryList{}, false, err
		}
	case rv > 0:
		if err := c.waitFor(ctx, key, rv, freshnessTimeout); err != nil {
			return memoryList{}, false, err
		}
	}

	prefix := key
	if opts.Recursive && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	c.mu.RLock()
	listRev := c.rev
	candidates := c.objects.rangeFrom(prefix, "", opts.Recursive)
	c.mu.RUnlock()

	pred := opts.Predicate
	limit := int(pred.Limit)
	if !opts.Recursive {
		limit = 0
	}
	if pred.Empty() && limit == 0 {
		return memoryList{items: candidates, rev: listRev}, true, nil
	}
	selected := make([]keyedObject, 0, min(len(candidates), max(limit, 16)))
	for i, ko := range candidates {
		if limit > 0 && len(selected) == limit {
			// More may match beyond: say so with a token etcd3 can continue.
			next, err := storage.EncodeContinue(selected[len(selected)-1].key+"\x00", prefix, listRev)
			if err != nil {
				return memoryList{}, false, err
			}
			var remaining *int64
			if pred.Empty() {
				n := int64(len(candidates) - i)
				remaining = &n
			}
			return memoryList{items: selected, rev: listRev, next: next, remaining: remaining}, true, nil
		}
		ok, err := pred.Matches(ko.obj)
		if err != nil {
			return memoryList{}, false, err
		}
		if ok {
			selected = append(selected, ko)
		}
	}
	return memoryList{items: selected, rev: listRev}, true, nil
}

// servesList reports whether a list can come from memory.
func (c *Cacher) servesList(key string, opts storage.ListOptions, listObj runtime.Object) bool {
	if !c.covers(key) || opts.Predicate.Continue != "" || !c.Ready() {
		return false
	}
	switch opts.ResourceVersionMatch {
	case metav1.ResourceVersionMatchExact:
		return false
	case "":
		// Legacy: "N" with a limit means exactly N.
		if opts.ResourceVersion != "" && opts.ResourceVersion != "0" && opts.Predicate.Limit > 0 && opts.Recursive {
			return false
		}
	case metav1.ResourceVersionMatchNotOlderThan:
	default:
		return false // let etcd3 word the error
	}
	itemsPtr, err := meta.GetItemsPtr(listObj)
	if err != nil {
		return false
	}
	return reflect.TypeOf(itemsPtr).Elem().Elem() == c.objType.Elem()
}

// covers reports whether key is under the cache's prefix.
func (c *Cacher) covers(key string) bool { return strings.HasPrefix(key, c.prefix) }

// fillList sets a list's items to shallow copies of objs (one struct copy each; for
// unstructured items, their top-level and metadata maps too).
func fillList(listObj runtime.Object, objs []keyedObject) error {
	itemsPtr, err := meta.GetItemsPtr(listObj)
	if err != nil {
		return err
	}
	items := reflect.ValueOf(itemsPtr).Elem()
	slice := reflect.MakeSlice(items.Type(), len(objs), len(objs))
	for i, ko := range objs {
		if err := etcd3.ShallowCopyInto(slice.Index(i).Addr().Interface().(runtime.Object), ko.obj); err != nil {
			return err
		}
	}
	items.Set(slice)
	return nil
}

func setListMeta(listObj runtime.Object, rev int64, next string, remaining *int64) error {
	lm, err := meta.ListAccessor(listObj)
	if err != nil {
		return err
	}
	lm.SetResourceVersion(strconv.FormatInt(rev, 10))
	lm.SetContinue(next)
	lm.SetRemainingItemCount(remaining)
	return nil
}

// Watch implements storage.Interface from memory: "N" replays history after N (410 Expired
// when N is older than the history, as an ERROR event like upstream); "0" starts with the
// cached state; "" starts at etcd's current revision once the cache has reached it (and with
// SendInitialEvents, with the state at that point). A watch the cache cannot make consistent
// in time goes to etcd.
func (c *Cacher) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	if err := c.refused(); err != nil {
		return nil, err
	}
	if !c.covers(key) {
		return c.storeWatch(ctx, key, opts)
	}
	rv, err := storage.ParseResourceVersion(key, opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	if opts.Recursive && !strings.HasSuffix(key, "/") {
		key += "/"
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	initial := etcd3.InitialEventsWanted(opts)
	startRev := rv
	switch {
	case opts.ResourceVersion == "":
		current, err := c.store.CurrentRevision(ctx)
		if err != nil {
			return nil, err
		}
		if err := c.waitFor(ctx, key, current, freshnessTimeout); err != nil {
			if storage.HasCode(err, storage.ErrCodeTooLargeResourceVersion) {
				return c.storeWatch(ctx, key, opts)
			}
			return nil, err
		}
		startRev = current
	case rv > 0:
		if err := c.waitFor(ctx, key, rv, freshnessTimeout); err != nil {
			return nil, err
		}
	}

	wctx, cancel := context.WithCancel(ctx)
	w := &cacheWatcher{
		key:       key,
		recursive: opts.Recursive,
		pred:      opts.Predicate,
		bookmarks: opts.Predicate.AllowWatchBookmarks,
		readOnly:  opts.ReadOnly,
		input:     make(chan *event, watcherInputSize),
		result:    make(chan watch.Event, watcherResultSize),
		ctx:       wctx,
		cancel:    cancel,
		remove:    c.removeWatcher,
		newObject: c.newFunc,
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		return nil, c.endedError()
	}
	if !c.ready {
		// Lost etcd between waitReady and here: the client retries.
		c.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("watch cache for %s is not ready", c.prefix)
	}
	var r replay
	if initial {
		// The state now (at least startRev), then everything after it.
		r.initial = c.objects.rangeFrom(key, "", opts.Recursive)
		r.rev = c.rev
		r.initialEnded = opts.SendInitialEvents != nil && *opts.SendInitialEvents && opts.Predicate.AllowWatchBookmarks
	} else {
		if opts.ResourceVersion == "0" {
			startRev = c.rev
		}
		events, ok := c.history.since(startRev, key, opts.Recursive)
		if !ok {
			oldest := c.history.complete
			c.mu.Unlock()
			cancel()
			return errorWatcher(storage.NewTooOldResourceVersionError(key, startRev, oldest)), nil
		}
		r.history = events
		r.rev = startRev
	}
	w.id = c.nextID
	c.nextID++
	c.addWatcherLocked(w)
	c.goroutines.Add(1) // under mu and !closed: Stop's Wait has not seen the count reach 0
	c.mu.Unlock()

	go func() { defer c.goroutines.Done(); w.run(r) }()
	return w, nil
}

// storeWatch passes a watch to etcd (the store): in the cache's type when key is the cache's,
// and ending when the cache ends, as the cache's own watchers do.
func (c *Cacher) storeWatch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	if opts.NewFunc == nil && c.covers(key) {
		opts.NewFunc = c.newFunc
	}
	ctx, cancel := context.WithCancel(ctx)
	release := context.AfterFunc(c.ctx, cancel)
	w, err := c.store.Watch(ctx, key, opts)
	if err != nil {
		release()
		cancel()
		return nil, err
	}
	return &storeWatcher{Interface: w, end: func() { release(); cancel() }}, nil
}

// storeWatcher is a watch served by etcd that also ends with the cache.
type storeWatcher struct {
	watch.Interface
	end  func()
	once sync.Once
}

func (w *storeWatcher) Stop() {
	w.Interface.Stop()
	w.once.Do(w.end)
}

// waitReady waits until the cache has listed its prefix (or ctx ends).
func (c *Cacher) waitReady(ctx context.Context) error {
	for {
		c.mu.RLock()
		ready, advanced := c.ready, c.advanced
		c.mu.RUnlock()
		if ready {
			return nil
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return c.endedError()
		}
	}
}

func (c *Cacher) removeWatcher(w *cacheWatcher) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeWatcherLocked(w)
}

// removeWatcherLocked forgets w and closes its input, once: run then drains what is buffered
// and closes result.
// addWatcherLocked registers w, under its index value when its predicate requires one.
func (c *Cacher) addWatcherLocked(w *cacheWatcher) {
	c.watchers[w.id] = w
	if c.indexField != "" && w.pred.Field != nil {
		if v, ok := w.pred.Field.RequiresExactMatch(c.indexField); ok {
			w.indexValue, w.indexed = v, true
			if c.indexedWatchers[v] == nil {
				c.indexedWatchers[v] = map[int]*cacheWatcher{}
			}
			c.indexedWatchers[v][w.id] = w
			return
		}
	}
	c.unindexedWatchers[w.id] = w
}

func (c *Cacher) removeWatcherLocked(w *cacheWatcher) {
	if _, ok := c.watchers[w.id]; ok && c.watchers[w.id] == w {
		delete(c.watchers, w.id)
		if w.indexed {
			delete(c.indexedWatchers[w.indexValue], w.id)
			if len(c.indexedWatchers[w.indexValue]) == 0 {
				delete(c.indexedWatchers, w.indexValue)
			}
		} else {
			delete(c.unindexedWatchers, w.id)
		}
		close(w.input)
	}
}

func (c *Cacher) removeAllWatchersLocked() {
	for _, w := range c.watchers {
		c.removeWatcherLocked(w)
	}
}

// WatcherCount is how many watches the cache serves (one etcd watch feeds them all).
func (c *Cacher) WatcherCount() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.watchers)
}

// errorWatcher is a watch that sends one ERROR event and ends, upstream's answer to a watch
// from a revision the cache no longer has.
func errorWatcher(err error) watch.Interface {
	ch := make(chan watch.Event, 1)
	ch <- storage.WatchErrorEvent(err)
	close(ch)
	return &closedWatcher{ch: ch}
}

type closedWatcher struct{ ch chan watch.Event }

func (w *closedWatcher) Stop()                          {}
func (w *closedWatcher) ResultChan() <-chan watch.Event { return w.ch }
