package apiserver

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry/storage"
)

// The fuzz targets of what a client sends the API server: request bodies in each media type
// as the create and update path decodes them, the three patch types as a PATCH applies them,
// and a list's query (label and field selectors, resourceVersion, limit, continue). Their seeds
// (below and testdata/fuzz) run in every `go test`; `go test -fuzz=FuzzDecodeBody
// ./apiserver` searches further (README.md says for how long each has run clean).
//
// Each asserts what a client may rely on whatever it sends: no panic, and a refusal is a
// Status with upstream's 4xx code, never a 500.

var fuzzMediaTypes = []string{runtime.ContentTypeJSON, runtime.ContentTypeYAML, runtime.ContentTypeProtobuf}

// fuzzPodsHandler is the pods handler as far as decoding needs it: no store behind it.
func fuzzPodsHandler(t testing.TB) *resourceHandler {
	res := apis.Builtin.Lookup(corev1.SchemeGroupVersion, "pods")
	if res == nil {
		t.Fatal("no pods resource")
	}
	return &resourceHandler{res: res, maxBodyBytes: 3 << 20}
}

func fuzzPod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "6b2c1e0a-1111-4222-8333-944445555666",
			ResourceVersion: "7", Labels: map[string]string{"app": "web", "tier": "front"}},
		Spec: corev1.PodSpec{
			NodeName: "node-1",
			Containers: []corev1.Container{{Name: "c", Image: "busybox", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}},
				Env: []corev1.EnvVar{{Name: "A", Value: "1"}}}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// encodeFor is obj in the media type, for seeds.
func encodeFor(t testing.TB, mediaType string, obj runtime.Object) []byte {
	info := serializerFor(mediaType)
	b, err := runtime.Encode(apis.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion), obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkRefusal fails the test unless err is a Status a client can act on: one of codes.
func checkRefusal(t *testing.T, what string, err error, codes ...int32) {
	t.Helper()
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		t.Fatalf("%s failed with %T %v, not a Status", what, err, err)
	}
	code := status.Status().Code
	for _, c := range codes {
		if code == c {
			return
		}
	}
	t.Fatalf("%s answered %d %s: %s; want one of %v", what, code, status.Status().Reason, status.Status().Message, codes)
}

func FuzzDecodeBody(f *testing.F) {
	pod := fuzzPod()
	for i, mt := range fuzzMediaTypes {
		f.Add(uint8(i), false, encodeFor(f, mt, pod))
		f.Add(uint8(i), true, encodeFor(f, mt, pod))
	}
	for _, s := range []string{
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","name":"b"},"spec":{"containers":[{}]}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"}}`,
		`{"apiVersion":"v1","kind":"Service"}`,
		`{"kind":"Pod","spec":{"containers":[{"resources":{"limits":{"cpu":"1e400"}}}]}}`,
		`{"metadata":{"creationTimestamp":"yesterday"}}`,
		`{"spec":{"containers":null,"volumes":[{"name":"v","secret":{"defaultMode":-1}}]}}`,
		"apiVersion: v1\nkind: Pod\nmetadata: &a {name: x}\nspec: *a\n",
		"a: &a [*a, *a]\n",
		"k8s\x00\x0a\x02v1",
		"",
		"null",
		"[]",
	} {
		f.Add(uint8(0), false, []byte(s))
		f.Add(uint8(1), true, []byte(s))
		f.Add(uint8(2), false, []byte(s))
	}
	h := fuzzPodsHandler(f)
	gvk := corev1.SchemeGroupVersion.WithKind("Pod")
	f.Fuzz(func(t *testing.T, mediaType uint8, strict bool, body []byte) {
		target := "/api/v1/namespaces/default/pods"
		if strict {
			target += "?fieldValidation=Strict"
		}
		r := httptest.NewRequest(http.MethodPost, target, nil)
		r.Header.Set("Content-Type", fuzzMediaTypes[int(mediaType)%len(fuzzMediaTypes)])
		obj, err := h.decodeBody(r, body, gvk)
		if err != nil {
			checkRefusal(t, "decoding the body", err, http.StatusBadRequest)
			return
		}
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			t.Fatalf("decoded a %T, want a Pod", obj)
		}
		// what decodes goes on to validation and the field selectors: neither may panic
		_ = apis.ValidatePod(pod)
		_ = h.res.SelectableFields(pod)
	})
}

func FuzzPatch(f *testing.F) {
	patchTypes := []types.PatchType{types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType}
	for _, s := range []struct {
		pt    int
		patch string
	}{
		{0, `[{"op":"replace","path":"/spec/containers/0/image","value":"nginx"}]`},
		{0, `[{"op":"add","path":"/metadata/labels/x","value":"y"},{"op":"remove","path":"/metadata/labels/app"}]`},
		{0, `[{"op":"move","from":"/spec","path":"/spec/containers"}]`},
		{0, `[{"op":"copy","from":"/spec/containers","path":"/spec/containers/-"}]`},
		{0, `[{"op":"test","path":"/metadata/name","value":"web"}]`},
		{0, `[{"op":"add","path":"/spec/containers/99999999999","value":{}}]`},
		{0, `[{"op":"replace","path":"/metadata/name","value":{"a":1}}]`},
		{0, `{}`},
		{1, `{"metadata":{"labels":{"app":null}}}`},
		{1, `{"spec":{"containers":[{"name":"d","image":"x"}]}}`},
		{1, `{"metadata":{"name":7}}`},
		{1, `[1,2]`},
		{2, `{"spec":{"containers":[{"name":"c","image":"nginx"}]}}`},
		{2, `{"spec":{"containers":[{"name":"c","$patch":"delete"}]}}`},
		{2, `{"spec":{"$setElementOrder/containers":[{"name":"c"}],"containers":[{"name":"c","env":[{"name":"A","$patch":"replace"}]}]}}`},
		{2, `{"metadata":{"$retainKeys":["labels"],"labels":{"x":"y"}}}`},
		{2, `{"spec":{"volumes":[{"name":"v","$retainKeys":["name"],"emptyDir":{}}]}}`},
		{2, `{"$patch":"replace","metadata":{"name":"web"}}`},
		{2, `{"spec":{"containers":{"name":"c"}}}`},
		{2, `{"spec":{"containers":[[]]}}`},
		{2, `{"metadata":{"finalizers":[{"$patch":"delete"}]}}`},
	} {
		f.Add(uint8(s.pt), false, []byte(s.patch))
		f.Add(uint8(s.pt), true, []byte(s.patch))
	}
	h := fuzzPodsHandler(f)
	gvk := corev1.SchemeGroupVersion.WithKind("Pod")
	current := fuzzPod()
	current.TypeMeta = metav1.TypeMeta{}
	f.Fuzz(func(t *testing.T, patchType uint8, strict bool, body []byte) {
		pt := patchTypes[int(patchType)%len(patchTypes)]
		validation := metav1.FieldValidationWarn
		if strict {
			validation = metav1.FieldValidationStrict
		}
		p := &patchRequest{h: h, patchType: pt, body: body, gvk: gvk, name: "web", namespace: "default",
			opts: writeOptions{validation: validation, manager: "fuzz"}}
		var (
			obj runtime.Object
			err error
		)
		if pt == types.StrategicMergePatchType {
			obj, err = p.strategicMergePatch(context.Background(), current.DeepCopy())
		} else {
			obj, err = p.jsonPatch(context.Background(), current.DeepCopy())
		}
		if err != nil {
			// upstream's answers for a patch that does not apply; 500 only where upstream's is too
			// (a merge or strategic merge that fails inside the library)
			checkRefusal(t, string(pt), err, http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge,
				http.StatusInternalServerError)
			return
		}
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			t.Fatalf("%s made a %T, want a Pod", pt, obj)
		}
		_ = apis.ValidatePod(pod)
		_ = apis.ValidatePodUpdate(pod, current)
	})
}

func FuzzListOptions(f *testing.F) {
	for _, q := range []string{
		"labelSelector=app%3Dweb,tier+in+(front,back),!gone",
		"labelSelector=app+notin+()",
		"labelSelector=a%3D%3Db,c!%3Dd,e",
		"labelSelector=x>1,y<2",
		"labelSelector=((",
		"fieldSelector=spec.nodeName%3Dnode-1,status.phase!%3DFailed",
		"fieldSelector=metadata.name%3D%3Dweb",
		"fieldSelector=spec.nodeName%3D%5C,",
		"fieldSelector=no.such.field%3Dx",
		"resourceVersion=0&resourceVersionMatch=NotOlderThan",
		"resourceVersion=18446744073709551615",
		"resourceVersion=9223372036854775808&limit=10",
		"resourceVersion=-1",
		"resourceVersionMatch=Exact",
		"limit=-5&continue=abc",
		"continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NSwic3RhcnQiOiJkZWZhdWx0L2EifQ",
		"watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
		"timeoutSeconds=99999999999999999999",
	} {
		f.Add(false, q)
		f.Add(true, q)
	}
	h := fuzzPodsHandler(f)
	pod := fuzzPod()
	podLabels := labels.Set(pod.Labels)
	podFields := h.res.SelectableFields(pod)
	f.Fuzz(func(t *testing.T, watch bool, query string) {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/pods", nil)
		r.URL.RawQuery = query
		ri := &requestInfo{Verb: "list"}
		if watch {
			ri.Verb = "watch"
		}
		opts, _, err := h.listOptions(ri, r)
		if err != nil {
			checkRefusal(t, "the list query "+query, err, http.StatusBadRequest, http.StatusUnprocessableEntity)
			return
		}
		if opts.Label != nil {
			_ = opts.Label.Matches(podLabels)
			_ = opts.Label.String()
		}
		if opts.Field != nil {
			_ = opts.Field.Matches(podFields)
			_ = opts.Field.String()
		}
		// what the query checks passed, the store reads too: no later 500
		if _, err := storage.ParseResourceVersion("/registry/pods", opts.ResourceVersion); err != nil {
			t.Fatalf("the query %q passed, but the store refuses its resourceVersion %q: %v", query, opts.ResourceVersion, err)
		}
		if opts.Continue != "" {
			if _, _, err := storage.DecodeContinue(opts.Continue, "/registry/pods/"); err != nil && !strings.Contains(err.Error(), "continue key is not valid") {
				t.Fatalf("continue %q: %v", opts.Continue, err)
			}
		}
	})
}
