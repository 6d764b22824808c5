package registry

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/apis"
)

// Bind assigns the pod ns/binding.Name to binding.Target once, as the scheduler asks through
// pods/binding: it sets spec.nodeName, the binding's labels and annotations and the
// PodScheduled condition, and refuses a pod that is being deleted, already assigned or gated,
// in upstream's words.
func (s *Store) Bind(ctx context.Context, ns string, binding *corev1.Binding, dryRun bool) error {
	if errs := apis.ValidatePodBinding(binding); len(errs) > 0 {
		return apis.NewInvalid(schema.GroupKind{Kind: "Binding"}, binding.Name, errs)
	}
	name := binding.Name
	_, _, err := s.Update(ctx, ns, name, bindingStrategy{}, func(_ context.Context, current runtime.Object) (runtime.Object, error) {
		if current == nil {
			return nil, apierrors.NewNotFound(s.GroupResource(), name)
		}
		pod := current.(*corev1.Pod)
		bindingGR := schema.GroupResource{Resource: "pods/binding"}
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(bindingGR, name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", name))
		}
		if binding.UID != "" && binding.UID != pod.UID {
			return nil, apierrors.NewConflict(bindingGR, name,
				fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", binding.UID, pod.UID))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(bindingGR, name,
				fmt.Errorf("pod %s is already assigned to node %q", name, pod.Spec.NodeName))
		}
		if len(pod.Spec.SchedulingGates) > 0 {
			return nil, apierrors.NewConflict(bindingGR, name,
				fmt.Errorf("pod %v has non-empty .spec.schedulingGates", name))
		}
		pod.Spec.NodeName = binding.Target.Name
		pod.Status.NominatedNodeName = ""
		for k, v := range binding.Labels {
			if pod.Labels == nil {
				pod.Labels = map[string]string{}
			}
			pod.Labels[k] = v
		}
		for k, v := range binding.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		setPodScheduled(pod)
		return pod, nil
	}, dryRun)
	return err
}

// setPodScheduled records the PodScheduled condition a binding brings, as upstream's binding
// storage does.
func setPodScheduled(pod *corev1.Pod) {
	now := metav1.Now()
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodScheduled {
			c := &pod.Status.Conditions[i]
			if c.Status != corev1.ConditionTrue {
				c.LastTransitionTime = now
			}
			c.Status, c.Reason, c.Message = corev1.ConditionTrue, "", ""
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now,
	})
}

// bindingStrategy lets a binding write spec.nodeName and the scheduled condition, nothing
// a client sent.
type bindingStrategy struct{}

var _ apis.Strategy = bindingStrategy{}

func (bindingStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (bindingStrategy) Validate(context.Context, runtime.Object) field.ErrorList         { return nil }
func (bindingStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}
func (bindingStrategy) ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList {
	return nil
}
func (bindingStrategy) AllowCreateOnUpdate() bool      { return false }
func (bindingStrategy) AllowUnconditionalUpdate() bool { return true }
