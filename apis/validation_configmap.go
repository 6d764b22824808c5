package apis

import (
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateConfigMap checks key names in data and binaryData (no key in both) and that the
// values together stay within 1 MiB.
func ValidateConfigMap(cm *corev1.ConfigMap) field.ErrorList {
	allErrs := ValidateObjectMeta(&cm.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	total := 0
	for key, value := range cm.Data {
		for _, msg := range validation.IsConfigMapKey(key) {
			allErrs = append(allErrs, field.Invalid(field.NewPath("data").Key(key), key, msg))
		}
		if _, dup := cm.BinaryData[key]; dup {
			allErrs = append(allErrs, field.Invalid(field.NewPath("data").Key(key), key, "duplicate of key present in binaryData"))
		}
		total += len(value)
	}
	for key, value := range cm.BinaryData {
		for _, msg := range validation.IsConfigMapKey(key) {
			allErrs = append(allErrs, field.Invalid(field.NewPath("binaryData").Key(key), key, msg))
		}
		total += len(value)
	}
	if total > corev1.MaxSecretSize {
		// The empty path is upstream's way of saying "the whole object".
		allErrs = append(allErrs, field.TooLong(field.NewPath(""), "", corev1.MaxSecretSize))
	}
	return allErrs
}

// ValidateConfigMapUpdate checks cm replacing old: once immutable, a config map keeps its data
// and stays immutable.
func ValidateConfigMapUpdate(cm, old *corev1.ConfigMap) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&cm.ObjectMeta, &old.ObjectMeta, metadataPath)
	if old.Immutable != nil && *old.Immutable {
		if cm.Immutable == nil || !*cm.Immutable {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("immutable"), fieldImmutableWhenSet))
		}
		if !sameMap(cm.Data, old.Data) {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("data"), fieldImmutableWhenSet))
		}
		if !sameMap(cm.BinaryData, old.BinaryData) {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("binaryData"), fieldImmutableWhenSet))
		}
	}
	return append(allErrs, ValidateConfigMap(cm)...)
}
