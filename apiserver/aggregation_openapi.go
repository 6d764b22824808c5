package apiserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/transport"
)

// OpenAPI v3 of remote APIServices: the /openapi/v3 index lists each available remote group
// version with the document address its extension server gives (its hash included, so that
// clients' caches follow the extension's changes), and requests for that document are proxied
// to the extension server as any request of its group version. kubectl explain and kubectl's
// schema lookups of aggregated kinds work so. OpenAPI v2 is not merged.

// openAPIV3Index is the /openapi/v3 document: a path per group version.
type openAPIV3Index struct {
	Paths map[string]openAPIV3Path `json:"paths"`
}

type openAPIV3Path struct {
	ServerRelativeURL string `json:"serverRelativeURL"`
}

// fetchOpenAPIV3URL is the address of gv's OpenAPI v3 document in the extension server's
// /openapi/v3 index, or "" when it publishes none.
func (a *aggregation) fetchOpenAPIV3URL(ctx context.Context, client *http.Client, base string, gv schema.GroupVersion) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/openapi/v3", nil)
	if err != nil {
		return ""
	}
	req.Header.Set("Accept", "application/json")
	transport.SetAuthProxyHeaders(req, "system:kube-aggregator", "", []string{"system:masters"}, nil)
	resp, err := client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	var index openAPIV3Index
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&index); err != nil {
		return ""
	}
	u := index.Paths["apis/"+gv.Group+"/"+gv.Version].ServerRelativeURL
	if !strings.HasPrefix(u, "/openapi/v3/apis/"+gv.Group+"/"+gv.Version) {
		return "" // served elsewhere than the proxy would send it
	}
	return u
}

// serveRemoteOpenAPI answers the /openapi/v3 index with the remote group versions in it, and
// proxies their documents; it reports false for every other request.
func (s *Server) serveRemoteOpenAPI(w http.ResponseWriter, r *http.Request) bool {
	parts := splitPath(r.URL.Path)
	if len(parts) >= 5 && parts[0] == "openapi" && parts[1] == "v3" && parts[2] == "apis" {
		rs := s.aggregation.remoteFor(schema.GroupVersion{Group: parts[3], Version: parts[4]})
		if rs == nil {
			return false
		}
		s.proxyToAPIService(w, r, rs)
		return true
	}
	if r.URL.Path != "/openapi/v3" {
		return false
	}
	var remote []*remoteAPIService
	for _, rs := range s.aggregation.remoteDiscovery() {
		if rs.openAPIV3URL != "" {
			remote = append(remote, rs)
		}
	}
	if len(remote) == 0 {
		return false
	}
	// the server's own index, merged with the remote entries
	local := r.Clone(r.Context())
	local.Header.Del("If-None-Match")
	rec := httptest.NewRecorder()
	s.openAPIServiceServe(rec, local)
	if rec.Code != http.StatusOK {
		return false
	}
	var index openAPIV3Index
	if err := json.Unmarshal(rec.Body.Bytes(), &index); err != nil || index.Paths == nil {
		return false
	}
	for _, rs := range remote {
		gv := remoteGroupVersion(rs)
		index.Paths["apis/"+gv.Group+"/"+gv.Version] = openAPIV3Path{ServerRelativeURL: rs.openAPIV3URL}
	}
	body, err := json.Marshal(index)
	if err != nil {
		return false
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	io.Copy(w, bytes.NewReader(body))
	return true
}
