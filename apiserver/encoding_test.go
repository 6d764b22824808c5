package apiserver

import (
	"bytes"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/apis"
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
