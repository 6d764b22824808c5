// Package apis declares every resource skiff serves, once. Discovery, routing, storage and
// (later) OpenAPI read this table; nobody keeps a second list. It also holds the scheme, the
// defaulting and validation of each kind, and the fields each kind can be selected by.
//
// This package never touches storage or HTTP.
package apis

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Verbs upstream uses in discovery.
var (
	verbsAll        = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	verbsNoCollect  = []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	verbsGetPatchUp = []string{"get", "patch", "update"}
	// verbsProxy are the proxy subresources' (every HTTP method passes through)
	verbsProxy = []string{"create", "delete", "get", "patch", "update"}
)

// Resource is one served resource in one group version: everything the server needs to
// know of it. Discovery, routing, OpenAPI, storage, the watch cache, Tables, managed fields and
// the scale subresource all follow from this declaration; nothing else keeps a list of
// resources or switches on one.
type Resource struct {
	GroupVersion schema.GroupVersion
	// Name is the plural, lower-case resource name used in URLs ("pods").
	Name         string
	SingularName string
	Kind         string
	// ListKind is the kind of its lists; "" for the Kind followed by "List".
	ListKindName string
	Namespaced   bool
	Verbs        []string
	ShortNames   []string
	Categories   []string
	Subresources []Subresource

	// Review marks a resource that is only ever created and answered, never stored (the
	// authentication and authorization reviews): it has no storage and no watch cache.
	Review bool
	// FromKubelets marks a read-only resource whose objects are read from the kubelets on
	// each request (the metrics API's NodeMetrics and PodMetrics), never stored: it has no
	// storage and no watch cache.
	FromKubelets bool

	// StorageKey is the segment under /registry/ that holds this resource in etcd, as upstream
	// lays it out ("minions" for nodes, "<group>/<plural>" for custom resources).
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

	// Unstructured marks a kind with no Go type (a custom resource): its objects are
	// *unstructured.Unstructured, stored as JSON.
	Unstructured bool
	// Default fills in what upstream's defaulting fills in on a decoded object; nil for none.
	Default func(obj runtime.Object)
	// PruneUnknown, for unstructured kinds, drops from a decoded request body the fields the
	// kind does not know and returns their paths ("spec.foo"), which fieldValidation turns
	// into warnings or errors. Typed kinds leave this nil: their decoder finds unknown fields.
	PruneUnknown func(obj runtime.Object) ([]string, error)
	// FromStorage, for unstructured kinds, is done to a private copy of every object read
	// from storage before it is served (pruning and defaulting by the current schema).
	FromStorage func(obj runtime.Object)
	// Strategy prepares and validates writes of the resource itself (a subresource that
	// writes the whole object, status or finalize, declares its own).
	Strategy Strategy
	// OrphanWarning, when set, makes a delete that names no propagation policy orphan the
	// object's dependents, with this warning, as upstream keeps batch/v1 Jobs' pods.
	OrphanWarning string
	// ServiceAddresses marks objects holding cluster IPs and node ports, which the server
	// allocates as they are written and frees as they go (Services).
	ServiceAddresses bool
	// ReturnDeletedObject makes a completed delete answer with the object rather than a
	// Success Status, as upstream does for pods and services.
	ReturnDeletedObject bool
	// Terminating, when set, makes deletion two-phase as namespaces': see Terminating.
	Terminating *Terminating
	// Scale, when set, is where the scale subresource reads and writes the object.
	Scale *ScalePaths
	// Table prints the resource's objects as rows of a Table; nil for upstream's default
	// columns (Name, Created At).
	Table *TablePrinter
	// TypeConverter describes the kind's fields to managedFields and server-side apply; nil
	// for the built-in kinds' (the schemas client-go ships).
	TypeConverter managedfields.TypeConverter
	// Warning, when set, is a warning every request of this resource gets (a deprecated
	// version).
	Warning string
	// OpenAPI, for unstructured kinds, publishes the kind's schema and paths: its OpenAPI v2
	// document and its v3 document (built-in kinds are described from their Go types).
	OpenAPI func() (*spec.Swagger, *spec3.OpenAPI, error)
	// RefuseCreate, when set, refuses creates with 405 and this message (the objects of a
	// CustomResourceDefinition being deleted).
	RefuseCreate string
	// ConversionWebhook, for custom resources whose definition converts them by webhook
	// (conversion.strategy Webhook), is where and how the webhook is called; nil converts
	// between versions by changing only apiVersion (strategy None).
	ConversionWebhook *apiextensionsv1.WebhookConversion
}

// Subresource is a child path of a resource (pods/status, replicasets/scale).
type Subresource struct {
	Name string
	// Kind is the kind the subresource reads and writes; GroupVersion is empty when it is the
	// parent's (autoscaling/v1 Scale is not).
	Kind         string
	GroupVersion schema.GroupVersion
	Verbs        []string
	// Strategy is set on subresources that write the parent object itself (status,
	// finalize): what such a write may change, and how it is validated.
	Strategy Strategy
	// ResetFields are the fields (dot-separated paths) a write of this subresource may not
	// change and so never owns in managedFields, as upstream's GetResetFields: "spec" for a
	// status subresource when nil. The resource's own writes never own "status".
	ResetFields []string
}

// Terminating is two-phase deletion, as namespaces are deleted: the first delete only marks
// the object (deletionTimestamp, finalizers as the propagation policy asks, then Mark), so that
// its controller can empty it; the object goes once Done says the controller is finished.
type Terminating struct {
	Mark func(obj runtime.Object)
	Done func(obj runtime.Object) bool
}

// ScalePaths are where a kind keeps what its scale subresource shows, as JSON paths
// (".spec.replicas"), as CustomResourceDefinitions declare them. The label selector path may
// point at a metav1.LabelSelector or at a selector string.
type ScalePaths struct {
	SpecReplicasPath   string
	StatusReplicasPath string
	LabelSelectorPath  string
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
func (r *Resource) ListKind() string {
	if r.ListKindName != "" {
		return r.ListKindName
	}
	return r.Kind + "List"
}

// New returns an empty object of the resource's kind.
func (r *Resource) New() runtime.Object {
	if r.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]interface{}{}}
		u.SetGroupVersionKind(r.GroupVersionKind())
		return u
	}
	obj, err := Scheme.New(r.GroupVersionKind())
	if err != nil {
		panic(err) // the table and the scheme disagree: a programming error
	}
	return obj
}

// NewList returns an empty list of the resource's kind.
func (r *Resource) NewList() runtime.Object {
	if r.Unstructured {
		l := &unstructured.UnstructuredList{Object: map[string]interface{}{}}
		l.SetGroupVersionKind(r.GroupVersion.WithKind(r.ListKind()))
		return l
	}
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

// Defaulter makes a typed defaulting function a Resource's Default.
func Defaulter[T runtime.Object](fn func(T)) func(runtime.Object) {
	return func(obj runtime.Object) { fn(obj.(T)) }
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
	batchV1        = schema.GroupVersion{Group: "batch", Version: "v1"}
	rbacV1         = schema.GroupVersion{Group: "rbac.authorization.k8s.io", Version: "v1"}
	storageV1      = schema.GroupVersion{Group: "storage.k8s.io", Version: "v1"}
)

// builtin is the table of the kinds built into skiff, in discovery order.
var builtin = []*Resource{
	{
		GroupVersion: coreV1, Name: "pods", SingularName: "pod", Kind: "Pod", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"po"}, Categories: []string{"all"},
		Subresources: []Subresource{
			{Name: "status", Kind: "Pod", Verbs: verbsGetPatchUp, Strategy: PodStatusStrategy,
				ResetFields: []string{"spec", "metadata.deletionTimestamp", "metadata.ownerReferences"}},
			{Name: "binding", Kind: "Binding", Verbs: []string{"create"}},
			{Name: "log", Kind: "Pod", Verbs: []string{"get"}},
			{Name: "exec", Kind: "PodExecOptions", Verbs: []string{"create", "get"}},
			{Name: "attach", Kind: "PodAttachOptions", Verbs: []string{"create", "get"}},
			{Name: "portforward", Kind: "PodPortForwardOptions", Verbs: []string{"create", "get"}},
			{Name: "eviction", Kind: "Eviction", GroupVersion: policyV1, Verbs: []string{"create"}},
			{Name: "proxy", Kind: "PodProxyOptions", Verbs: verbsProxy},
			{Name: "ephemeralcontainers", Kind: "Pod", Verbs: verbsGetPatchUp, Strategy: PodEphemeralContainersStrategy,
				ResetFields: []string{"status"}},
			{Name: "resize", Kind: "Pod", Verbs: verbsGetPatchUp, Strategy: PodResizeStrategy,
				ResetFields: []string{"status"}},
		},
		StorageKey: "pods", StorageVersion: coreV1, Fields: podFields, IndexedField: "spec.nodeName",
		Default: Defaulter(DefaultPod), Strategy: PodStrategy, ReturnDeletedObject: true, Table: podTable(),
	},
	{
		GroupVersion: coreV1, Name: "nodes", SingularName: "node", Kind: "Node",
		Verbs: verbsAll, ShortNames: []string{"no"},
		Subresources: []Subresource{
			{Name: "status", Kind: "Node", Verbs: verbsGetPatchUp, Strategy: NodeStatusStrategy},
			{Name: "proxy", Kind: "NodeProxyOptions", Verbs: verbsProxy},
		},
		StorageKey: "minions", StorageVersion: coreV1, Fields: nodeFields,
		Default: Defaulter(defaultNode), Strategy: NodeStrategy, Table: nodeTable(),
	},
	{
		GroupVersion: coreV1, Name: "namespaces", SingularName: "namespace", Kind: "Namespace",
		Verbs: verbsNoCollect, ShortNames: []string{"ns"},
		Subresources: []Subresource{
			{Name: "status", Kind: "Namespace", Verbs: verbsGetPatchUp, Strategy: NamespaceStatusStrategy},
			{Name: "finalize", Kind: "Namespace", Verbs: []string{"update"}, Strategy: NamespaceFinalizeStrategy, ResetFields: []string{"status"}},
		},
		StorageKey: "namespaces", StorageVersion: coreV1, Fields: namespaceFields,
		Default: Defaulter(defaultNamespace), Strategy: NamespaceStrategy, Table: namespaceTable(),
		Terminating: &Terminating{Mark: markNamespaceTerminating, Done: namespaceFinalized},
	},
	{
		GroupVersion: coreV1, Name: "events", SingularName: "event", Kind: "Event", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"ev"},
		StorageKey: "events", StorageVersion: coreV1, Fields: eventFields,
		Strategy: EventStrategy, Table: eventTable(),
	},
	{
		GroupVersion: coreV1, Name: "configmaps", SingularName: "configmap", Kind: "ConfigMap", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"cm"},
		StorageKey: "configmaps", StorageVersion: coreV1, Fields: objectMetaFields,
		Default: Defaulter(defaultConfigMap), Strategy: ConfigMapStrategy, Table: configMapTable(),
	},
	{
		GroupVersion: coreV1, Name: "secrets", SingularName: "secret", Kind: "Secret", Namespaced: true,
		Verbs:      verbsAll,
		StorageKey: "secrets", StorageVersion: coreV1, Fields: secretFields,
		Default: Defaulter(defaultSecret), Strategy: SecretStrategy, Table: secretTable(),
	},
	{
		GroupVersion: coreV1, Name: "services", SingularName: "service", Kind: "Service", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"svc"}, Categories: []string{"all"},
		Subresources: []Subresource{
			{Name: "status", Kind: "Service", Verbs: verbsGetPatchUp, Strategy: ServiceStatusStrategy},
			{Name: "proxy", Kind: "ServiceProxyOptions", Verbs: verbsProxy},
		},
		StorageKey: "services/specs", StorageVersion: coreV1, Fields: serviceFields,
		Default: Defaulter(defaultService), Strategy: ServiceStrategy, ReturnDeletedObject: true, Table: serviceTable(),
		ServiceAddresses: true,
	},
	{
		GroupVersion: coreV1, Name: "endpoints", SingularName: "endpoints", Kind: "Endpoints", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"ep"},
		StorageKey: "services/endpoints", StorageVersion: coreV1, Fields: objectMetaFields,
		Default: Defaulter(defaultEndpoints), Strategy: EndpointsStrategy, Table: endpointsTable(),
	},
	{
		GroupVersion: coreV1, Name: "serviceaccounts", SingularName: "serviceaccount", Kind: "ServiceAccount", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"sa"},
		Subresources: []Subresource{
			{Name: "token", Kind: "TokenRequest", GroupVersion: authnV1, Verbs: []string{"create"}},
		},
		StorageKey: "serviceaccounts", StorageVersion: coreV1, Fields: objectMetaFields,
		Strategy: ServiceAccountStrategy, Table: serviceAccountTable(),
	},
	{
		GroupVersion: coreV1, Name: "replicationcontrollers", SingularName: "replicationcontroller", Kind: "ReplicationController", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"rc"}, Categories: []string{"all"},
		Subresources: []Subresource{
			{Name: "status", Kind: "ReplicationController", Verbs: verbsGetPatchUp, Strategy: ReplicationControllerStatusStrategy},
			{Name: "scale", Kind: "Scale", GroupVersion: autoscalingV1, Verbs: verbsGetPatchUp},
		},
		StorageKey: "controllers", StorageVersion: coreV1, Fields: replicationControllerFields,
		Default: Defaulter(defaultReplicationController), Strategy: ReplicationControllerStrategy, Table: replicationControllerTable(),
		Scale: rcScale,
	},
	{
		GroupVersion: coreV1, Name: "podtemplates", SingularName: "podtemplate", Kind: "PodTemplate", Namespaced: true,
		Verbs:      verbsAll,
		StorageKey: "podtemplates", StorageVersion: coreV1, Fields: objectMetaFields,
		Default: Defaulter(defaultPodTemplate), Strategy: PodTemplateStrategy, Table: podTemplateTable(),
	},
	{
		GroupVersion: coreV1, Name: "persistentvolumes", SingularName: "persistentvolume", Kind: "PersistentVolume",
		Verbs: verbsAll, ShortNames: []string{"pv"},
		Subresources: []Subresource{{Name: "status", Kind: "PersistentVolume", Verbs: verbsGetPatchUp, Strategy: PersistentVolumeStatusStrategy}},
		StorageKey:   "persistentvolumes", StorageVersion: coreV1, Fields: objectMetaFields,
		Default: Defaulter(defaultPersistentVolume), Strategy: PersistentVolumeStrategy, Table: persistentVolumeTable(),
	},
	{
		GroupVersion: coreV1, Name: "persistentvolumeclaims", SingularName: "persistentvolumeclaim", Kind: "PersistentVolumeClaim", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"pvc"},
		Subresources: []Subresource{{Name: "status", Kind: "PersistentVolumeClaim", Verbs: verbsGetPatchUp, Strategy: PersistentVolumeClaimStatusStrategy}},
		StorageKey:   "persistentvolumeclaims", StorageVersion: coreV1, Fields: objectMetaFields,
		Default: Defaulter(defaultPersistentVolumeClaim), Strategy: PersistentVolumeClaimStrategy, Table: persistentVolumeClaimTable(),
	},
	{
		GroupVersion: appsV1, Name: "replicasets", SingularName: "replicaset", Kind: "ReplicaSet", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"rs"}, Categories: []string{"all"},
		Subresources: []Subresource{
			{Name: "status", Kind: "ReplicaSet", Verbs: verbsGetPatchUp, Strategy: ReplicaSetStatusStrategy},
			{Name: "scale", Kind: "Scale", GroupVersion: autoscalingV1, Verbs: verbsGetPatchUp},
		},
		StorageKey: "replicasets", StorageVersion: appsV1, Fields: replicaSetFields,
		Default: Defaulter(defaultReplicaSet), Strategy: ReplicaSetStrategy, Table: replicaSetTable(),
		Scale: workloadScale,
	},
	{
		GroupVersion: appsV1, Name: "deployments", SingularName: "deployment", Kind: "Deployment", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"deploy"}, Categories: []string{"all"},
		Subresources: []Subresource{
			{Name: "status", Kind: "Deployment", Verbs: verbsGetPatchUp, Strategy: DeploymentStatusStrategy,
				ResetFields: []string{"spec", "metadata.labels"}},
			{Name: "scale", Kind: "Scale", GroupVersion: autoscalingV1, Verbs: verbsGetPatchUp},
		},
		StorageKey: "deployments", StorageVersion: appsV1, Fields: objectMetaFields,
		Default: Defaulter(defaultDeployment), Strategy: DeploymentStrategy, Table: deploymentTable(),
		Scale: workloadScale,
	},
	{
		GroupVersion: appsV1, Name: "daemonsets", SingularName: "daemonset", Kind: "DaemonSet", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"ds"}, Categories: []string{"all"},
		Subresources: []Subresource{
			{Name: "status", Kind: "DaemonSet", Verbs: verbsGetPatchUp, Strategy: DaemonSetStatusStrategy},
		},
		StorageKey: "daemonsets", StorageVersion: appsV1, Fields: objectMetaFields,
		Default: Defaulter(defaultDaemonSet), Strategy: DaemonSetStrategy, Table: daemonSetTable(),
	},
	{
		GroupVersion: appsV1, Name: "statefulsets", SingularName: "statefulset", Kind: "StatefulSet", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"sts"}, Categories: []string{"all"},
		Subresources: []Subresource{
			{Name: "status", Kind: "StatefulSet", Verbs: verbsGetPatchUp, Strategy: StatefulSetStatusStrategy},
			{Name: "scale", Kind: "Scale", GroupVersion: autoscalingV1, Verbs: verbsGetPatchUp},
		},
		StorageKey: "statefulsets", StorageVersion: appsV1, Fields: objectMetaFields,
		Default: Defaulter(defaultStatefulSet), Strategy: StatefulSetStrategy, Table: statefulSetTable(),
		Scale: workloadScale,
	},
	{
		GroupVersion: appsV1, Name: "controllerrevisions", SingularName: "controllerrevision", Kind: "ControllerRevision", Namespaced: true,
		Verbs:      verbsAll,
		StorageKey: "controllerrevisions", StorageVersion: appsV1, Fields: objectMetaFields,
		Strategy: ControllerRevisionStrategy, Table: controllerRevisionTable(),
	},
	{
		GroupVersion: batchV1, Name: "jobs", SingularName: "job", Kind: "Job", Namespaced: true,
		Verbs: verbsAll, Categories: []string{"all"},
		Subresources: []Subresource{{Name: "status", Kind: "Job", Verbs: verbsGetPatchUp, Strategy: jobStatusStrategy}},
		StorageKey:   "jobs", StorageVersion: batchV1, Fields: JobFields,
		Default: Defaulter(DefaultJob), Strategy: jobStrategy, Table: Columns(JobColumns, JobRow),
		OrphanWarning: "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning",
	},
	{
		GroupVersion: batchV1, Name: "cronjobs", SingularName: "cronjob", Kind: "CronJob", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"cj"}, Categories: []string{"all"},
		Subresources: []Subresource{{Name: "status", Kind: "CronJob", Verbs: verbsGetPatchUp, Strategy: cronJobStatusStrategy}},
		StorageKey:   "cronjobs", StorageVersion: batchV1, Fields: CronJobFields,
		Default: Defaulter(DefaultCronJob), Strategy: cronJobStrategy, Table: Columns(CronJobColumns, CronJobRow),
	},
	{
		GroupVersion: coordinationV1, Name: "leases", SingularName: "lease", Kind: "Lease", Namespaced: true,
		Verbs:      verbsAll,
		StorageKey: "leases", StorageVersion: coordinationV1, Fields: objectMetaFields,
		Strategy: LeaseStrategy, Table: leaseTable(),
	},
	{
		GroupVersion: eventsV1, Name: "events", SingularName: "event", Kind: "Event", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"ev"},
		StorageKey: "events", StorageVersion: coreV1, Fields: eventsV1Fields,
		Strategy: EventsV1Strategy, Table: eventsV1EventTable(),
	},
	{
		GroupVersion: discoveryV1, Name: "endpointslices", SingularName: "endpointslice", Kind: "EndpointSlice", Namespaced: true,
		Verbs:      verbsAll,
		StorageKey: "endpointslices", StorageVersion: discoveryV1, Fields: objectMetaFields,
		Strategy: EndpointSliceStrategy, Table: endpointSliceTable(),
	},
	{
		GroupVersion: networkingV1, Name: "ingresses", SingularName: "ingress", Kind: "Ingress", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"ing"},
		Subresources: []Subresource{{Name: "status", Kind: "Ingress", Verbs: verbsGetPatchUp, Strategy: IngressStatusStrategy}},
		StorageKey:   "ingress", StorageVersion: networkingV1, Fields: objectMetaFields,
		Strategy: IngressStrategy, Table: ingressTable(),
	},
	{
		GroupVersion: networkingV1, Name: "ingressclasses", SingularName: "ingressclass", Kind: "IngressClass",
		Verbs:      verbsAll,
		StorageKey: "ingressclasses", StorageVersion: networkingV1, Fields: objectMetaFields,
		Default: Defaulter(defaultIngressClass), Strategy: IngressClassStrategy, Table: ingressClassTable(),
	},
	{
		GroupVersion: networkingV1, Name: "networkpolicies", SingularName: "networkpolicy", Kind: "NetworkPolicy", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"netpol"},
		StorageKey: "networkpolicies", StorageVersion: networkingV1, Fields: objectMetaFields,
		Default: Defaulter(defaultNetworkPolicy), Strategy: NetworkPolicyStrategy, Table: networkPolicyTable(),
	},
	{
		GroupVersion: nodeV1, Name: "runtimeclasses", SingularName: "runtimeclass", Kind: "RuntimeClass",
		Verbs:      verbsAll,
		StorageKey: "runtimeclasses", StorageVersion: nodeV1, Fields: objectMetaFields,
		Strategy: RuntimeClassStrategy, Table: runtimeClassTable(),
	},
	{
		GroupVersion: schedulingV1, Name: "priorityclasses", SingularName: "priorityclass", Kind: "PriorityClass",
		Verbs: verbsAll, ShortNames: []string{"pc"},
		StorageKey: "priorityclasses", StorageVersion: schedulingV1, Fields: objectMetaFields,
		Default: Defaulter(defaultPriorityClass), Strategy: PriorityClassStrategy, Table: priorityClassTable(),
	},
	{
		GroupVersion: storageV1, Name: "storageclasses", SingularName: "storageclass", Kind: "StorageClass",
		Verbs: verbsAll, ShortNames: []string{"sc"},
		StorageKey: "storageclasses", StorageVersion: storageV1, Fields: objectMetaFields,
		Default: Defaulter(defaultStorageClass), Strategy: StorageClassStrategy, Table: storageClassTable(),
	},
	{
		GroupVersion: storageV1, Name: "csidrivers", SingularName: "csidriver", Kind: "CSIDriver",
		Verbs:      verbsAll,
		StorageKey: "csidrivers", StorageVersion: storageV1, Fields: objectMetaFields,
		Default: Defaulter(defaultCSIDriver), Strategy: CSIDriverStrategy, Table: csiDriverTable(),
	},
	{
		GroupVersion: storageV1, Name: "csinodes", SingularName: "csinode", Kind: "CSINode",
		Verbs:      verbsAll,
		StorageKey: "csinodes", StorageVersion: storageV1, Fields: objectMetaFields,
		Strategy: CSINodeStrategy, Table: csiNodeTable(),
	},
	{
		GroupVersion: storageV1, Name: "volumeattachments", SingularName: "volumeattachment", Kind: "VolumeAttachment",
		Verbs:        verbsAll,
		Subresources: []Subresource{{Name: "status", Kind: "VolumeAttachment", Verbs: verbsGetPatchUp, Strategy: VolumeAttachmentStatusStrategy}},
		StorageKey:   "volumeattachments", StorageVersion: storageV1, Fields: objectMetaFields,
		Strategy: VolumeAttachmentStrategy, Table: volumeAttachmentTable(),
	},
	{
		GroupVersion: storageV1, Name: "volumeattributesclasses", SingularName: "volumeattributesclass", Kind: "VolumeAttributesClass",
		Verbs: verbsAll, ShortNames: []string{"vac"},
		StorageKey: "volumeattributesclasses", StorageVersion: storageV1, Fields: objectMetaFields,
		Strategy: VolumeAttributesClassStrategy, Table: volumeAttributesClassTable(),
	},
	{
		GroupVersion: storageV1, Name: "csistoragecapacities", SingularName: "csistoragecapacity", Kind: "CSIStorageCapacity", Namespaced: true,
		Verbs:      verbsAll,
		StorageKey: "csistoragecapacities", StorageVersion: storageV1, Fields: objectMetaFields,
		Strategy: CSIStorageCapacityStrategy, Table: csiStorageCapacityTable(),
	},
	{
		GroupVersion: storageMigrationV1, Name: "storageversionmigrations", SingularName: "storageversionmigration", Kind: "StorageVersionMigration",
		Verbs:        verbsAll,
		Subresources: []Subresource{{Name: "status", Kind: "StorageVersionMigration", Verbs: verbsGetPatchUp, Strategy: StorageVersionMigrationStatusStrategy}},
		StorageKey:   "storageversionmigrations", StorageVersion: storageMigrationV1, Fields: objectMetaFields,
		Strategy: StorageVersionMigrationStrategy, Table: storageVersionMigrationTable(),
	},
	{
		GroupVersion: networkingV1, Name: "servicecidrs", SingularName: "servicecidr", Kind: "ServiceCIDR",
		Verbs:        verbsAll,
		Subresources: []Subresource{{Name: "status", Kind: "ServiceCIDR", Verbs: verbsGetPatchUp, Strategy: ServiceCIDRStatusStrategy}},
		StorageKey:   "servicecidrs", StorageVersion: networkingV1, Fields: objectMetaFields,
		Strategy: ServiceCIDRStrategy, Table: serviceCIDRTable(),
	},
	{
		GroupVersion: networkingV1, Name: "ipaddresses", SingularName: "ipaddress", Kind: "IPAddress",
		Verbs: verbsAll, ShortNames: []string{"ip"},
		StorageKey: "ipaddresses", StorageVersion: networkingV1, Fields: objectMetaFields,
		Strategy: IPAddressStrategy, Table: ipAddressTable(),
	},
	{
		GroupVersion: resourceV1, Name: "deviceclasses", SingularName: "deviceclass", Kind: "DeviceClass",
		Verbs:      verbsAll,
		StorageKey: "deviceclasses", StorageVersion: resourceV1, Fields: objectMetaFields,
		Strategy: DeviceClassStrategy, Table: deviceClassTable(),
	},
	{
		GroupVersion: resourceV1, Name: "devicetaintrules", SingularName: "devicetaintrule", Kind: "DeviceTaintRule",
		Verbs:        verbsAll,
		Subresources: []Subresource{{Name: "status", Kind: "DeviceTaintRule", Verbs: verbsGetPatchUp, Strategy: DeviceTaintRuleStatusStrategy}},
		StorageKey:   "devicetaintrules", StorageVersion: resourceV1, Fields: objectMetaFields,
		Strategy: DeviceTaintRuleStrategy, Table: deviceTaintRuleTable(),
	},
	{
		GroupVersion: resourceV1, Name: "resourceclaims", SingularName: "resourceclaim", Kind: "ResourceClaim", Namespaced: true,
		Verbs:        verbsAll,
		Subresources: []Subresource{{Name: "status", Kind: "ResourceClaim", Verbs: verbsGetPatchUp, Strategy: ResourceClaimStatusStrategy}},
		StorageKey:   "resourceclaims", StorageVersion: resourceV1, Fields: objectMetaFields,
		Default: Defaulter(defaultResourceClaim), Strategy: ResourceClaimStrategy, Table: resourceClaimTable(),
	},
	{
		GroupVersion: resourceV1, Name: "resourceclaimtemplates", SingularName: "resourceclaimtemplate", Kind: "ResourceClaimTemplate", Namespaced: true,
		Verbs:      verbsAll,
		StorageKey: "resourceclaimtemplates", StorageVersion: resourceV1, Fields: objectMetaFields,
		Default: Defaulter(defaultResourceClaimTemplate), Strategy: ResourceClaimTemplateStrategy, Table: resourceClaimTemplateTable(),
	},
	{
		GroupVersion: resourceV1, Name: "resourceslices", SingularName: "resourceslice", Kind: "ResourceSlice",
		Verbs:      verbsAll,
		StorageKey: "resourceslices", StorageVersion: resourceV1, Fields: resourceSliceFields,
		Strategy: ResourceSliceStrategy, Table: resourceSliceTable(),
	},
	{
		GroupVersion: coreV1, Name: "limitranges", SingularName: "limitrange", Kind: "LimitRange", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"limits"},
		StorageKey: "limitranges", StorageVersion: coreV1, Fields: objectMetaFields,
		Default: Defaulter(defaultLimitRange), Strategy: LimitRangeStrategy, Table: defaultTablePrinter,
	},
	{
		GroupVersion: coreV1, Name: "resourcequotas", SingularName: "resourcequota", Kind: "ResourceQuota", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"quota"},
		Subresources: []Subresource{{Name: "status", Kind: "ResourceQuota", Verbs: verbsGetPatchUp, Strategy: ResourceQuotaStatusStrategy}},
		StorageKey:   "resourcequotas", StorageVersion: coreV1, Fields: objectMetaFields,
		Strategy: ResourceQuotaStrategy, Table: resourceQuotaTable(),
	},
	{
		GroupVersion: policyV1, Name: "poddisruptionbudgets", SingularName: "poddisruptionbudget", Kind: "PodDisruptionBudget", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"pdb"},
		Subresources: []Subresource{{Name: "status", Kind: "PodDisruptionBudget", Verbs: verbsGetPatchUp, Strategy: PodDisruptionBudgetStatusStrategy}},
		StorageKey:   "poddisruptionbudgets", StorageVersion: policyV1, Fields: objectMetaFields,
		Strategy: PodDisruptionBudgetStrategy, Table: podDisruptionBudgetTable(),
	},
	{
		GroupVersion: autoscalingV2, Name: "horizontalpodautoscalers", SingularName: "horizontalpodautoscaler", Kind: "HorizontalPodAutoscaler", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"hpa"}, Categories: []string{"all"},
		Subresources: []Subresource{{Name: "status", Kind: "HorizontalPodAutoscaler", Verbs: verbsGetPatchUp, Strategy: HorizontalPodAutoscalerStatusStrategy}},
		StorageKey:   "horizontalpodautoscalers", StorageVersion: autoscalingV2, Fields: objectMetaFields,
		Default: Defaulter(DefaultHorizontalPodAutoscaler), Strategy: HorizontalPodAutoscalerStrategy, Table: horizontalPodAutoscalerTable(),
	},
	{
		GroupVersion: autoscalingV1, Name: "horizontalpodautoscalers", SingularName: "horizontalpodautoscaler", Kind: "HorizontalPodAutoscaler", Namespaced: true,
		Verbs: verbsAll, ShortNames: []string{"hpa"}, Categories: []string{"all"},
		Subresources: []Subresource{{Name: "status", Kind: "HorizontalPodAutoscaler", Verbs: verbsGetPatchUp, Strategy: HorizontalPodAutoscalerStatusStrategy}},
		StorageKey:   "horizontalpodautoscalers", StorageVersion: autoscalingV2, Fields: objectMetaFields,
		Default: Defaulter(defaultHorizontalPodAutoscalerV1), Strategy: HorizontalPodAutoscalerStrategy, Table: horizontalPodAutoscalerV1Table(),
	},
	{
		GroupVersion: admissionregistrationV1, Name: "mutatingwebhookconfigurations", SingularName: "mutatingwebhookconfiguration", Kind: "MutatingWebhookConfiguration",
		Verbs: verbsAll, Categories: []string{"api-extensions"},
		StorageKey: "mutatingwebhookconfigurations", StorageVersion: admissionregistrationV1, Fields: objectMetaFields,
		Default: Defaulter(DefaultMutatingWebhookConfiguration), Strategy: MutatingWebhookConfigurationStrategy,
		Table: webhookConfigurationTable(func(c *admissionregistrationv1.MutatingWebhookConfiguration) int { return len(c.Webhooks) }),
	},
	{
		GroupVersion: admissionregistrationV1, Name: "mutatingadmissionpolicies", SingularName: "mutatingadmissionpolicy", Kind: "MutatingAdmissionPolicy",
		Verbs: verbsAll, Categories: []string{"api-extensions"},
		StorageKey: "mutatingadmissionpolicies", StorageVersion: admissionregistrationV1, Fields: objectMetaFields,
		Default: Defaulter(DefaultMutatingAdmissionPolicy), Strategy: MutatingAdmissionPolicyStrategy,
		Table: Columns(mutatingAdmissionPolicyColumns, mutatingAdmissionPolicyRow),
	},
	{
		GroupVersion: admissionregistrationV1, Name: "mutatingadmissionpolicybindings", SingularName: "mutatingadmissionpolicybinding", Kind: "MutatingAdmissionPolicyBinding",
		Verbs: verbsAll, Categories: []string{"api-extensions"},
		StorageKey: "mutatingadmissionpolicybindings", StorageVersion: admissionregistrationV1, Fields: objectMetaFields,
		Default: Defaulter(DefaultMutatingAdmissionPolicyBinding), Strategy: MutatingAdmissionPolicyBindingStrategy,
		Table: Columns(mutatingAdmissionPolicyBindingColumns, mutatingAdmissionPolicyBindingRow),
	},
	{
		GroupVersion: admissionregistrationV1, Name: "validatingadmissionpolicies", SingularName: "validatingadmissionpolicy", Kind: "ValidatingAdmissionPolicy",
		Verbs: verbsAll, Categories: []string{"api-extensions"},
		Subresources: []Subresource{{Name: "status", Kind: "ValidatingAdmissionPolicy", Verbs: verbsGetPatchUp, Strategy: ValidatingAdmissionPolicyStatusStrategy}},
		StorageKey:   "validatingadmissionpolicies", StorageVersion: admissionregistrationV1, Fields: objectMetaFields,
		Default: Defaulter(DefaultValidatingAdmissionPolicy), Strategy: ValidatingAdmissionPolicyStrategy,
		Table: Columns(validatingAdmissionPolicyColumns, validatingAdmissionPolicyRow),
	},
	{
		GroupVersion: admissionregistrationV1, Name: "validatingadmissionpolicybindings", SingularName: "validatingadmissionpolicybinding", Kind: "ValidatingAdmissionPolicyBinding",
		Verbs: verbsAll, Categories: []string{"api-extensions"},
		StorageKey: "validatingadmissionpolicybindings", StorageVersion: admissionregistrationV1, Fields: objectMetaFields,
		Default: Defaulter(DefaultValidatingAdmissionPolicyBinding), Strategy: ValidatingAdmissionPolicyBindingStrategy,
		Table: Columns(validatingAdmissionPolicyBindingColumns, validatingAdmissionPolicyBindingRow),
	},
	{
		GroupVersion: admissionregistrationV1, Name: "validatingwebhookconfigurations", SingularName: "validatingwebhookconfiguration", Kind: "ValidatingWebhookConfiguration",
		Verbs: verbsAll, Categories: []string{"api-extensions"},
		StorageKey: "validatingwebhookconfigurations", StorageVersion: admissionregistrationV1, Fields: objectMetaFields,
		Default: Defaulter(DefaultValidatingWebhookConfiguration), Strategy: ValidatingWebhookConfigurationStrategy,
		Table: webhookConfigurationTable(func(c *admissionregistrationv1.ValidatingWebhookConfiguration) int { return len(c.Webhooks) }),
	},
	{
		GroupVersion: apiextensionsV1, Name: "customresourcedefinitions", SingularName: "customresourcedefinition", Kind: "CustomResourceDefinition",
		Verbs: verbsAll, ShortNames: []string{"crd", "crds"}, Categories: []string{"api-extensions"},
		Subresources: []Subresource{{Name: "status", Kind: "CustomResourceDefinition", Verbs: verbsGetPatchUp, Strategy: CRDStatusStrategy}},
		StorageKey:   "apiextensions.k8s.io/customresourcedefinitions", StorageVersion: apiextensionsV1, Fields: objectMetaFields,
		Default: Defaulter(defaultCRD), Strategy: CRDStrategy, Table: defaultTablePrinter, TypeConverter: crdTypeConverter,
		Terminating: &Terminating{Mark: markCRDTerminating, Done: crdCleanedUp},
	},
	{
		GroupVersion: apiregistrationV1, Name: "apiservices", SingularName: "apiservice", Kind: "APIService",
		Verbs: verbsAll, Categories: []string{"api-extensions"},
		Subresources: []Subresource{{Name: "status", Kind: "APIService", Verbs: verbsGetPatchUp, Strategy: APIServiceStatusStrategy}},
		StorageKey:   "apiregistration.k8s.io/apiservices", StorageVersion: apiregistrationV1, Fields: objectMetaFields,
		Strategy: APIServiceStrategy, Table: apiServiceTable(), TypeConverter: apiServiceTypeConverter,
	},
	{
		GroupVersion: rbacV1, Name: "clusterrolebindings", SingularName: "clusterrolebinding", Kind: "ClusterRoleBinding",
		Verbs:      verbsAll,
		StorageKey: "clusterrolebindings", StorageVersion: rbacV1, Fields: objectMetaFields,
		Default: Defaulter(DefaultClusterRoleBinding), Strategy: ClusterRoleBindingStrategy, Table: clusterRoleBindingTable(),
	},
	{
		GroupVersion: rbacV1, Name: "clusterroles", SingularName: "clusterrole", Kind: "ClusterRole",
		Verbs:      verbsAll,
		StorageKey: "clusterroles", StorageVersion: rbacV1, Fields: objectMetaFields, Strategy: ClusterRoleStrategy,
	},
	{
		GroupVersion: rbacV1, Name: "rolebindings", SingularName: "rolebinding", Kind: "RoleBinding", Namespaced: true,
		Verbs:      verbsAll,
		StorageKey: "rolebindings", StorageVersion: rbacV1, Fields: objectMetaFields,
		Default: Defaulter(DefaultRoleBinding), Strategy: RoleBindingStrategy, Table: roleBindingTable(),
	},
	{
		GroupVersion: rbacV1, Name: "roles", SingularName: "role", Kind: "Role", Namespaced: true,
		Verbs:      verbsAll,
		StorageKey: "roles", StorageVersion: rbacV1, Fields: objectMetaFields, Strategy: RoleStrategy,
	},
	{
		GroupVersion: certificatesV1, Name: "certificatesigningrequests", SingularName: "certificatesigningrequest", Kind: "CertificateSigningRequest",
		Verbs: verbsAll, ShortNames: []string{"csr"},
		Subresources: []Subresource{
			{Name: "approval", Kind: "CertificateSigningRequest", Verbs: verbsGetPatchUp, Strategy: CertificateSigningRequestApprovalStrategy,
				ResetFields: []string{"spec", "status.certificate"}},
			{Name: "status", Kind: "CertificateSigningRequest", Verbs: verbsGetPatchUp, Strategy: CertificateSigningRequestStatusStrategy,
				ResetFields: []string{"spec", "status.conditions"}},
		},
		StorageKey: "certificatesigningrequests", StorageVersion: certificatesV1, Fields: certificateSigningRequestFields,
		Strategy: CertificateSigningRequestStrategy, Table: certificateSigningRequestTable(),
	},
	{
		GroupVersion: certificatesV1, Name: "clustertrustbundles", SingularName: "clustertrustbundle", Kind: "ClusterTrustBundle",
		Verbs:      verbsAll,
		StorageKey: "clustertrustbundles", StorageVersion: certificatesV1, Fields: clusterTrustBundleFields,
		Strategy: ClusterTrustBundleStrategy, Table: clusterTrustBundleTable(),
	},
	{
		GroupVersion: certificatesV1, Name: "podcertificaterequests", SingularName: "podcertificaterequest", Kind: "PodCertificateRequest",
		Namespaced: true, Verbs: verbsAll,
		Subresources: []Subresource{{Name: "status", Kind: "PodCertificateRequest", Verbs: verbsGetPatchUp, Strategy: PodCertificateRequestStatusStrategy,
			ResetFields: []string{"spec"}}},
		StorageKey: "podcertificaterequests", StorageVersion: certificatesV1, Fields: podCertificateRequestFields,
		Default: Defaulter(DefaultPodCertificateRequest), Strategy: PodCertificateRequestStrategy, Table: podCertificateRequestTable(),
	},
	{
		GroupVersion: flowcontrolV1, Name: "flowschemas", SingularName: "flowschema", Kind: "FlowSchema",
		Verbs:        verbsAll,
		Subresources: []Subresource{{Name: "status", Kind: "FlowSchema", Verbs: verbsGetPatchUp, Strategy: FlowSchemaStatusStrategy}},
		StorageKey:   "flowschemas", StorageVersion: flowcontrolV1, Fields: objectMetaFields,
		Default: Defaulter(DefaultFlowSchema), Strategy: FlowSchemaStrategy, Table: flowSchemaTable(),
	},
	{
		GroupVersion: flowcontrolV1, Name: "prioritylevelconfigurations", SingularName: "prioritylevelconfiguration", Kind: "PriorityLevelConfiguration",
		Verbs:        verbsAll,
		Subresources: []Subresource{{Name: "status", Kind: "PriorityLevelConfiguration", Verbs: verbsGetPatchUp, Strategy: PriorityLevelConfigurationStatusStrategy}},
		StorageKey:   "prioritylevelconfigurations", StorageVersion: flowcontrolV1, Fields: objectMetaFields,
		Default: Defaulter(DefaultPriorityLevelConfiguration), Strategy: PriorityLevelConfigurationStrategy, Table: priorityLevelConfigurationTable(),
	},
	{
		GroupVersion: metricsV1beta1, Name: "nodes", SingularName: "", Kind: "NodeMetrics",
		Verbs: verbsGetList, FromKubelets: true, Fields: objectMetaFields, Table: nodeMetricsTable(),
	},
	{
		GroupVersion: metricsV1beta1, Name: "pods", SingularName: "", Kind: "PodMetrics", Namespaced: true,
		Verbs: verbsGetList, FromKubelets: true, Fields: objectMetaFields, Table: podMetricsTable(),
	},
	{
		GroupVersion: authnV1, Name: "tokenreviews", SingularName: "tokenreview", Kind: "TokenReview",
		Verbs: []string{"create"}, Review: true,
	},
	{
		GroupVersion: authnV1, Name: "selfsubjectreviews", SingularName: "selfsubjectreview", Kind: "SelfSubjectReview",
		Verbs: []string{"create"}, Review: true,
	},
	{
		GroupVersion: authzV1, Name: "localsubjectaccessreviews", SingularName: "localsubjectaccessreview", Kind: "LocalSubjectAccessReview",
		Namespaced: true, Verbs: []string{"create"}, Review: true,
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

// workloadScale is where the apps kinds keep what their scale subresource shows.
var workloadScale = &ScalePaths{SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas", LabelSelectorPath: ".spec.selector"}

// ScaleTable prints the scale subresource's objects (autoscaling/v1 Scale).
var ScaleTable = scaleTable()

// Builtin is the set of the kinds built into skiff; a server serves them and those its
// CustomResourceDefinitions add.
var Builtin = NewSet(builtin)
