package openapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/skiff-dev/skiff/apiserver/openapi"
)

// BenchmarkBuildOpenAPIDocuments is what the first OpenAPI request pays: every definition
// and path, the v2 document and every v3 document in JSON, and the v3 index.
func BenchmarkBuildOpenAPIDocuments(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		s := newService(b)
		for _, path := range []string{openapi.V2Path, openapi.V3Path} {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != http.StatusOK {
				b.Fatalf("%s: %d", path, rec.Code)
			}
		}
	}
}

// BenchmarkServeOpenAPI is every later request: a document served from memory.
func BenchmarkServeOpenAPI(b *testing.B) {
	s := newService(b)
	cases := []struct {
		name, path, accept string
	}{
		{"v2-json", openapi.V2Path, "application/json"},
		{"v2-protobuf", openapi.V2Path, "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"},
		{"v3-index", openapi.V3Path, "application/json"},
		{"v3-api-v1", openapi.V3Path + "/api/v1", "application/json"},
		{"v3-api-v1-protobuf", openapi.V3Path + "/api/v1", "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, c.path, nil)
			req.Header.Set("Accept", c.accept)
			s.ServeHTTP(httptest.NewRecorder(), req) // built once, before the timer
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d", rec.Code)
				}
			}
		})
	}
}
