package apis

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// addDefaultingFuncs registers each built-in kind's Default with the scheme, for its objects
// and its lists, so that Scheme.Default fills in what upstream's API server fills in. Kinds
// upstream does not default (Event, Lease, ServiceAccount) have none. What the server sets on
// create regardless of the request (a namespace's "kubernetes" finalizer, a pod's status) is
// the strategies' job.
func addDefaultingFuncs(s *runtime.Scheme) {
	for _, r := range Builtin.All() {
		if r.Default == nil || r.StorageVersion != r.GroupVersion {
			continue
		}
		def := r.Default
		s.AddTypeDefaultingFunc(r.New(), func(obj interface{}) { def(obj.(runtime.Object)) })
		s.AddTypeDefaultingFunc(r.NewList(), func(list interface{}) {
			meta.EachListItem(list.(runtime.Object), func(item runtime.Object) error { def(item); return nil })
		})
	}
}

// defaultNode makes allocatable default to capacity and rounds both up to milli units, as
// upstream's SetDefaults_NodeStatus and SetDefaults_ResourceList do.
func defaultNode(node *corev1.Node) {
	if node.Status.Allocatable == nil && node.Status.Capacity != nil {
		node.Status.Allocatable = make(corev1.ResourceList, len(node.Status.Capacity))
		for name, q := range node.Status.Capacity {
			node.Status.Allocatable[name] = q.DeepCopy()
		}
	}
	roundResourceListToMilli(node.Status.Capacity)
	roundResourceListToMilli(node.Status.Allocatable)
}

// roundResourceListToMilli rounds every quantity up to milli precision; upstream keeps finer
// values out of the API this way instead of rejecting them.
func roundResourceListToMilli(list corev1.ResourceList) {
	for name, q := range list {
		q.RoundUp(-3)
		list[name] = q
	}
}

// defaultNamespace labels a namespace with its own name (kubernetes.io/metadata.name) and makes
// its phase Active. A namespace created with generateName gets the label from the strategy, once
// the name is known.
func defaultNamespace(ns *corev1.Namespace) {
	if ns.Name != "" {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[corev1.LabelMetadataName] = ns.Name
	}
	if ns.Status.Phase == "" {
		ns.Status.Phase = corev1.NamespaceActive
	}
}

func defaultSecret(secret *corev1.Secret) {
	if secret.Type == "" {
		secret.Type = corev1.SecretTypeOpaque
	}
}

func defaultConfigMap(cm *corev1.ConfigMap) {
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
}

// defaultReplicaSet makes one replica the default and defaults the pod template's spec. apps/v1
// does not default the selector or labels from the template (extensions/v1beta1 did).
func defaultReplicaSet(rs *appsv1.ReplicaSet) {
	if rs.Spec.Replicas == nil {
		one := int32(1)
		rs.Spec.Replicas = &one
	}
	DefaultPodSpec(&rs.Spec.Template.Spec)
}
