package openapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"github.com/munnerz/goautoneg"
	"google.golang.org/protobuf/proto"
	"k8s.io/kube-openapi/pkg/cached"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"

	"github.com/skiff-dev/skiff/apis"
)

// Paths the service answers.
const (
	V2Path = "/openapi/v2"
	V3Path = "/openapi/v3"
)

// Handles reports whether a request path is one of the service's: /openapi/v2, the
// /openapi/v3 index, or a document under it.
func Handles(path string) bool {
	return path == V2Path || path == V3Path || strings.HasPrefix(path, V3Path+"/")
}

// Service serves the OpenAPI documents of one configuration. It builds them on the first
// request that needs them and keeps them, in every representation asked for, in memory; it
// is safe for concurrent use.
type Service struct {
	docs func() (*documentSet, error)

	v2JSON, v2Proto *representation
	// written once, by v2JSON's build; read only after v2JSON.get
	v2ETag     string
	v2Modified time.Time

	v3 *handler3.OpenAPIService
}

var _ http.Handler = &Service{}

// NewService prepares the documents of cfg without building them.
func NewService(cfg Config) (*Service, error) {
	// the routes are cheap and tell which v3 documents there are; definitions wait
	services, err := webServices(cfg.Resources, func(*apis.Resource) bool { return false })
	if err != nil {
		return nil, err
	}
	s := &Service{docs: sync.OnceValues(func() (*documentSet, error) { return newDocumentSet(cfg) })}

	s.v2JSON = &representation{build: func() ([]byte, error) {
		d, err := s.docs()
		if err != nil {
			return nil, err
		}
		swagger, err := d.v2()
		if err != nil {
			return nil, err
		}
		data, err := swagger.MarshalJSON()
		if err != nil {
			return nil, err
		}
		s.v2ETag = computeETag(data)
		s.v2Modified = time.Now()
		return data, nil
	}}
	s.v2Proto = &representation{build: func() ([]byte, error) {
		data, err := s.v2JSON.get()
		if err != nil {
			return nil, err
		}
		doc, err := openapi_v2.ParseDocument(data)
		if err != nil {
			return nil, err
		}
		return proto.Marshal(doc)
	}}

	v3Docs := cached.Once(cached.Func(func() (map[string]*spec3.OpenAPI, string, error) {
		d, err := s.docs()
		if err != nil {
			return nil, "", err
		}
		docs, err := d.v3()
		return docs, "built", err
	}))
	s.v3 = handler3.NewOpenAPIService()
	names := map[string]bool{}
	for _, ws := range services {
		names[strings.TrimPrefix(ws.root, "/")] = true
	}
	for _, p := range cfg.Published {
		names[p.Path] = true
	}
	for name := range names {
		s.v3.UpdateGroupVersionLazy(name, cached.Transform(func(docs map[string]*spec3.OpenAPI, etag string, err error) (*spec3.OpenAPI, string, error) {
			if err != nil {
				return nil, "", err
			}
			return docs[name], etag, nil
		}, v3Docs))
	}
	return s, nil
}

// ServeHTTP answers a request for one of the paths Handles accepts.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == V2Path:
		s.serveV2(w, r)
	case r.URL.Path == V3Path:
		s.v3.HandleDiscovery(w, r)
	default:
		s.v3.HandleGroupVersion(w, r)
	}
}

const (
	v2SubTypeProtobufDeprecated = "com.github.proto-openapi.spec.v2@v1.0+protobuf"
	v2SubTypeProtobuf           = "com.github.proto-openapi.spec.v2.v1.0+protobuf"
	subTypeJSON                 = "json"
)

// serveV2 answers /openapi/v2 as kube-openapi's handler does: JSON or protobuf by the Accept
// header, the ETag of the JSON document for both, conditional requests and ranges by
// http.ServeContent, gzip when the client takes it, 406 for anything else.
func (s *Service) serveV2(w http.ResponseWriter, r *http.Request) {
	accepted := []struct {
		subType, contentType string
		doc                  *representation
	}{
		{subTypeJSON, "application/" + subTypeJSON, s.v2JSON},
		{v2SubTypeProtobufDeprecated, "application/" + v2SubTypeProtobuf, s.v2Proto},
		{v2SubTypeProtobuf, "application/" + v2SubTypeProtobuf, s.v2Proto},
	}
	accept := r.Header.Get("Accept")
	if accept == "" {
		accept = "*/*"
	}
	w.Header().Add("Vary", "Accept")
	w.Header().Add("Vary", "Accept-Encoding")
	for _, clause := range goautoneg.ParseAccept(accept) {
		for _, a := range accepted {
			if clause.Type != "application" && clause.Type != "*" {
				continue
			}
			if clause.SubType != a.subType && clause.SubType != "*" {
				continue
			}
			data, err := a.doc.get()
			if err != nil {
				slog.Error("building the OpenAPI v2 document", "err", err)
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", a.contentType)
			w.Header().Set("Etag", strconv.Quote(s.v2ETag))
			if r.Header.Get("Range") == "" && acceptsGzip(r) {
				w.Header().Set("Content-Encoding", "gzip")
				data = a.doc.gzipped()
			}
			http.ServeContent(w, r, V2Path, s.v2Modified, bytes.NewReader(data))
			return
		}
	}
	w.WriteHeader(http.StatusNotAcceptable)
}

// acceptsGzip reports whether the request's Accept-Encoding takes gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(part, ";")
		if strings.TrimSpace(coding) != "gzip" {
			continue
		}
		q, found := strings.CutPrefix(strings.TrimSpace(params), "q=")
		if !found {
			return true
		}
		weight, err := strconv.ParseFloat(q, 64)
		return err == nil && weight > 0
	}
	return false
}

// computeETag is upstream's: the hex SHA-512 of the JSON document.
func computeETag(data []byte) string {
	return fmt.Sprintf("%X", sha512.Sum512(data))
}

// representation is one encoding of a document, made once and kept with its gzip.
type representation struct {
	build func() ([]byte, error)

	once sync.Once
	data []byte
	err  error

	gzipOnce sync.Once
	gzip     []byte
}

func (r *representation) get() ([]byte, error) {
	r.once.Do(func() { r.data, r.err = r.build() })
	return r.data, r.err
}

// gzipped is the representation gzip-compressed; call it only after get succeeded.
func (r *representation) gzipped() []byte {
	r.gzipOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
		zw.Write(r.data)
		zw.Close()
		r.gzip = buf.Bytes()
	})
	return r.gzip
}
