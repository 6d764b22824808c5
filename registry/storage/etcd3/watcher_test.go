package etcd3

import (
	"context"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/registry/storage"
)

// nextEvent waits for the next event; the timeout only turns a hang into a failure.
func nextEvent(t *testing.T, w watch.Interface) watch.Event {
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

func expectEvent(t *testing.T, w watch.Interface, typ watch.EventType, name string) watch.Event {
	t.Helper()
	e := nextEvent(t, w)
	if e.Type != typ {
		t.Fatalf("got %s %v, want %s %s", e.Type, e.Object, typ, name)
	}
	if name != "" {
		if cm, ok := e.Object.(*corev1.ConfigMap); !ok || cm.Name != name {
			t.Fatalf("got %s %#v, want %s", e.Type, e.Object, name)
		}
	}
	return e
}

func update(t *testing.T, s storage.Interface, ns, name string, mutate func(*corev1.ConfigMap)) *corev1.ConfigMap {
	t.Helper()
	out := &corev1.ConfigMap{}
	err := s.GuaranteedUpdate(context.Background(), cmKey(ns, name), out, false, nil, func(cur runtime.Object) (runtime.Object, error) {
		cm := cur.(*corev1.ConfigMap).DeepCopy()
		mutate(cm)
		return cm, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func del(t *testing.T, s storage.Interface, ns, name string) *corev1.ConfigMap {
	t.Helper()
	out := &corev1.ConfigMap{}
	if err := s.Delete(context.Background(), cmKey(ns, name), out, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWatchFromResourceVersionSeesLaterChangesInOrder(t *testing.T) {
	s, _ := startStore(t)
	created := mustCreate(t, s, configMap("default", "a", nil))
	updated := update(t, s, "default", "a", func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"k": "v"} })
	deleted := del(t, s, "default", "a")

	w, err := s.Watch(context.Background(), "/registry/configmaps/", storage.ListOptions{
		ResourceVersion: created.ResourceVersion, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e := expectEvent(t, w, watch.Modified, "a")
	if got := e.Object.(*corev1.ConfigMap); got.ResourceVersion != updated.ResourceVersion || got.Data["k"] != "v" {
		t.Errorf("MODIFIED %+v, want %+v", got, updated)
	}
	e = expectEvent(t, w, watch.Deleted, "a")
	if got := e.Object.(*corev1.ConfigMap); got.ResourceVersion != deleted.ResourceVersion || got.Data["k"] != "v" {
		t.Errorf("DELETED carries the last state at the delete's revision: got rv %s, want %s", got.ResourceVersion, deleted.ResourceVersion)
	}
	mustCreate(t, s, configMap("default", "b", nil))
	expectEvent(t, w, watch.Added, "b")
}

func TestWatchOfOneKeyIgnoresItsNeighbours(t *testing.T) {
	s, _ := startStore(t)
	w, err := s.Watch(context.Background(), cmKey("default", "a"), storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	mustCreate(t, s, configMap("default", "ab", nil))
	mustCreate(t, s, configMap("default", "a", nil))
	expectEvent(t, w, watch.Added, "a")
}

func TestWatchFromACompactedRevisionEndsWith410(t *testing.T) {
	s, e := startStore(t)
	first := mustCreate(t, s, configMap("default", "a", nil))
	update(t, s, "default", "a", func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"k": "1"} })
	last := update(t, s, "default", "a", func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"k": "2"} })
	if _, err := e.Client.Compact(context.Background(), rvOf(t, last)); err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(context.Background(), "/registry/configmaps/", storage.ListOptions{
		ResourceVersion: first.ResourceVersion, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := nextEvent(t, w)
	status, ok := ev.Object.(*metav1.Status)
	if ev.Type != watch.Error || !ok {
		t.Fatalf("got %s %v, want an ERROR event", ev.Type, ev.Object)
	}
	want := "too old resource version: " + first.ResourceVersion + " (" + last.ResourceVersion + ")"
	if status.Code != 410 || status.Reason != metav1.StatusReasonExpired || status.Message != want {
		t.Errorf("status %d %s %q, want 410 Expired %q", status.Code, status.Reason, status.Message, want)
	}
	if _, open := <-w.ResultChan(); open {
		t.Error("watch still open after the error")
	}
}

func labelPredicate(sel string) storage.SelectionPredicate {
	return storage.SelectionPredicate{
		Label: labels.SelectorFromSet(labels.Set{"app": sel}),
		Field: fields.Everything(),
		GetAttrs: func(obj runtime.Object) (labels.Set, fields.Set, error) {
			return obj.(*corev1.ConfigMap).Labels, nil, nil
		},
	}
}

func TestWatchPredicateTransitionsBecomeAddedAndDeleted(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	w, err := s.Watch(ctx, "/registry/configmaps/", storage.ListOptions{Recursive: true, Predicate: labelPredicate("web")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	mustCreate(t, s, configMap("default", "a", nil))                                                                   // never matches
	update(t, s, "default", "a", func(cm *corev1.ConfigMap) { cm.Labels = map[string]string{"app": "web"} })           // starts
	update(t, s, "default", "a", func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"k": "v"} })                 // still
	stopped := update(t, s, "default", "a", func(cm *corev1.ConfigMap) { cm.Labels = map[string]string{"app": "db"} }) // stops
	del(t, s, "default", "a")                                                                                          // no longer matched

	expectEvent(t, w, watch.Added, "a")
	expectEvent(t, w, watch.Modified, "a")
	e := expectEvent(t, w, watch.Deleted, "a")
	got := e.Object.(*corev1.ConfigMap)
	if got.Labels["app"] != "web" || got.ResourceVersion != stopped.ResourceVersion {
		t.Errorf("DELETED on leaving the selection carries the old state at the new revision: %v rv %s, want rv %s",
			got.Labels, got.ResourceVersion, stopped.ResourceVersion)
	}
	mustCreate(t, s, configMap("default", "z", map[string]string{}))
	update(t, s, "default", "z", func(cm *corev1.ConfigMap) { cm.Labels = map[string]string{"app": "web"} })
	expectEvent(t, w, watch.Added, "z") // and nothing for a's delete in between
}

func TestWatchFromZeroStartsWithTheCurrentState(t *testing.T) {
	s, _ := startStore(t)
	mustCreate(t, s, configMap("default", "a", nil))
	mustCreate(t, s, configMap("default", "b", nil))
	w, err := s.Watch(context.Background(), "/registry/configmaps/", storage.ListOptions{ResourceVersion: "0", Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	expectEvent(t, w, watch.Added, "a")
	expectEvent(t, w, watch.Added, "b")
	mustCreate(t, s, configMap("default", "c", nil))
	expectEvent(t, w, watch.Added, "c")
}

func TestWatchWithSendInitialEventsEndsThemWithABookmark(t *testing.T) {
	s, _ := startStore(t)
	mustCreate(t, s, configMap("default", "a", nil))
	b := mustCreate(t, s, configMap("default", "b", nil))
	yes := true
	w, err := s.Watch(context.Background(), "/registry/configmaps/", storage.ListOptions{
		Recursive: true, SendInitialEvents: &yes, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		Predicate: storage.SelectionPredicate{AllowWatchBookmarks: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	expectEvent(t, w, watch.Added, "a")
	expectEvent(t, w, watch.Added, "b")
	e := expectEvent(t, w, watch.Bookmark, "")
	bm, ok := e.Object.(*corev1.ConfigMap)
	if !ok {
		t.Fatalf("bookmark object %T, want the watched type", e.Object)
	}
	if bm.Annotations[metav1.InitialEventsAnnotationKey] != "true" || rvOf(t, bm) < rvOf(t, b) {
		t.Errorf("bookmark %+v", bm.ObjectMeta)
	}
}

func TestWatchFromNowSkipsThePast(t *testing.T) {
	s, _ := startStore(t)
	mustCreate(t, s, configMap("default", "old", nil))
	w, err := s.Watch(context.Background(), "/registry/configmaps/", storage.ListOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	mustCreate(t, s, configMap("default", "new", nil))
	expectEvent(t, w, watch.Added, "new")
}

func TestWatchBookmarksFollowEtcdProgress(t *testing.T) {
	s, e := startStore(t)
	ctx := context.Background()
	// No event shows the watched type before the first bookmark: NewFunc says it.
	w, err := s.Watch(ctx, "/registry/configmaps/", storage.ListOptions{Recursive: true,
		Predicate: storage.SelectionPredicate{AllowWatchBookmarks: true},
		NewFunc:   func() runtime.Object { return &corev1.ConfigMap{} }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// A write elsewhere moves the revision; progress tells the watcher.
	if _, err := e.Client.Put(ctx, "/registry/secrets/default/x", "v"); err != nil {
		t.Fatal(err)
	}
	rev, _ := s.CurrentRevision(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := e.Client.RequestProgress(watchCtx()); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-w.ResultChan():
			if ev.Type != watch.Bookmark {
				t.Fatalf("got %s", ev.Type)
			}
			got, _ := strconv.ParseInt(ev.Object.(*corev1.ConfigMap).ResourceVersion, 10, 64)
			if got >= rev {
				return
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("no bookmark at the current revision")
}

// watchCtx is the context the store's watches are opened with, so RequestProgress reaches
// their stream.
func watchCtx() context.Context { return clientv3.WithRequireLeader(context.Background()) }

func TestWatchStopClosesTheChannel(t *testing.T) {
	s, _ := startStore(t)
	w, err := s.Watch(context.Background(), "/registry/configmaps/", storage.ListOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	w.Stop()
	for range w.ResultChan() {
	}
}
