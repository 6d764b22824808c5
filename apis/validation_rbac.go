package apis

import (
	rbacv1 "k8s.io/api/rbac/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validation of the rbac.authorization.k8s.io kinds, as upstream's pkg/apis/rbac/validation.
// Upstream's update validation of all four kinds checks the new object twice (its strategies
// call the create validation and then the update validation, which calls it again): the
// *Update functions here return the same list, so the Status causes are the same; its message
// names each error once.

// ValidateRBACName is the name rule of roles, bindings and a roleRef: any path segment name.
func ValidateRBACName(name string, prefix bool) []string {
	return path.IsValidPathSegmentName(name)
}

// ValidateRole checks a new Role.
func ValidateRole(role *rbacv1.Role) field.ErrorList {
	allErrs := ValidateObjectMeta(&role.ObjectMeta, true, ValidateRBACName, metadataPath)
	for i := range role.Rules {
		allErrs = append(allErrs, ValidatePolicyRule(role.Rules[i], true, field.NewPath("rules").Index(i))...)
	}
	return allErrs
}

// ValidateRoleUpdate checks role replacing old, with upstream's doubled object checks.
func ValidateRoleUpdate(role, old *rbacv1.Role) field.ErrorList {
	allErrs := ValidateRole(role)
	allErrs = append(allErrs, ValidateRole(role)...)
	return append(allErrs, ValidateObjectMetaUpdate(&role.ObjectMeta, &old.ObjectMeta, metadataPath)...)
}

// ValidateClusterRole checks a new ClusterRole: its rules, and an aggregationRule with at
// least one valid selector.
func ValidateClusterRole(role *rbacv1.ClusterRole) field.ErrorList {
	return validateClusterRole(role, metav1validation.LabelSelectorValidationOptions{})
}

// ValidateClusterRoleUpdate checks role replacing old, with upstream's doubled object checks. A
// selector label value that the old object already had passes even if no longer valid.
func ValidateClusterRoleUpdate(role, old *rbacv1.ClusterRole) field.ErrorList {
	opts := metav1validation.LabelSelectorValidationOptions{AllowInvalidLabelValueInSelector: hasInvalidSelectorLabelValue(old)}
	allErrs := validateClusterRole(role, opts)
	allErrs = append(allErrs, validateClusterRole(role, opts)...)
	return append(allErrs, ValidateObjectMetaUpdate(&role.ObjectMeta, &old.ObjectMeta, metadataPath)...)
}

func validateClusterRole(role *rbacv1.ClusterRole, opts metav1validation.LabelSelectorValidationOptions) field.ErrorList {
	allErrs := ValidateObjectMeta(&role.ObjectMeta, false, ValidateRBACName, metadataPath)
	for i := range role.Rules {
		allErrs = append(allErrs, ValidatePolicyRule(role.Rules[i], false, field.NewPath("rules").Index(i))...)
	}
	if role.AggregationRule != nil {
		selectorsPath := field.NewPath("aggregationRule", "clusterRoleSelectors")
		if len(role.AggregationRule.ClusterRoleSelectors) == 0 {
			allErrs = append(allErrs, field.Required(selectorsPath, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
		}
		for i := range role.AggregationRule.ClusterRoleSelectors {
			selector := &role.AggregationRule.ClusterRoleSelectors[i]
			allErrs = append(allErrs, metav1validation.ValidateLabelSelector(selector, opts, selectorsPath.Index(i))...)
			if _, err := metav1.LabelSelectorAsSelector(selector); err != nil {
				allErrs = append(allErrs, field.Invalid(selectorsPath.Index(i), selector, "invalid label selector."))
			}
		}
	}
	return allErrs
}

// hasInvalidSelectorLabelValue reports whether any aggregation selector of role has a label
// value that validation would refuse today.
func hasInvalidSelectorLabelValue(role *rbacv1.ClusterRole) bool {
	if role.AggregationRule == nil {
		return false
	}
	for i := range role.AggregationRule.ClusterRoleSelectors {
		if len(metav1validation.ValidateLabelSelector(&role.AggregationRule.ClusterRoleSelectors[i], metav1validation.LabelSelectorValidationOptions{}, nil)) > 0 {
			return true
		}
	}
	return false
}

// ValidatePolicyRule checks a rule: verbs; and either non-resource URLs (in cluster roles only,
// and alone) or API groups with resources.
func ValidatePolicyRule(rule rbacv1.PolicyRule, namespaced bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(rule.Verbs) == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("verbs"), "verbs must contain at least one value"))
	}
	if len(rule.NonResourceURLs) > 0 {
		if namespaced {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("nonResourceURLs"), rule.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
		}
		if len(rule.APIGroups) > 0 || len(rule.Resources) > 0 || len(rule.ResourceNames) > 0 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("nonResourceURLs"), rule.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
		}
		return allErrs
	}
	if len(rule.APIGroups) == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("apiGroups"), "resource rules must supply at least one api group"))
	}
	if len(rule.Resources) == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("resources"), "resource rules must supply at least one resource"))
	}
	return allErrs
}

// ValidateRoleBinding checks a new RoleBinding: a roleRef to a Role or ClusterRole of this API
// group, and its subjects.
func ValidateRoleBinding(b *rbacv1.RoleBinding) field.ErrorList {
	allErrs := ValidateObjectMeta(&b.ObjectMeta, true, ValidateRBACName, metadataPath)
	allErrs = append(allErrs, validateRoleRef(b.RoleRef, []string{"Role", "ClusterRole"})...)
	for i := range b.Subjects {
		allErrs = append(allErrs, ValidateRoleBindingSubject(b.Subjects[i], true, field.NewPath("subjects").Index(i))...)
	}
	return allErrs
}

// ValidateRoleBindingUpdate checks b replacing old, with upstream's doubled object checks;
// roleRef cannot change.
func ValidateRoleBindingUpdate(b, old *rbacv1.RoleBinding) field.ErrorList {
	allErrs := ValidateRoleBinding(b)
	allErrs = append(allErrs, ValidateRoleBinding(b)...)
	allErrs = append(allErrs, ValidateObjectMetaUpdate(&b.ObjectMeta, &old.ObjectMeta, metadataPath)...)
	if old.RoleRef != b.RoleRef {
		allErrs = append(allErrs, field.Invalid(field.NewPath("roleRef"), b.RoleRef, "cannot change roleRef"))
	}
	return allErrs
}

// ValidateClusterRoleBinding checks a new ClusterRoleBinding: a roleRef to a ClusterRole, and
// its subjects (service accounts with a namespace).
func ValidateClusterRoleBinding(b *rbacv1.ClusterRoleBinding) field.ErrorList {
	allErrs := ValidateObjectMeta(&b.ObjectMeta, false, ValidateRBACName, metadataPath)
	allErrs = append(allErrs, validateRoleRef(b.RoleRef, []string{"ClusterRole"})...)
	for i := range b.Subjects {
		allErrs = append(allErrs, ValidateRoleBindingSubject(b.Subjects[i], false, field.NewPath("subjects").Index(i))...)
	}
	return allErrs
}

// ValidateClusterRoleBindingUpdate checks b replacing old, with upstream's doubled object
// checks; roleRef cannot change.
func ValidateClusterRoleBindingUpdate(b, old *rbacv1.ClusterRoleBinding) field.ErrorList {
	allErrs := ValidateClusterRoleBinding(b)
	allErrs = append(allErrs, ValidateClusterRoleBinding(b)...)
	allErrs = append(allErrs, ValidateObjectMetaUpdate(&b.ObjectMeta, &old.ObjectMeta, metadataPath)...)
	if old.RoleRef != b.RoleRef {
		allErrs = append(allErrs, field.Invalid(field.NewPath("roleRef"), b.RoleRef, "cannot change roleRef"))
	}
	return allErrs
}

func validateRoleRef(ref rbacv1.RoleRef, kinds []string) field.ErrorList {
	var allErrs field.ErrorList
	refPath := field.NewPath("roleRef")
	if ref.APIGroup != rbacv1.GroupName {
		allErrs = append(allErrs, field.NotSupported(refPath.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	kindOK := false
	for _, k := range kinds {
		kindOK = kindOK || ref.Kind == k
	}
	if !kindOK {
		allErrs = append(allErrs, field.NotSupported(refPath.Child("kind"), ref.Kind, kinds))
	}
	if ref.Name == "" {
		allErrs = append(allErrs, field.Required(refPath.Child("name"), ""))
	} else {
		for _, msg := range ValidateRBACName(ref.Name, false) {
			allErrs = append(allErrs, field.Invalid(refPath.Child("name"), ref.Name, msg))
		}
	}
	return allErrs
}

// ValidateRoleBindingSubject checks a subject: a named User or Group of this API group, or a
// ServiceAccount of the core group (with a namespace unless the binding is namespaced).
func ValidateRoleBindingSubject(s rbacv1.Subject, namespaced bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if s.Name == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("name"), ""))
	}
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		if s.Name != "" {
			for _, msg := range apivalidation.ValidateServiceAccountName(s.Name, false) {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("name"), s.Name, msg))
			}
		}
		if s.APIGroup != "" {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("apiGroup"), s.APIGroup, []string{""}))
		}
		if !namespaced && s.Namespace == "" {
			allErrs = append(allErrs, field.Required(fldPath.Child("namespace"), ""))
		}
	case rbacv1.UserKind, rbacv1.GroupKind:
		if s.APIGroup != rbacv1.GroupName {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
		}
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("kind"), s.Kind, []string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
	}
	return allErrs
}
