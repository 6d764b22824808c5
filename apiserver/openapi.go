package apiserver

import (
	"log/slog"
	"net/http"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/openapi"
)

// The OpenAPI documents describe the apis table, which every server shares, so one service
// serves them all; it builds the documents on the first request for them.
var (
	openAPIOnce    sync.Once
	openAPIService *openapi.Service
	openAPIErr     error
)

// serveOpenAPI answers /openapi/v2 and /openapi/v3/...; it reports false for other paths.
func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) bool {
	if !openapi.Handles(r.URL.Path) {
		return false
	}
	openAPIOnce.Do(func() {
		// which deletes answer with the object is the registry's to say; read it once
		returnsObject := map[*apis.Resource]bool{}
		for _, byName := range s.resources {
			for _, h := range byName {
				returnsObject[h.res] = h.store.ReturnDeletedObject
			}
		}
		info := apis.VersionInfo()
		openAPIService, openAPIErr = openapi.NewService(openapi.Config{
			Resources:           apis.Resources,
			DeleteReturnsObject: func(res *apis.Resource) bool { return returnsObject[res] },
			GitVersion:          info.GitVersion,
		})
	})
	if openAPIErr != nil {
		slog.Error("OpenAPI documents", "err", openAPIErr)
		writeError(w, r, apierrors.NewInternalError(openAPIErr))
		return true
	}
	openAPIService.ServeHTTP(w, r)
	return true
}
