package apis

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// addDefaultingFuncs registers skiff's defaulting of every served kind, so that Scheme.Default
// fills in what upstream's API server fills in. Kinds upstream does not default (Event, Lease,
// ServiceAccount) have no function. What the server sets on create regardless of the request
// (a namespace's "kubernetes" finalizer, a pod's status) is the registry strategies' job.
func addDefaultingFuncs(s *runtime.Scheme) error {
	addDefaulter(s, DefaultPod, func(l *corev1.PodList) []corev1.Pod { return l.Items })
	addDefaulter(s, defaultNode, func(l *corev1.NodeList) []corev1.Node { return l.Items })
	addDefaulter(s, defaultNamespace, func(l *corev1.NamespaceList) []corev1.Namespace { return l.Items })
	addDefaulter(s, defaultSecret, func(l *corev1.SecretList) []corev1.Secret { return l.Items })
	addDefaulter(s, defaultConfigMap, func(l *corev1.ConfigMapList) []corev1.ConfigMap { return l.Items })
	addDefaulter(s, defaultReplicaSet, func(l *appsv1.ReplicaSetList) []appsv1.ReplicaSet { return l.Items })
	addDefaulter(s, defaultDeployment, func(l *appsv1.DeploymentList) []appsv1.Deployment { return l.Items })
	addDefaulter(s, defaultService, func(l *corev1.ServiceList) []corev1.Service { return l.Items })
	addDefaulter(s, defaultPriorityClass, func(l *schedulingv1.PriorityClassList) []schedulingv1.PriorityClass { return l.Items })
	return nil
}

// addDefaulter registers fn for the kind T and for its list L, whose items items returns.
func addDefaulter[T any, L any](s *runtime.Scheme, fn func(*T), items func(*L) []T) {
	s.AddTypeDefaultingFunc(any(new(T)).(runtime.Object), func(obj interface{}) { fn(obj.(*T)) })
	s.AddTypeDefaultingFunc(any(new(L)).(runtime.Object), func(obj interface{}) {
		list := items(obj.(*L))
		for i := range list {
			fn(&list[i])
		}
	})
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
