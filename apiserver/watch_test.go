package apiserver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// nextEvent waits for one event; a watch that stays silent fails the test after a generous
// bound (a hang, not a timing assertion).
func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no watch event")
	}
	return watch.Event{}
}

// configMapInformerEvents starts a shared informer factory's ConfigMap informer with client's
// defaults, waits for it to sync (failing with syncFailure), and returns its events as
// "add NAME", "update NAME", "delete NAME".
func configMapInformerEvents(ctx context.Context, t *testing.T, client kubernetes.Interface, syncFailure string) <-chan string {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Core().V1().ConfigMaps().Informer()
	events := make(chan string, 100)
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { events <- "add " + obj.(*corev1.ConfigMap).Name },
		UpdateFunc: func(_, obj any) { events <- "update " + obj.(*corev1.ConfigMap).Name },
		DeleteFunc: func(obj any) {
			if cm, ok := obj.(*corev1.ConfigMap); ok {
				events <- "delete " + cm.Name
			}
		},
	})
	factory.Start(ctx.Done())
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		t.Fatal(syncFailure)
	}
	return events
}

func TestInformerWithClientDefaultsSeesAddsUpdatesDeletes(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cms := s.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	events := configMapInformerEvents(ctx, t, s.Client, "informer never synced (a watch list without its initial-events-end bookmark hangs here)")
	expect := func(want string) {
		t.Helper()
		for {
			select {
			case got := <-events:
				if got == want {
					return
				}
				if got == "add kube-root-ca.crt" || got == "add extension-apiserver-authentication" {
					continue
				}
				t.Fatalf("event %q, want %q", got, want)
			case <-time.After(30 * time.Second):
				t.Fatalf("no event, want %q", want)
			}
		}
	}
	expect("add before")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expect("add after")
	cm.Data = map[string]string{"x": "y"}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("update after")
	if err := cms.Delete(ctx, "after", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("delete after")
}

func TestWatchResumesFromResourceVersion(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	first, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b", "c"} {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for _, want := range []string{"b", "c"} {
		ev := nextEvent(t, w)
		if ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != want {
			t.Fatalf("event %s %v, want ADDED %s", ev.Type, ev.Object, want)
		}
	}
	// a legacy /watch/ path watch of one object by name
	one, err := s.Client.CoreV1().RESTClient().Get().AbsPath("/api/v1/watch/namespaces/default/configmaps/c").
		Param("resourceVersion", first.ResourceVersion).Timeout(30 * time.Second).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Stop()
	if ev := nextEvent(t, one); ev.Object.(*corev1.ConfigMap).Name != "c" {
		t.Fatalf("watch by name delivered %v", ev.Object)
	}
}

func TestObjectLeavingSelectorArrivesAsDeleted(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "sel", Labels: map[string]string{"k": "v"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{LabelSelector: "k=v", ResourceVersion: cm.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	cm.Labels["k"] = "other"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Type != watch.Deleted {
		t.Fatalf("event %s, want DELETED", ev.Type)
	}
}

func TestWatchFromRevisionOutsideHistoryIsGone(t *testing.T) {
	s := apiservertest.Start(t, func(c *apiserver.Config) { c.WatchCacheSize = 10 })
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "old"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := cm.ResourceVersion
	for i := 0; i < 20; i++ {
		cm.Data = map[string]string{"i": fmt.Sprint(i)}
		if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var rev int64
	fmt.Sscan(cm.ResourceVersion, &rev)
	if _, err := s.Etcd.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: start})
	if err != nil {
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			t.Fatalf("watch from a forgotten revision: %v, want 410", err)
		}
		return
	}
	defer w.Stop()
	ev := nextEvent(t, w)
	status, ok := ev.Object.(*metav1.Status)
	if ev.Type != watch.Error || !ok || status.Code != 410 || status.Reason != metav1.StatusReasonExpired ||
		!strings.HasPrefix(status.Message, "too old resource version: "+start) {
		t.Fatalf("watch from a forgotten revision: %s %v, want ERROR 410 Expired", ev.Type, ev.Object)
	}
}

func TestListPaginationKeepsOneResourceVersion(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	for i := 0; i < 25; i++ {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%02d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	opts := metav1.ListOptions{Limit: 10}
	rv := ""
	for page := 0; ; page++ {
		list, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if rv == "" {
			rv = list.ResourceVersion
			// a write between pages must not show up in later pages
			if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-99"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		} else if list.ResourceVersion != rv {
			t.Errorf("page %d at RV %s, first page at %s", page, list.ResourceVersion, rv)
		}
		for _, it := range list.Items {
			names = append(names, it.Name)
		}
		if list.Continue == "" {
			if list.RemainingItemCount != nil {
				t.Errorf("last page has remainingItemCount %d", *list.RemainingItemCount)
			}
			break
		}
		if want := int64(25 - len(names)); list.RemainingItemCount == nil || *list.RemainingItemCount != want {
			t.Errorf("page %d remainingItemCount %v, want %d", page, list.RemainingItemCount, want)
		}
		opts.Continue = list.Continue
	}
	if len(names) != 25 || names[0] != "cm-00" || names[24] != "cm-24" {
		t.Errorf("paged names %v", names)
	}
}

func TestSendInitialEventsWithoutResourceVersionMatchIsInvalid(t *testing.T) {
	s := apiservertest.Start(t)
	_, err := s.Client.CoreV1().ConfigMaps("default").Watch(context.Background(), metav1.ListOptions{SendInitialEvents: ptr.To(true)})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("err %v, want Invalid", err)
	}
}

func TestStreamingListEndsWithInitialEventsBookmark(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{SendInitialEvents: ptr.To(true), ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev := nextEvent(t, w); ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != "x" {
		t.Fatalf("first event %s %v, want ADDED x", ev.Type, ev.Object)
	}
	for {
		ev := nextEvent(t, w)
		if ev.Type == watch.Added {
			continue // kube-root-ca.crt, once its controller exists
		}
		cm, _ := ev.Object.(*corev1.ConfigMap)
		if ev.Type != watch.Bookmark || cm == nil || cm.Annotations[metav1.InitialEventsAnnotationKey] != "true" || cm.ResourceVersion == "" {
			t.Fatalf("event %s %v, want the initial-events-end BOOKMARK", ev.Type, ev.Object)
		}
		return
	}
}

func TestProtobufClientCreatesListsAndWatches(t *testing.T) {
	s := apiservertest.Start(t)
	cfg := rest.CopyConfig(s.Config)
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf"
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	pod, err := client.CoreV1().Pods("default").Create(ctx, testPod("proto"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{ResourceVersion: pod.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	pod.Labels["proto"] = "yes"
	if _, err := client.CoreV1().Pods("default").Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Type != watch.Modified || ev.Object.(*corev1.Pod).Labels["proto"] != "yes" {
		t.Fatalf("protobuf watch event %s %v", ev.Type, ev.Object)
	}
	list, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("protobuf list: %v %v", list, err)
	}
	if err := client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "proto=yes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Pods("default").Get(ctx, "proto", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after deletecollection: %v", err)
	}
}

func TestContinueFromCompactedRevisionIsGone(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	for i := 0; i < 4; i++ {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := cms.List(ctx, metav1.ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	latest, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "later"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var rev int64
	fmt.Sscan(latest.ResourceVersion, &rev)
	if _, err := s.Etcd.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	_, err = cms.List(ctx, metav1.ListOptions{Limit: 2, Continue: first.Continue})
	if !apierrors.IsResourceExpired(err) {
		t.Fatalf("continue after compaction: %v, want 410 Expired", err)
	}
	if want := "The provided continue parameter is too old to display a consistent list result."; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q", err.Error())
	}
}

func TestWatchFromNowStartsWithCurrentStateAndSendsBookmarks(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "now"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev := nextEvent(t, w); ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != "now" {
		t.Fatalf("first event %s %v, want ADDED now", ev.Type, ev.Object)
	}
	// bookmarks follow the store's progress even when nothing in this resource changes
	if _, err := s.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		ev := nextEvent(t, w)
		if ev.Type != watch.Bookmark {
			continue
		}
		if cm, ok := ev.Object.(*corev1.ConfigMap); !ok || cm.ResourceVersion == "" {
			t.Fatalf("bookmark %v", ev.Object)
		}
		return
	}
}

func TestMalformedResourceVersionIsBadRequest(t *testing.T) {
	s := apiservertest.Start(t)
	_, err := s.Client.CoreV1().ConfigMaps("default").List(context.Background(), metav1.ListOptions{ResourceVersion: "abc"})
	if !apierrors.IsBadRequest(err) || err.Error() != `invalid resource version: "abc"` {
		t.Fatalf("err %v, want 400 invalid resource version", err)
	}
}
func TestGetWithResourceVersionZero(t *testing.T) {
	s := apiservertest.Start(t)
	_, err := s.Client.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
}

func TestProtobufInformerSeesAddsUpdatesDeletes(t *testing.T) {
	s := apiservertest.Start(t)
	cfg := rest.CopyConfig(s.Config)
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf"
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := configMapInformerEvents(ctx, t, client, "protobuf informer never synced")
	cms := client.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "pb"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"a": "b"}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "pb", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"add pb", "update pb", "delete pb"} {
		for {
			select {
			case got := <-events:
				if got != want && (strings.HasSuffix(got, "kube-root-ca.crt") || strings.HasSuffix(got, "extension-apiserver-authentication")) {
					continue
				}
				if got != want {
					t.Fatalf("event %q, want %q", got, want)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("no event, want %q", want)
			}
			break
		}
	}
}
