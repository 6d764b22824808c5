package etcd3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry/storage"
)

// startStore runs an embedded etcd in a temp dir for the test and returns a Store on it.
func startStore(t *testing.T) (*Store, *Embedded) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := StartEmbedded(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		e.Close()
	})
	return New(e.Client), e
}

func configMap(ns, name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		Data:       data,
	}
}

func cmKey(ns, name string) string { return "/registry/configmaps/" + ns + "/" + name }

func mustCreate(t *testing.T, s storage.Interface, obj *corev1.ConfigMap) *corev1.ConfigMap {
	t.Helper()
	out := &corev1.ConfigMap{}
	if err := s.Create(context.Background(), cmKey(obj.Namespace, obj.Name), obj, out); err != nil {
		t.Fatalf("Create %s: %v", obj.Name, err)
	}
	return out
}

func rvOf(t *testing.T, obj metav1.Object) int64 {
	t.Helper()
	rv, err := strconv.ParseInt(obj.GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", obj.GetResourceVersion(), err)
	}
	return rv
}

func wantCode(t *testing.T, err error, code storage.ErrorCode) {
	t.Helper()
	if !storage.HasCode(err, code) {
		t.Fatalf("got error %v, want storage error code %d", err, code)
	}
}

func TestCreateThenGetReturnsObjectAtWriteRevision(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	created := mustCreate(t, s, configMap("default", "a", map[string]string{"k": "v"}))
	if created.ResourceVersion == "" || created.Data["k"] != "v" {
		t.Fatalf("created = %+v", created)
	}
	got := &corev1.ConfigMap{}
	if err := s.Get(ctx, cmKey("default", "a"), storage.GetOptions{}, got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != created.ResourceVersion || got.Data["k"] != "v" || got.UID != "uid-a" {
		t.Fatalf("got %+v, want %+v", got, created)
	}
	if got.Kind != "" || got.APIVersion != "" {
		t.Errorf("stored objects come back without TypeMeta, got %q %q", got.APIVersion, got.Kind)
	}

	err := s.Create(ctx, cmKey("default", "a"), configMap("default", "a", nil), &corev1.ConfigMap{})
	wantCode(t, err, storage.ErrCodeKeyExists)

	err = s.Get(ctx, cmKey("default", "missing"), storage.GetOptions{}, &corev1.ConfigMap{})
	wantCode(t, err, storage.ErrCodeKeyNotFound)
	zero := configMap("x", "y", nil)
	if err := s.Get(ctx, cmKey("default", "missing"), storage.GetOptions{IgnoreNotFound: true}, zero); err != nil {
		t.Fatal(err)
	}
	if zero.Name != "" {
		t.Errorf("IgnoreNotFound leaves out zero, got %+v", zero)
	}

	future := strconv.FormatInt(rvOf(t, created)+1000, 10)
	err = s.Get(ctx, cmKey("default", "a"), storage.GetOptions{ResourceVersion: future}, &corev1.ConfigMap{})
	wantCode(t, err, storage.ErrCodeTooLargeResourceVersion)
}

func TestCreateRefusesAResourceVersion(t *testing.T) {
	s, _ := startStore(t)
	obj := configMap("default", "a", nil)
	obj.ResourceVersion = "5"
	if err := s.Create(context.Background(), cmKey("default", "a"), obj, &corev1.ConfigMap{}); err == nil {
		t.Fatal("Create with a resourceVersion succeeded")
	}
}

func TestStoredValueIsUpstreamProtobuf(t *testing.T) {
	s, e := startStore(t)
	obj := configMap("default", "a", map[string]string{"k": "v"})
	mustCreate(t, s, obj)
	resp, err := e.Client.Get(context.Background(), cmKey("default", "a"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw get: %v %v", resp, err)
	}
	raw := resp.Kvs[0].Value
	if !bytes.HasPrefix(raw, []byte("k8s\x00")) {
		t.Fatalf("value starts with %q, want the k8s\\x00 envelope", raw[:min(8, len(raw))])
	}
	decoded, gvk, err := apis.Codecs.UniversalDeserializer().Decode(raw, nil, nil)
	if err != nil {
		t.Fatalf("UniversalDeserializer: %v", err)
	}
	if gvk.Kind != "ConfigMap" || gvk.Version != "v1" || gvk.Group != "" {
		t.Errorf("envelope kind %v", gvk)
	}
	cm := decoded.(*corev1.ConfigMap)
	if cm.Data["k"] != "v" || cm.ResourceVersion != "" {
		t.Errorf("stored object %+v; want data and an empty resourceVersion", cm)
	}

	// Byte for byte what apimachinery's protobuf serializer writes for the same object.
	info, _ := runtime.SerializerInfoForMediaType(apis.Codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	want := obj.DeepCopy()
	want.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	var buf bytes.Buffer
	if err := info.Serializer.Encode(want, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), raw) {
		t.Errorf("stored bytes differ from the protobuf serializer's")
	}
}

func TestConcurrentUpdatesWithTheSameResourceVersionHaveOneWinner(t *testing.T) {
	s, _ := startStore(t)
	created := mustCreate(t, s, configMap("default", "a", nil))
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rv := created.ResourceVersion
			errs[i] = s.GuaranteedUpdate(context.Background(), cmKey("default", "a"), &corev1.ConfigMap{}, false,
				&storage.Preconditions{ResourceVersion: &rv}, func(cur runtime.Object) (runtime.Object, error) {
					cm := cur.(*corev1.ConfigMap).DeepCopy()
					cm.Data = map[string]string{"writer": strconv.Itoa(i)}
					return cm, nil
				}, nil)
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case storage.HasCode(err, storage.ErrCodeConflict):
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d writers won with the same resourceVersion, want exactly 1", wins)
	}
}

func TestConcurrentUnconditionalUpdatesAllApply(t *testing.T) {
	s, _ := startStore(t)
	mustCreate(t, s, configMap("default", "counter", map[string]string{"n": "0"}))
	const writers = 8
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.GuaranteedUpdate(context.Background(), cmKey("default", "counter"), &corev1.ConfigMap{}, false, nil,
				func(cur runtime.Object) (runtime.Object, error) {
					cm := cur.(*corev1.ConfigMap).DeepCopy()
					n, _ := strconv.Atoi(cm.Data["n"])
					cm.Data["n"] = strconv.Itoa(n + 1)
					return cm, nil
				}, nil)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := &corev1.ConfigMap{}
	if err := s.Get(context.Background(), cmKey("default", "counter"), storage.GetOptions{}, got); err != nil {
		t.Fatal(err)
	}
	if got.Data["n"] != strconv.Itoa(writers) {
		t.Fatalf("counter = %s, want %d: a compare-and-swap lost an update", got.Data["n"], writers)
	}
}

func TestGuaranteedUpdate(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	created := mustCreate(t, s, configMap("default", "a", map[string]string{"k": "v"}))
	key := cmKey("default", "a")
	identity := func(cur runtime.Object) (runtime.Object, error) { return cur, nil }

	t.Run("an unchanged object is not written", func(t *testing.T) {
		out := &corev1.ConfigMap{}
		if err := s.GuaranteedUpdate(ctx, key, out, false, nil, identity, nil); err != nil {
			t.Fatal(err)
		}
		if out.ResourceVersion != created.ResourceVersion {
			t.Fatalf("resourceVersion moved from %s to %s on a no-op update", created.ResourceVersion, out.ResourceVersion)
		}
	})

	t.Run("a UID precondition mismatch is a Conflict worded as upstream", func(t *testing.T) {
		uid := types.UID("other")
		err := s.GuaranteedUpdate(ctx, key, &corev1.ConfigMap{}, false, &storage.Preconditions{UID: &uid}, identity, nil)
		wantCode(t, err, storage.ErrCodeConflict)
		var se *storage.Error
		errors.As(err, &se)
		if want := "Precondition failed: UID in precondition: other, UID in object meta: uid-a"; se.Detail != want {
			t.Errorf("detail %q, want %q", se.Detail, want)
		}
	})

	t.Run("a stale cached object is retried on the fresh state", func(t *testing.T) {
		stale := created.DeepCopy()
		out := &corev1.ConfigMap{}
		// Move the stored object on, then update from the stale copy.
		if err := s.GuaranteedUpdate(ctx, key, out, false, nil, func(cur runtime.Object) (runtime.Object, error) {
			cm := cur.(*corev1.ConfigMap).DeepCopy()
			cm.Data["k"] = "v2"
			return cm, nil
		}, nil); err != nil {
			t.Fatal(err)
		}
		var seen []string
		if err := s.GuaranteedUpdate(ctx, key, out, false, nil, func(cur runtime.Object) (runtime.Object, error) {
			cm := cur.(*corev1.ConfigMap).DeepCopy()
			seen = append(seen, cm.Data["k"])
			cm.Data["extra"] = "x"
			return cm, nil
		}, stale); err != nil {
			t.Fatal(err)
		}
		if out.Data["k"] != "v2" || out.Data["extra"] != "x" {
			t.Fatalf("update from a stale copy lost a write: %v (tryUpdate saw %v)", out.Data, seen)
		}
	})

	t.Run("a missing key is NotFound unless ignoreNotFound creates it", func(t *testing.T) {
		err := s.GuaranteedUpdate(ctx, cmKey("default", "new"), &corev1.ConfigMap{}, false, nil, identity, nil)
		wantCode(t, err, storage.ErrCodeKeyNotFound)
		out := &corev1.ConfigMap{}
		err = s.GuaranteedUpdate(ctx, cmKey("default", "new"), out, true, nil, func(cur runtime.Object) (runtime.Object, error) {
			if cur.(*corev1.ConfigMap).Name != "" {
				t.Errorf("tryUpdate of a missing key got %+v, want a zero object", cur)
			}
			return configMap("default", "new", nil), nil
		}, nil)
		if err != nil || out.Name != "new" || out.ResourceVersion == "" {
			t.Fatalf("create through update: %v %+v", err, out)
		}
	})

	t.Run("an error from tryUpdate is returned", func(t *testing.T) {
		boom := errors.New("boom")
		err := s.GuaranteedUpdate(ctx, key, &corev1.ConfigMap{}, false, nil,
			func(runtime.Object) (runtime.Object, error) { return nil, boom }, nil)
		if !errors.Is(err, boom) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestDelete(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	created := mustCreate(t, s, configMap("default", "a", map[string]string{"k": "v"}))
	key := cmKey("default", "a")
	allow := func(context.Context, runtime.Object) error { return nil }

	wrong := "1"
	err := s.Delete(ctx, key, &corev1.ConfigMap{}, &storage.Preconditions{ResourceVersion: &wrong}, allow, nil)
	wantCode(t, err, storage.ErrCodeConflict)

	veto := errors.New("not now")
	err = s.Delete(ctx, key, &corev1.ConfigMap{}, nil, func(context.Context, runtime.Object) error { return veto }, nil)
	if !errors.Is(err, veto) {
		t.Fatalf("validateDeletion's error: got %v", err)
	}

	out := &corev1.ConfigMap{}
	rv := created.ResourceVersion
	if err := s.Delete(ctx, key, out, &storage.Preconditions{ResourceVersion: &rv}, allow, created); err != nil {
		t.Fatal(err)
	}
	if out.Data["k"] != "v" || rvOf(t, out) <= rvOf(t, created) {
		t.Fatalf("deleted object %+v: want the last state at the delete's revision", out)
	}
	err = s.Get(ctx, key, storage.GetOptions{}, &corev1.ConfigMap{})
	wantCode(t, err, storage.ErrCodeKeyNotFound)
	err = s.Delete(ctx, key, &corev1.ConfigMap{}, nil, allow, nil)
	wantCode(t, err, storage.ErrCodeKeyNotFound)
}

func TestListPagesWithContinueAtTheFirstPagesRevision(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	for i := range 25 {
		mustCreate(t, s, configMap("default", fmt.Sprintf("cm-%02d", i), nil))
	}
	var names []string
	var firstRV string
	opts := storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Limit: 10}}
	wantRemaining := []int64{15, 5}
	for page := 0; ; page++ {
		list := &corev1.ConfigMapList{}
		if err := s.GetList(ctx, "/registry/configmaps/", opts, list); err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		for _, item := range list.Items {
			names = append(names, item.Name)
		}
		if page == 0 {
			firstRV = list.ResourceVersion
			// A write after the first page is not seen by the next pages.
			mustCreate(t, s, configMap("default", "cm-99", nil))
		} else if list.ResourceVersion != firstRV {
			t.Errorf("page %d at revision %s, want the first page's %s", page, list.ResourceVersion, firstRV)
		}
		if list.Continue == "" {
			if list.RemainingItemCount != nil {
				t.Errorf("last page has remainingItemCount %d", *list.RemainingItemCount)
			}
			break
		}
		if list.RemainingItemCount == nil || *list.RemainingItemCount != wantRemaining[page] {
			t.Errorf("page %d remainingItemCount = %v, want %d", page, list.RemainingItemCount, wantRemaining[page])
		}
		opts.Predicate.Continue = list.Continue
	}
	if len(names) != 25 || names[0] != "cm-00" || names[24] != "cm-24" {
		t.Fatalf("listed %v", names)
	}
}

func TestListContinueTokenIsUpstreams(t *testing.T) {
	token, err := storage.EncodeContinue("/registry/pods/ns/b\x00", "/registry/pods/", 42)
	if err != nil {
		t.Fatal(err)
	}
	// base64url (no padding) of {"v":"meta.k8s.io/v1","rv":42,"start":"ns/b\u0000"}
	if want := "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDIsInN0YXJ0IjoibnMvYlx1MDAwMCJ9"; token != want {
		t.Errorf("token %s, want %s", token, want)
	}
	key, rv, err := storage.DecodeContinue(token, "/registry/pods/")
	if err != nil || key != "/registry/pods/ns/b\x00" || rv != 42 {
		t.Errorf("decoded %q %d %v", key, rv, err)
	}
	bad, _ := storage.EncodeContinue("/registry/pods/../secrets/x", "/registry/pods/", 42)
	_, _, err = storage.DecodeContinue(bad, "/registry/pods/")
	wantCode(t, err, storage.ErrCodeInvalidContinue)
}

func TestListWithSelectorFillsPagesAndOmitsRemainingCount(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	for i := range 30 {
		cm := configMap("default", fmt.Sprintf("cm-%02d", i), nil)
		if i%3 == 0 {
			cm.Labels = map[string]string{"pick": "yes"}
		}
		mustCreate(t, s, cm)
	}
	pred := storage.SelectionPredicate{
		Label: labels.SelectorFromSet(labels.Set{"pick": "yes"}),
		Field: fields.Everything(),
		GetAttrs: func(obj runtime.Object) (labels.Set, fields.Set, error) {
			return obj.(*corev1.ConfigMap).Labels, nil, nil
		},
		Limit: 4,
	}
	var got []string
	for {
		list := &corev1.ConfigMapList{}
		if err := s.GetList(ctx, "/registry/configmaps/", storage.ListOptions{Recursive: true, Predicate: pred}, list); err != nil {
			t.Fatal(err)
		}
		if list.RemainingItemCount != nil {
			t.Errorf("remainingItemCount set with a selector")
		}
		if list.Continue != "" && len(list.Items) != 4 {
			t.Errorf("a non-last page has %d items, want 4", len(list.Items))
		}
		for _, item := range list.Items {
			got = append(got, item.Name)
		}
		if list.Continue == "" {
			break
		}
		pred.Continue = list.Continue
	}
	if len(got) != 10 {
		t.Fatalf("selected %v, want the 10 labelled", got)
	}
}

func TestListExactRevisionAndCompaction(t *testing.T) {
	s, e := startStore(t)
	ctx := context.Background()
	first := mustCreate(t, s, configMap("default", "a", nil))
	mustCreate(t, s, configMap("default", "b", nil))
	mustCreate(t, s, configMap("default", "c", nil))

	list := &corev1.ConfigMapList{}
	opts := storage.ListOptions{Recursive: true, ResourceVersion: first.ResourceVersion,
		ResourceVersionMatch: metav1.ResourceVersionMatchExact}
	if err := s.GetList(ctx, "/registry/configmaps/", opts, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.ResourceVersion != first.ResourceVersion {
		t.Fatalf("exact list at %s: %d items at %s", first.ResourceVersion, len(list.Items), list.ResourceVersion)
	}

	paged := &corev1.ConfigMapList{}
	if err := s.GetList(ctx, "/registry/configmaps/", storage.ListOptions{Recursive: true,
		Predicate: storage.SelectionPredicate{Limit: 1}}, paged); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, configMap("default", "d", nil)) // so compacting to now removes the page's revision
	current, err := s.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Compact(ctx, current); err != nil {
		t.Fatal(err)
	}
	err = s.GetList(ctx, "/registry/configmaps/", opts, &corev1.ConfigMapList{})
	wantCode(t, err, storage.ErrCodeExpired)

	err = s.GetList(ctx, "/registry/configmaps/", storage.ListOptions{Recursive: true,
		Predicate: storage.SelectionPredicate{Limit: 1, Continue: paged.Continue}}, &corev1.ConfigMapList{})
	wantCode(t, err, storage.ErrCodeExpired)
	var expired *storage.ExpiredContinueError
	if !errors.As(err, &expired) || expired.Continue == "" {
		t.Fatalf("a compacted continue gives an inconsistent continue token, got %v", err)
	}
	// The offered token continues the list at the latest revision.
	rest := &corev1.ConfigMapList{}
	if err := s.GetList(ctx, "/registry/configmaps/", storage.ListOptions{Recursive: true,
		Predicate: storage.SelectionPredicate{Limit: 10, Continue: expired.Continue}}, rest); err != nil {
		t.Fatal(err)
	}
	if len(rest.Items) != 3 || rest.Items[0].Name != "b" {
		t.Fatalf("continued at latest: %d items", len(rest.Items))
	}

	future := strconv.FormatInt(current+100, 10)
	err = s.GetList(ctx, "/registry/configmaps/", storage.ListOptions{Recursive: true, ResourceVersion: future,
		ResourceVersionMatch: metav1.ResourceVersionMatchExact}, &corev1.ConfigMapList{})
	wantCode(t, err, storage.ErrCodeTooLargeResourceVersion)
	err = s.GetList(ctx, "/registry/configmaps/", storage.ListOptions{Recursive: true, ResourceVersion: future,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan}, &corev1.ConfigMapList{})
	wantCode(t, err, storage.ErrCodeTooLargeResourceVersion)
}

func TestListOfOneKeyAndEmptyPrefix(t *testing.T) {
	s, _ := startStore(t)
	ctx := context.Background()
	mustCreate(t, s, configMap("default", "a", nil))
	mustCreate(t, s, configMap("default", "ab", nil))
	list := &corev1.ConfigMapList{}
	if err := s.GetList(ctx, cmKey("default", "a"), storage.ListOptions{}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "a" {
		t.Fatalf("non-recursive list of one key: %+v", list.Items)
	}
	empty := &corev1.ConfigMapList{}
	if err := s.GetList(ctx, "/registry/configmaps/other/", storage.ListOptions{Recursive: true}, empty); err != nil {
		t.Fatal(err)
	}
	if empty.Items == nil || len(empty.Items) != 0 || empty.ResourceVersion == "" {
		t.Fatalf("empty list: %+v", empty)
	}
}

func TestEmbeddedEtcdKeepsDataAcrossRestartsAndRunsSideBySide(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first, err := StartEmbedded(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := StartEmbedded(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	mustCreate(t, New(first.Client), configMap("default", "kept", nil))
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	again, err := StartEmbedded(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	got := &corev1.ConfigMap{}
	if err := New(again.Client).Get(ctx, cmKey("default", "kept"), storage.GetOptions{}, got); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	err = New(other.Client).Get(ctx, cmKey("default", "kept"), storage.GetOptions{}, &corev1.ConfigMap{})
	wantCode(t, err, storage.ErrCodeKeyNotFound)
}

func TestCompactorCompactsOldRevisions(t *testing.T) {
	s, e := startStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := mustCreate(t, s, configMap("default", "a", nil))
	StartCompactor(ctx, e.Client, 50*time.Millisecond)
	// Keep writing so each interval has a newer revision to compact to.
	exact := storage.ListOptions{Recursive: true, ResourceVersion: first.ResourceVersion,
		ResourceVersionMatch: metav1.ResourceVersionMatchExact}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		mustCreate(t, s, configMap("default", fmt.Sprintf("w-%d", i), nil))
		err := s.GetList(context.Background(), "/registry/configmaps/", exact, &corev1.ConfigMapList{})
		if storage.HasCode(err, storage.ErrCodeExpired) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("revision %s never compacted (last error %v)", first.ResourceVersion, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
