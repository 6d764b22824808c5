package registry

import (
	"fmt"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/apis"
)

// The scale subresource shows and sets a workload's replicas as an autoscaling/v1 Scale, at
// the paths its declaration gives (apis.ScalePaths), for built-in kinds and custom resources
// alike.

// ScaleOf returns obj's Scale. A built-in object without spec replicas has upstream's default
// of 1; a custom resource without them has 0, as upstream's.
func ScaleOf(res *apis.Resource, obj runtime.Object) (*autoscalingv1.Scale, error) {
	paths := res.Scale
	if paths == nil {
		return nil, fmt.Errorf("%s has no scale subresource", res.GroupVersionResource())
	}
	content, err := contentOf(obj)
	if err != nil {
		return nil, err
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	replicas := int64(0)
	if !res.Unstructured {
		replicas = 1
	}
	if v, found, err := unstructured.NestedFieldNoCopy(content, splitPath(paths.SpecReplicasPath)...); err == nil && found {
		if n, ok := asInt64(v); ok {
			replicas = n
		}
	}
	var statusReplicas int64
	if v, found, err := unstructured.NestedFieldNoCopy(content, splitPath(paths.StatusReplicasPath)...); err == nil && found {
		statusReplicas, _ = asInt64(v)
	}
	selector := ""
	if paths.LabelSelectorPath != "" {
		if v, found, err := unstructured.NestedFieldNoCopy(content, splitPath(paths.LabelSelectorPath)...); err == nil && found {
			selector = selectorString(v)
		}
	}
	return &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{
			Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp(),
		},
		Spec:   autoscalingv1.ScaleSpec{Replicas: int32(replicas)},
		Status: autoscalingv1.ScaleStatus{Replicas: int32(statusReplicas), Selector: selector},
	}, nil
}

// SetScaleReplicas returns obj with its spec replicas set (a new object for built-in kinds;
// a custom resource is changed in place).
func SetScaleReplicas(res *apis.Resource, obj runtime.Object, replicas int32) (runtime.Object, error) {
	if res.Scale == nil {
		return nil, fmt.Errorf("%s has no scale subresource", res.GroupVersionResource())
	}
	path := splitPath(res.Scale.SpecReplicasPath)
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u, unstructured.SetNestedField(u.Object, int64(replicas), path...)
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	if err := unstructured.SetNestedField(content, int64(replicas), path...); err != nil {
		return nil, err
	}
	out := res.New()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(content, out); err != nil {
		return nil, err
	}
	return out, nil
}

// contentOf is obj as a JSON-shaped map: a custom resource's own, a built-in object's
// converted (a copy).
func contentOf(obj runtime.Object) (map[string]interface{}, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u.Object, nil
	}
	return runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
}

// splitPath turns ".spec.replicas" into its fields.
func splitPath(p string) []string {
	return strings.Split(strings.TrimPrefix(p, "."), ".")
}

func asInt64(v interface{}) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case int:
		return int64(n), true
	case float64:
		return int64(n), true
	}
	return 0, false
}

// selectorString is a label selector as a Scale shows it: a selector string is itself, a
// metav1.LabelSelector is rendered; anything else shows as none.
func selectorString(v interface{}) string {
	switch sel := v.(type) {
	case string:
		return sel
	case map[string]interface{}:
		if set, ok := labelSet(sel); ok {
			// a map of labels (a ReplicationController's selector), never a LabelSelector,
			// whose fields are a map and a list
			return labels.SelectorFromSet(set).String()
		}
		var ls metav1.LabelSelector
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(sel, &ls); err != nil {
			return ""
		}
		s, err := metav1.LabelSelectorAsSelector(&ls)
		if err != nil {
			return ""
		}
		return s.String()
	}
	return ""
}

// labelSet is m as labels when every value of it is a string.
func labelSet(m map[string]interface{}) (labels.Set, bool) {
	set := make(labels.Set, len(m))
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		set[k] = s
	}
	return set, len(set) > 0
}
