// Package apis declares every resource skiff serves, once. Discovery, routing, storage and
// (later) OpenAPI read this table; nobody keeps a second list. It also holds the scheme, the
// defaulting and validation of each kind, and the fields each kind can be selected by.
//
// This package never touches storage or HTTP.
package apis

import (
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Verbs upstream uses in discovery.
var (
	verbsAll        = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	verbsNoCollect  = []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	verbsGetPatchUp = []string{"get", "patch", "update"}
)

// Resource is one served resource in one group version.
type Resource struct {
	GroupVersion schema.GroupVersion
	// Name is the plural, lower-case resource name used in URLs ("pods").
	Name         string
	SingularName string
	Kind         string
	Namespaced   bool
	Verbs        []string
	ShortNames   []string
	Categories   []string
	Subresources []Subresource

	// Review marks a resource that is only ever created and answered, never stored (the
	// authentication and authorization reviews): it has no storage and no watch cache.
	Review bool

	// StorageKey is the segment under /registry/ that holds this resource in etcd, as upstream
	// lays it out ("minions" for nodes).
	StorageKey string
	// StorageVersion is the group version objects are encoded in in etcd. Resources that share
	// storage (v1 and events.k8s.io/v1 events) share it too.
	StorageVersion schema.GroupVersion
	// Fields returns the field-selectable values of an object: metadata.name, metadata.namespace
	// for namespaced resources, and what upstream adds per kind. The keys it returns for an empty
	// object are the field labels the resource supports.
	Fields func(runtime.Object) fields.Set
	// IndexedField is a field that many watchers select by exact value (spec.nodeName for
	// pods: every kubelet watches its own), so that the watch cache hands each event only to
	// the watchers of its values, as upstream's pod trigger index; "" for none.
	IndexedField string
}

// Subresource is a child path of a resource (pods/status, replicasets/scale).
type Subresource struct {
	Name string
	// Kind is the kind the subresource reads and writes; GroupVersion is empty when it is the
	// parent's (autoscaling/v1 Scale is not).
	Kind         string
	GroupVersion schema.GroupVersion
	Verbs        []string
}

// GroupVersionResource of the resource.
func (r *Resource) GroupVersionResource() schema.GroupVersionResource {
	return r.GroupVersion.WithResource(r.Name)
}

// GroupVersionKind of the resource's objects.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return r.GroupVersion.WithKind(r.Kind)
}

// ListKind is the kind of the resource's lists.
func (r *Resource) ListKind() string { return r.Kind + "List" }

// New returns an empty object of the resource's kind.
func (r *Resource) New() runtime.Object {
	obj, err := Scheme.New(r.GroupVersionKind())
	if err != nil {
		panic(err) // the table and the scheme disagree: a programming error
	}
	return obj
}

// NewList returns an empty list of the resource's kind.
func (r *Resource) NewList() runtime.Object {
	obj, err := Scheme.New(r.GroupVersion.WithKind(r.ListKind()))
	if err != nil {
		panic(err)
	}
	return obj
}

// Subresource returns the named subresource, or nil.
func (r *Resource) Subresource(name string) *Subresource {
	for i := range r.Subresources {
		if r.Subresources[i].Name == name {
			return &r.Subresources[i]
		}
	}
	return nil
}

var (
	coreV1         = schema.GroupVersion{Version: "v1"}
	appsV1         = schema.GroupVersion{Group: "apps", Version: "v1"}
	coordinationV1 = schema.GroupVersion{Group: "coordination.k8s.io", Version: "v1"}
	eventsV1       = schema.GroupVersion{Group: "events.k8s.io", Version: "v1"}
	schedulingV1   = schema.GroupVersion{Group: "scheduling.k8s.io", Version: "v1"}
	discoveryV1    = schema.GroupVersion{Group: "discovery.k8s.io", Version: "v1"}
	authnV1        = schema.GroupVersion{Group: "authentication.k8s.io", Version: "v1"}
	authzV1        = schema.GroupVersion{Group: "authorization.k8s.io", Version: "v1"}
	autoscalingV1  = schema.GroupVersion{Group: "autoscaling", Version: "v1"}
)

// Resources is the table of everything skiff serves, in discovery order.
var Resources = []*Resource{
	{
		GroupVersion: coreV1, Name: "pods", SingularName: "pod", Kind: "Pod", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"po"}, Categories: []string{"all"},
		Subresources: []Subresource{
			{Name: "status", Kind: "Pod", Verbs: verbsGetPatchUp},
			{Name: "binding", Kind: "Binding", Verbs: []string{"create"}},
			{Name: "log", Kind: "Pod", Verbs: []string{"get"}},
			{Name: "exec", Kind: "PodExecOptions", Verbs: []string{"create", "get"}},
			{Name: "attach", Kind: "PodAttachOptions", Verbs: []string{"create", "get"}},
			{Name: "portforward", Kind: "PodPortForwardOptions", Verbs: []string{"create", "get"}},
		},
		StorageKey: "pods", StorageVersion: coreV1, Fields: podFields, IndexedField: "spec.nodeName",
	},
	{
		GroupVersion: coreV1, Name: "nodes", SingularName: "node", Kind: "Node",
		Verbs: verbsAll, ShortNames: []string{"no"},
		Subresources: []Subresource{
			{Name: "status", Kind: "Node", Verbs: verbsGetPatchUp},
			{Name: "proxy", Kind: "NodeProxyOptions", Verbs: []string{"create", "delete", "get", "patch", "update"}},
		},
		StorageKey: "minions", StorageVersion: coreV1, Fields: nodeFields,
	},
	{
		GroupVersion: coreV1, Name: "namespaces", SingularName: "namespace", Kind: "Namespace",
		Verbs: verbsNoCollect, ShortNames: []string{"ns"},
		Subresources: []Subresource{
			{Name: "status", Kind: "Namespace", Verbs: verbsGetPatchUp},
			{Name: "finalize", Kind: "Namespace", Verbs: []string{"update"}},
		},
		StorageKey: "namespaces", StorageVersion: coreV1, Fields: namespaceFields,
	},
	{
		GroupVersion: coreV1, Name: "events", SingularName: "event", Kind: "Event", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"ev"},
		StorageKey: "events", StorageVersion: coreV1, Fields: eventFields,
	},
	{
		GroupVersion: coreV1, Name: "configmaps", SingularName: "configmap", Kind: "ConfigMap", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"cm"},
		StorageKey: "configmaps", StorageVersion: coreV1, Fields: objectMetaFields,
	},
	{
		GroupVersion: coreV1, Name: "secrets", SingularName: "secret", Kind: "Secret", Namespaced: true,
		Verbs:      verbsAll,
		StorageKey: "secrets", StorageVersion: coreV1, Fields: secretFields,
	},
	{
		GroupVersion: coreV1, Name: "services", SingularName: "service", Kind: "Service", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"svc"}, Categories: []string{"all"},
		Subresources: []Subresource{{Name: "status", Kind: "Service", Verbs: verbsGetPatchUp}},
		StorageKey:   "services/specs", StorageVersion: coreV1, Fields: serviceFields,
	},
	{
		GroupVersion: coreV1, Name: "endpoints", SingularName: "endpoints", Kind: "Endpoints", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"ep"},
		StorageKey: "services/endpoints", StorageVersion: coreV1, Fields: objectMetaFields,
	},
	{
		GroupVersion: coreV1, Name: "serviceaccounts", SingularName: "serviceaccount", Kind: "ServiceAccount", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"sa"},
		Subresources: []Subresource{
			{Name: "token", Kind: "TokenRequest", GroupVersion: authnV1, Verbs: []string{"create"}},
		},
		StorageKey: "serviceaccounts", StorageVersion: coreV1, Fields: objectMetaFields,
	},
	{
		GroupVersion: appsV1, Name: "replicasets", SingularName: "replicaset", Kind: "ReplicaSet", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"rs"}, Categories: []string{"all"},
		Subresources: []Subresource{
			{Name: "status", Kind: "ReplicaSet", Verbs: verbsGetPatchUp},
			{Name: "scale", Kind: "Scale", GroupVersion: autoscalingV1, Verbs: verbsGetPatchUp},
		},
		StorageKey: "replicasets", StorageVersion: appsV1, Fields: replicaSetFields,
	},
	{
		GroupVersion: appsV1, Name: "deployments", SingularName: "deployment", Kind: "Deployment", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"deploy"}, Categories: []string{"all"},
		Subresources: []Subresource{
			{Name: "status", Kind: "Deployment", Verbs: verbsGetPatchUp},
			{Name: "scale", Kind: "Scale", GroupVersion: autoscalingV1, Verbs: verbsGetPatchUp},
		},
		StorageKey: "deployments", StorageVersion: appsV1, Fields: objectMetaFields,
	},
	{
		GroupVersion: coordinationV1, Name: "leases", SingularName: "lease", Kind: "Lease", Namespaced: true,
		Verbs:      verbsAll,
		StorageKey: "leases", StorageVersion: coordinationV1, Fields: objectMetaFields,
	},
	{
		GroupVersion: eventsV1, Name: "events", SingularName: "event", Kind: "Event", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"ev"},
		StorageKey: "events", StorageVersion: coreV1, Fields: eventsV1Fields,
	},
	{
		GroupVersion: discoveryV1, Name: "endpointslices", SingularName: "endpointslice", Kind: "EndpointSlice", Namespaced: true,
		Verbs:      verbsAll,
		StorageKey: "endpointslices", StorageVersion: discoveryV1, Fields: objectMetaFields,
	},
	{
		GroupVersion: schedulingV1, Name: "priorityclasses", SingularName: "priorityclass", Kind: "PriorityClass",
		Verbs: verbsAll, ShortNames: []string{"pc"},
		StorageKey: "priorityclasses", StorageVersion: schedulingV1, Fields: objectMetaFields,
	},
	{
		GroupVersion: authnV1, Name: "selfsubjectreviews", SingularName: "selfsubjectreview", Kind: "SelfSubjectReview",
		Verbs: []string{"create"}, Review: true,
	},
	{
		GroupVersion: authzV1, Name: "selfsubjectaccessreviews", SingularName: "selfsubjectaccessreview", Kind: "SelfSubjectAccessReview",
		Verbs: []string{"create"}, Review: true,
	},
	{
		GroupVersion: authzV1, Name: "selfsubjectrulesreviews", SingularName: "selfsubjectrulesreview", Kind: "SelfSubjectRulesReview",
		Verbs: []string{"create"}, Review: true,
	},
	{
		GroupVersion: authzV1, Name: "subjectaccessreviews", SingularName: "subjectaccessreview", Kind: "SubjectAccessReview",
		Verbs: []string{"create"}, Review: true,
	},
}

// GroupVersions returns the served group versions in table order, the legacy core group first.
func GroupVersions() []schema.GroupVersion {
	var out []schema.GroupVersion
	seen := map[schema.GroupVersion]bool{}
	for _, r := range Resources {
		if !seen[r.GroupVersion] {
			seen[r.GroupVersion] = true
			out = append(out, r.GroupVersion)
		}
	}
	return out
}

// ResourcesIn returns the resources served in a group version.
func ResourcesIn(gv schema.GroupVersion) []*Resource {
	var out []*Resource
	for _, r := range Resources {
		if r.GroupVersion == gv {
			out = append(out, r)
		}
	}
	return out
}

// Lookup finds a resource by group version and plural name.
func Lookup(gv schema.GroupVersion, name string) *Resource {
	for _, r := range Resources {
		if r.GroupVersion == gv && r.Name == name {
			return r
		}
	}
	return nil
}

// ForKind finds the resource whose objects have the given kind.
func ForKind(gvk schema.GroupVersionKind) *Resource {
	for _, r := range Resources {
		if r.GroupVersionKind() == gvk {
			return r
		}
	}
	return nil
}
