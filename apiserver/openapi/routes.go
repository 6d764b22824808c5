package openapi

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/kube-openapi/pkg/common"

	"github.com/skiff-dev/skiff/apis"
)

// The routes here are the ones upstream's endpoint installer (k8s.io/apiserver
// pkg/endpoints/installer.go) and discovery handlers register with go-restful, rebuilt from
// the apis table as kube-openapi's route interfaces: the same paths, operation names,
// descriptions, parameters, media types and responses, so that kube-openapi builds the same
// documents from them.

// webService is the routes under one root path (/api/v1, /apis/apps/v1, /apis/apps, ...):
// one OpenAPI v3 document each.
type webService struct {
	root   string
	routes []common.Route
}

var _ common.RouteContainer = &webService{}

func (ws *webService) RootPath() string                   { return ws.root }
func (ws *webService) PathParameters() []common.Parameter { return nil }
func (ws *webService) Routes() []common.Route             { return ws.routes }

// route is one operation on one path.
type route struct {
	method, path, operation, doc string
	params                       []common.Parameter
	consumes, produces           []string
	metadata                     map[string]interface{}
	reads, writes                interface{}
	responses                    []common.StatusCodeResponse
}

var _ common.Route = &route{}

func (r *route) Method() string                                   { return r.method }
func (r *route) Path() string                                     { return r.path }
func (r *route) OperationName() string                            { return r.operation }
func (r *route) Parameters() []common.Parameter                   { return r.params }
func (r *route) Description() string                              { return r.doc }
func (r *route) Consumes() []string                               { return r.consumes }
func (r *route) Produces() []string                               { return r.produces }
func (r *route) Metadata() map[string]interface{}                 { return r.metadata }
func (r *route) RequestPayloadSample() interface{}                { return r.reads }
func (r *route) ResponsePayloadSample() interface{}               { return r.writes }
func (r *route) StatusCodeResponses() []common.StatusCodeResponse { return r.responses }

type parameter struct {
	name, description, dataType string
	required                    bool
	kind                        common.ParameterKind
}

var _ common.Parameter = parameter{}

func (p parameter) Name() string               { return p.name }
func (p parameter) Description() string        { return p.description }
func (p parameter) Required() bool             { return p.required }
func (p parameter) Kind() common.ParameterKind { return p.kind }
func (p parameter) DataType() string           { return p.dataType }
func (p parameter) AllowMultiple() bool        { return false }

type response struct {
	code    int
	message string
	model   interface{}
}

var _ common.StatusCodeResponse = response{}

func (r response) Code() int          { return r.code }
func (r response) Message() string    { return r.message }
func (r response) Model() interface{} { return r.model }

func pathParameter(name, description string) parameter {
	return parameter{name: name, description: description, dataType: "string", required: true, kind: common.PathParameterKind}
}

func queryParameter(name, description, dataType string) parameter {
	return parameter{name: name, description: description, dataType: dataType, kind: common.QueryParameterKind}
}

// bodyParameter is go-restful's body parameter for Reads: named "body", required unless the
// body may be left out (deletes).
func bodyParameter(required bool) parameter {
	return parameter{name: "body", required: required, kind: common.BodyParameterKind}
}

var (
	prettyParameter = queryParameter("pretty", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).", "string")
	namespaceParam  = pathParameter("namespace", "object name and auth scope, such as for teams and projects")
)

// Media types of the built-in kinds' serializers, in the order upstream negotiates them.
var (
	mediaTypes       = []string{runtime.ContentTypeJSON, runtime.ContentTypeYAML, runtime.ContentTypeProtobuf}
	streamMediaTypes = []string{runtime.ContentTypeJSON + ";stream=watch", runtime.ContentTypeProtobuf + ";stream=watch"}
	allMediaTypes    = append(append([]string{}, mediaTypes...), streamMediaTypes...)
	patchTypes       = []string{string(types.JSONPatchType), string(types.MergePatchType), string(types.StrategicMergePatchType), string(types.ApplyYAMLPatchType)}
	anyMediaType     = []string{"*/*"}
)

// objectParameters are the query parameters of an options struct, as upstream's
// AddObjectParams derives them: one per field with a json name and a simple type, described
// by the options type's SwaggerDoc.
func objectParameters(options interface{}, excluded ...string) []common.Parameter {
	t := reflect.TypeOf(options)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	doc := swaggerDoc(t)
	var params []common.Parameter
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		ft := f.Type
		switch ft.Kind() {
		case reflect.Interface, reflect.Struct:
			continue
		case reflect.Pointer:
			if k := ft.Elem().Kind(); k == reflect.Interface || k == reflect.Struct {
				continue
			}
		}
		name := strings.SplitN(f.Tag.Get("json"), ",", 2)[0]
		if name == "" || name == "-" || contains(excluded, name) {
			continue
		}
		params = append(params, queryParameter(name, doc[name], parameterDataType(ft)))
	}
	return params
}

// parameterDataType is upstream's typeToJSON: query parameters are strings, integers,
// numbers or booleans; lists of strings are repeated strings.
func parameterDataType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		return parameterDataType(t.Elem())
	}
	return "string"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Options kinds are meta.k8s.io/v1's in every group, as upstream's optionsExternalVersion.
var (
	listParams   = objectParameters(metav1.ListOptions{})
	createParams = objectParameters(metav1.CreateOptions{})
	updateParams = objectParameters(metav1.UpdateOptions{})
	patchParams  = objectParameters(metav1.PatchOptions{})
	deleteParams = objectParameters(metav1.DeleteOptions{})
	// deletecollection takes list options, but never watches
	deleteCollectionListParams = objectParameters(metav1.ListOptions{}, "watch", "allowWatchBookmarks")
)

// groupVersionRoot is the path a group version is served under.
func groupVersionRoot(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "/api/" + gv.Version
	}
	return "/apis/" + gv.Group + "/" + gv.Version
}

// webServices are all of the server's route containers: the discovery documents (/api,
// /apis, /apis/<group>), /version, and every served group version with its resources.
func webServices(resources []*apis.Resource, deleteReturnsObject func(*apis.Resource) bool) ([]*webService, error) {
	services := []*webService{
		{root: "/api", routes: []common.Route{discoveryRoute("/api/", "get available API versions", "getAPIVersions", metav1.APIVersions{})}},
		{root: "/apis", routes: []common.Route{discoveryRoute("/apis/", "get available API versions", "getAPIVersions", metav1.APIGroupList{})}},
		{root: "/version", routes: []common.Route{&route{
			method: http.MethodGet, path: "/version/", operation: "getCodeVersion", doc: "get the code version",
			consumes: []string{runtime.ContentTypeJSON}, produces: []string{runtime.ContentTypeJSON}, writes: version.Info{},
		}}},
	}
	byRoot := map[string]*webService{}
	for _, res := range resources {
		gv := res.GroupVersion
		if gv.Group != "" && byRoot["/apis/"+gv.Group] == nil {
			ws := &webService{root: "/apis/" + gv.Group, routes: []common.Route{
				discoveryRoute("/apis/"+gv.Group+"/", "get information of a group", "getAPIGroup", metav1.APIGroup{})}}
			byRoot[ws.root] = ws
			services = append(services, ws)
		}
		root := groupVersionRoot(gv)
		ws := byRoot[root]
		if ws == nil {
			ws = &webService{root: root, routes: []common.Route{
				discoveryRoute(root+"/", "get available resources", "getAPIResources", metav1.APIResourceList{})}}
			byRoot[root] = ws
			services = append(services, ws)
		}
		for _, sub := range append([]string{""}, subresourceNames(res)...) {
			routes, err := resourceRoutes(res, sub, deleteReturnsObject(res))
			if err != nil {
				return nil, err
			}
			ws.routes = append(ws.routes, routes...)
		}
	}
	return services, nil
}

func subresourceNames(res *apis.Resource) []string {
	var names []string
	for _, sub := range res.Subresources {
		names = append(names, sub.Name)
	}
	return names
}

// discoveryRoute is a GET of a discovery document, which upstream answers in every media type
// of its serializers.
func discoveryRoute(path, doc, operation string, writes interface{}) *route {
	return &route{method: http.MethodGet, path: path, operation: operation, doc: doc,
		consumes: mediaTypes, produces: mediaTypes, writes: writes}
}

// action is one verb at one path, as the installer lists them.
type action struct {
	verb          string
	path          string
	params        []common.Parameter
	allNamespaces bool
}

// resourceRoutes are the routes of a resource (sub is "") or one of its subresources.
func resourceRoutes(res *apis.Resource, sub string, deleteReturnsObject bool) ([]common.Route, error) {
	gv := res.GroupVersion
	kind := res.Kind // a subresource's operations are named after its parent's kind
	verbs := res.Verbs
	objectGVK := res.GroupVersionKind()
	if sub != "" {
		s := res.Subresource(sub)
		verbs = s.Verbs
		objectGVK = gv.WithKind(s.Kind)
		if !s.GroupVersion.Empty() {
			objectGVK = s.GroupVersion.WithKind(s.Kind)
		}
	}
	object, err := apis.Scheme.New(objectGVK)
	if err != nil {
		return nil, fmt.Errorf("openapi: %s: %w", res.GroupVersionResource(), err)
	}
	produced := reflect.ValueOf(object).Elem().Interface()
	var list interface{}
	if l, err := apis.Scheme.New(gv.WithKind(res.ListKind())); err == nil {
		list = reflect.ValueOf(l).Elem().Interface()
	}

	has := func(verb string) bool { return contains(verbs, verb) }
	isLister, isWatcher := has("list"), has("watch")
	allowWatchList := isLister && isWatcher

	nameParam := pathParameter("name", "name of the "+objectGVK.Kind)
	var (
		resourcePath, itemPath     string
		resourceParams, itemParams []common.Parameter
	)
	if res.Namespaced {
		resourcePath = "namespaces/{namespace}/" + res.Name
		resourceParams = []common.Parameter{namespaceParam}
		itemParams = []common.Parameter{namespaceParam, nameParam}
	} else {
		resourcePath = res.Name
		itemParams = []common.Parameter{nameParam}
	}
	itemPath = resourcePath + "/{name}"
	if sub != "" {
		itemPath += "/" + sub
		resourcePath = itemPath
		resourceParams = itemParams
	}

	var actions []action
	appendIf := func(ok bool, a action) {
		if ok {
			actions = append(actions, a)
		}
	}
	appendIf(isLister, action{"LIST", resourcePath, resourceParams, false})
	appendIf(has("create"), action{"POST", resourcePath, resourceParams, false})
	appendIf(has("deletecollection"), action{"DELETECOLLECTION", resourcePath, resourceParams, false})
	appendIf(allowWatchList, action{"WATCHLIST", "watch/" + resourcePath, resourceParams, false})
	appendIf(has("get"), action{"GET", itemPath, itemParams, false})
	appendIf(has("update"), action{"PUT", itemPath, itemParams, false})
	appendIf(has("patch"), action{"PATCH", itemPath, itemParams, false})
	appendIf(has("delete"), action{"DELETE", itemPath, itemParams, false})
	appendIf(isWatcher, action{"WATCH", "watch/" + itemPath, itemParams, false})
	if res.Namespaced && sub == "" {
		appendIf(isLister, action{"LIST", res.Name, nil, true})
		appendIf(allowWatchList, action{"WATCHLIST", "watch/" + res.Name, nil, true})
	}

	root := groupVersionRoot(gv)
	var routes []common.Route
	for _, a := range actions {
		namespaced, suffix := "", ""
		if res.Namespaced {
			namespaced = "Namespaced"
		}
		if a.allNamespaces {
			namespaced, suffix = "", "ForAllNamespaces"
		}
		title := title(sub)
		r := &route{
			path:     root + "/" + a.path,
			consumes: anyMediaType,
			produces: mediaTypes,
			metadata: map[string]interface{}{
				extGVK:    metav1.GroupVersionKind{Group: objectGVK.Group, Version: objectGVK.Version, Kind: objectGVK.Kind},
				extAction: strings.ToLower(a.verb),
			},
		}
		params := []common.Parameter{prettyParameter}
		switch a.verb {
		case "GET":
			r.method, r.operation = http.MethodGet, "read"+namespaced+kind+title+suffix
			r.doc = pick(sub, "read the specified "+kind, "read "+sub+" of the specified "+kind)
			r.writes = produced
			r.responses = []common.StatusCodeResponse{response{http.StatusOK, "OK", produced}}
		case "LIST":
			r.method, r.operation = http.MethodGet, "list"+namespaced+kind+title+suffix
			r.doc = pick(sub, "list objects of kind "+kind, "list "+sub+" of objects of kind "+kind)
			if isWatcher {
				r.doc = pick(sub, "list or watch objects of kind "+kind, "list or watch "+sub+" of objects of kind "+kind)
			}
			r.produces = allMediaTypes
			r.writes = list
			r.responses = []common.StatusCodeResponse{response{http.StatusOK, "OK", list}}
			params = append(params, listParams...)
		case "PUT":
			r.method, r.operation = http.MethodPut, "replace"+namespaced+kind+title+suffix
			r.doc = pick(sub, "replace the specified "+kind, "replace "+sub+" of the specified "+kind)
			r.reads, r.writes = produced, produced
			r.responses = []common.StatusCodeResponse{
				response{http.StatusOK, "OK", produced}, response{http.StatusCreated, "Created", produced}}
			params = append(append(params, bodyParameter(true)), updateParams...)
		case "PATCH":
			r.method, r.operation = http.MethodPatch, "patch"+namespaced+kind+title+suffix
			r.doc = pick(sub, "partially update the specified "+kind, "partially update "+sub+" of the specified "+kind)
			r.consumes = patchTypes
			r.reads, r.writes = metav1.Patch{}, produced
			r.responses = []common.StatusCodeResponse{
				response{http.StatusOK, "OK", produced}, response{http.StatusCreated, "Created", produced}}
			params = append(append(params, bodyParameter(true)), patchParams...)
		case "POST":
			r.method, r.operation = http.MethodPost, "create"+namespaced+kind+title+suffix
			article := articleFor(kind)
			r.doc = pick(sub, "create"+article+kind, "create "+sub+" of"+article+kind)
			r.reads, r.writes = produced, produced
			r.responses = []common.StatusCodeResponse{
				response{http.StatusOK, "OK", produced}, response{http.StatusCreated, "Created", produced},
				response{http.StatusAccepted, "Accepted", produced}}
			params = append(append(params, bodyParameter(true)), createParams...)
		case "DELETE":
			r.method, r.operation = http.MethodDelete, "delete"+namespaced+kind+title+suffix
			article := articleFor(kind)
			r.doc = pick(sub, "delete"+article+kind, "delete "+sub+" of"+article+kind)
			var returned interface{} = metav1.Status{}
			if deleteReturnsObject {
				returned = produced
			}
			r.reads, r.writes = metav1.DeleteOptions{}, returned
			r.responses = []common.StatusCodeResponse{
				response{http.StatusOK, "OK", returned}, response{http.StatusAccepted, "Accepted", returned}}
			params = append(append(params, bodyParameter(false)), deleteParams...)
		case "DELETECOLLECTION":
			r.method, r.operation = http.MethodDelete, "deletecollection"+namespaced+kind+title+suffix
			r.doc = pick(sub, "delete collection of "+kind, "delete collection of "+sub+" of a "+kind)
			r.reads, r.writes = metav1.DeleteOptions{}, metav1.Status{}
			r.responses = []common.StatusCodeResponse{response{http.StatusOK, "OK", metav1.Status{}}}
			params = append(append(append(params, bodyParameter(false)), deleteParams...), deleteCollectionListParams...)
		case "WATCH":
			r.method, r.operation = http.MethodGet, "watch"+namespaced+kind+title+suffix
			r.doc = pick(sub, "watch changes to an object of kind "+kind, "watch changes to "+sub+" of an object of kind "+kind) +
				". deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."
			r.produces = allMediaTypes
			r.writes = metav1.WatchEvent{}
			r.responses = []common.StatusCodeResponse{response{http.StatusOK, "OK", metav1.WatchEvent{}}}
			params = append(params, listParams...)
		case "WATCHLIST":
			r.method, r.operation = http.MethodGet, "watch"+namespaced+kind+title+"List"+suffix
			r.doc = pick(sub, "watch individual changes to a list of "+kind, "watch individual changes to a list of "+sub+" of "+kind) +
				". deprecated: use the 'watch' parameter with a list operation instead."
			r.produces = allMediaTypes
			r.writes = metav1.WatchEvent{}
			r.responses = []common.StatusCodeResponse{response{http.StatusOK, "OK", metav1.WatchEvent{}}}
			params = append(params, listParams...)
		}
		r.params = append(params, a.params...)
		routes = append(routes, r)
	}
	return routes, nil
}

func pick(sub, main, subresource string) string {
	if sub == "" {
		return main
	}
	return subresource
}

// title is strings.Title of a subresource name ("status" → "Status").
func title(s string) string {
	if s == "" {
		return ""
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// articleFor is upstream's GetArticleForNoun with blank padding: " a ", " an ", or " " for
// plurals.
func articleFor(noun string) string {
	if !strings.HasSuffix(noun, "ss") && strings.HasSuffix(noun, "s") {
		return " "
	}
	if strings.ContainsRune("aeiou", unicode.ToLower(rune(noun[0]))) {
		return " an "
	}
	return " a "
}

// operationIDAndTags is upstream's GetOperationIDAndTags (k8s.io/apiserver
// pkg/endpoints/openapi): the route's operation with its group and version spliced in after
// the verb ("listNamespacedPod" at /api/v1 → "listCoreV1NamespacedPod"), and the group and
// version as the tag ("core_v1").
func operationIDAndTags(r common.Route) (string, []string, error) {
	op := r.OperationName()
	prefix := verbPrefix(op)
	if prefix == "" {
		return op, nil, fmt.Errorf("operation names should start with a verb. Cannot determine operation verb from %v", op)
	}
	op = op[len(prefix):]
	var tags []string
	parts := strings.Split(strings.Trim(r.Path(), "/"), "/")
	if len(parts) >= 1 && parts[0] == "api" {
		parts = append([]string{"apis", "core"}, parts[1:]...)
	}
	if len(parts) >= 2 && parts[0] == "apis" {
		trimmed := strings.TrimSuffix(parts[1], ".k8s.io")
		prefix += validOperationID(trimmed, true)
		tag := validOperationID(trimmed, false)
		if len(parts) > 2 {
			prefix += validOperationID(parts[2], true)
			tag += "_" + validOperationID(parts[2], false)
		}
		tags = append(tags, tag)
	} else if len(parts) >= 1 {
		tags = append(tags, validOperationID(parts[0], false))
	}
	return prefix + validOperationID(op, true), tags, nil
}

// operationVerbs are the verbs operation names start with; the shortest one that prefixes a
// name is its verb, as upstream's trie finds it ("deletecollection..." is "delete").
var operationVerbs = []string{"get", "log", "read", "replace", "patch", "delete", "deletecollection", "watch", "connect", "proxy", "list", "create"}

func verbPrefix(op string) string {
	best := ""
	for _, v := range operationVerbs {
		if strings.HasPrefix(op, v) && (best == "" || len(v) < len(best)) {
			best = v
		}
	}
	return best
}

// validOperationID is upstream's ToValidOperationID: letters, digits and underscores kept,
// anything else dropped with the next letter capitalized.
func validOperationID(s string, capitalizeFirst bool) string {
	var b strings.Builder
	capitalize := capitalizeFirst
	for i, r := range s {
		if unicode.IsLetter(r) || r == '_' || (i != 0 && unicode.IsDigit(r)) {
			if capitalize {
				b.WriteRune(unicode.ToUpper(r))
				capitalize = false
			} else {
				b.WriteRune(r)
			}
		} else {
			capitalize = true
		}
	}
	return b.String()
}
