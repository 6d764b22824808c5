package apiserver

import (
	"log/slog"
	"net/http"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/openapi"
)

// openAPIDocuments serves the OpenAPI documents of what is served now. They are built on the
// first request after the served resources change, not on every change: a burst of
// CustomResourceDefinitions costs one build.
type openAPIDocuments struct {
	mu      sync.Mutex
	service *openapi.Service
	err     error
	set     *apis.Set // what service describes
}

// invalidate makes the next request rebuild the documents.
func (d *openAPIDocuments) invalidate() {
	d.mu.Lock()
	d.service, d.err, d.set = nil, nil, nil
	d.mu.Unlock()
}

// serviceFor returns the documents describing set, building them if need be.
func (d *openAPIDocuments) serviceFor(set *apis.Set) (*openapi.Service, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.set == set {
		return d.service, d.err
	}
	var typed []*apis.Resource
	var published []openapi.Published
	for _, r := range set.All() {
		if !r.Unstructured {
			typed = append(typed, r)
			continue
		}
		if r.OpenAPI == nil {
			continue
		}
		v2, v3, err := r.OpenAPI()
		if err != nil {
			// one definition's schema must not take every document down
			slog.Error("OpenAPI of a custom resource", "resource", r.GroupVersionResource(), "err", err)
			continue
		}
		published = append(published, openapi.Published{Path: "apis/" + r.GroupVersion.String(), V2: v2, V3: v3})
	}
	info := apis.VersionInfo()
	d.service, d.err = openapi.NewService(openapi.Config{
		Resources:           typed,
		DeleteReturnsObject: func(res *apis.Resource) bool { return res.ReturnDeletedObject },
		GitVersion:          info.GitVersion,
		Published:           published,
	})
	d.set = set
	return d.service, d.err
}

// serveOpenAPI answers /openapi/v2 and /openapi/v3/...; it reports false for other paths.
func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) bool {
	if !openapi.Handles(r.URL.Path) {
		return false
	}
	if s.serveRemoteOpenAPI(w, r) {
		return true // remote APIServices' documents (aggregation_openapi.go)
	}
	s.openAPIServiceServe(w, r)
	return true
}

// openAPIServiceServe answers from the server's own OpenAPI documents.
func (s *Server) openAPIServiceServe(w http.ResponseWriter, r *http.Request) {
	service, err := s.openAPI.serviceFor(s.current().set)
	if err != nil {
		slog.Error("OpenAPI documents", "err", err)
		writeError(w, r, apierrors.NewInternalError(err))
		return
	}
	service.ServeHTTP(w, r)
}
