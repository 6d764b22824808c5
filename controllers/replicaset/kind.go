package replicaset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
)

// managedKind is the kind the controller keeps replicas of, seen as ReplicaSets: ReplicaSets
// themselves, or ReplicationControllers converted. The sync logic never knows which.
type managedKind struct {
	gvk schema.GroupVersionKind
	// name names the controller in queues, logs and metrics; component in its Events.
	name, component string
	// asReplicaSet turns an informer's object (or tombstone) into a *ReplicaSet (or a
	// tombstone of one).
	asReplicaSet func(obj any) any
	// get and list read the informer's cache.
	get  func(namespace, name string) (*appsv1.ReplicaSet, error)
	list func(namespace string) ([]*appsv1.ReplicaSet, error)
	// fresh reads the object from the API server.
	fresh func(ctx context.Context, namespace, name string) (*appsv1.ReplicaSet, error)
	// updateStatus writes rs's status to the API server and returns what was stored.
	updateStatus func(ctx context.Context, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error)
	// countsTerminating says whether the status reports terminating replicas.
	countsTerminating bool
	// eventObject is the object Events about rs are recorded on.
	eventObject func(rs *appsv1.ReplicaSet) runtime.Object
}

func replicaSetKind(lister appslisters.ReplicaSetLister, client kubernetes.Interface) managedKind {
	return managedKind{
		gvk:               appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
		name:              Name,
		component:         Component,
		asReplicaSet:      func(obj any) any { return obj },
		countsTerminating: true,
		get: func(namespace, name string) (*appsv1.ReplicaSet, error) {
			return lister.ReplicaSets(namespace).Get(name)
		},
		list: func(namespace string) ([]*appsv1.ReplicaSet, error) {
			return lister.ReplicaSets(namespace).List(labels.Everything())
		},
		fresh: func(ctx context.Context, namespace, name string) (*appsv1.ReplicaSet, error) {
			return client.AppsV1().ReplicaSets(namespace).Get(ctx, name, metav1.GetOptions{})
		},
		updateStatus: func(ctx context.Context, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
			return client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{})
		},
		eventObject: func(rs *appsv1.ReplicaSet) runtime.Object { return rs },
	}
}

// tombstoned applies convert to obj, or to the object inside a deletion tombstone.
func tombstoned[T any](obj any, convert func(T) any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		if o, ok := t.Obj.(T); ok {
			return cache.DeletedFinalStateUnknown{Key: t.Key, Obj: convert(o)}
		}
		return t
	}
	if o, ok := obj.(T); ok {
		return convert(o)
	}
	return obj
}
