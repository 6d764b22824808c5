package apiserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// Watches of one pod by name are watches of its one key, and every such watch of an event
// sends one shared frame. The frames must still be what the encoder writes for each event,
// and the watch's other selectors (labels, other fields) must still decide what it sees.
func TestWatchesOfOnePodByNameShareFramesAndKeepTheirOtherSelectors(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := s.Client.CoreV1().Pods("default")
	pod, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "w", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	from := metav1.ListOptions{ResourceVersion: pod.ResourceVersion}
	rawA := rawWatch(ctx, t, s, "fieldSelector=metadata.name%3Dw&resourceVersion="+pod.ResourceVersion)
	rawB := rawWatch(ctx, t, s, "fieldSelector=metadata.name%3Dw,metadata.namespace%3Ddefault&resourceVersion="+pod.ResourceVersion)
	onNode := from
	onNode.FieldSelector = "metadata.name=w,spec.nodeName=n1"
	bound, err := pods.Watch(ctx, onNode)
	if err != nil {
		t.Fatal(err)
	}
	defer bound.Stop()
	web := from
	web.FieldSelector, web.LabelSelector = "metadata.name=w", "app=web"
	labelled, err := pods.Watch(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	defer labelled.Stop()

	// annotate, bind to n1, relabel
	pod.Annotations = map[string]string{"a": "1"}
	if pod, err = pods.Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "w"},
		Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if pod, err = pods.Get(ctx, "w", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Labels["app"] = "db"
	if _, err = pods.Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	for i := range 3 {
		a, b := rawA.next(t), rawB.next(t)
		if !bytes.Equal(a, b) {
			t.Errorf("frame %d differs between two watches of the pod:\n%s\n%s", i, a, b)
		}
		var ev metav1.WatchEvent
		if err := json.Unmarshal(a, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type != string(watch.Modified) {
			t.Errorf("frame %d is %s, want MODIFIED", i, ev.Type)
		}
		// the frame is what the encoder writes for the event it carries
		info, _ := runtime.SerializerInfoForMediaType(apis.Codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
		obj, _, err := info.Serializer.Decode(ev.Object.Raw, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var objBytes, frame bytes.Buffer
		if err := apis.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion).Encode(obj, &objBytes); err != nil {
			t.Fatal(err)
		}
		if err := info.StreamSerializer.Serializer.Encode(&metav1.WatchEvent{Type: ev.Type,
			Object: runtime.RawExtension{Raw: objBytes.Bytes()}}, &frame); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, frame.Bytes()) {
			t.Errorf("frame %d is not the encoder's:\n%s\n%s", i, a, frame.Bytes())
		}
	}
	// spec.nodeName=n1: nothing until the binding, which brings the pod in
	if ev := nextEvent(t, bound); ev.Type != watch.Added || ev.Object.(*corev1.Pod).Spec.NodeName != "n1" ||
		ev.Object.(*corev1.Pod).Annotations["a"] != "1" {
		t.Errorf("first event on spec.nodeName=n1: %s %+v", ev.Type, ev.Object)
	}
	if ev := nextEvent(t, bound); ev.Type != watch.Modified || ev.Object.(*corev1.Pod).Labels["app"] != "db" {
		t.Errorf("second event on spec.nodeName=n1: %s %+v", ev.Type, ev.Object)
	}
	// app=web: until the relabelling, which takes the pod out
	for i, want := range []watch.EventType{watch.Modified, watch.Modified, watch.Deleted} {
		if ev := nextEvent(t, labelled); ev.Type != want {
			t.Errorf("event %d on app=web: %s, want %s", i, ev.Type, want)
		}
	}
}

// rawWatchStream is a JSON watch of pods in default, read frame by frame.
type rawWatchStream struct {
	frames chan []byte
}

func rawWatch(ctx context.Context, t *testing.T, s *apiservertest.Server, query string) *rawWatchStream {
	t.Helper()
	hc, err := rest.HTTPClientFor(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	u := s.URL + "/api/v1/namespaces/default/pods?watch=true&" + query
	if _, err := url.Parse(u); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", runtime.ContentTypeJSON)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("watch %s: %s", query, resp.Status)
	}
	w := &rawWatchStream{frames: make(chan []byte, 100)}
	go func() {
		defer resp.Body.Close()
		defer close(w.frames)
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			w.frames <- line
		}
	}()
	t.Cleanup(func() {
		resp.Body.Close()
		for range w.frames { // the reader ends once the body is closed
		}
	})
	return w
}

// next waits for one frame; a watch that stays silent fails the test after a generous bound
// (a hang, not a timing assertion).
func (w *rawWatchStream) next(t *testing.T) []byte {
	t.Helper()
	select {
	case f, ok := <-w.frames:
		if !ok {
			t.Fatal("watch closed")
		}
		return f
	case <-time.After(30 * time.Second):
		t.Fatal("no watch frame")
	}
	return nil
}
