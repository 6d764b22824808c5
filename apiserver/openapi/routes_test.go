package openapi

import (
	"reflect"
	"sort"
	"testing"

	"k8s.io/kube-openapi/pkg/spec3"
)

func v3Operation(t *testing.T, doc, path, method string) *spec3.Operation {
	t.Helper()
	d := documents(t).v3[doc]
	if d == nil {
		t.Fatalf("no v3 document %q", doc)
	}
	p := d.Paths.Paths[path]
	if p == nil {
		t.Fatalf("v3 %s has no path %s", doc, path)
	}
	op := map[string]*spec3.Operation{"get": p.Get, "put": p.Put, "post": p.Post, "patch": p.Patch, "delete": p.Delete}[method]
	if op == nil {
		t.Fatalf("v3 %s %s has no %s", doc, path, method)
	}
	return op
}

func TestOperationsAreNamedAndTaggedAsUpstream(t *testing.T) {
	cases := []struct {
		doc, path, method string
		id, action, desc  string
		gvk               string
	}{
		{"api/v1", "/api/v1/namespaces/{namespace}/pods", "get", "listCoreV1NamespacedPod", "list", "list or watch objects of kind Pod", "/v1/Pod"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods", "post", "createCoreV1NamespacedPod", "post", "create a Pod", "/v1/Pod"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods", "delete", "deleteCoreV1CollectionNamespacedPod", "deletecollection", "delete collection of Pod", "/v1/Pod"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}", "get", "readCoreV1NamespacedPod", "get", "read the specified Pod", "/v1/Pod"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}", "put", "replaceCoreV1NamespacedPod", "put", "replace the specified Pod", "/v1/Pod"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}", "patch", "patchCoreV1NamespacedPod", "patch", "partially update the specified Pod", "/v1/Pod"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}", "delete", "deleteCoreV1NamespacedPod", "delete", "delete a Pod", "/v1/Pod"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}/status", "patch", "patchCoreV1NamespacedPodStatus", "patch", "partially update status of the specified Pod", "/v1/Pod"},
		{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}/binding", "post", "createCoreV1NamespacedPodBinding", "post", "create binding of a Pod", "/v1/Binding"},
		{"api/v1", "/api/v1/pods", "get", "listCoreV1PodForAllNamespaces", "list", "list or watch objects of kind Pod", "/v1/Pod"},
		{"api/v1", "/api/v1/watch/namespaces/{namespace}/pods", "get", "watchCoreV1NamespacedPodList", "watchlist",
			"watch individual changes to a list of Pod. deprecated: use the 'watch' parameter with a list operation instead.", "/v1/Pod"},
		{"api/v1", "/api/v1/watch/namespaces/{namespace}/pods/{name}", "get", "watchCoreV1NamespacedPod", "watch",
			"watch changes to an object of kind Pod. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter.", "/v1/Pod"},
		{"api/v1", "/api/v1/watch/pods", "get", "watchCoreV1PodListForAllNamespaces", "watchlist",
			"watch individual changes to a list of Pod. deprecated: use the 'watch' parameter with a list operation instead.", "/v1/Pod"},
		{"api/v1", "/api/v1/nodes/{name}/status", "get", "readCoreV1NodeStatus", "get", "read status of the specified Node", "/v1/Node"},
		{"api/v1", "/api/v1/namespaces/{name}/finalize", "put", "replaceCoreV1NamespaceFinalize", "put", "replace finalize of the specified Namespace", "/v1/Namespace"},
		{"api/v1", "/api/v1/namespaces/{namespace}/events", "post", "createCoreV1NamespacedEvent", "post", "create an Event", "/v1/Event"},
		{"apis/apps/v1", "/apis/apps/v1/namespaces/{namespace}/replicasets/{name}/scale", "get", "readAppsV1NamespacedReplicaSetScale", "get", "read scale of the specified ReplicaSet", "autoscaling/v1/Scale"},
		{"apis/events.k8s.io/v1", "/apis/events.k8s.io/v1/namespaces/{namespace}/events", "get", "listEventsV1NamespacedEvent", "list", "list or watch objects of kind Event", "events.k8s.io/v1/Event"},
		{"apis/coordination.k8s.io/v1", "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}", "get", "readCoordinationV1NamespacedLease", "get", "read the specified Lease", "coordination.k8s.io/v1/Lease"},
		{"apis/authentication.k8s.io/v1", "/apis/authentication.k8s.io/v1/selfsubjectreviews", "post", "createAuthenticationV1SelfSubjectReview", "post", "create a SelfSubjectReview", "authentication.k8s.io/v1/SelfSubjectReview"},
		{"apis/authorization.k8s.io/v1", "/apis/authorization.k8s.io/v1/subjectaccessreviews", "post", "createAuthorizationV1SubjectAccessReview", "post", "create a SubjectAccessReview", "authorization.k8s.io/v1/SubjectAccessReview"},
	}
	for _, c := range cases {
		op := v3Operation(t, c.doc, c.path, c.method)
		if op.OperationId != c.id || op.Description != c.desc {
			t.Errorf("%s %s: %q %q, want %q %q", c.method, c.path, op.OperationId, op.Description, c.id, c.desc)
		}
		if op.Extensions["x-kubernetes-action"] != c.action {
			t.Errorf("%s %s: action %v, want %s", c.method, c.path, op.Extensions["x-kubernetes-action"], c.action)
		}
		gvk := asJSON(t, op.Extensions["x-kubernetes-group-version-kind"]).(map[string]interface{})
		if got := gvk["group"].(string) + "/" + gvk["version"].(string) + "/" + gvk["kind"].(string); got != c.gvk {
			t.Errorf("%s %s: kind %s, want %s", c.method, c.path, got, c.gvk)
		}
	}

	discovery := []struct{ doc, path, id, tag string }{
		{"api", "/api/", "getCoreAPIVersions", "core"},
		{"apis", "/apis/", "getAPIVersions", "apis"},
		{"apis/apps", "/apis/apps/", "getAppsAPIGroup", "apps"},
		{"api/v1", "/api/v1/", "getCoreV1APIResources", "core_v1"},
		{"apis/coordination.k8s.io/v1", "/apis/coordination.k8s.io/v1/", "getCoordinationV1APIResources", "coordination_v1"},
		{"version", "/version/", "getCodeVersion", "version"},
	}
	for _, c := range discovery {
		op := v3Operation(t, c.doc, c.path, "get")
		if op.OperationId != c.id || !reflect.DeepEqual(op.Tags, []string{c.tag}) {
			t.Errorf("GET %s: %s %v, want %s [%s]", c.path, op.OperationId, op.Tags, c.id, c.tag)
		}
	}
}

func parameterNames(params []*spec3.Parameter) []string {
	var names []string
	for _, p := range params {
		names = append(names, p.Name)
	}
	return names
}

func TestParametersAsUpstreamsInstallerLaysThemOut(t *testing.T) {
	doc := documents(t).v3["api/v1"]
	collection := doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods"]
	// what every operation of a path shares is the path's
	if got := parameterNames(collection.Parameters); !reflect.DeepEqual(got, []string{"namespace", "pretty"}) {
		t.Errorf("collection path parameters = %v", got)
	}
	list := []string{"allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion",
		"resourceVersionMatch", "sendInitialEvents", "shardSelector", "timeoutSeconds", "watch"}
	if got := parameterNames(collection.Get.Parameters); !reflect.DeepEqual(got, list) {
		t.Errorf("list parameters = %v\nwant %v", got, list)
	}
	if got := parameterNames(collection.Post.Parameters); !reflect.DeepEqual(got, []string{"dryRun", "fieldManager", "fieldValidation"}) {
		t.Errorf("create parameters = %v", got)
	}
	deleteCollection := parameterNames(collection.Delete.Parameters)
	for _, p := range deleteCollection {
		if p == "watch" || p == "allowWatchBookmarks" {
			t.Errorf("deletecollection takes %s", p)
		}
	}
	if collection.Delete.RequestBody == nil || collection.Delete.RequestBody.Required {
		t.Errorf("deletecollection body should be optional: %+v", collection.Delete.RequestBody)
	}

	item := doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}"]
	if got := parameterNames(item.Parameters); !reflect.DeepEqual(got, []string{"name", "namespace", "pretty"}) {
		t.Errorf("item path parameters = %v", got)
	}
	if item.Parameters[0].Description != "name of the Pod" || !item.Parameters[0].Required || item.Parameters[0].In != "path" {
		t.Errorf("name parameter = %+v", item.Parameters[0].ParameterProps)
	}
	if got := parameterNames(item.Patch.Parameters); !reflect.DeepEqual(got, []string{"dryRun", "fieldManager", "fieldValidation", "force"}) {
		t.Errorf("patch parameters = %v", got)
	}
	var patchTypes []string
	for ct := range item.Patch.RequestBody.Content {
		patchTypes = append(patchTypes, ct)
	}
	sort.Strings(patchTypes)
	if want := []string{"application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"}; !reflect.DeepEqual(patchTypes, want) {
		t.Errorf("patch consumes %v", patchTypes)
	}
	if got := parameterNames(item.Delete.Parameters); !reflect.DeepEqual(got, []string{"dryRun", "gracePeriodSeconds",
		"ignoreStoreReadErrorWithClusterBreakingPotential", "orphanDependents", "propagationPolicy"}) {
		t.Errorf("delete parameters = %v", got)
	}
	// pods answer a delete with the pod, the rest with a Status
	if ref := item.Delete.Responses.StatusCodeResponses[200].Content["application/json"].Schema.Ref.String(); ref != "#/components/schemas/io.k8s.api.core.v1.Pod" {
		t.Errorf("pod delete answers %s", ref)
	}
	node := doc.Paths.Paths["/api/v1/nodes/{name}"]
	if ref := node.Delete.Responses.StatusCodeResponses[200].Content["application/json"].Schema.Ref.String(); ref != "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Status" {
		t.Errorf("node delete answers %s", ref)
	}
	if item.Put.RequestBody == nil || !item.Put.RequestBody.Required || item.Put.RequestBody.Content["*/*"] == nil {
		t.Errorf("replace body = %+v", item.Put.RequestBody)
	}
	var codes []int
	for code := range item.Put.Responses.StatusCodeResponses {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	if !reflect.DeepEqual(codes, []int{200, 201, 401}) {
		t.Errorf("replace answers %v", codes)
	}
	var listTypes []string
	for ct := range collection.Get.Responses.StatusCodeResponses[200].Content {
		listTypes = append(listTypes, ct)
	}
	sort.Strings(listTypes)
	if want := []string{"application/json", "application/json;stream=watch", "application/vnd.kubernetes.protobuf",
		"application/vnd.kubernetes.protobuf;stream=watch", "application/yaml"}; !reflect.DeepEqual(listTypes, want) {
		t.Errorf("list produces %v", listTypes)
	}
}

func TestV2SharesParametersAndSecurityAsUpstream(t *testing.T) {
	v2 := documents(t).v2
	if v2.Info.Title != "Kubernetes" || v2.Info.Version != "v1.37.0" || v2.Swagger != "2.0" {
		t.Errorf("info = %+v, swagger %s", v2.Info, v2.Swagger)
	}
	if !reflect.DeepEqual(v2.Security, []map[string][]string{{"BearerToken": {}}}) || v2.SecurityDefinitions["BearerToken"] == nil {
		t.Errorf("security = %v %v", v2.Security, v2.SecurityDefinitions)
	}
	item := v2.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}"]
	if item.Patch == nil || item.Patch.ID != "patchCoreV1NamespacedPod" {
		t.Fatalf("v2 pod patch = %+v", item.Patch)
	}
	if !reflect.DeepEqual(item.Patch.Consumes, []string{"application/json-patch+json", "application/merge-patch+json",
		"application/strategic-merge-patch+json", "application/apply-patch+yaml"}) {
		t.Errorf("v2 patch consumes %v", item.Patch.Consumes)
	}
	if !reflect.DeepEqual(item.Get.Produces, []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}) {
		t.Errorf("v2 read produces %v", item.Get.Produces)
	}
	if !reflect.DeepEqual(item.Get.Schemes, []string{"https"}) || !reflect.DeepEqual(item.Get.Consumes, []string{"*/*"}) {
		t.Errorf("v2 read schemes %v consumes %v", item.Get.Schemes, item.Get.Consumes)
	}
	// parameters every operation repeats are shared under #/parameters, by upstream's names
	shared := false
	for _, p := range item.Parameters {
		if p.Ref.String() != "" {
			shared = true
		}
	}
	if !shared || len(v2.Parameters) == 0 {
		t.Errorf("v2 parameters are not shared: %v", item.Parameters)
	}
	if _, ok := v2.Parameters["body-2Y1dVQaQ"]; !ok {
		names := make([]string, 0, len(v2.Parameters))
		for n := range v2.Parameters {
			names = append(names, n)
		}
		t.Errorf("no shared body-2Y1dVQaQ parameter among %v", names)
	}
	if r := item.Get.Responses.StatusCodeResponses[401]; r.Description != "Unauthorized" {
		t.Errorf("401 = %+v", r)
	}
	if s := v2.Definitions["io.k8s.api.core.v1.Pod"]; s.Extensions["x-kubernetes-group-version-kind"] == nil {
		t.Errorf("v2 Pod has no kinds: %v", s.Extensions)
	}
	if _, ok := v2.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/replicasets/{name}/scale"]; !ok {
		t.Errorf("v2 has no scale path")
	}
}
