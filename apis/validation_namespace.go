package apis

import (
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateNamespace checks a namespace: its name is a DNS label, its spec finalizers are
// qualified names.
func ValidateNamespace(ns *corev1.Namespace) field.ErrorList {
	allErrs := ValidateObjectMeta(&ns.ObjectMeta, false, apivalidation.ValidateNamespaceName, metadataPath)
	for i := range ns.Spec.Finalizers {
		// Upstream reports these without the index.
		allErrs = append(allErrs, validateFinalizerName(string(ns.Spec.Finalizers[i]), field.NewPath("spec", "finalizers"))...)
	}
	return allErrs
}

// ValidateNamespaceUpdate checks the metadata of an update; spec.finalizers and status are not
// written through the main resource (the strategy keeps the old ones).
func ValidateNamespaceUpdate(ns, old *corev1.Namespace) field.ErrorList {
	return ValidateObjectMetaUpdate(&ns.ObjectMeta, &old.ObjectMeta, metadataPath)
}

// ValidateNamespaceStatusUpdate checks a write to namespaces/status: the phase is Active while the
// namespace lives and Terminating once it is being deleted.
func ValidateNamespaceStatusUpdate(ns, old *corev1.Namespace) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&ns.ObjectMeta, &old.ObjectMeta, metadataPath)
	// "status.Phase" (capital P) is upstream's path.
	phasePath := field.NewPath("status", "Phase")
	if ns.DeletionTimestamp.IsZero() {
		if ns.Status.Phase != corev1.NamespaceActive {
			allErrs = append(allErrs, field.Invalid(phasePath, ns.Status.Phase, "may only be 'Active' if `deletionTimestamp` is empty"))
		}
	} else if ns.Status.Phase != corev1.NamespaceTerminating {
		allErrs = append(allErrs, field.Invalid(phasePath, ns.Status.Phase, "may only be 'Terminating' if `deletionTimestamp` is not empty"))
	}
	return allErrs
}

// ValidateNamespaceFinalizeUpdate checks a write to namespaces/finalize, which may change only
// spec.finalizers.
func ValidateNamespaceFinalizeUpdate(ns, old *corev1.Namespace) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&ns.ObjectMeta, &old.ObjectMeta, metadataPath)
	fldPath := field.NewPath("spec", "finalizers")
	for i := range ns.Spec.Finalizers {
		allErrs = append(allErrs, validateFinalizerName(string(ns.Spec.Finalizers[i]), fldPath.Index(i))...)
	}
	return allErrs
}
