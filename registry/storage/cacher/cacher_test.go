package cacher

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/registry/storage"
	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

const cmPrefix = "/registry/configmaps/"

type fixture struct {
	etcd   *etcd3.Embedded
	store  *etcd3.Store
	cacher *Cacher
	cancel context.CancelFunc // stops the cacher
}

// start runs an embedded etcd and a configmap cacher on it, and waits until the cacher is
// ready. Everything stops at the end of the test.
func start(t testing.TB, opts ...Option) *fixture {
	t.Helper()
	e, err := etcd3.StartEmbedded(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return startOn(t, e, e.Client, opts...)
}

func startOn(t testing.TB, e *etcd3.Embedded, client *clientv3.Client, opts ...Option) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	store := etcd3.New(e.Client)
	c, err := New(ctx, store, client, cmPrefix,
		func() runtime.Object { return &corev1.ConfigMap{} },
		func() runtime.Object { return &corev1.ConfigMapList{} }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return &fixture{etcd: e, store: store, cacher: c, cancel: cancel}
}

func configMap(name string, lbls map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Namespace: "default", Name: name, UID: types.UID("uid-" + name), Labels: lbls}}
}

func key(name string) string { return cmPrefix + "default/" + name }

func (f *fixture) create(t testing.TB, name string, lbls map[string]string) *corev1.ConfigMap {
	t.Helper()
	out := &corev1.ConfigMap{}
	if err := f.cacher.Create(context.Background(), key(name), configMap(name, lbls), out); err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *fixture) update(t testing.TB, name string, mutate func(*corev1.ConfigMap)) *corev1.ConfigMap {
	t.Helper()
	out := &corev1.ConfigMap{}
	err := f.cacher.GuaranteedUpdate(context.Background(), key(name), out, false, nil,
		func(cur runtime.Object) (runtime.Object, error) {
			cm := cur.(*corev1.ConfigMap).DeepCopy()
			mutate(cm)
			return cm, nil
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *fixture) delete(t testing.TB, name string) *corev1.ConfigMap {
	t.Helper()
	out := &corev1.ConfigMap{}
	if err := f.cacher.Delete(context.Background(), key(name), out, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *fixture) watch(t testing.TB, opts storage.ListOptions) watch.Interface {
	t.Helper()
	opts.Recursive = true
	w, err := f.cacher.Watch(context.Background(), cmPrefix, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// next waits for the next event; the timeout only turns a hang into a failure.
func next(t testing.TB, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case e, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no event")
	}
	return watch.Event{}
}

func expect(t testing.TB, w watch.Interface, typ watch.EventType, name string) *corev1.ConfigMap {
	t.Helper()
	e := next(t, w)
	cm, ok := e.Object.(*corev1.ConfigMap)
	if e.Type != typ || !ok || (name != "" && cm.Name != name) {
		t.Fatalf("got %s %#v, want %s %s", e.Type, e.Object, typ, name)
	}
	return cm
}

func rv(t testing.TB, obj interface{ GetResourceVersion() string }) int64 {
	t.Helper()
	n, err := strconv.ParseInt(obj.GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWatchThroughTheCacheSeesWritesInOrder(t *testing.T) {
	f := start(t)
	w := f.watch(t, storage.ListOptions{})
	a := f.create(t, "a", nil)
	b := f.create(t, "b", nil)
	a2 := f.update(t, "a", func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"k": "v"} })
	gone := f.delete(t, "b")

	for _, want := range []struct {
		typ  watch.EventType
		name string
		rv   string
	}{
		{watch.Added, "a", a.ResourceVersion},
		{watch.Added, "b", b.ResourceVersion},
		{watch.Modified, "a", a2.ResourceVersion},
		{watch.Deleted, "b", gone.ResourceVersion},
	} {
		got := expect(t, w, want.typ, want.name)
		if got.ResourceVersion != want.rv {
			t.Errorf("%s %s at %s, want %s", want.typ, want.name, got.ResourceVersion, want.rv)
		}
	}
}

// countingWatcher counts the etcd watches opened through a client.
type countingWatcher struct {
	clientv3.Watcher
	opened atomic.Int32
}

func (c *countingWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	c.opened.Add(1)
	return c.Watcher.Watch(ctx, key, opts...)
}

func TestManyWatchersOfOneObjectShareOneEtcdWatch(t *testing.T) {
	e, err := etcd3.StartEmbedded(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	client, err := etcd3.NewClient(e.Endpoints, e.CAFile, e.ClientCertFile, e.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	counter := &countingWatcher{Watcher: client.Watcher}
	client.Watcher = counter
	f := startOn(t, e, client)
	f.create(t, "shared", nil)

	const watchers = 100
	ws := make([]watch.Interface, watchers)
	for i := range ws {
		w, err := f.cacher.Watch(context.Background(), key("shared"), storage.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		ws[i] = w
	}
	updated := f.update(t, "shared", func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"n": "1"} })
	for _, w := range ws {
		if got := expect(t, w, watch.Modified, "shared"); got.ResourceVersion != updated.ResourceVersion {
			t.Fatalf("got rv %s, want %s", got.ResourceVersion, updated.ResourceVersion)
		}
	}
	if n := counter.opened.Load(); n != 1 {
		t.Errorf("%d watchers opened %d etcd watches, want 1", watchers, n)
	}
	if n := f.cacher.WatcherCount(); n != watchers {
		t.Errorf("cacher serves %d watchers, want %d", n, watchers)
	}
}

func TestWatchResumesFromAResourceVersion(t *testing.T) {
	f := start(t)
	a := f.create(t, "a", nil)
	f.create(t, "b", nil)
	f.update(t, "a", func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"k": "v"} })
	w := f.watch(t, storage.ListOptions{ResourceVersion: a.ResourceVersion})
	expect(t, w, watch.Added, "b")
	expect(t, w, watch.Modified, "a")
	f.create(t, "c", nil)
	expect(t, w, watch.Added, "c")
}

func TestWatchFromBeforeTheHistoryIs410(t *testing.T) {
	f := start(t, WithHistorySize(2))
	first := f.create(t, "a", nil)
	f.create(t, "b", nil)
	f.create(t, "c", nil)
	f.create(t, "d", nil)
	f.watch(t, storage.ListOptions{}) // returns once the cache has all four
	w, err := f.cacher.Watch(context.Background(), cmPrefix, storage.ListOptions{
		Recursive: true, ResourceVersion: first.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	e := next(t, w)
	status, ok := e.Object.(*metav1.Status)
	if e.Type != watch.Error || !ok || status.Code != 410 || status.Reason != metav1.StatusReasonExpired {
		t.Fatalf("got %s %#v, want ERROR 410 Expired", e.Type, e.Object)
	}
	want := fmt.Sprintf("too old resource version: %s (", first.ResourceVersion)
	if len(status.Message) < len(want) || status.Message[:len(want)] != want {
		t.Errorf("message %q, want it to start with %q", status.Message, want)
	}
	if _, open := <-w.ResultChan(); open {
		t.Error("watch open after its error")
	}
}

func TestConsistentListSeesTheWriteJustMade(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	for i := range 20 {
		created := f.create(t, fmt.Sprintf("cm-%02d", i), nil)
		list := &corev1.ConfigMapList{}
		if err := f.cacher.GetList(ctx, cmPrefix, storage.ListOptions{Recursive: true}, list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != i+1 || rv(t, list) < rv(t, created) {
			t.Fatalf("consistent list after create %d: %d items at %s, want %d at >= %s",
				i, len(list.Items), list.ResourceVersion, i+1, created.ResourceVersion)
		}
	}
}

func TestConsistentListWaitsForEtcdProgressWhenOtherPrefixesMove(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	f.create(t, "a", nil)
	// A write outside the cache's prefix moves etcd's revision past everything the cache saw;
	// only a progress notification can tell the cache it is still current.
	put, err := f.etcd.Client.Put(ctx, "/registry/secrets/default/s", "x")
	if err != nil {
		t.Fatal(err)
	}
	list := &corev1.ConfigMapList{}
	if err := f.cacher.GetList(ctx, cmPrefix, storage.ListOptions{Recursive: true}, list); err != nil {
		t.Fatal(err)
	}
	if rv(t, list) < put.Header.Revision {
		t.Fatalf("consistent list at %s, want at least etcd's %d", list.ResourceVersion, put.Header.Revision)
	}
}

func TestListFromCachePagesWithEtcdCompatibleContinue(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	for i := range 25 {
		f.create(t, fmt.Sprintf("cm-%02d", i), nil)
	}
	// Consistent (""), so the cache has every create; served from memory all the same.
	opts := storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Limit: 10}}
	first := &corev1.ConfigMapList{}
	if err := f.cacher.GetList(ctx, cmPrefix, opts, first); err != nil {
		t.Fatal(err)
	}
	// The same first page from etcd is byte-for-byte the same token.
	fromEtcd := &corev1.ConfigMapList{}
	if err := f.store.GetList(ctx, cmPrefix, storage.ListOptions{Recursive: true, ResourceVersion: first.ResourceVersion,
		Predicate: storage.SelectionPredicate{Limit: 10}}, fromEtcd); err != nil {
		t.Fatal(err)
	}
	if first.Continue != fromEtcd.Continue {
		t.Errorf("cache token %s, etcd token %s", first.Continue, fromEtcd.Continue)
	}
	if first.RemainingItemCount == nil || *first.RemainingItemCount != 15 {
		t.Errorf("remainingItemCount %v, want 15", first.RemainingItemCount)
	}
	f.create(t, "cm-99", nil) // after the first page: not in the next ones
	names := []string{}
	for _, item := range first.Items {
		names = append(names, item.Name)
	}
	opts = storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Limit: 10, Continue: first.Continue}}
	for {
		page := &corev1.ConfigMapList{}
		if err := f.cacher.GetList(ctx, cmPrefix, opts, page); err != nil {
			t.Fatal(err)
		}
		if page.ResourceVersion != first.ResourceVersion {
			t.Errorf("page at %s, want %s", page.ResourceVersion, first.ResourceVersion)
		}
		for _, item := range page.Items {
			names = append(names, item.Name)
		}
		if page.Continue == "" {
			break
		}
		opts.Predicate.Continue = page.Continue
	}
	if len(names) != 25 || names[24] != "cm-24" {
		t.Fatalf("listed %v", names)
	}
}

func TestGetFromCacheHandsOutItsOwnTopLevelCopy(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	created := f.create(t, "a", map[string]string{"app": "web"})
	got := &corev1.ConfigMap{}
	if err := f.cacher.Get(ctx, key("a"), storage.GetOptions{ResourceVersion: created.ResourceVersion}, got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["app"] != "web" || got.ResourceVersion != created.ResourceVersion {
		t.Fatalf("got %+v", got.ObjectMeta)
	}
	got.Kind, got.Name = "ConfigMap", "changed" // what an encoder or a careless caller does
	again := &corev1.ConfigMap{}
	if err := f.cacher.Get(ctx, key("a"), storage.GetOptions{ResourceVersion: "0"}, again); err != nil {
		t.Fatal(err)
	}
	if again.Name != "a" || again.Kind != "" {
		t.Errorf("a caller's change reached the cache: %q %q", again.Kind, again.Name)
	}
	err := f.cacher.Get(ctx, key("missing"), storage.GetOptions{ResourceVersion: "0"}, &corev1.ConfigMap{})
	if !storage.HasCode(err, storage.ErrCodeKeyNotFound) {
		t.Errorf("missing key: %v", err)
	}
	err = f.cacher.Get(ctx, key("a"), storage.GetOptions{ResourceVersion: strconv.FormatInt(rv(t, created)+1000, 10)}, &corev1.ConfigMap{})
	if !storage.HasCode(err, storage.ErrCodeTooLargeResourceVersion) {
		t.Errorf("future resourceVersion: %v", err)
	}
}

func TestSendInitialEventsEndsWithTheAnnotatedBookmark(t *testing.T) {
	f := start(t, WithBookmarkInterval(0))
	f.create(t, "a", nil)
	b := f.create(t, "b", nil)
	yes := true
	w := f.watch(t, storage.ListOptions{SendInitialEvents: &yes,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		Predicate:            storage.SelectionPredicate{AllowWatchBookmarks: true}})
	expect(t, w, watch.Added, "a")
	expect(t, w, watch.Added, "b")
	bm := expect(t, w, watch.Bookmark, "")
	if bm.Annotations[metav1.InitialEventsAnnotationKey] != "true" || rv(t, bm) < rv(t, b) {
		t.Errorf("bookmark %+v, want the annotation and rv >= %s", bm.ObjectMeta, b.ResourceVersion)
	}
	f.create(t, "c", nil)
	expect(t, w, watch.Added, "c")
}

func TestWatchFromZeroStartsWithTheCachedState(t *testing.T) {
	f := start(t)
	f.create(t, "a", nil)
	w := f.watch(t, storage.ListOptions{ResourceVersion: "0"})
	expect(t, w, watch.Added, "a")
	f.create(t, "b", nil)
	expect(t, w, watch.Added, "b")
}

func TestBookmarksCarryTheCachesRevision(t *testing.T) {
	f := start(t, WithBookmarkInterval(20*time.Millisecond))
	w := f.watch(t, storage.ListOptions{Predicate: labelPredicate("web")})
	other := f.create(t, "not-selected", nil) // moves the revision; the watcher sees no event
	for {
		e := next(t, w)
		if e.Type != watch.Bookmark {
			t.Fatalf("got %s", e.Type)
		}
		if rv(t, e.Object.(*corev1.ConfigMap)) >= rv(t, other) {
			return
		}
	}
}

func labelPredicate(app string) storage.SelectionPredicate {
	return storage.SelectionPredicate{
		Label: labels.SelectorFromSet(labels.Set{"app": app}),
		Field: fields.Everything(),
		GetAttrs: func(obj runtime.Object) (labels.Set, fields.Set, error) {
			return obj.(*corev1.ConfigMap).Labels, nil, nil
		},
		AllowWatchBookmarks: true,
	}
}

func TestWatchPredicateTransitionsThroughTheCache(t *testing.T) {
	f := start(t, WithBookmarkInterval(0))
	w := f.watch(t, storage.ListOptions{Predicate: labelPredicate("web")})
	f.create(t, "a", nil)
	f.update(t, "a", func(cm *corev1.ConfigMap) { cm.Labels = map[string]string{"app": "web"} })
	left := f.update(t, "a", func(cm *corev1.ConfigMap) { cm.Labels = map[string]string{"app": "db"} })
	f.delete(t, "a")
	f.create(t, "z", map[string]string{"app": "web"})

	expect(t, w, watch.Added, "a")
	gone := expect(t, w, watch.Deleted, "a")
	if gone.Labels["app"] != "web" || gone.ResourceVersion != left.ResourceVersion {
		t.Errorf("DELETED on leaving carries the old state at the new revision: %v at %s, want %s",
			gone.Labels, gone.ResourceVersion, left.ResourceVersion)
	}
	expect(t, w, watch.Added, "z")
}

// nodeOf is the configmaps' stand-in for a pod's spec.nodeName: data["node"].
func nodeOf(obj runtime.Object) string { return obj.(*corev1.ConfigMap).Data["node"] }

func nodePredicate(selector string) storage.SelectionPredicate {
	return storage.SelectionPredicate{
		Label: labels.Everything(),
		Field: fields.ParseSelectorOrDie(selector),
		GetAttrs: func(obj runtime.Object) (labels.Set, fields.Set, error) {
			return nil, fields.Set{"data.node": nodeOf(obj)}, nil
		},
	}
}

func TestIndexedWatchersSeeTheEventsOfTheirValueOnly(t *testing.T) {
	f := start(t, WithBookmarkInterval(0), WithIndexedField("data.node", nodeOf))
	onN1 := f.watch(t, storage.ListOptions{Predicate: nodePredicate("data.node=n1")})
	onN2 := f.watch(t, storage.ListOptions{Predicate: nodePredicate("data.node=n2")})
	notN1 := f.watch(t, storage.ListOptions{Predicate: nodePredicate("data.node!=n1")})
	everything := f.watch(t, storage.ListOptions{})

	f.cacher.mu.RLock()
	indexed := map[string]int{}
	for v, ws := range f.cacher.indexedWatchers {
		indexed[v] = len(ws)
	}
	unindexed := len(f.cacher.unindexedWatchers)
	f.cacher.mu.RUnlock()
	if indexed["n1"] != 1 || indexed["n2"] != 1 || len(indexed) != 2 || unindexed != 2 {
		t.Fatalf("indexed watchers %v and %d unindexed; want one each on n1 and n2, two unindexed", indexed, unindexed)
	}

	setNode := func(node string) func(*corev1.ConfigMap) {
		return func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"node": node} }
	}
	f.create(t, "a", nil)
	f.update(t, "a", setNode("n1"))
	f.update(t, "a", setNode("n2")) // moves from n1 to n2
	f.create(t, "b", nil)
	f.update(t, "b", setNode("n2"))
	f.delete(t, "a")
	f.create(t, "end", nil)

	expect(t, onN1, watch.Added, "a")
	expect(t, onN1, watch.Deleted, "a")

	expect(t, onN2, watch.Added, "a")
	expect(t, onN2, watch.Added, "b")
	expect(t, onN2, watch.Deleted, "a")

	expect(t, notN1, watch.Added, "a")
	expect(t, notN1, watch.Deleted, "a")
	expect(t, notN1, watch.Added, "a")
	expect(t, notN1, watch.Added, "b")
	expect(t, notN1, watch.Modified, "b")
	expect(t, notN1, watch.Deleted, "a")
	expect(t, notN1, watch.Added, "end")

	for _, want := range []struct {
		typ  watch.EventType
		name string
	}{{watch.Added, "a"}, {watch.Modified, "a"}, {watch.Modified, "a"}, {watch.Added, "b"}, {watch.Modified, "b"}, {watch.Deleted, "a"}, {watch.Added, "end"}} {
		expect(t, everything, want.typ, want.name)
	}
	// the index watchers saw nothing after their last expected event: "end" is on no node,
	// so a stray event would be the next one on their channels
	for name, w := range map[string]watch.Interface{"n1": onN1, "n2": onN2} {
		select {
		case e := <-w.ResultChan():
			t.Errorf("watcher of %s got an extra %s %v", name, e.Type, e.Object)
		default:
		}
	}

	onN1.Stop()
	f.cacher.mu.RLock()
	_, left := f.cacher.indexedWatchers["n1"]
	f.cacher.mu.RUnlock()
	if left {
		t.Error("a stopped watcher is still indexed")
	}
}

func TestASlowWatcherIsStoppedAndOthersKeepUp(t *testing.T) {
	f := start(t, WithBookmarkInterval(0))
	slow := f.watch(t, storage.ListOptions{})
	fast := f.watch(t, storage.ListOptions{})
	const writes = watcherInputSize + watcherResultSize + 64
	var received atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for e := range fast.ResultChan() {
			if e.Type == watch.Added {
				if received.Add(1) == writes {
					return
				}
			}
		}
	}()
	ctx := context.Background()
	for i := range writes {
		data, err := etcd3.Encode(configMap(fmt.Sprintf("cm-%04d", i), nil))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.etcd.Client.Put(ctx, key(fmt.Sprintf("cm-%04d", i)), string(data)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if n := received.Load(); n != writes {
		t.Fatalf("fast watcher got %d of %d", n, writes)
	}
	// The slow one holds what was buffered, then its channel closes.
	got := 0
	for range slow.ResultChan() {
		got++
	}
	if got >= writes {
		t.Fatalf("slow watcher got all %d events; it should have been stopped", got)
	}
}

func TestCacherStopsWithItsContext(t *testing.T) {
	f := start(t)
	w := f.watch(t, storage.ListOptions{})
	f.cancel()
	for range w.ResultChan() {
	}
	if _, err := f.cacher.Watch(context.Background(), cmPrefix, storage.ListOptions{Recursive: true}); err == nil {
		t.Error("a stopped cacher accepted a watch")
	}
}

func TestListWithSelectorFromCache(t *testing.T) {
	f := start(t)
	for i := range 9 {
		var lbls map[string]string
		if i%3 == 0 {
			lbls = map[string]string{"app": "web"}
		}
		f.create(t, fmt.Sprintf("cm-%d", i), lbls)
	}
	list := &corev1.ConfigMapList{}
	pred := labelPredicate("web")
	pred.Limit = 2
	if err := f.cacher.GetList(context.Background(), cmPrefix, storage.ListOptions{Recursive: true,
		Predicate: pred}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0].Name != "cm-0" || list.Items[1].Name != "cm-3" || list.Continue == "" {
		t.Fatalf("got %d items, continue %q", len(list.Items), list.Continue)
	}
	if list.RemainingItemCount != nil {
		t.Errorf("remainingItemCount with a selector")
	}
	pred.Continue = list.Continue
	rest := &corev1.ConfigMapList{}
	if err := f.cacher.GetList(context.Background(), cmPrefix, storage.ListOptions{Recursive: true, Predicate: pred}, rest); err != nil {
		t.Fatal(err)
	}
	if len(rest.Items) != 1 || rest.Items[0].Name != "cm-6" {
		t.Fatalf("rest: %d items", len(rest.Items))
	}
}

// BenchmarkListFromCache measures a LIST of 5,000 objects served from memory.
func BenchmarkListFromCache(b *testing.B) {
	f := start(b, WithBookmarkInterval(0))
	ctx := context.Background()
	var last int64
	for i := range 5000 {
		cm := configMap(fmt.Sprintf("cm-%05d", i), map[string]string{"app": "web"})
		cm.Data = map[string]string{"config": "some value of a realistic length for a config map entry"}
		data, err := etcd3.Encode(cm)
		if err != nil {
			b.Fatal(err)
		}
		resp, err := f.etcd.Client.Put(ctx, key(cm.Name), string(data))
		if err != nil {
			b.Fatal(err)
		}
		last = resp.Header.Revision
	}
	if err := f.cacher.waitFor(ctx, cmPrefix, last, time.Minute); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		list := &corev1.ConfigMapList{}
		if err := f.cacher.GetList(ctx, cmPrefix, storage.ListOptions{Recursive: true, ResourceVersion: "0"}, list); err != nil {
			b.Fatal(err)
		}
		if len(list.Items) != 5000 {
			b.Fatalf("%d items", len(list.Items))
		}
	}
}

// BenchmarkFanOutTo100Watchers measures one event applied by the cache until each of 100
// watchers of that object has received it.
func BenchmarkFanOutTo100Watchers(b *testing.B) {
	f := start(b, WithBookmarkInterval(0))
	f.create(b, "shared", nil)
	ws := make([]watch.Interface, 100)
	for i := range ws {
		w, err := f.cacher.Watch(context.Background(), key("shared"), storage.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Stop()
		ws[i] = w
	}
	data, err := etcd3.Encode(configMap("shared", nil))
	if err != nil {
		b.Fatal(err)
	}
	f.cacher.mu.RLock()
	rev := f.cacher.rev
	f.cacher.mu.RUnlock()
	b.ResetTimer()
	for b.Loop() {
		rev++
		f.cacher.apply(&clientv3.Event{Type: clientv3.EventTypePut,
			Kv: &mvccpb.KeyValue{Key: []byte(key("shared")), Value: data, ModRevision: rev, CreateRevision: 1}})
		for _, w := range ws {
			<-w.ResultChan()
		}
	}
}

func TestObjectsWithEqualManagedFieldsShareOneCopyInTheCache(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	fields := func(s string) []metav1.ManagedFieldsEntry {
		return []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply,
			APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(s)}}}
	}
	for name, set := range map[string]string{"a": `{"f:data":{}}`, "b": `{"f:data":{}}`, "c": `{"f:metadata":{}}`} {
		cm := configMap(name, nil)
		cm.ManagedFields = fields(set)
		out := &corev1.ConfigMap{}
		if err := f.cacher.Create(ctx, key(name), cm, out); err != nil {
			t.Fatal(err)
		}
	}
	get := func(name string) metav1.ManagedFieldsEntry {
		got := &corev1.ConfigMap{}
		if err := f.cacher.Get(ctx, key(name), storage.GetOptions{}, got); err != nil {
			t.Fatal(err)
		}
		if len(got.ManagedFields) != 1 {
			t.Fatalf("%s: managedFields %+v", name, got.ManagedFields)
		}
		return got.ManagedFields[0]
	}
	a, b, c := get("a"), get("b"), get("c")
	if string(a.FieldsV1.Raw) != `{"f:data":{}}` || string(c.FieldsV1.Raw) != `{"f:metadata":{}}` || a.Manager != "kubectl" {
		t.Fatalf("managedFields changed: %s %s %q", a.FieldsV1.Raw, c.FieldsV1.Raw, a.Manager)
	}
	if a.FieldsV1 != b.FieldsV1 {
		t.Errorf("equal field sets are held twice")
	}
	if a.FieldsV1 == c.FieldsV1 {
		t.Errorf("different field sets are one")
	}
}

// Whatever an in-process caller does to what it got from the cache (a list's items, a Get's
// object, a watch event's object) within what the package promises (its own TypeMeta and
// ObjectMeta scalars, and replacing whole maps or slices), the next reader sees the cached
// object unchanged; and GetListShared hands out objects no caller has written to.
func TestChangingWhatTheCacheHandedOutLeavesTheCacheUnchanged(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	for i := range 3 {
		f.create(t, fmt.Sprintf("cm-%d", i), map[string]string{"app": "web"})
	}
	before := &corev1.ConfigMapList{}
	if err := f.cacher.GetList(ctx, cmPrefix, storage.ListOptions{Recursive: true}, before); err != nil {
		t.Fatal(err)
	}
	want := before.DeepCopy().Items
	scribble := func(cm *corev1.ConfigMap) {
		cm.Kind, cm.APIVersion = "ConfigMap", "v1"
		cm.Name, cm.ResourceVersion, cm.UID = "changed", "1", "other"
		cm.Labels = map[string]string{"app": "changed"}
		cm.Data = map[string]string{"k": "changed"}
		cm.ManagedFields = nil
	}
	for i := range before.Items {
		scribble(&before.Items[i])
	}
	got := &corev1.ConfigMap{}
	if err := f.cacher.Get(ctx, key("cm-1"), storage.GetOptions{ResourceVersion: "0"}, got); err != nil {
		t.Fatal(err)
	}
	scribble(got)
	w := f.watch(t, storage.ListOptions{Recursive: true, ResourceVersion: "0"})
	for range want {
		scribble(next(t, w).Object.(*corev1.ConfigMap))
	}

	again := &corev1.ConfigMapList{}
	if err := f.cacher.GetList(ctx, cmPrefix, storage.ListOptions{Recursive: true, ResourceVersion: "0"}, again); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Items, want) {
		t.Errorf("a caller's changes reached the cache:\n got %+v\nwant %+v", again.Items, want)
	}
	shared, err := f.cacher.GetListShared(ctx, cmPrefix, storage.ListOptions{Recursive: true, ResourceVersion: "0"}, &corev1.ConfigMapList{})
	if err != nil {
		t.Fatal(err)
	}
	if len(shared) != len(want) {
		t.Fatalf("%d shared items, want %d", len(shared), len(want))
	}
	for i, obj := range shared {
		if !reflect.DeepEqual(obj, &want[i]) {
			t.Errorf("shared item %d is %+v, want %+v", i, obj, &want[i])
		}
	}
}

// GetListShared answers what GetList answers, from memory (the cached objects themselves) or
// from etcd (an exact revision, a continued list), selectors and pages included.
func TestSharedListIsTheListWithoutCopies(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	for i := range 7 {
		f.create(t, fmt.Sprintf("cm-%d", i), map[string]string{"app": []string{"web", "db"}[i%2]})
	}
	first := &corev1.ConfigMapList{}
	if err := f.cacher.GetList(ctx, cmPrefix, storage.ListOptions{Recursive: true}, first); err != nil {
		t.Fatal(err)
	}
	web := labelPredicate("web")
	web.Limit = 2
	for _, opts := range []storage.ListOptions{
		{Recursive: true},
		{Recursive: true, ResourceVersion: "0"},
		{Recursive: true, ResourceVersion: first.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchExact},
		{Recursive: true, Predicate: storage.SelectionPredicate{Limit: 3}},
		{Recursive: true, Predicate: storage.SelectionPredicate{Limit: 3, Continue: first.Continue}},
		{Recursive: true, Predicate: web},
		{Recursive: false},
	} {
		k := cmPrefix
		if !opts.Recursive {
			k = key("cm-3")
		}
		copied := &corev1.ConfigMapList{}
		if err := f.cacher.GetList(ctx, k, opts, copied); err != nil {
			t.Fatal(err)
		}
		if opts.Predicate.Limit == 3 && opts.Predicate.Continue == "" {
			first = copied // the next options continue it
		}
		shared := &corev1.ConfigMapList{}
		items, err := f.cacher.GetListShared(ctx, k, opts, shared)
		if err != nil {
			t.Fatal(err)
		}
		if len(shared.Items) != 0 {
			t.Errorf("%+v: GetListShared filled the list's items", opts)
		}
		if shared.ResourceVersion != copied.ResourceVersion || shared.Continue != copied.Continue ||
			!reflect.DeepEqual(shared.RemainingItemCount, copied.RemainingItemCount) {
			t.Errorf("%+v: shared list meta %+v, GetList's %+v", opts, shared.ListMeta, copied.ListMeta)
		}
		if len(items) != len(copied.Items) {
			t.Fatalf("%+v: %d shared items, GetList has %d", opts, len(items), len(copied.Items))
		}
		for i := range items {
			if !reflect.DeepEqual(items[i], &copied.Items[i]) {
				t.Errorf("%+v: item %d differs", opts, i)
			}
		}
	}
}

// A ReadOnly watch is handed the cached objects themselves, in its initial events and live
// ones; any other watch gets its own copy of each.
func TestReadOnlyWatchIsHandedTheCachedObjects(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	f.create(t, "cm-0", nil)
	readOnly := f.watch(t, storage.ListOptions{ResourceVersion: "0", ReadOnly: true})
	copying := f.watch(t, storage.ListOptions{ResourceVersion: "0"})
	initial, copied := next(t, readOnly).Object, next(t, copying).Object
	f.create(t, "cm-1", nil)
	live, copiedLive := next(t, readOnly).Object, next(t, copying).Object

	shared, err := f.cacher.GetListShared(ctx, cmPrefix, storage.ListOptions{Recursive: true, ResourceVersion: "0"}, &corev1.ConfigMapList{})
	if err != nil {
		t.Fatal(err)
	}
	if len(shared) != 2 {
		t.Fatalf("%d cached objects, want 2", len(shared))
	}
	if initial != shared[0] || live != shared[1] {
		t.Errorf("the read-only watch was handed copies: %p %p, the cache holds %p %p", initial, live, shared[0], shared[1])
	}
	if copied == shared[0] || copiedLive == shared[1] {
		t.Error("a watch that may change its objects was handed the cache's own")
	}
	if !reflect.DeepEqual(copied, initial) || !reflect.DeepEqual(copiedLive, live) {
		t.Errorf("the copies differ from the cached objects:\n%+v\n%+v", copied, copiedLive)
	}
}
