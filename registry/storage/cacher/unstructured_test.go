package cacher

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/registry/storage"
	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

// The custom resource of upstream's CRD walkthrough: crontabs.stable.example.com.
var cronTabKind = schema.GroupVersionKind{Group: "stable.example.com", Version: "v1", Kind: "CronTab"}

const cronTabPrefix = "/registry/stable.example.com/crontabs/"

func cronTabKey(name string) string { return cronTabPrefix + "default/" + name }

// crFixture is a watch cache of crontabs, as the API server makes one for a
// CustomResourceDefinition: unstructured objects and lists.
type crFixture struct {
	etcd   *etcd3.Embedded
	store  *etcd3.Store
	cacher *Cacher
}

func startCronTabs(t testing.TB, opts ...Option) *crFixture {
	t.Helper()
	e, err := etcd3.StartEmbedded(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return startCronTabsOn(t, e, opts...)
}

func startCronTabsOn(t testing.TB, e *etcd3.Embedded, opts ...Option) *crFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	store := etcd3.New(e.Client)
	c, err := New(ctx, store, e.Client, cronTabPrefix,
		func() runtime.Object {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(cronTabKind)
			return u
		},
		func() runtime.Object {
			l := &unstructured.UnstructuredList{}
			l.SetGroupVersionKind(cronTabKind.GroupVersion().WithKind("CronTabList"))
			return l
		}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	if err := c.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return &crFixture{etcd: e, store: store, cacher: c}
}

func cronTab(name, node string, lbls map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{"cronSpec": "* * * * */5", "node": node},
	}}
	u.SetGroupVersionKind(cronTabKind)
	u.SetNamespace("default")
	u.SetName(name)
	u.SetUID(types.UID("uid-" + name))
	u.SetLabels(lbls)
	return u
}

func (f *crFixture) create(t testing.TB, name, node string, lbls map[string]string) *unstructured.Unstructured {
	t.Helper()
	out := &unstructured.Unstructured{}
	if err := f.cacher.Create(context.Background(), cronTabKey(name), cronTab(name, node, lbls), out); err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *crFixture) update(t testing.TB, name string, mutate func(*unstructured.Unstructured)) *unstructured.Unstructured {
	t.Helper()
	out := &unstructured.Unstructured{}
	err := f.cacher.GuaranteedUpdate(context.Background(), cronTabKey(name), out, false, nil,
		func(cur runtime.Object) (runtime.Object, error) {
			u := cur.(*unstructured.Unstructured).DeepCopy()
			mutate(u)
			return u, nil
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *crFixture) delete(t testing.TB, name string) *unstructured.Unstructured {
	t.Helper()
	out := &unstructured.Unstructured{}
	if err := f.cacher.Delete(context.Background(), cronTabKey(name), out, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *crFixture) watch(t testing.TB, opts storage.ListOptions) watch.Interface {
	t.Helper()
	opts.Recursive = true
	w, err := f.cacher.Watch(context.Background(), cronTabPrefix, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

func setNode(node string) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) { _ = unstructured.SetNestedField(u.Object, node, "spec", "node") }
}

func nodeOfCronTab(obj runtime.Object) string {
	node, _, _ := unstructured.NestedString(obj.(*unstructured.Unstructured).Object, "spec", "node")
	return node
}

// cronTabPredicate selects by labels and by the fields a CRD's selectableFields would offer.
func cronTabPredicate(label, field string) storage.SelectionPredicate {
	return storage.SelectionPredicate{
		Label: labels.SelectorFromSet(labels.Set{"app": label}),
		Field: fields.ParseSelectorOrDie(field),
		GetAttrs: func(obj runtime.Object) (labels.Set, fields.Set, error) {
			u := obj.(*unstructured.Unstructured)
			return u.GetLabels(), fields.Set{"metadata.name": u.GetName(), "spec.node": nodeOfCronTab(obj)}, nil
		},
	}
}

// expectCronTab waits for an event of typ and checks what upstream hands out for a custom
// resource: apiVersion and kind kept, resourceVersion set.
func expectCronTab(t testing.TB, w watch.Interface, typ watch.EventType, name string) *unstructured.Unstructured {
	t.Helper()
	e := next(t, w)
	u, ok := e.Object.(*unstructured.Unstructured)
	if e.Type != typ || !ok || (name != "" && u.GetName() != name) {
		t.Fatalf("got %s %#v, want %s %s", e.Type, e.Object, typ, name)
	}
	if u.GroupVersionKind() != cronTabKind || u.GetResourceVersion() == "" {
		t.Fatalf("%s %s: apiVersion %q kind %q resourceVersion %q", typ, name, u.GetAPIVersion(), u.GetKind(), u.GetResourceVersion())
	}
	return u
}

func TestCustomResourcesReadThroughTheCache(t *testing.T) {
	f := startCronTabs(t, WithBookmarkInterval(0))
	ctx := context.Background()
	for i := range 6 {
		lbls := map[string]string{"app": "cron"}
		if i%3 == 2 {
			lbls = nil
		}
		f.create(t, fmt.Sprintf("ct-%d", i), fmt.Sprintf("n%d", i%2), lbls)
	}
	updated := f.update(t, "ct-0", setNode("n9"))

	got := &unstructured.Unstructured{}
	if err := f.cacher.Get(ctx, cronTabKey("ct-0"), storage.GetOptions{ResourceVersion: updated.GetResourceVersion()}, got); err != nil {
		t.Fatal(err)
	}
	if got.GroupVersionKind() != cronTabKind || got.GetResourceVersion() != updated.GetResourceVersion() || nodeOfCronTab(got) != "n9" {
		t.Fatalf("got %v", got.Object)
	}
	// What the API server does to what it hands out must not reach the cache.
	got.SetAPIVersion("stable.example.com/v2")
	got.SetResourceVersion("1")
	got.SetName("changed")
	again := &unstructured.Unstructured{}
	if err := f.cacher.Get(ctx, cronTabKey("ct-0"), storage.GetOptions{ResourceVersion: "0"}, again); err != nil {
		t.Fatal(err)
	}
	if again.GetAPIVersion() != "stable.example.com/v1" || again.GetResourceVersion() != updated.GetResourceVersion() || again.GetName() != "ct-0" {
		t.Errorf("a caller's change reached the cache: %v", again.Object["metadata"])
	}

	// Labels and fields select; a limit pages with a token etcd continues at the same revision.
	pred := cronTabPredicate("cron", "metadata.name!=ct-1")
	pred.Limit = 2
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(cronTabKind.GroupVersion().WithKind("CronTabList")) // as the caller's newListFunc makes it
	if err := f.cacher.GetList(ctx, cronTabPrefix, storage.ListOptions{Recursive: true, Predicate: pred}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0].GetName() != "ct-0" || list.Items[1].GetName() != "ct-3" || list.GetContinue() == "" {
		t.Fatalf("first page: %d items, continue %q", len(list.Items), list.GetContinue())
	}
	if list.GetKind() != "CronTabList" || list.Items[1].GroupVersionKind() != cronTabKind || list.Items[1].GetResourceVersion() == "" {
		t.Errorf("list kind %q, item %v", list.GetKind(), list.Items[1].Object)
	}
	list.Items[0].SetResourceVersion("1")
	if err := f.cacher.Get(ctx, cronTabKey("ct-0"), storage.GetOptions{ResourceVersion: "0"}, again); err != nil {
		t.Fatal(err)
	}
	if again.GetResourceVersion() != updated.GetResourceVersion() {
		t.Errorf("a list item shares its metadata with the cache")
	}
	f.create(t, "ct-9", "n0", map[string]string{"app": "cron"}) // after the first page
	pred.Continue = list.GetContinue()
	rest := &unstructured.UnstructuredList{}
	if err := f.cacher.GetList(ctx, cronTabPrefix, storage.ListOptions{Recursive: true, Predicate: pred}, rest); err != nil {
		t.Fatal(err)
	}
	if len(rest.Items) != 1 || rest.Items[0].GetName() != "ct-4" || rest.GetResourceVersion() != list.GetResourceVersion() {
		t.Errorf("second page: %d items at %s", len(rest.Items), rest.GetResourceVersion())
	}

	gone := f.delete(t, "ct-0")
	if gone.GroupVersionKind() != cronTabKind || nodeOfCronTab(gone) != "n9" {
		t.Errorf("deleted %v", gone.Object)
	}
	err := f.cacher.Get(ctx, cronTabKey("ct-0"), storage.GetOptions{ResourceVersion: gone.GetResourceVersion()}, &unstructured.Unstructured{})
	if !storage.HasCode(err, storage.ErrCodeKeyNotFound) {
		t.Errorf("get after delete: %v", err)
	}
}

func TestCacheOfCustomResourcesStartsFromWhatEtcdHolds(t *testing.T) {
	e, err := etcd3.StartEmbedded(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ctx := context.Background()
	// One written by kube-apiserver (its key order, its newline), one by skiff.
	put, err := e.Client.Put(ctx, cronTabKey("from-kube"), `{"apiVersion":"stable.example.com/v1","kind":"CronTab",`+
		`"metadata":{"name":"from-kube","namespace":"default","uid":"u-1","creationTimestamp":"2026-01-02T03:04:05Z"},`+
		`"spec":{"cronSpec":"*/1 * * * *","node":"n1","replicas":2}}`+"\n")
	if err != nil {
		t.Fatal(err)
	}
	data, err := etcd3.Encode(cronTab("from-skiff", "n2", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Put(ctx, cronTabKey("from-skiff"), string(data)); err != nil {
		t.Fatal(err)
	}

	f := startCronTabsOn(t, e, WithBookmarkInterval(0))
	list := &unstructured.UnstructuredList{}
	if err := f.cacher.GetList(ctx, cronTabPrefix, storage.ListOptions{Recursive: true, ResourceVersion: "0"}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0].GetName() != "from-kube" || list.Items[1].GetName() != "from-skiff" {
		t.Fatalf("cached list: %v", list.Items)
	}
	kube := &list.Items[0]
	replicas, _, _ := unstructured.NestedInt64(kube.Object, "spec", "replicas")
	if kube.GroupVersionKind() != cronTabKind || kube.GetResourceVersion() != fmt.Sprint(put.Header.Revision) || replicas != 2 {
		t.Errorf("from kube-apiserver: %v", kube.Object)
	}

	// Its first state is where a watch with initial events starts.
	w := f.watch(t, storage.ListOptions{ResourceVersion: "0"})
	expectCronTab(t, w, watch.Added, "from-kube")
	expectCronTab(t, w, watch.Added, "from-skiff")
}

func TestCustomResourceWatchesThroughTheCache(t *testing.T) {
	f := startCronTabs(t, WithBookmarkInterval(0), WithIndexedField("spec.node", nodeOfCronTab))
	start := f.create(t, "a", "n1", map[string]string{"app": "cron"})

	onN1 := f.watch(t, storage.ListOptions{Predicate: cronTabPredicate("cron", "spec.node=n1")})
	everything := f.watch(t, storage.ListOptions{})
	b := f.create(t, "b", "n1", map[string]string{"app": "cron"})
	moved := f.update(t, "a", setNode("n2"))
	f.update(t, "b", func(u *unstructured.Unstructured) { u.SetAnnotations(map[string]string{"k": "v"}) })
	gone := f.delete(t, "b")

	expectCronTab(t, onN1, watch.Added, "b")
	left := expectCronTab(t, onN1, watch.Deleted, "a")
	if nodeOfCronTab(left) != "n1" || left.GetResourceVersion() != moved.GetResourceVersion() {
		t.Errorf("DELETED on leaving carries the old state at the new revision: %s at %s, want n1 at %s",
			nodeOfCronTab(left), left.GetResourceVersion(), moved.GetResourceVersion())
	}
	expectCronTab(t, onN1, watch.Modified, "b")
	if got := expectCronTab(t, onN1, watch.Deleted, "b"); got.GetResourceVersion() != gone.GetResourceVersion() {
		t.Errorf("DELETED at %s, want %s", got.GetResourceVersion(), gone.GetResourceVersion())
	}

	// Two watchers get the same event in objects of their own.
	first := expectCronTab(t, everything, watch.Added, "b")
	if first.GetResourceVersion() != b.GetResourceVersion() {
		t.Errorf("ADDED at %s, want %s", first.GetResourceVersion(), b.GetResourceVersion())
	}
	first.SetAPIVersion("changed/v1")

	// History: a watch from the first object's revision replays everything after it.
	replay := f.watch(t, storage.ListOptions{ResourceVersion: start.GetResourceVersion()})
	if again := expectCronTab(t, replay, watch.Added, "b"); again.GetAPIVersion() != "stable.example.com/v1" {
		t.Errorf("a consumer's change reached another watcher: %q", again.GetAPIVersion())
	}
	expectCronTab(t, replay, watch.Modified, "a")
	expectCronTab(t, replay, watch.Modified, "b")
	expectCronTab(t, replay, watch.Deleted, "b")
}

func TestCustomResourceWatchWithInitialEventsEndsWithAKindedBookmark(t *testing.T) {
	f := startCronTabs(t, WithBookmarkInterval(0))
	a := f.create(t, "a", "n1", nil)
	yes := true
	w := f.watch(t, storage.ListOptions{SendInitialEvents: &yes,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		Predicate:            storage.SelectionPredicate{AllowWatchBookmarks: true}})
	expectCronTab(t, w, watch.Added, "a")
	bm := expectCronTab(t, w, watch.Bookmark, "")
	if bm.GetAnnotations()[metav1.InitialEventsAnnotationKey] != "true" || rv(t, bm) < rv(t, a) {
		t.Errorf("bookmark %v, want the annotation and rv >= %s", bm.Object, a.GetResourceVersion())
	}
	f.create(t, "b", "n1", nil)
	expectCronTab(t, w, watch.Added, "b")
}

func TestStoppedCacherEndsItsWatchersAndRefusesCalls(t *testing.T) {
	f := startCronTabs(t, WithBookmarkInterval(0))
	reading := f.watch(t, storage.ListOptions{})
	notReading := f.watch(t, storage.ListOptions{})
	for i := range watcherResultSize + 8 { // more than notReading's result buffer holds
		f.create(t, fmt.Sprintf("ct-%02d", i), "n1", nil)
	}
	expectCronTab(t, reading, watch.Added, "ct-00")
	// A key outside the prefix: the cache passes the watch on to etcd.
	passedOn, err := f.cacher.Watch(context.Background(), "/registry/stable.example.com/others/", storage.ListOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer passedOn.Stop()

	f.cacher.Stop()

	select {
	case _, open := <-passedOn.ResultChan():
		if open {
			t.Error("the watch passed on to etcd sent an event after Stop")
		}
	case <-time.After(30 * time.Second):
		t.Error("the watch passed on to etcd is still open after Stop")
	}

	// Stop has returned: both watchers ended even though one was never read; their channels
	// give what was already in them, then close.
	for name, w := range map[string]watch.Interface{"reading": reading, "not reading": notReading} {
		n := 0
		for range w.ResultChan() {
			n++
		}
		if n > watcherResultSize {
			t.Errorf("%s watcher got %d more events after Stop", name, n)
		}
	}
	if n := f.cacher.WatcherCount(); n != 0 || f.cacher.Ready() {
		t.Errorf("after Stop: %d watchers, ready %v", n, f.cacher.Ready())
	}

	ctx := context.Background()
	u := &unstructured.Unstructured{}
	calls := map[string]error{
		"Get":     f.cacher.Get(ctx, cronTabKey("ct-00"), storage.GetOptions{}, u),
		"GetList": f.cacher.GetList(ctx, cronTabPrefix, storage.ListOptions{Recursive: true}, &unstructured.UnstructuredList{}),
		"Create":  f.cacher.Create(ctx, cronTabKey("new"), cronTab("new", "n1", nil), u),
		"Update": f.cacher.GuaranteedUpdate(ctx, cronTabKey("ct-00"), u, false, nil,
			func(cur runtime.Object) (runtime.Object, error) { return cur, nil }, nil),
		"Delete": f.cacher.Delete(ctx, cronTabKey("ct-00"), u, nil, nil, nil),
	}
	_, calls["Watch"] = f.cacher.Watch(ctx, cronTabPrefix, storage.ListOptions{Recursive: true})
	_, calls["CurrentRevision"] = f.cacher.CurrentRevision(ctx)
	for call, err := range calls {
		if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), cronTabPrefix) {
			t.Errorf("%s on a stopped cacher: %v, want ErrStopped naming the prefix", call, err)
		}
	}
	// Refused means not done: etcd still has the object Delete was asked to remove.
	if err := f.store.Get(ctx, cronTabKey("ct-00"), storage.GetOptions{}, u); err != nil {
		t.Errorf("the stopped cacher's Delete reached etcd: %v", err)
	}
	f.cacher.Stop() // again: nothing more
}

// watchRecorder keeps the contexts of the etcd watches opened through a client.
type watchRecorder struct {
	clientv3.Watcher
	mu   sync.Mutex
	ctxs []context.Context
}

func (r *watchRecorder) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	r.mu.Lock()
	r.ctxs = append(r.ctxs, ctx)
	r.mu.Unlock()
	return r.Watcher.Watch(ctx, key, opts...)
}

func TestStopEndsTheCachesEtcdWatch(t *testing.T) {
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
	recorder := &watchRecorder{Watcher: client.Watcher}
	client.Watcher = recorder
	f := startOn(t, e, client) // a configmap cache: Stop is not only for custom resources

	f.cacher.Stop()
	recorder.mu.Lock()
	defer recorder.mu.Unlock()
	if len(recorder.ctxs) != 1 {
		t.Fatalf("%d etcd watches opened, want the cache's one", len(recorder.ctxs))
	}
	if recorder.ctxs[0].Err() == nil {
		t.Error("the cache's etcd watch is still open after Stop")
	}
	if err := f.cacher.Get(context.Background(), key("a"), storage.GetOptions{}, &corev1.ConfigMap{}); !errors.Is(err, ErrStopped) {
		t.Errorf("Get after Stop: %v", err)
	}
}

func TestStopOfOneCacherLeavesAnotherOnTheSameEtcdServing(t *testing.T) {
	f := startCronTabs(t, WithBookmarkInterval(0))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	other, err := New(ctx, f.store, f.etcd.Client, "/registry/stable.example.com/others/",
		func() runtime.Object { return &unstructured.Unstructured{} },
		func() runtime.Object { return &unstructured.UnstructuredList{} }, WithBookmarkInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Stop()
	w, err := other.Watch(ctx, "/registry/stable.example.com/others/", storage.ListOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	f.cacher.Stop()
	obj := cronTab("x", "n1", nil)
	obj.SetKind("Other")
	if err := other.Create(ctx, "/registry/stable.example.com/others/default/x", obj, &unstructured.Unstructured{}); err != nil {
		t.Fatal(err)
	}
	e := next(t, w)
	if u, ok := e.Object.(*unstructured.Unstructured); e.Type != watch.Added || !ok || u.GetKind() != "Other" {
		t.Errorf("got %s %#v", e.Type, e.Object)
	}
}

func TestShallowCopiesOfCachedCustomResourcesShareTheirSpec(t *testing.T) {
	f := startCronTabs(t, WithBookmarkInterval(0))
	created := f.create(t, "a", "n1", nil)
	var got [2]*unstructured.Unstructured
	for i := range got {
		got[i] = &unstructured.Unstructured{}
		if err := f.cacher.Get(context.Background(), cronTabKey("a"), storage.GetOptions{ResourceVersion: created.GetResourceVersion()}, got[i]); err != nil {
			t.Fatal(err)
		}
	}
	spec := func(u *unstructured.Unstructured) uintptr { return reflect.ValueOf(u.Object["spec"]).Pointer() }
	meta := func(u *unstructured.Unstructured) uintptr { return reflect.ValueOf(u.Object["metadata"]).Pointer() }
	if spec(got[0]) != spec(got[1]) {
		t.Error("each Get deep-copied spec; a shallow copy shares it")
	}
	if meta(got[0]) == meta(got[1]) || reflect.ValueOf(got[0].Object).Pointer() == reflect.ValueOf(got[1].Object).Pointer() {
		t.Error("two Gets share a top-level or metadata map")
	}
}
