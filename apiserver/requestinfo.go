package apiserver

import (
	"context"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-dev/skiff/apis"
)

// requestInfo is what a request path and method say, parsed the way upstream parses them:
//
//	/api/v1/namespaces/{ns}/{resource}/{name}/{subresource}
//	/apis/{group}/{version}/{resource}/{name}
//	/api/v1/watch/namespaces/{ns}/{resource}      (legacy watch)
type requestInfo struct {
	IsResourceRequest bool
	Path              string
	// Verb is the Kubernetes verb: get, list, watch, create, update, patch, delete,
	// deletecollection (or the lower-cased HTTP method for non-resource requests).
	Verb        string
	APIPrefix   string
	APIGroup    string
	APIVersion  string
	Namespace   string
	Resource    string
	Subresource string
	Name        string
	Parts       []string
	// resource is the served resource the request addresses, once routing has found it.
	resource *apis.Resource
}

func (ri *requestInfo) groupVersion() schema.GroupVersion {
	return schema.GroupVersion{Group: ri.APIGroup, Version: ri.APIVersion}
}

// resourceLabel is how metrics and logs name the resource ("pods", "pods/status").
func (ri *requestInfo) resourceLabel() string {
	if ri.Subresource != "" {
		return ri.Resource + "/" + ri.Subresource
	}
	return ri.Resource
}

var namespaceSubresources = sets.New("status", "finalize")

func parseRequestInfo(r *http.Request) *requestInfo {
	ri := &requestInfo{Path: r.URL.Path, Verb: strings.ToLower(r.Method)}
	parts := splitPath(r.URL.Path)
	if len(parts) < 2 || (parts[0] != "api" && parts[0] != "apis") {
		return ri
	}
	ri.APIPrefix = parts[0]
	parts = parts[1:]
	if ri.APIPrefix == "apis" {
		if len(parts) < 2 {
			return ri // /apis/{group}: discovery
		}
		ri.APIGroup, parts = parts[0], parts[1:]
	}
	ri.APIVersion, parts = parts[0], parts[1:]
	if len(parts) == 0 {
		return ri // discovery of a group version
	}
	ri.IsResourceRequest = true

	switch r.Method {
	case http.MethodPost:
		ri.Verb = "create"
	case http.MethodGet, http.MethodHead:
		ri.Verb = "get"
	case http.MethodPut:
		ri.Verb = "update"
	case http.MethodPatch:
		ri.Verb = "patch"
	case http.MethodDelete:
		ri.Verb = "delete"
	}
	if parts[0] == "watch" {
		parts = parts[1:]
		if ri.Verb == "get" {
			ri.Verb = "watch"
		}
	}
	if parts[0] == "namespaces" && len(parts) > 1 {
		ri.Namespace = parts[1]
		// /namespaces/{name} and /namespaces/{name}/{status|finalize} are the namespace itself
		if len(parts) == 2 || (len(parts) == 3 && namespaceSubresources.Has(parts[2])) {
			ri.Name = parts[1]
			ri.Namespace = ""
		} else {
			parts = parts[2:]
		}
	}
	ri.Parts = parts
	switch {
	case parts[0] == "namespaces" && ri.Name != "":
		ri.Resource = "namespaces"
		if len(parts) > 2 {
			ri.Subresource = parts[2]
		}
	default:
		if len(parts) >= 3 {
			ri.Subresource = parts[2]
		}
		if len(parts) >= 2 {
			ri.Name = parts[1]
		}
		ri.Resource = parts[0]
	}
	if ri.Name == "" && ri.Verb == "get" {
		ri.Verb = "list"
		if isWatch(r) {
			ri.Verb = "watch"
		}
	}
	if ri.Name == "" && ri.Verb == "delete" {
		ri.Verb = "deletecollection"
	}
	if ri.Verb == "get" && isWatch(r) {
		ri.Verb = "watch" // a watch of one object by name: upstream turns it into a field selector
	}
	return ri
}

// isWatch is upstream's reading of the watch parameter: present and not 0 or false (the
// Python client sends "True").
func isWatch(r *http.Request) bool {
	values := r.URL.Query()["watch"]
	return len(values) > 0 && values[0] != "0" && !strings.EqualFold(values[0], "false")
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

type ctxKey int

const (
	requestInfoKey ctxKey = iota
	userKey
)

func withRequestInfo(ctx context.Context, ri *requestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey, ri)
}

func requestInfoFrom(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(requestInfoKey).(*requestInfo)
	return ri
}

// isMutating reports whether a verb writes.
func isMutating(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

// isLongRunning reports whether a request streams (exempt from the request timeout and the
// in-flight limit, as upstream).
func isLongRunning(ri *requestInfo) bool {
	return ri.Verb == "watch" || ri.Subresource == "log" || ri.Subresource == "exec" ||
		ri.Subresource == "attach" || ri.Subresource == "portforward" || ri.Subresource == "proxy"
}
