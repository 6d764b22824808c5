package etcd3

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

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
)

// The custom resource of upstream's CRD walkthrough: crontabs.stable.example.com.
var cronTabKind = schema.GroupVersionKind{Group: "stable.example.com", Version: "v1", Kind: "CronTab"}

const cronTabPrefix = "/registry/stable.example.com/crontabs/"

func cronTabKey(ns, name string) string { return cronTabPrefix + ns + "/" + name }

func cronTab(ns, name string, lbls map[string]string, replicas int64) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{"cronSpec": "* * * * */5", "image": "my-awesome-cron-image", "replicas": replicas},
	}}
	u.SetGroupVersionKind(cronTabKind)
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetUID(types.UID("uid-" + name))
	u.SetLabels(lbls)
	return u
}

func newCronTab() runtime.Object {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(cronTabKind)
	return u
}

func createCronTab(t *testing.T, s storage.Interface, u *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	out := &unstructured.Unstructured{}
	if err := s.Create(context.Background(), cronTabKey(u.GetNamespace(), u.GetName()), u, out); err != nil {
		t.Fatalf("Create %s: %v", u.GetName(), err)
	}
	return out
}

func replicasOf(t *testing.T, u *unstructured.Unstructured) int64 {
	t.Helper()
	n, found, err := unstructured.NestedInt64(u.Object, "spec", "replicas")
	if err != nil || !found {
		t.Fatalf("spec.replicas of %s: found %v, %v", u.GetName(), found, err)
	}
	return n
}

// wantCronTab checks what upstream's storage returns for a custom resource: its apiVersion
// and kind kept, resourceVersion set.
func wantCronTab(t *testing.T, obj runtime.Object, name string) *unstructured.Unstructured {
	t.Helper()
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		t.Fatalf("got %T, want *unstructured.Unstructured", obj)
	}
	if u.GroupVersionKind() != cronTabKind || (name != "" && u.GetName() != name) || u.GetResourceVersion() == "" {
		t.Fatalf("got %s %s at resourceVersion %q, want %s %s with a resourceVersion",
			u.GroupVersionKind(), u.GetName(), u.GetResourceVersion(), cronTabKind, name)
	}
	return u
}

func TestCustomResourceIsStoredAsUpstreamJSON(t *testing.T) {
	s, e := startStore(t)
	ctx := context.Background()
	obj := cronTab("default", "a", map[string]string{"app": "cron"}, 3)
	created := createCronTab(t, s, obj)
	wantCronTab(t, created, "a")
	if rvOf(t, created) == 0 || replicasOf(t, created) != 3 {
		t.Fatalf("created %v", created.Object)
	}

	resp, err := e.Client.Get(ctx, cronTabKey("default", "a"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw get: %v %v", resp, err)
	}
	raw := resp.Kvs[0].Value
	// Byte for byte what upstream's storage codec for custom resources writes.
	var want bytes.Buffer
	if err := unstructured.UnstructuredJSONScheme.Encode(obj, &want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want.Bytes()) {
		t.Errorf("stored\n%s\nwant\n%s", raw, want.Bytes())
	}
	if resp.Kvs[0].ModRevision != rvOf(t, created) {
		t.Errorf("resourceVersion %s, want the write's revision %d", created.GetResourceVersion(), resp.Kvs[0].ModRevision)
	}

	// What Create returns is the caller's to change: it shares nothing with obj.
	created.SetLabels(map[string]string{"app": "changed"})
	if err := unstructured.SetNestedField(created.Object, int64(9), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	if obj.GetLabels()["app"] != "cron" || replicasOf(t, obj) != 3 || obj.GetResourceVersion() != "" {
		t.Errorf("Create changed the caller's object: %v", obj.Object)
	}
}

func TestEncodeOfACustomResourceLeavesTheCallersObjectAlone(t *testing.T) {
	obj := cronTab("default", "a", nil, 1)
	obj.SetResourceVersion("42")
	obj.SetSelfLink("/apis/stable.example.com/v1/namespaces/default/crontabs/a")
	data, err := Encode(obj)
	if err != nil {
		t.Fatal(err)
	}
	var stored map[string]any
	if err := json.Unmarshal(data, &stored); err != nil {
		t.Fatal(err)
	}
	md := stored["metadata"].(map[string]any)
	if _, ok := md["resourceVersion"]; ok {
		t.Errorf("stored metadata has a resourceVersion: %v", md)
	}
	if _, ok := md["selfLink"]; ok {
		t.Errorf("stored metadata has a selfLink: %v", md)
	}
	if stored["apiVersion"] != "stable.example.com/v1" || stored["kind"] != "CronTab" || md["name"] != "a" {
		t.Errorf("stored %v", stored)
	}
	if obj.GetResourceVersion() != "42" || obj.GetSelfLink() == "" {
		t.Errorf("Encode changed the caller's metadata: %v", obj.Object["metadata"])
	}

	kindless := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "x"}}}
	if _, err := Encode(kindless); err == nil || !strings.Contains(err.Error(), "apiVersion and kind must be set") {
		t.Errorf("encoding an object without apiVersion and kind: %v", err)
	}
}

func cronTabPredicate(selector string) storage.SelectionPredicate {
	return storage.SelectionPredicate{
		Label: labels.SelectorFromSet(labels.Set{"app": "cron"}),
		Field: fields.ParseSelectorOrDie(selector),
		GetAttrs: func(obj runtime.Object) (labels.Set, fields.Set, error) {
			u := obj.(*unstructured.Unstructured)
			return u.GetLabels(), fields.Set{"metadata.name": u.GetName(), "metadata.namespace": u.GetNamespace()}, nil
		},
	}
}

func TestListCustomResourcesWithSelectorAndPages(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	var last *unstructured.Unstructured
	for i := range 7 {
		lbls := map[string]string{"app": "cron"}
		if i%2 == 1 {
			lbls = nil
		}
		last = createCronTab(t, s, cronTab("default", fmt.Sprintf("ct-%d", i), lbls, int64(i)))
	}

	// Every item, in pages of 3, every page at the first one's revision.
	var names []string
	opts := storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Limit: 3}}
	var firstRV string
	for page := 0; ; page++ {
		list := &unstructured.UnstructuredList{}
		if err := s.GetList(ctx, cronTabPrefix, opts, list); err != nil {
			t.Fatal(err)
		}
		if page == 0 {
			firstRV = list.GetResourceVersion()
			if rc := list.GetRemainingItemCount(); rc == nil || *rc != 4 {
				t.Errorf("remainingItemCount %v, want 4", rc)
			}
			// Written after the first page: not in the pages that follow.
			createCronTab(t, s, cronTab("default", "ct-late", nil, 0))
		} else if list.GetResourceVersion() != firstRV {
			t.Errorf("page %d at %s, want the first page's %s", page, list.GetResourceVersion(), firstRV)
		}
		for i := range list.Items {
			u := wantCronTab(t, &list.Items[i], "")
			names = append(names, u.GetName())
		}
		if list.GetContinue() == "" {
			break
		}
		opts.Predicate.Continue = list.GetContinue()
	}
	if strings.Join(names, ",") != "ct-0,ct-1,ct-2,ct-3,ct-4,ct-5,ct-6" {
		t.Errorf("listed %v", names)
	}

	// Labels and fields, with a limit that the predicate makes etcd3 read past.
	pred := cronTabPredicate("metadata.namespace=default,metadata.name!=ct-2")
	pred.Limit = 2
	list := &unstructured.UnstructuredList{}
	if err := s.GetList(ctx, cronTabPrefix, storage.ListOptions{Recursive: true, Predicate: pred}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0].GetName() != "ct-0" || list.Items[1].GetName() != "ct-4" || list.GetContinue() == "" {
		t.Fatalf("selected %d items, continue %q", len(list.Items), list.GetContinue())
	}
	if list.Items[1].GetResourceVersion() == "" || replicasOf(t, &list.Items[1]) != 4 {
		t.Errorf("item %v", list.Items[1].Object)
	}
	if listRV, _ := strconv.ParseInt(list.GetResourceVersion(), 10, 64); listRV < rvOf(t, last) {
		t.Errorf("list at %s, before the last write at %s", list.GetResourceVersion(), last.GetResourceVersion())
	}

	// An empty list has items, not null.
	empty := &unstructured.UnstructuredList{}
	if err := s.GetList(ctx, "/registry/stable.example.com/none/", storage.ListOptions{Recursive: true}, empty); err != nil {
		t.Fatal(err)
	}
	if empty.Items == nil || empty.GetResourceVersion() == "" {
		t.Errorf("empty list: items %v at %q", empty.Items, empty.GetResourceVersion())
	}
}

func updateCronTab(t *testing.T, s storage.Interface, name string, preconditions *storage.Preconditions,
	mutate func(*unstructured.Unstructured)) (*unstructured.Unstructured, error) {
	t.Helper()
	out := &unstructured.Unstructured{}
	err := s.GuaranteedUpdate(context.Background(), cronTabKey("default", name), out, false, preconditions,
		func(cur runtime.Object) (runtime.Object, error) {
			u := cur.(*unstructured.Unstructured).DeepCopy()
			mutate(u)
			return u, nil
		}, nil)
	return out, err
}

func TestGuaranteedUpdateAndDeleteOfACustomResource(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	created := createCronTab(t, s, cronTab("default", "a", nil, 1))

	updated, err := updateCronTab(t, s, "a", nil, func(u *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(u.Object, int64(5), "spec", "replicas")
	})
	if err != nil {
		t.Fatal(err)
	}
	wantCronTab(t, updated, "a")
	if replicasOf(t, updated) != 5 || rvOf(t, updated) <= rvOf(t, created) {
		t.Fatalf("updated to %d at %s (created at %s)", replicasOf(t, updated), updated.GetResourceVersion(), created.GetResourceVersion())
	}

	// Nothing changes: nothing is written, the resourceVersion stays.
	same, err := updateCronTab(t, s, "a", nil, func(*unstructured.Unstructured) {})
	if err != nil {
		t.Fatal(err)
	}
	if same.GetResourceVersion() != updated.GetResourceVersion() {
		t.Errorf("a no-op update moved the resourceVersion from %s to %s", updated.GetResourceVersion(), same.GetResourceVersion())
	}

	stale := created.GetResourceVersion()
	_, err = updateCronTab(t, s, "a", &storage.Preconditions{ResourceVersion: &stale}, func(*unstructured.Unstructured) {})
	wantCode(t, err, storage.ErrCodeConflict)

	otherUID := types.UID("someone-else")
	err = s.Delete(ctx, cronTabKey("default", "a"), &unstructured.Unstructured{}, &storage.Preconditions{UID: &otherUID}, nil, nil)
	wantCode(t, err, storage.ErrCodeConflict)

	// Delete from a state the caller holds, as the registry does from the cache.
	uid := types.UID("uid-a")
	last := &unstructured.Unstructured{}
	if err := s.Delete(ctx, cronTabKey("default", "a"), last, &storage.Preconditions{UID: &uid}, nil, updated.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	wantCronTab(t, last, "a")
	if replicasOf(t, last) != 5 || rvOf(t, last) <= rvOf(t, updated) {
		t.Errorf("deleted state %d at %s", replicasOf(t, last), last.GetResourceVersion())
	}
	err = s.Get(ctx, cronTabKey("default", "a"), storage.GetOptions{}, &unstructured.Unstructured{})
	wantCode(t, err, storage.ErrCodeKeyNotFound)

	// ignoreNotFound creates from the zero object.
	out := &unstructured.Unstructured{}
	err = s.GuaranteedUpdate(ctx, cronTabKey("default", "b"), out, true, nil, func(cur runtime.Object) (runtime.Object, error) {
		if u := cur.(*unstructured.Unstructured); u.Object != nil {
			t.Errorf("tryUpdate of a missing key got %v", u.Object)
		}
		return cronTab("default", "b", nil, 2), nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantCronTab(t, out, "b")
}

func TestWatchCustomResourcesFromAResourceVersion(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	start := createCronTab(t, s, cronTab("default", "a", map[string]string{"app": "cron"}, 1))
	b := createCronTab(t, s, cronTab("default", "b", map[string]string{"app": "cron"}, 1))
	b2, err := updateCronTab(t, s, "b", nil, func(u *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(u.Object, int64(2), "spec", "replicas")
	})
	if err != nil {
		t.Fatal(err)
	}
	left, err := updateCronTab(t, s, "a", nil, func(u *unstructured.Unstructured) { u.SetLabels(nil) })
	if err != nil {
		t.Fatal(err)
	}
	gone := &unstructured.Unstructured{}
	if err := s.Delete(ctx, cronTabKey("default", "b"), gone, nil, nil, nil); err != nil {
		t.Fatal(err)
	}

	w, err := s.Watch(ctx, cronTabPrefix, storage.ListOptions{Recursive: true, ResourceVersion: start.GetResourceVersion(),
		Predicate: cronTabPredicate("metadata.namespace=default"), NewFunc: newCronTab})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for _, want := range []struct {
		typ  watch.EventType
		name string
		rv   string
	}{
		{watch.Added, "b", b.GetResourceVersion()},
		{watch.Modified, "b", b2.GetResourceVersion()},
		{watch.Deleted, "a", left.GetResourceVersion()}, // stopped matching the labels
		{watch.Deleted, "b", gone.GetResourceVersion()},
	} {
		e := nextEvent(t, w)
		u := wantCronTab(t, e.Object, want.name)
		if e.Type != want.typ || u.GetResourceVersion() != want.rv {
			t.Errorf("got %s %s at %s, want %s at %s", e.Type, u.GetName(), u.GetResourceVersion(), want.typ, want.rv)
		}
	}
}

func TestWatchCustomResourcesWithInitialEventsEndsWithAKindedBookmark(t *testing.T) {
	s, _ := startStore(t)
	a := createCronTab(t, s, cronTab("default", "a", nil, 1))
	yes := true
	w, err := s.Watch(context.Background(), cronTabPrefix, storage.ListOptions{Recursive: true,
		SendInitialEvents: &yes, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		Predicate: storage.SelectionPredicate{AllowWatchBookmarks: true}, NewFunc: newCronTab})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if e := nextEvent(t, w); e.Type != watch.Added {
		t.Fatalf("got %s, want ADDED", e.Type)
	} else {
		wantCronTab(t, e.Object, "a")
	}
	e := nextEvent(t, w)
	bm := wantCronTab(t, e.Object, "")
	if e.Type != watch.Bookmark || bm.GetAnnotations()[metav1.InitialEventsAnnotationKey] != "true" || rvOf(t, bm) < rvOf(t, a) {
		t.Errorf("got %s %v, want the initial-events-end BOOKMARK", e.Type, bm.Object)
	}
	createCronTab(t, s, cronTab("default", "b", nil, 1))
	if e := nextEvent(t, w); e.Type != watch.Added {
		t.Fatalf("got %s, want ADDED", e.Type)
	} else {
		wantCronTab(t, e.Object, "b")
	}
}

// podJSON is a pod as kube-apiserver stores it with --storage-media-type=application/json.
const podJSON = `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web","namespace":"default","uid":"u-1",` +
	`"labels":{"app":"web"},"creationTimestamp":"2026-01-02T03:04:05Z"},` +
	`"spec":{"containers":[{"name":"c","image":"busybox:1.36"}],"nodeName":"n1"},"status":{"phase":"Running"}}` + "\n"

func TestPodStoredAsJSONByKubeAPIServerDecodes(t *testing.T) {
	s, e := startStore(t)
	ctx := context.Background()
	put, err := e.Client.Put(ctx, "/registry/pods/default/web", podJSON)
	if err != nil {
		t.Fatal(err)
	}
	// A protobuf neighbour, as skiff writes it.
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "x"}}
	if err := s.Create(ctx, "/registry/pods/default/x", other, &corev1.Pod{}); err != nil {
		t.Fatal(err)
	}

	pod := &corev1.Pod{Spec: corev1.PodSpec{Hostname: "left over"}}
	if err := s.Get(ctx, "/registry/pods/default/web", storage.GetOptions{}, pod); err != nil {
		t.Fatal(err)
	}
	if pod.Name != "web" || pod.UID != "u-1" || pod.Spec.NodeName != "n1" || pod.Spec.Containers[0].Image != "busybox:1.36" ||
		pod.Status.Phase != corev1.PodRunning || pod.Labels["app"] != "web" {
		t.Errorf("decoded %+v", pod)
	}
	if pod.Spec.Hostname != "" {
		t.Errorf("decoding merged into what out held: hostname %q", pod.Spec.Hostname)
	}
	if pod.APIVersion != "" || pod.Kind != "" || rvOf(t, pod) != put.Header.Revision {
		t.Errorf("TypeMeta %q %q, resourceVersion %s; want empty, empty, %d", pod.APIVersion, pod.Kind, pod.ResourceVersion, put.Header.Revision)
	}

	list := &corev1.PodList{}
	if err := s.GetList(ctx, "/registry/pods/", storage.ListOptions{Recursive: true}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0].Spec.NodeName != "n1" || list.Items[1].Name != "x" {
		t.Errorf("list of a JSON and a protobuf pod: %+v", list.Items)
	}

	// Either encoding reads as unstructured too, apiVersion and kind included.
	for _, name := range []string{"web", "x"} {
		u := &unstructured.Unstructured{}
		if err := s.Get(ctx, "/registry/pods/default/"+name, storage.GetOptions{}, u); err != nil {
			t.Fatal(err)
		}
		if u.GetAPIVersion() != "v1" || u.GetKind() != "Pod" || u.GetName() != name || u.GetResourceVersion() == "" {
			t.Errorf("unstructured %s: %v", name, u.Object)
		}
	}

	// A watch that does not say its type decodes by the value's kind.
	w, err := s.Watch(ctx, "/registry/pods/", storage.ListOptions{Recursive: true, ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev := nextEvent(t, w); ev.Type != watch.Added || ev.Object.(*corev1.Pod).Spec.NodeName != "n1" {
		t.Errorf("got %s %#v", ev.Type, ev.Object)
	}
}

func TestProtobufOfAnUnknownKindFailsClearly(t *testing.T) {
	unknown := &runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: "example.com/v1", Kind: "Widget"}, Raw: []byte{}}
	body, err := unknown.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Decode(append([]byte("k8s\x00"), body...), &unstructured.Unstructured{}, 5)
	if err == nil || !strings.Contains(err.Error(), "Widget") {
		t.Errorf("decoding protobuf of an unknown kind into unstructured: %v", err)
	}
	_, err = Decode([]byte("k8s:enc:aescbc:v1:key1:...."), &corev1.Pod{}, 5)
	if err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("decoding an encrypted value: %v", err)
	}
}

func TestShallowCopyOfACustomResourceOwnsItsTopLevelAndMetadataMaps(t *testing.T) {
	orig := cronTab("default", "a", map[string]string{"app": "cron"}, 1)
	orig.SetResourceVersion("7")
	cp := ShallowCopy(orig).(*unstructured.Unstructured)
	cp.SetAPIVersion("stable.example.com/v2")
	cp.SetResourceVersion("8")
	cp.Object["extra"] = true
	if orig.GetAPIVersion() != "stable.example.com/v1" || orig.GetResourceVersion() != "7" || orig.Object["extra"] != nil {
		t.Errorf("changing the copy changed the original: %v", orig.Object)
	}
	// Cheap: spec is shared, not copied.
	if reflect.ValueOf(cp.Object["spec"]).UnsafePointer() != reflect.ValueOf(orig.Object["spec"]).UnsafePointer() {
		t.Error("spec was copied")
	}

	into := &unstructured.Unstructured{}
	if err := ShallowCopyInto(into, orig); err != nil {
		t.Fatal(err)
	}
	into.SetResourceVersion("9")
	if orig.GetResourceVersion() != "7" {
		t.Errorf("ShallowCopyInto shares metadata")
	}
	if err := ShallowCopyInto(&corev1.Pod{}, orig); err == nil {
		t.Error("copied an unstructured object into a pod")
	}
}

func TestCustomResourceStoredAsCBORByKubeAPIServerDecodes(t *testing.T) {
	s, e := startStore(t)
	ctx := context.Background()
	var buf bytes.Buffer
	if err := cborSerializer.Encode(cronTab("default", "c", map[string]string{"app": "cron"}, 4), &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte{0xd9, 0xd9, 0xf7}) {
		t.Fatalf("CBOR starts with %x", buf.Bytes()[:3])
	}
	put, err := e.Client.Put(ctx, cronTabKey("default", "c"), buf.String())
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := s.Get(ctx, cronTabKey("default", "c"), storage.GetOptions{}, u); err != nil {
		t.Fatal(err)
	}
	wantCronTab(t, u, "c")
	if replicasOf(t, u) != 4 || u.GetLabels()["app"] != "cron" || rvOf(t, u) != put.Header.Revision {
		t.Errorf("decoded %v", u.Object)
	}
	// Written back, it is JSON, as skiff writes custom resources.
	updated, err := updateCronTab(t, s, "c", nil, func(u *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(u.Object, int64(5), "spec", "replicas")
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.Client.Get(ctx, cronTabKey("default", "c"))
	if err != nil || !bytes.HasPrefix(resp.Kvs[0].Value, []byte("{")) || replicasOf(t, updated) != 5 {
		t.Errorf("after update: %q, %v", resp.Kvs[0].Value, err)
	}
}
