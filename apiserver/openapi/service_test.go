package openapi_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	openapi_v3 "github.com/google/gnostic-models/openapiv3"
	"google.golang.org/protobuf/proto"
	"k8s.io/kube-openapi/pkg/handler3"
	utilproto "k8s.io/kube-openapi/pkg/util/proto"
	"k8s.io/kube-openapi/pkg/util/proto/validation"
	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/openapi"
)

func newService(t testing.TB) *openapi.Service {
	t.Helper()
	s, err := openapi.NewService(openapi.Config{Resources: apis.Builtin.All(), GitVersion: "v1.37.0"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sharedServer is one service behind an HTTP server for the tests that only read.
var sharedServer = sync.OnceValue(func() *httptest.Server {
	s, err := openapi.NewService(openapi.Config{Resources: apis.Builtin.All(), GitVersion: "v1.37.0"})
	if err != nil {
		panic(err)
	}
	return httptest.NewServer(s)
})

func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	// see redirects and encodings as a client's transport would before handling them
	client := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DisableCompression: true},
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestOpenAPIV3IndexListsEveryGroupVersionByHash(t *testing.T) {
	srv := sharedServer()
	resp, body := get(t, srv.URL+"/openapi/v3")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Etag") == "" {
		t.Fatalf("index: %d %v", resp.StatusCode, resp.Header)
	}
	var index handler3.OpenAPIV3Discovery
	if err := json.Unmarshal(body, &index); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"api", "api/v1", "apis", "apis/apps", "apis/apps/v1", "apis/coordination.k8s.io/v1",
		"apis/events.k8s.io/v1", "apis/authentication.k8s.io/v1", "apis/authorization.k8s.io/v1", "version"} {
		gv, ok := index.Paths[name]
		if !ok {
			t.Errorf("index has no %s: %s", name, body)
			continue
		}
		if !strings.HasPrefix(gv.ServerRelativeURL, "/openapi/v3/"+name+"?hash=") {
			t.Errorf("%s at %s", name, gv.ServerRelativeURL)
		}
	}

	// by hash: immutable, cacheable for a year
	u := index.Paths["api/v1"].ServerRelativeURL
	resp, body = get(t, srv.URL+u)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "public, immutable" || resp.Header.Get("Expires") == "" {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, resp.Header)
	}
	hash := u[strings.Index(u, "hash=")+len("hash="):]
	if resp.Header.Get("Etag") != `"`+hash+`"` {
		t.Errorf("Etag %s for hash %s", resp.Header.Get("Etag"), hash)
	}
	var doc map[string]interface{}
	if err := json.Unmarshal(body, &doc); err != nil || doc["openapi"] != "3.0.0" {
		t.Fatalf("api/v1 document: %v %v", err, doc["openapi"])
	}

	// a stale hash is sent to the current one
	resp, _ = get(t, srv.URL+"/openapi/v3/api/v1?hash=0123")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != u {
		t.Errorf("stale hash: %d to %s, want 301 to %s", resp.StatusCode, resp.Header.Get("Location"), u)
	}

	// without a hash: no caching promise, but conditional requests work
	resp, _ = get(t, srv.URL+"/openapi/v3/api/v1")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "" {
		t.Errorf("no hash: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = get(t, srv.URL+"/openapi/v3/api/v1", "If-None-Match", `"`+hash+`"`)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}
}

func TestOpenAPIV3ProtobufDecodesWithGnostic(t *testing.T) {
	srv := sharedServer()
	for _, accept := range []string{"application/com.github.proto-openapi.spec.v3@v1.0+protobuf", "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"} {
		resp, body := get(t, srv.URL+"/openapi/v3/apis/apps/v1", "Accept", accept)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/com.github.proto-openapi.spec.v3.v1.0+protobuf" {
			t.Fatalf("Accept %s: %d %s", accept, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var doc openapi_v3.Document
		if err := proto.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		models, err := utilproto.NewOpenAPIV3Data(&doc)
		if err != nil {
			t.Fatal(err)
		}
		if models.LookupModel("io.k8s.api.apps.v1.ReplicaSet") == nil {
			t.Errorf("no ReplicaSet model in %v", models.ListModels())
		}
	}
}

func TestOpenAPIV2InJSONAndProtobufAsKubectlAsks(t *testing.T) {
	srv := sharedServer()
	resp, jsonBody := get(t, srv.URL+"/openapi/v2")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("json: %d %v", resp.StatusCode, resp.Header)
	}
	etag := resp.Header.Get("Etag")
	if len(etag) != 130 || resp.Header.Values("Vary")[0] != "Accept" {
		t.Errorf("Etag %s Vary %v", etag, resp.Header.Values("Vary"))
	}
	jsonDoc, err := openapi_v2.ParseDocument(jsonBody)
	if err != nil {
		t.Fatal(err)
	}

	// what client-go's discovery asks for
	resp, body := get(t, srv.URL+"/openapi/v2", "Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf", "Accept-Encoding", "gzip")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/com.github.proto-openapi.spec.v2.v1.0+protobuf" ||
		resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Etag") != etag {
		t.Fatalf("protobuf: %d %v", resp.StatusCode, resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var doc openapi_v2.Document
	if err := proto.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&doc, jsonDoc) {
		t.Errorf("the protobuf and JSON documents differ")
	}

	// kubectl's client-side validation reads the v2 models
	models, err := utilproto.NewOpenAPIData(&doc)
	if err != nil {
		t.Fatal(err)
	}
	pod := models.LookupModel("io.k8s.api.core.v1.Pod")
	if pod == nil {
		t.Fatal("no Pod model")
	}
	manifest := func(s string) interface{} {
		var v interface{}
		if err := yaml.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	good := manifest("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: nginx\n    ports: [{containerPort: 80}]\n")
	if errs := validation.ValidateModel(good, pod, "Pod"); len(errs) != 0 {
		t.Errorf("a valid pod: %v", errs)
	}
	bad := manifest("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: nginx\n    imagePullPolicyy: Always\n")
	errs := validation.ValidateModel(bad, pod, "Pod")
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `unknown field "imagePullPolicyy" in io.k8s.api.core.v1.Container`) {
		t.Errorf("an unknown field: %v", errs)
	}

	resp, _ = get(t, srv.URL+"/openapi/v2", "Accept", "text/html")
	if resp.StatusCode != http.StatusNotAcceptable {
		t.Errorf("text/html: %d, want 406", resp.StatusCode)
	}
	resp, _ = get(t, srv.URL+"/openapi/v2", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}
}

func TestOpenAPIDocumentsAreBuiltOnceUnderConcurrentFirstRequests(t *testing.T) {
	srv := httptest.NewServer(newService(t))
	defer srv.Close()
	paths := []string{"/openapi/v2", "/openapi/v3", "/openapi/v3/api/v1", "/openapi/v3/apis/apps/v1", "/openapi/v2"}
	bodies := make([][]byte, 4*len(paths))
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(srv.URL + paths[i%len(paths)])
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			bodies[i], _ = io.ReadAll(resp.Body)
		}()
	}
	wg.Wait()
	for i := range bodies {
		if j := i % len(paths); !bytes.Equal(bodies[i], bodies[j]) {
			t.Errorf("%s answered two different documents", paths[j])
		}
	}
}

func TestHandlesOnlyOpenAPIPaths(t *testing.T) {
	for path, want := range map[string]bool{
		"/openapi/v2": true, "/openapi/v3": true, "/openapi/v3/api/v1": true, "/openapi/v3/apis/apps/v1": true,
		"/openapi": false, "/openapi/v2/x": false, "/openapi/v3x": false, "/api/v1": false,
	} {
		if got := openapi.Handles(path); got != want {
			t.Errorf("Handles(%q) = %v", path, got)
		}
	}
}
