package ociimage

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func servedImage(t *testing.T, names ...string) *httptest.Server {
	t.Helper()
	r := NewRegistry()
	for i, name := range names {
		img := &Image{Name: name, Files: map[string]File{"hello": {Data: []byte("hi"), Mode: 0o644}}, Cmd: []string{"/hello"}}
		var buf bytes.Buffer
		if err := img.WriteOCI(&buf); err != nil {
			t.Fatal(err)
		}
		in := io.Reader(&buf)
		if i%2 == 1 { // every other one gzip-compressed, as tarballs often are
			var gz bytes.Buffer
			w := gzip.NewWriter(&gz)
			_, _ = w.Write(buf.Bytes())
			_ = w.Close()
			in = &gz
		}
		got, err := r.Load(in)
		if err != nil || len(got) != 1 || got[0] != name {
			t.Fatalf("Load(%s) = %v, %v", name, got, err)
		}
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// A pull is what containerd does through a mirror: the manifest by tag (with the registry in
// ns), then the config and layer blobs by the digests the manifest names.
func TestRegistryServesAPull(t *testing.T) {
	srv := servedImage(t, "registry.k8s.io/pause:3.10", "busybox:1")
	if resp, _ := get(t, "GET", srv.URL+"/v2/"); resp.StatusCode != 200 {
		t.Fatalf("/v2/: %d", resp.StatusCode)
	}
	for _, path := range []string{"/v2/pause/manifests/3.10?ns=registry.k8s.io", "/v2/library/busybox/manifests/1?ns=docker.io", "/v2/library/busybox/manifests/1"} {
		resp, body := get(t, "GET", srv.URL+path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.oci.image.manifest.v1+json" {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var manifest struct {
			Config struct{ Digest string }
			Layers []struct{ Digest string }
		}
		if err := json.Unmarshal(body, &manifest); err != nil || len(manifest.Layers) != 1 {
			t.Fatalf("%s: manifest %s: %v", path, body, err)
		}
		manifestDigest := resp.Header.Get("Docker-Content-Digest")
		if resp, _ := get(t, "HEAD", srv.URL+"/v2/pause/manifests/"+manifestDigest+"?ns=registry.k8s.io"); resp.StatusCode != 200 {
			t.Errorf("manifest by digest: %d", resp.StatusCode)
		}
		for _, want := range []string{manifest.Config.Digest, manifest.Layers[0].Digest} {
			if resp, b := get(t, "GET", srv.URL+"/v2/x/blobs/"+want); resp.StatusCode != 200 || digest(b) != want {
				t.Errorf("blob %s: %d", want, resp.StatusCode)
			}
		}
	}
}

func TestRegistryRefusesWhatItDoesNotHave(t *testing.T) {
	srv := servedImage(t, "registry.k8s.io/pause:3.10")
	for _, path := range []string{
		"/v2/pause/manifests/3.10?ns=docker.io", // the same name of another registry
		"/v2/pause/manifests/3.9?ns=registry.k8s.io",
		"/v2/pause/blobs/sha256:0000",
		"/other",
	} {
		if resp, body := get(t, "GET", srv.URL+path); resp.StatusCode != 404 || !bytes.Contains(body, []byte(`"errors"`)) {
			t.Errorf("%s: %d %s, want 404 with the registry's error body", path, resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, "PUT", srv.URL+"/v2/pause/manifests/3.10"); resp.StatusCode != 405 {
		t.Errorf("PUT: %d, want 405 (read-only)", resp.StatusCode)
	}
}

func TestRegistryLoadRefusesOtherArchives(t *testing.T) {
	img := &Image{Name: "x:1", Files: map[string]File{}}
	var docker bytes.Buffer
	if err := img.WriteDocker(&docker); err != nil {
		t.Fatal(err)
	}
	if _, err := NewRegistry().Load(&docker); err == nil {
		t.Error("a Docker archive was loaded; only OCI layouts carry the manifests a registry serves")
	}
	if _, err := NewRegistry().Load(bytes.NewReader([]byte("not a tar"))); err == nil {
		t.Error("garbage was loaded")
	}
}
