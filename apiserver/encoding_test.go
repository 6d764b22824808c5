package apiserver

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/bench/benchpods"
)

func TestSplicedJSONListIsWhatTheEncoderWrites(t *testing.T) {
	list := &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "abc"}}
	for i := 0; i < 3; i++ {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("p", i), Namespace: "default",
			UID: types.UID(fmt.Sprint("uid-", i)), ResourceVersion: fmt.Sprint(10 + i), Labels: map[string]string{"a": "b"}}}
		if i == 2 {
			p.UID = "" // not cacheable: encoded afresh
		}
		p.Spec.Containers = []corev1.Container{{Name: "c", Image: "busybox"}}
		list.Items = append(list.Items, p)
	}
	info := serializerFor(runtime.ContentTypeJSON)
	var want bytes.Buffer
	if err := apis.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion).Encode(list, &want); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ { // the second round reads the cache
		var got bytes.Buffer
		if err := writeJSONList(&got, func() {}, list, info, corev1.SchemeGroupVersion); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("round %d:\n got %s\nwant %s", round, got.Bytes(), want.Bytes())
		}
	}
	var empty bytes.Buffer
	err := writeJSONList(&empty, func() {}, &corev1.PodList{}, info, corev1.SchemeGroupVersion)
	if err != nil || !bytes.Contains(empty.Bytes(), []byte(`"items":[]}`)) {
		t.Errorf("empty list %s %v", empty.Bytes(), err)
	}
}

func TestSplicedProtobufListIsWhatTheEncoderWrites(t *testing.T) {
	list := &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "42"}}
	for i := 0; i < 3; i++ {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("p", i), Namespace: "default",
			UID: types.UID(fmt.Sprint("puid-", i)), ResourceVersion: fmt.Sprint(10 + i)}}
		p.Spec.Containers = []corev1.Container{{Name: "c", Image: "busybox"}}
		list.Items = append(list.Items, p)
	}
	info := serializerFor(runtime.ContentTypeProtobuf)
	var want bytes.Buffer
	if err := apis.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion).Encode(list, &want); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		var got bytes.Buffer
		if err := writeProtobufList(&got, func() {}, list, info, corev1.SchemeGroupVersion); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("round %d: %d bytes, the encoder writes %d", round, got.Len(), want.Len())
		}
	}
}

func TestSplicedSingleObjectJSONIsWhatTheEncoderWrites(t *testing.T) {
	info := serializerFor(runtime.ContentTypeJSON)
	want := func(obj runtime.Object, gv schema.GroupVersion) []byte {
		var b bytes.Buffer
		if err := apis.Codecs.EncoderForVersion(info.Serializer, gv).Encode(obj, &b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	pod := func(i int) *corev1.Pod {
		return benchpods.Stored(benchpods.Deployment(i), "default", 7000+i)
	}
	deployment := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "dep-uid", ResourceVersion: "9"}}
	// an item listed first, then read alone: the single object is spliced from the item
	list := &corev1.PodList{Items: []corev1.Pod{*pod(0)}}
	if err := writeJSONList(io.Discard, func() {}, list, info, corev1.SchemeGroupVersion); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		obj  runtime.Object
		gv   schema.GroupVersion
	}{
		{"listed before", &list.Items[0], corev1.SchemeGroupVersion},
		{"read alone first", pod(1), corev1.SchemeGroupVersion},
		{"another group", deployment, appsv1.SchemeGroupVersion},
		{"with its kind set", &corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "k", UID: "kind-uid", ResourceVersion: "3"}}, corev1.SchemeGroupVersion},
	} {
		for round := 0; round < 3; round++ { // later rounds read the cache
			got, err := encodeObject(c.obj, info, c.gv)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if w := want(c.obj, c.gv); !bytes.Equal(got, w) {
				t.Fatalf("%s, round %d:\n got %s\nwant %s", c.name, round, got, w)
			}
		}
	}
}

// The list writers get the watch cache's own objects (no copies): writing a list, with item
// encodings cached or not, must leave every item exactly as it was, TypeMeta included.
func TestListWritersLeaveTheItemsUntouched(t *testing.T) {
	var items []runtime.Object
	for i := range 3 {
		p := benchpods.Stored(benchpods.Small(benchpods.Name("untouched-", i), i), "default", i)
		p.UID = types.UID(fmt.Sprint("untouched-uid-", i))
		items = append(items, p)
	}
	want := make([]runtime.Object, len(items))
	for i, it := range items {
		want[i] = it.DeepCopyObject()
	}
	list := &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "7"}}
	for _, mediaType := range []string{runtime.ContentTypeJSON, runtime.ContentTypeProtobuf} {
		info := serializerFor(mediaType)
		for round := range 2 { // encoded, then from the encoding cache
			var got bytes.Buffer
			if err := listWriterFor(mediaType)(&got, func() {}, list, items, info, corev1.SchemeGroupVersion); err != nil {
				t.Fatal(err)
			}
			whole := list.DeepCopy()
			for _, it := range want {
				whole.Items = append(whole.Items, *it.(*corev1.Pod))
			}
			var encoder bytes.Buffer
			if err := apis.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion).Encode(whole, &encoder); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), encoder.Bytes()) {
				t.Errorf("%s round %d: not the encoder's bytes", mediaType, round)
			}
			for i := range items {
				if !reflect.DeepEqual(items[i], want[i]) {
					t.Fatalf("%s round %d: item %d changed:\n%+v\nwas %+v", mediaType, round, i, items[i], want[i])
				}
			}
		}
	}
	if len(list.Items) != 0 {
		t.Errorf("the writer put %d items in the list", len(list.Items))
	}
}

// One event's frame is encoded once and shared by every watcher of it, so the shared frame
// must be exactly what encoding the event for each watcher wrote: per event type, media type
// and version; DELETED frames, whose object is a state nothing stored, are never shared.
func TestSharedWatchFramesAreWhatEachWatcherWouldEncode(t *testing.T) {
	pod := benchpods.Stored(benchpods.Small(benchpods.Name("frame-", 0), 0), "default", 0)
	pod.UID = "frame-uid"
	for _, media := range []string{runtime.ContentTypeJSON, runtime.ContentTypeProtobuf} {
		info := serializerFor(media)
		mt := mediaType{info: info}
		for _, typ := range []watch.EventType{watch.Added, watch.Modified, watch.Deleted} {
			objBytes, err := encodeObjectAfresh(pod.DeepCopy(), info, corev1.SchemeGroupVersion)
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if err := info.StreamSerializer.Serializer.Encode(&metav1.WatchEvent{Type: string(typ),
				Object: runtime.RawExtension{Raw: objBytes}}, &want); err != nil {
				t.Fatal(err)
			}
			var frames [][]byte
			for range 3 { // three watchers; the first encodes
				var buf bytes.Buffer
				frame, err := watchFrame(typ, pod.DeepCopy(), mt, corev1.SchemeGroupVersion, info.StreamSerializer.Serializer, &buf)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(frame, want.Bytes()) {
					t.Fatalf("%s %s frame:\n%q\nwant %q", media, typ, frame, want.Bytes())
				}
				frames = append(frames, frame)
			}
			shared := &frames[1][0] == &frames[2][0]
			if shared != (typ != watch.Deleted) {
				t.Errorf("%s %s: frames shared %v", media, typ, shared)
			}
		}
	}
}
