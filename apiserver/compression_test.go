package apiserver_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// TestLargeResponsesAreGzippedForClientsThatAcceptIt is upstream's APIResponseCompression: a
// response larger than 128 KiB is gzipped when the request's Accept-Encoding lists gzip (a
// LIST, a single object, a Table), the same bytes once decompressed; smaller ones and clients
// that do not ask are answered as before.
func TestLargeResponsesAreGzippedForClientsThatAcceptIt(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	// 40 ConfigMaps of 5 KB each: a list of about 200 KB
	for i := range 40 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%02d", i)}, Data: map[string]string{"v": strings.Repeat("x", 5000)}}
		if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	big := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "big"}, Data: map[string]string{"v": strings.Repeat("y", 200_000)}}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, big, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// the transport gives back what the server sent: Accept-Encoding is set by hand, so it
	// does not decompress
	fetch := func(path, accept, encoding string) (http.Header, []byte) {
		t.Helper()
		r := sendWire(t, s, http.MethodGet, path, "", "", "Accept", accept, "Accept-Encoding", encoding)
		if r.code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.code, r.body)
		}
		return r.header, r.body
	}
	gunzip := func(b []byte) []byte {
		t.Helper()
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	list := "/api/v1/namespaces/default/configmaps?resourceVersion=0"
	for _, c := range []struct {
		name, path, accept string
	}{
		{"a JSON LIST", list, "application/json"},
		{"a protobuf LIST", list, "application/vnd.kubernetes.protobuf"},
		{"a Table", list + "&includeObject=Object", "application/json;as=Table;v=v1;g=meta.k8s.io"},
		{"one large object", "/api/v1/namespaces/default/configmaps/big", "application/json"},
	} {
		plainHeader, plain := fetch(c.path, c.accept, "identity")
		if enc := plainHeader.Get("Content-Encoding"); enc != "" || len(plain) <= 128<<10 {
			t.Fatalf("%s without gzip: Content-Encoding %q, %d bytes", c.name, enc, len(plain))
		}
		header, zipped := fetch(c.path, c.accept, "deflate, gzip")
		if header.Get("Content-Encoding") != "gzip" || header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("%s: Content-Encoding %q, Vary %q", c.name, header.Get("Content-Encoding"), header.Get("Vary"))
			continue
		}
		if header.Get("Content-Type") != plainHeader.Get("Content-Type") {
			t.Errorf("%s: Content-Type %q, uncompressed %q", c.name, header.Get("Content-Type"), plainHeader.Get("Content-Type"))
		}
		if len(zipped) >= len(plain)/4 {
			t.Errorf("%s: %d bytes gzipped of %d", c.name, len(zipped), len(plain))
		}
		// (a Table's AGE column may have moved on between the two)
		if got := gunzip(zipped); !bytes.Equal(got, plain) && !strings.Contains(c.accept, "Table") {
			t.Errorf("%s: decompressed body differs from the uncompressed answer", c.name)
		}
	}
	// small answers, and a gzip token with parameters, as upstream: not compressed
	for _, c := range []struct{ path, encoding string }{
		{"/api/v1/namespaces/default/configmaps/cm-01", "gzip"},
		{list, "gzip;q=1"},
	} {
		if header, _ := fetch(c.path, "application/json", c.encoding); header.Get("Content-Encoding") != "" {
			t.Errorf("GET %s with Accept-Encoding %q: Content-Encoding %q", c.path, c.encoding, header.Get("Content-Encoding"))
		}
	}
	// client-go asks for gzip and undoes it itself
	got, err := s.Client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(got.Items) != 41 {
		t.Fatalf("client-go list: %v, %d items", err, len(got.Items))
	}
}
