package apis

import (
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateScale checks a write to a scale subresource (replicasets/scale): the usual metadata of
// the parent, and a replica count that is not negative.
func ValidateScale(scale *autoscalingv1.Scale) field.ErrorList {
	allErrs := ValidateObjectMeta(&scale.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	if scale.Spec.Replicas < 0 {
		allErrs = append(allErrs, field.Invalid(field.NewPath("spec", "replicas"), scale.Spec.Replicas, "must be greater than or equal to 0"))
	}
	return allErrs
}
