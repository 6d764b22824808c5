package replicaset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// ReplicationControllerName is the ReplicationController controller's name in
	// --controllers, logs and metrics.
	ReplicationControllerName = "replicationcontroller"
	// ReplicationControllerComponent names it in the Events it records.
	ReplicationControllerComponent = "replication-controller"
)

// NewForReplicationControllers makes the ReplicationController controller: this package's
// controller over ReplicationControllers, which it sees as ReplicaSets (a selector map is a
// selector of matchLabels; the status converts field by field). Call it before the informers
// start.
func NewForReplicationControllers(rcInformer coreinformers.ReplicationControllerInformer, podInformer coreinformers.PodInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	lister := rcInformer.Lister()
	rcs := func(namespace string) ([]*appsv1.ReplicaSet, error) {
		list, err := lister.ReplicationControllers(namespace).List(labels.Everything())
		if err != nil {
			return nil, err
		}
		out := make([]*appsv1.ReplicaSet, len(list))
		for i, rc := range list {
			out[i] = replicaSetOf(rc)
		}
		return out, nil
	}
	kind := managedKind{
		gvk:       corev1.SchemeGroupVersion.WithKind("ReplicationController"),
		name:      ReplicationControllerName,
		component: ReplicationControllerComponent,
		asReplicaSet: func(obj any) any {
			return tombstoned(obj, func(rc *corev1.ReplicationController) any { return replicaSetOf(rc) })
		},
		get: func(namespace, name string) (*appsv1.ReplicaSet, error) {
			rc, err := lister.ReplicationControllers(namespace).Get(name)
			if err != nil {
				return nil, err
			}
			return replicaSetOf(rc), nil
		},
		list: rcs,
		fresh: func(ctx context.Context, namespace, name string) (*appsv1.ReplicaSet, error) {
			rc, err := client.CoreV1().ReplicationControllers(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return replicaSetOf(rc), nil
		},
		updateStatus: func(ctx context.Context, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
			rc, err := client.CoreV1().ReplicationControllers(rs.Namespace).UpdateStatus(ctx, replicationControllerOf(rs), metav1.UpdateOptions{})
			if err != nil {
				return nil, err
			}
			return replicaSetOf(rc), nil
		},
		eventObject: func(rs *appsv1.ReplicaSet) runtime.Object {
			return &corev1.ReplicationController{ObjectMeta: rs.ObjectMeta}
		},
	}
	return newController(kind, rcInformer.Informer(), podInformer, client, r)
}

// replicaSetOf is rc as a ReplicaSet: the same metadata, replicas, template and status, and its
// selector map as matchLabels.
func replicaSetOf(rc *corev1.ReplicationController) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: *rc.ObjectMeta.DeepCopy(),
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        rc.Spec.Replicas,
			MinReadySeconds: rc.Spec.MinReadySeconds,
			Selector:        &metav1.LabelSelector{MatchLabels: rc.Spec.Selector},
		},
		Status: appsv1.ReplicaSetStatus{
			Replicas:             rc.Status.Replicas,
			FullyLabeledReplicas: rc.Status.FullyLabeledReplicas,
			ReadyReplicas:        rc.Status.ReadyReplicas,
			AvailableReplicas:    rc.Status.AvailableReplicas,
			ObservedGeneration:   rc.Status.ObservedGeneration,
		},
	}
	if rc.Spec.Template != nil {
		rs.Spec.Template = *rc.Spec.Template.DeepCopy()
	}
	for _, c := range rc.Status.Conditions {
		rs.Status.Conditions = append(rs.Status.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetConditionType(c.Type), Status: c.Status,
			LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message,
		})
	}
	return rs
}

// replicationControllerOf is rs back as a ReplicationController.
func replicationControllerOf(rs *appsv1.ReplicaSet) *corev1.ReplicationController {
	rc := &corev1.ReplicationController{
		ObjectMeta: *rs.ObjectMeta.DeepCopy(),
		Spec: corev1.ReplicationControllerSpec{
			Replicas:        rs.Spec.Replicas,
			MinReadySeconds: rs.Spec.MinReadySeconds,
			Template:        rs.Spec.Template.DeepCopy(),
		},
		Status: corev1.ReplicationControllerStatus{
			Replicas:             rs.Status.Replicas,
			FullyLabeledReplicas: rs.Status.FullyLabeledReplicas,
			ReadyReplicas:        rs.Status.ReadyReplicas,
			AvailableReplicas:    rs.Status.AvailableReplicas,
			ObservedGeneration:   rs.Status.ObservedGeneration,
		},
	}
	if rs.Spec.Selector != nil {
		rc.Spec.Selector = rs.Spec.Selector.MatchLabels
	}
	for _, c := range rs.Status.Conditions {
		rc.Status.Conditions = append(rc.Status.Conditions, corev1.ReplicationControllerCondition{
			Type: corev1.ReplicationControllerConditionType(c.Type), Status: c.Status,
			LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message,
		})
	}
	return rc
}
