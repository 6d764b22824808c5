package apiserver

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// admitPodRuntimeClass is upstream's RuntimeClass plugin for a new pod: a pod naming a
// RuntimeClass that does not exist is refused, and one that exists gives the pod its overhead
// and its scheduling (node selector and tolerations); a pod may state an overhead only when it
// is its class's.
func (a admission) admitPodRuntimeClass(ctx context.Context, pod *corev1.Pod) error {
	if a.runtimeClasses == nil || !a.enabled("RuntimeClass") {
		return nil
	}
	forbidden := func(format string, args ...any) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name, fmt.Errorf(format, args...))
	}
	var rc *nodev1.RuntimeClass
	if name := pod.Spec.RuntimeClassName; name != nil {
		obj, err := a.runtimeClasses.Get(ctx, "", *name, &metav1.GetOptions{ResourceVersion: "0"})
		if apierrors.IsNotFound(err) {
			obj, err = a.runtimeClasses.Get(ctx, "", *name, &metav1.GetOptions{})
		}
		if apierrors.IsNotFound(err) {
			return forbidden("pod rejected: RuntimeClass %q not found", *name)
		}
		if err != nil {
			return err
		}
		rc = obj.(*nodev1.RuntimeClass)
	}
	if rc == nil || rc.Overhead == nil {
		if pod.Spec.Overhead != nil {
			return forbidden("pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")
		}
		if rc == nil {
			return nil
		}
	} else {
		if len(pod.Spec.Overhead) > 0 && !apiequality.Semantic.DeepEqual(pod.Spec.Overhead, rc.Overhead.PodFixed) {
			return forbidden("pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
		}
		pod.Spec.Overhead = rc.Overhead.PodFixed.DeepCopy()
	}
	if s := rc.Scheduling; s != nil {
		for key, value := range s.NodeSelector {
			if podValue, ok := pod.Spec.NodeSelector[key]; ok && podValue != value {
				return forbidden("conflict: runtimeClass.scheduling.nodeSelector[%s] = %s; pod.spec.nodeSelector[%s] = %s", key, value, key, podValue)
			}
		}
		for key, value := range s.NodeSelector {
			if pod.Spec.NodeSelector == nil {
				pod.Spec.NodeSelector = map[string]string{}
			}
			pod.Spec.NodeSelector[key] = value
		}
		// the class's tolerations join the pod's; one the pod already has is not repeated
		for _, t := range s.Tolerations {
			if !slices.ContainsFunc(pod.Spec.Tolerations, func(have corev1.Toleration) bool { return apiequality.Semantic.DeepEqual(have, t) }) {
				pod.Spec.Tolerations = append(pod.Spec.Tolerations, t)
			}
		}
	}
	return nil
}
