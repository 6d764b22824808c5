package ociimage

import (
	"archive/tar"
	"bufio"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/distribution/reference"
)

// Registry serves the images of OCI image layout tarballs read-only over the OCI distribution
// API: GET and HEAD of /v2/, of manifests by tag or digest, and of blobs. It is the pull side
// of a registry, what a container runtime's registry mirror (containerd's hosts.toml) points
// at so that pulls succeed with no registry reachable. The registry a pull was meant for comes
// from containerd's ns query parameter (docker.io without one), so one Registry mirrors
// images of any number of registries under their own names.
//
// It keeps every blob in memory: it is made for the handful of test images a cluster without
// a network needs, not as a general registry.
type Registry struct {
	mu sync.RWMutex
	// manifests maps a normalized "host/path:tag" to its manifest's digest
	manifests map[string]string
	// mediaTypes maps a manifest's digest to its media type
	mediaTypes map[string]string
	blobs      map[string][]byte
}

// NewRegistry is an empty Registry; Load adds images to it.
func NewRegistry() *Registry {
	return &Registry{manifests: map[string]string{}, mediaTypes: map[string]string{}, blobs: map[string][]byte{}}
}

// Load adds the images of one OCI image layout tarball (gzip-compressed or not), under every
// name its index.json annotates (io.containerd.image.name), and returns those names.
func (r *Registry) Load(tarball io.Reader) ([]string, error) {
	br := bufio.NewReader(tarball)
	var in io.Reader = br
	if head, err := br.Peek(2); err == nil && head[0] == 0x1f && head[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		defer gz.Close()
		in = gz
	}
	blobs := map[string][]byte{}
	var index []byte
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not an image tarball: %w", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != tar.TypeReg || (name != "index.json" && !strings.HasPrefix(name, "blobs/sha256/")) {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		if name == "index.json" {
			index = b
		} else {
			blobs["sha256:"+strings.TrimPrefix(name, "blobs/sha256/")] = b
		}
	}
	if index == nil {
		return nil, errors.New("not an OCI image layout: no index.json (a Docker archive cannot be served)")
	}
	var idx struct {
		Manifests []struct {
			MediaType   string            `json:"mediaType"`
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(index, &idx); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	var names []string
	r.mu.Lock()
	defer r.mu.Unlock()
	for digest, b := range blobs {
		r.blobs[digest] = b
	}
	for _, m := range idx.Manifests {
		name := m.Annotations["io.containerd.image.name"]
		if name == "" {
			continue
		}
		ref, err := reference.ParseNormalizedNamed(name)
		if err != nil {
			return names, fmt.Errorf("image name %q: %w", name, err)
		}
		tagged, ok := reference.TagNameOnly(ref).(reference.Tagged)
		if !ok {
			continue // a name by digest alone is served by its digest
		}
		r.manifests[reference.Domain(ref)+"/"+reference.Path(ref)+":"+tagged.Tag()] = m.Digest
		r.mediaTypes[m.Digest] = cmp.Or(m.MediaType, "application/vnd.oci.image.manifest.v1+json")
		names = append(names, name)
	}
	return names, nil
}

// ServeHTTP answers the distribution API's reads; anything else is 405 (it is read-only).
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		registryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry is read-only")
		return
	}
	p, ok := strings.CutPrefix(req.URL.Path, "/v2/")
	if !ok {
		registryError(w, http.StatusNotFound, "NAME_UNKNOWN", "not a registry path")
		return
	}
	if p == "" {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.WriteHeader(http.StatusOK)
		return
	}
	host := req.URL.Query().Get("ns")
	if host == "" {
		host = "docker.io"
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var digest, mediaType string
	if name, ref, ok := cutLast(p, "/manifests/"); ok {
		digest = ref
		if !strings.HasPrefix(ref, "sha256:") {
			digest = r.manifests[host+"/"+name+":"+ref]
		}
		mediaType = r.mediaTypes[digest]
		if mediaType == "" {
			mediaType = "application/vnd.oci.image.manifest.v1+json"
		}
	} else if _, ref, ok := cutLast(p, "/blobs/"); ok {
		digest, mediaType = ref, "application/octet-stream"
	}
	b, found := r.blobs[digest]
	if !found {
		slog.Debug("registry: not found", "path", req.URL.Path, "registry", host)
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest or blob unknown to this registry")
		return
	}
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if req.Method == http.MethodGet {
		_, _ = w.Write(b)
	}
}

// cutLast splits s around the last sep.
func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// registryError writes the distribution API's error body.
func registryError(w http.ResponseWriter, code int, errCode, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": errCode, "message": message}}})
}
