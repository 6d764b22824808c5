package openapi

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/schemamutation"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff-dev/skiff/apis"
)

// Config is what the documents are built from.
type Config struct {
	// Resources is the apis table; apis.Scheme knows their kinds, and a definition of a
	// registered type carries every kind it is registered as (x-kubernetes-group-version-kind).
	Resources []*apis.Resource
	// DeleteReturnsObject reports whether a completed delete of the resource answers with the
	// deleted object (pods) rather than a Status; the delete operation's response says which.
	DeleteReturnsObject func(*apis.Resource) bool
	// GitVersion is the server's version ("v1.37.0"), the documents' info.version.
	GitVersion string
	// Published are documents built elsewhere (custom resources' from their schemas), merged
	// into /openapi/v2 and served under /openapi/v3 by their group version.
	Published []Published
}

// Published is the OpenAPI of one resource that has no Go types: its v2 paths and
// definitions, and its v3 document, served as /openapi/v3/<Path> ("apis/<group>/<version>").
type Published struct {
	Path string
	V2   *spec.Swagger
	V3   *spec3.OpenAPI
}

// documentVersion is the info.version upstream's server completes its OpenAPI config with.
func (c Config) documentVersion() string {
	if c.GitVersion == "" {
		return "unversioned"
	}
	return strings.Split(c.GitVersion, "-")[0]
}

// definitionNamer names definitions after their models and tags the definitions of
// registered kinds with every group, version and kind they are registered as, sorted, as
// upstream's DefinitionNamer does.
type definitionNamer map[string][]metav1.GroupVersionKind

func newDefinitionNamer(scheme *runtime.Scheme) definitionNamer {
	n := definitionNamer{}
	for gvk, t := range scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		name := modelName(t)
		g := metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}
		if !containsGVK(n[name], g) {
			n[name] = append(n[name], g)
		}
	}
	for _, gvks := range n {
		sort.Slice(gvks, func(i, j int) bool {
			a, b := gvks[i], gvks[j]
			if a.Group != b.Group {
				return a.Group < b.Group
			}
			if a.Version != b.Version {
				return a.Version < b.Version
			}
			return a.Kind < b.Kind
		})
	}
	return n
}

func containsGVK(list []metav1.GroupVersionKind, g metav1.GroupVersionKind) bool {
	for _, x := range list {
		if x == g {
			return true
		}
	}
	return false
}

func (n definitionNamer) definitionName(model string) (string, spec.Extensions) {
	gvks, ok := n[model]
	if !ok {
		return definitionName(model), nil
	}
	list := make([]interface{}, len(gvks))
	for i, g := range gvks {
		list[i] = map[string]interface{}{"group": g.Group, "version": g.Version, "kind": g.Kind}
	}
	return definitionName(model), spec.Extensions{extGVK: list}
}

// routeModels are the Go types the routes read and write: the roots of the definitions.
func routeModels(services []*webService) []reflect.Type {
	seen := map[reflect.Type]bool{}
	var out []reflect.Type
	add := func(v interface{}) {
		if v == nil {
			return
		}
		t := reflect.TypeOf(v)
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, ws := range services {
		for _, r := range ws.routes {
			add(r.RequestPayloadSample())
			add(r.ResponsePayloadSample())
			for _, resp := range r.StatusCodeResponses() {
				add(resp.Model())
			}
		}
	}
	return out
}

// documentSet is everything the documents are built from, derived once.
type documentSet struct {
	cfg      Config
	services []*webService
	models   []reflect.Type
	namer    definitionNamer
	merge    *mergeSchema
}

func newDocumentSet(cfg Config) (*documentSet, error) {
	if cfg.DeleteReturnsObject == nil {
		cfg.DeleteReturnsObject = func(*apis.Resource) bool { return false }
	}
	services, err := webServices(cfg.Resources, cfg.DeleteReturnsObject)
	if err != nil {
		return nil, err
	}
	merge, err := loadMergeSchema()
	if err != nil {
		return nil, err
	}
	return &documentSet{cfg: cfg, services: services, models: routeModels(services),
		namer: newDefinitionNamer(apis.Scheme), merge: merge}, nil
}

func (d *documentSet) definitions(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
	return writeDefinitions(ref, d.merge, d.models)
}

func (d *documentSet) info() *spec.Info {
	return &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: d.cfg.documentVersion()}}
}

const bearerToken = "BearerToken"

// v2 is the OpenAPI v2 document of every path, as /openapi/v2 serves it: built by
// kube-openapi's builder, without defaults (upstream prunes them from v2 for clients that
// mistake them for values).
func (d *documentSet) v2() (*spec.Swagger, error) {
	containers := make([]common.RouteContainer, len(d.services))
	for i, ws := range d.services {
		containers[i] = ws
	}
	swagger, err := builder.BuildOpenAPISpecFromRoutes(containers, &common.Config{
		ProtocolList:                   []string{"https"},
		Info:                           d.info(),
		DefaultResponse:                &spec.Response{ResponseProps: spec.ResponseProps{Description: "Default Response."}},
		CommonResponses:                map[int]spec.Response{401: {ResponseProps: spec.ResponseProps{Description: "Unauthorized"}}},
		GetOperationIDAndTagsFromRoute: operationIDAndTags,
		GetDefinitionName:              d.namer.definitionName,
		GetDefinitions:                 d.definitions,
		SecurityDefinitions: &spec.SecurityDefinitions{bearerToken: &spec.SecurityScheme{SecuritySchemeProps: spec.SecuritySchemeProps{
			Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication"}}},
		DefaultSecurity: []map[string][]string{{bearerToken: {}}},
	})
	if err != nil {
		return nil, fmt.Errorf("openapi v2: %w", err)
	}
	swagger.Definitions = pruneDefaults(swagger.Definitions)
	for _, p := range d.cfg.Published {
		mergeSwagger(swagger, p.V2)
	}
	return swagger, nil
}

// mergeSwagger adds extra's paths and the definitions swagger lacks (those of the built-in
// types a published document refers to are the same), as upstream's aggregator merges
// custom resources' specs.
func mergeSwagger(swagger, extra *spec.Swagger) {
	if extra == nil {
		return
	}
	if extra.Paths != nil {
		if swagger.Paths == nil {
			swagger.Paths = &spec.Paths{Paths: map[string]spec.PathItem{}}
		}
		for path, item := range extra.Paths.Paths {
			swagger.Paths.Paths[path] = item
		}
	}
	for name, def := range extra.Definitions {
		if _, ok := swagger.Definitions[name]; !ok {
			if swagger.Definitions == nil {
				swagger.Definitions = spec.Definitions{}
			}
			swagger.Definitions[name] = def
		}
	}
}

// mergeV3 adds extra's paths and schemas to doc (two custom resources in one group version).
func mergeV3(doc, extra *spec3.OpenAPI) *spec3.OpenAPI {
	if doc == nil {
		return extra
	}
	if extra.Paths != nil {
		if doc.Paths == nil {
			doc.Paths = &spec3.Paths{Paths: map[string]*spec3.Path{}}
		}
		for path, item := range extra.Paths.Paths {
			doc.Paths.Paths[path] = item
		}
	}
	if extra.Components != nil {
		if doc.Components == nil {
			doc.Components = &spec3.Components{}
		}
		if doc.Components.Schemas == nil {
			doc.Components.Schemas = map[string]*spec.Schema{}
		}
		for name, schema := range extra.Components.Schemas {
			if _, ok := doc.Components.Schemas[name]; !ok {
				doc.Components.Schemas[name] = schema
			}
		}
	}
	return doc
}

// v3 is one OpenAPI v3 document per root path, keyed as /openapi/v3 lists them ("api/v1",
// "apis/apps/v1", "apis/apps", "version", ...), built by kube-openapi's builder3.
func (d *documentSet) v3() (map[string]*spec3.OpenAPI, error) {
	config := &common.OpenAPIV3Config{
		Info:                           d.info(),
		DefaultResponse:                &spec3.Response{ResponseProps: spec3.ResponseProps{Description: "Default Response."}},
		CommonResponses:                map[int]*spec3.Response{401: {ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}}},
		GetOperationIDAndTagsFromRoute: operationIDAndTags,
		GetDefinitionName:              d.namer.definitionName,
		SecuritySchemes: spec3.SecuritySchemes{bearerToken: &spec3.SecurityScheme{SecuritySchemeProps: spec3.SecuritySchemeProps{
			Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication"}}},
	}
	config.Definitions = d.definitions(func(model string) spec.Ref {
		name, _ := d.namer.definitionName(model)
		return spec.MustCreateRef("#/components/schemas/" + common.EscapeJsonPointer(name))
	})
	docs := map[string]*spec3.OpenAPI{}
	for _, ws := range d.services {
		// builder3 writes into the definitions it is given; every document gets its own copy.
		c := *config
		c.Definitions = copyDefinitions(config.Definitions)
		doc, err := builder3.BuildOpenAPISpecFromRoutes([]common.RouteContainer{ws}, &c)
		if err != nil {
			return nil, fmt.Errorf("openapi v3 %s: %w", ws.root, err)
		}
		docs[strings.TrimPrefix(ws.root, "/")] = doc
	}
	for _, p := range d.cfg.Published {
		if p.V3 != nil {
			docs[p.Path] = mergeV3(docs[p.Path], p.V3)
		}
	}
	return docs, nil
}

// copyDefinitions copies the definitions deep enough that a builder adding and removing
// extensions on one copy leaves the others alone.
func copyDefinitions(defs map[string]common.OpenAPIDefinition) map[string]common.OpenAPIDefinition {
	out := make(map[string]common.OpenAPIDefinition, len(defs))
	for name, def := range defs {
		if def.Schema.Extensions != nil {
			ext := make(spec.Extensions, len(def.Schema.Extensions))
			for k, v := range def.Schema.Extensions {
				ext[k] = v
			}
			def.Schema.Extensions = ext
		}
		out[name] = def
	}
	return out
}

// pruneDefaults removes every default from the definitions, as upstream's v2 handler does.
func pruneDefaults(defs spec.Definitions) spec.Definitions {
	walker := schemamutation.Walker{
		SchemaCallback: func(s *spec.Schema) *spec.Schema {
			if s.Default == nil {
				return s
			}
			clone := *s
			clone.Default = nil
			return &clone
		},
		RefCallback: schemamutation.RefCallbackNoop,
	}
	out := make(spec.Definitions, len(defs))
	for name, s := range defs {
		out[name] = *walker.WalkSchema(&s)
	}
	return out
}
