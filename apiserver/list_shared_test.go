package apiserver_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// LISTs in JSON and protobuf are written straight from the watch cache's objects (no copies),
// the other representations from a list of copies. Whatever the path, every answer must be
// exactly what apimachinery's encoder writes for the list it carries, and carry the same
// items as etcd itself at that revision.
func TestListAnswersAreTheEncodersBytesInEveryRepresentation(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	const pods = 12
	for i := range pods {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%02d", i),
				Labels:      map[string]string{"app": []string{"web", "db"}[i%2], "i": fmt.Sprint(i)},
				Annotations: map[string]string{"note": "<&> " + fmt.Sprint(i)}},
			Spec: corev1.PodSpec{NodeName: []string{"n1", "n2", "n3"}[i%3],
				Containers: []corev1.Container{{Name: "c", Image: "busybox", Env: []corev1.EnvVar{{Name: "I", Value: fmt.Sprint(i)}}}}},
		}
		if _, err := s.Client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// one pod elsewhere, which no list of default may show
	if _, err := s.Client.CoreV1().Pods("kube-system").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rv := all.ResourceVersion

	representations := []struct{ name, accept string }{
		{"json", "application/json"},
		{"protobuf", "application/vnd.kubernetes.protobuf"},
		{"table", "application/json;as=Table;v=v1;g=meta.k8s.io"},
		{"metadata json", "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"},
		{"metadata protobuf", "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"},
	}
	queries := []struct {
		query url.Values
		want  func(i int) bool // which of the pods p-00 ... answer, in order
	}{
		{url.Values{}, func(int) bool { return true }},
		{url.Values{"resourceVersion": {"0"}}, func(int) bool { return true }},
		{url.Values{"resourceVersion": {rv}, "resourceVersionMatch": {"NotOlderThan"}}, func(int) bool { return true }},
		{url.Values{"resourceVersion": {rv}, "resourceVersionMatch": {"Exact"}}, func(int) bool { return true }}, // etcd's
		{url.Values{"labelSelector": {"app=web"}}, func(i int) bool { return i%2 == 0 }},
		{url.Values{"labelSelector": {"app=db,i!=3"}, "resourceVersion": {"0"}}, func(i int) bool { return i%2 == 1 && i != 3 }},
		{url.Values{"fieldSelector": {"spec.nodeName=n2"}}, func(i int) bool { return i%3 == 1 }},
		{url.Values{"fieldSelector": {"metadata.name=p-04"}}, func(i int) bool { return i == 4 }},
		{url.Values{"limit": {"5"}}, func(int) bool { return true }}, // paged through with continue
		{url.Values{"limit": {"2"}, "labelSelector": {"app=db"}}, func(i int) bool { return i%2 == 1 }},
		{url.Values{"limit": {"5"}, "resourceVersion": {rv}}, func(int) bool { return true }}, // legacy exact
	}
	for _, r := range representations {
		for _, q := range queries {
			t.Run(r.name+"?"+q.query.Encode(), func(t *testing.T) {
				var names []string
				query := q.query
				for page := 0; ; page++ {
					body := listBody(t, s, "/api/v1/namespaces/default/pods?"+query.Encode(), r.accept)
					obj := reencodesIdentically(t, body, r.accept)
					listMeta, itemNames := listContent(t, obj)
					if page == 0 && (q.query.Get("resourceVersion") == rv || q.query.Get("resourceVersion") == "") &&
						q.query.Get("resourceVersionMatch") != "NotOlderThan" && listMeta.ResourceVersion != rv {
						t.Errorf("resourceVersion %s, want %s (nothing was written since)", listMeta.ResourceVersion, rv)
					}
					names = append(names, itemNames...)
					if listMeta.Continue == "" {
						break
					}
					if q.query.Get("limit") == "" || page > pods {
						t.Fatalf("continue %q without a limit, or too many pages", listMeta.Continue)
					}
					query = url.Values{"limit": q.query["limit"], "continue": {listMeta.Continue},
						"labelSelector": q.query["labelSelector"], "fieldSelector": q.query["fieldSelector"]}
				}
				var want []string
				for i := range pods {
					if q.want(i) {
						want = append(want, fmt.Sprintf("p-%02d", i))
					}
				}
				if !reflect.DeepEqual(names, want) {
					t.Errorf("items %v, want %v", names, want)
				}
			})
		}
	}

	// The same list from the cache (rv=0: no wait for etcd's revision) and from etcd (Exact)
	// is the same body byte for byte, in both formats the list writers write.
	for _, r := range representations[:2] {
		fromCache := listBody(t, s, "/api/v1/namespaces/default/pods?resourceVersion=0", r.accept)
		fromEtcd := listBody(t, s, "/api/v1/namespaces/default/pods?resourceVersionMatch=Exact&resourceVersion="+rv, r.accept)
		if !bytes.Equal(fromCache, fromEtcd) {
			t.Errorf("%s: the cache's list (%d bytes) is not etcd's (%d bytes)", r.name, len(fromCache), len(fromEtcd))
		}
	}
}

func listBody(t *testing.T, s *apiservertest.Server, path, accept string) []byte {
	t.Helper()
	resp := rawGet(t, s, path, accept)
	if resp.code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.code, resp.body)
	}
	return resp.body
}

// reencodesIdentically decodes body and encodes it again with apimachinery's encoder in the
// same media type and group version: the server's bytes must be exactly those.
func reencodesIdentically(t *testing.T, body []byte, accept string) runtime.Object {
	t.Helper()
	mediaType := "application/json"
	if bytes.HasPrefix(body, []byte("k8s\x00")) {
		mediaType = runtime.ContentTypeProtobuf
	}
	info, ok := runtime.SerializerInfoForMediaType(apis.Codecs.SupportedMediaTypes(), mediaType)
	if !ok {
		t.Fatalf("no serializer for %s", mediaType)
	}
	obj, gvk, err := info.Serializer.Decode(body, nil, nil)
	if err != nil {
		t.Fatalf("decoding the answer to %s: %v", accept, err)
	}
	var again bytes.Buffer
	if err := apis.Codecs.EncoderForVersion(info.Serializer, gvk.GroupVersion()).Encode(obj, &again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, again.Bytes()) {
		t.Fatalf("the answer to %s (%d bytes) is not what the encoder writes for it (%d bytes):\n%q\n%q",
			accept, len(body), again.Len(), body, again.Bytes())
	}
	return obj
}

// listContent returns a list's metadata and its items' names, for a list or a Table.
func listContent(t *testing.T, obj runtime.Object) (metav1.ListMeta, []string) {
	t.Helper()
	var names []string
	if table, ok := obj.(*metav1.Table); ok {
		for _, row := range table.Rows {
			names = append(names, row.Cells[0].(string))
		}
		return table.ListMeta, names
	}
	items, err := meta.ExtractList(obj)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		m, err := meta.Accessor(it)
		if err != nil {
			t.Fatal(err)
		}
		if m.GetNamespace() != "default" || m.GetUID() == "" || m.GetResourceVersion() == "" {
			t.Errorf("item %s/%s uid %q rv %q", m.GetNamespace(), m.GetName(), m.GetUID(), m.GetResourceVersion())
		}
		names = append(names, m.GetName())
	}
	lm, err := meta.ListAccessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	return metav1.ListMeta{ResourceVersion: lm.GetResourceVersion(), Continue: lm.GetContinue(),
		RemainingItemCount: lm.GetRemainingItemCount()}, names
}
