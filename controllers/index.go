package controllers

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// ControllerUIDIndex indexes objects by the UID of their controller, and orphans by
// OrphanIndexKey(namespace): a controller finds its pods (or ReplicaSets) and the orphans it
// might adopt without scanning its whole namespace.
const ControllerUIDIndex = "controllerUID"

// OrphanIndexKey is the ControllerUIDIndex value of the objects in namespace that have no
// controller.
func OrphanIndexKey(namespace string) string { return "orphan/" + namespace }

func controllerUIDIndexFunc(obj any) ([]string, error) {
	m, err := metaOf(obj)
	if err != nil {
		return nil, nil
	}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		return []string{string(ref.UID)}, nil
	}
	return []string{OrphanIndexKey(m.GetNamespace())}, nil
}

func metaOf(obj any) (metav1.Object, error) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, errNotObject
	}
	return m, nil
}

type notObject struct{}

func (notObject) Error() string { return "not an API object" }

var errNotObject error = notObject{}

// AddControllerUIDIndex adds ControllerUIDIndex to an informer that lacks it; several controllers
// share one informer, and the first to ask adds it. Call it before the informer starts.
func AddControllerUIDIndex(informer cache.SharedIndexInformer) error {
	if _, ok := informer.GetIndexer().GetIndexers()[ControllerUIDIndex]; ok {
		return nil
	}
	return informer.AddIndexers(cache.Indexers{ControllerUIDIndex: controllerUIDIndexFunc})
}

// ObjectsOf returns the objects of indexer whose controller has uid, and the orphans of
// namespace.
func ObjectsOf(indexer cache.Indexer, uid, namespace string) ([]any, error) {
	owned, err := indexer.ByIndex(ControllerUIDIndex, uid)
	if err != nil {
		return nil, err
	}
	orphans, err := indexer.ByIndex(ControllerUIDIndex, OrphanIndexKey(namespace))
	if err != nil {
		return nil, err
	}
	return append(owned, orphans...), nil
}

// KeyOf is the queue key of an object, or of the object inside a deletion tombstone.
func KeyOf(obj any) (string, error) {
	return cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
}

// PodNodeNameIndex indexes pods by spec.nodeName (unscheduled pods are not indexed).
const PodNodeNameIndex = "spec.nodeName"

// AddPodNodeNameIndex adds PodNodeNameIndex to a pod informer that lacks it. Call it before the
// informer starts.
func AddPodNodeNameIndex(informer cache.SharedIndexInformer) error {
	if _, ok := informer.GetIndexer().GetIndexers()[PodNodeNameIndex]; ok {
		return nil
	}
	return informer.AddIndexers(cache.Indexers{PodNodeNameIndex: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}})
}
