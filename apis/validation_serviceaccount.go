package apis

import (
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateServiceAccount checks a service account; upstream checks only its metadata.
func ValidateServiceAccount(sa *corev1.ServiceAccount) field.ErrorList {
	return ValidateObjectMeta(&sa.ObjectMeta, true, apivalidation.ValidateServiceAccountName, metadataPath)
}

// ValidateServiceAccountUpdate checks sa replacing old.
func ValidateServiceAccountUpdate(sa, old *corev1.ServiceAccount) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&sa.ObjectMeta, &old.ObjectMeta, metadataPath)
	return append(allErrs, ValidateServiceAccount(sa)...)
}
