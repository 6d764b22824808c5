package apis

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validation in this package mirrors upstream's pkg/apis/*/validation: the same checks, the same
// field paths and the same words, because clients (kubectl first) print them verbatim. Where
// upstream has a quirk that users can observe (a misspelt path, a doubled path segment), the quirk
// is kept and marked.

// metadataPath is where every kind's ObjectMeta lives.
var metadataPath = field.NewPath("metadata")

// fieldImmutableWhenSet is upstream's detail for writes to immutable ConfigMaps and Secrets.
const fieldImmutableWhenSet = "field is immutable when `immutable` is set"

// ValidateObjectMeta checks the metadata of a new object: name (by nameFn) or generateName,
// namespace present exactly when namespaced, labels, annotations, owner references and
// finalizers, as upstream's core ValidateObjectMeta does (it adds the check that unqualified
// finalizer names are the standard ones).
func ValidateObjectMeta(meta *metav1.ObjectMeta, namespaced bool, nameFn apivalidation.ValidateNameFunc, fldPath *field.Path) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMeta(meta, namespaced, nameFn, fldPath)
	for i := range meta.Finalizers {
		allErrs = append(allErrs, validateKubeFinalizerName(meta.Finalizers[i], fldPath.Child("finalizers").Index(i))...)
	}
	return allErrs
}

// ValidateObjectMetaUpdate checks metadata replacing old: name, namespace, uid and timestamps are
// immutable, generation may not go down, resourceVersion must be set (the store fills it in for
// unconditional updates before validation, as upstream's does), and no finalizer may be added to
// an object being deleted.
func ValidateObjectMetaUpdate(newMeta, oldMeta *metav1.ObjectMeta, fldPath *field.Path) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMetaUpdate(newMeta, oldMeta, fldPath)
	for i := range newMeta.Finalizers {
		allErrs = append(allErrs, validateKubeFinalizerName(newMeta.Finalizers[i], fldPath.Child("finalizers").Index(i))...)
	}
	return allErrs
}

// standardFinalizers are the finalizer names that need no domain prefix.
var standardFinalizers = map[string]bool{
	string(corev1.FinalizerKubernetes): true,
	metav1.FinalizerOrphanDependents:   true,
	metav1.FinalizerDeleteDependents:   true,
}

// validateKubeFinalizerName rejects unqualified finalizer names other than the standard ones.
func validateKubeFinalizerName(name string, fldPath *field.Path) field.ErrorList {
	if !strings.Contains(name, "/") && !standardFinalizers[name] {
		return field.ErrorList{field.Invalid(fldPath, name, "name is neither a standard finalizer name nor is it fully qualified")}
	}
	return nil
}

// validateFinalizerName checks a namespace spec finalizer: a qualified name, and a standard one
// when it has no prefix.
func validateFinalizerName(name string, fldPath *field.Path) field.ErrorList {
	allErrs := apivalidation.ValidateFinalizerName(name, fldPath)
	return append(allErrs, validateKubeFinalizerName(name, fldPath)...)
}

// integerResources are the standard resource names whose quantities must be whole numbers.
var integerResources = map[corev1.ResourceName]bool{
	corev1.ResourcePods:                   true,
	corev1.ResourceQuotas:                 true,
	corev1.ResourceServices:               true,
	corev1.ResourceReplicationControllers: true,
	corev1.ResourceSecrets:                true,
	corev1.ResourceConfigMaps:             true,
	corev1.ResourcePersistentVolumeClaims: true,
	corev1.ResourceServicesNodePorts:      true,
	corev1.ResourceServicesLoadBalancers:  true,
}

// isExtendedResourceName reports whether name is an extended resource: domain-prefixed outside
// kubernetes.io, not a quota "requests." name, and a valid quota name once prefixed.
func isExtendedResourceName(name corev1.ResourceName) bool {
	s := string(name)
	native := !strings.Contains(s, "/") || strings.Contains(s, corev1.ResourceDefaultNamespacePrefix)
	if native || strings.HasPrefix(s, corev1.DefaultResourceRequestsPrefix) {
		return false
	}
	return len(validation.IsQualifiedName(corev1.DefaultResourceRequestsPrefix+s)) == 0
}

// validateResourceQuantityValue checks a quantity is not negative, and whole for resources that
// are counted (pods, extended resources, ...).
func validateResourceQuantityValue(name corev1.ResourceName, value resource.Quantity, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if value.Cmp(resource.Quantity{}) < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath, value.String(), apivalidation.IsNegativeErrorMsg))
	}
	if (integerResources[name] || isExtendedResourceName(name)) && value.MilliValue()%1000 != 0 {
		allErrs = append(allErrs, field.Invalid(fldPath, value, "must be an integer"))
	}
	return allErrs
}

// sameMap compares two maps as upstream's immutability checks mean it: a missing map and an
// empty one are the same content.
func sameMap[V any](a, b map[string]V) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return equality.Semantic.DeepEqual(a, b)
}

// ValidateObjectMetaAccessorUpdate is ValidateObjectMetaUpdate for any object's metadata
// (typed or unstructured), what a status write of a kind without its own checks gets.
func ValidateObjectMetaAccessorUpdate(newMeta, oldMeta metav1.Object) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMetaAccessorUpdate(newMeta, oldMeta, metadataPath)
	for i, f := range newMeta.GetFinalizers() {
		allErrs = append(allErrs, validateKubeFinalizerName(f, metadataPath.Child("finalizers").Index(i))...)
	}
	return allErrs
}
