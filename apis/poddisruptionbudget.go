package apis

import (
	policyv1 "k8s.io/api/policy/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// PodDisruptionBudgets (policy/v1): how many of an application's pods voluntary disruptions
// (evictions) may take at once. Upstream's validation and columns; the disruption controller
// writes the status and pods/eviction reads it.

var policyV1 = policyv1.SchemeGroupVersion

// PodDisruptionBudgetStrategy and PodDisruptionBudgetStatusStrategy are the strategies of
// poddisruptionbudgets and poddisruptionbudgets/status: the spec may change (policy/v1), the
// status only through the subresource.
var PodDisruptionBudgetStrategy, PodDisruptionBudgetStatusStrategy = SpecAndStatus[*policyv1.PodDisruptionBudget]{
	Validate:             ValidatePodDisruptionBudget,
	ValidateUpdate:       ValidatePodDisruptionBudgetUpdate,
	ValidateStatusUpdate: ValidatePodDisruptionBudgetStatusUpdate,
}.Strategies()

// supportedUnhealthyPodEvictionPolicies are the values of spec.unhealthyPodEvictionPolicy, in
// the sorted order upstream lists them in its error.
var supportedUnhealthyPodEvictionPolicies = []string{string(policyv1.AlwaysAllow), string(policyv1.IfHealthyBudget)}

// ValidatePodDisruptionBudget checks a new budget.
func ValidatePodDisruptionBudget(pdb *policyv1.PodDisruptionBudget) field.ErrorList {
	allErrs := ValidateObjectMeta(&pdb.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validatePodDisruptionBudgetSpec(&pdb.Spec, false, field.NewPath("spec"))...)
}

// ValidatePodDisruptionBudgetUpdate checks pdb replacing old: the spec may change, and a
// selector that already held label values upstream no longer accepts may keep them.
func ValidatePodDisruptionBudgetUpdate(pdb, old *policyv1.PodDisruptionBudget) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&pdb.ObjectMeta, &old.ObjectMeta, metadataPath)
	allowInvalid := old.Spec.Selector != nil &&
		len(metav1validation.ValidateLabelSelector(old.Spec.Selector, metav1validation.LabelSelectorValidationOptions{}, nil)) > 0
	return append(allErrs, validatePodDisruptionBudgetSpec(&pdb.Spec, allowInvalid, field.NewPath("spec"))...)
}

func validatePodDisruptionBudgetSpec(spec *policyv1.PodDisruptionBudgetSpec, allowInvalidSelectorValues bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if spec.MinAvailable != nil && spec.MaxUnavailable != nil {
		allErrs = append(allErrs, field.Invalid(fldPath, *spec, "minAvailable and maxUnavailable cannot be both set"))
	}
	for _, v := range []struct {
		name  string
		value *intstr.IntOrString
	}{{"minAvailable", spec.MinAvailable}, {"maxUnavailable", spec.MaxUnavailable}} {
		if v.value == nil {
			continue
		}
		p := fldPath.Child(v.name)
		allErrs = append(allErrs, validatePositiveIntOrPercent(v.value, p)...)
		if v.value.Type == intstr.String && intOrPercentValue(v.value) > 100 {
			allErrs = append(allErrs, field.Invalid(p, *v.value, "must not be greater than 100%"))
		}
	}
	allErrs = append(allErrs, metav1validation.ValidateLabelSelector(spec.Selector,
		metav1validation.LabelSelectorValidationOptions{AllowInvalidLabelValueInSelector: allowInvalidSelectorValues}, fldPath.Child("selector"))...)
	if p := spec.UnhealthyPodEvictionPolicy; p != nil && *p != policyv1.AlwaysAllow && *p != policyv1.IfHealthyBudget {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("unhealthyPodEvictionPolicy"), *p, supportedUnhealthyPodEvictionPolicies))
	}
	return allErrs
}

// ValidatePodDisruptionBudgetStatusUpdate checks a write of poddisruptionbudgets/status.
func ValidatePodDisruptionBudgetStatusUpdate(pdb, old *policyv1.PodDisruptionBudget) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&pdb.ObjectMeta, &old.ObjectMeta, metadataPath)
	status, fldPath := pdb.Status, field.NewPath("status")
	allErrs = append(allErrs, metav1validation.ValidateConditions(status.Conditions, fldPath.Child("conditions"))...)
	for _, count := range []struct {
		name  string
		value int32
	}{
		{"disruptionsAllowed", status.DisruptionsAllowed},
		{"currentHealthy", status.CurrentHealthy},
		{"desiredHealthy", status.DesiredHealthy},
		{"expectedPods", status.ExpectedPods},
	} {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(count.value), fldPath.Child(count.name))...)
	}
	return allErrs
}

// podDisruptionBudgetTable prints budgets as upstream: the bound a budget does not set is N/A.
func podDisruptionBudgetTable() *TablePrinter {
	doc := policyv1.PodDisruptionBudgetSpec{}.SwaggerDoc()
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Min Available", Type: "string", Description: doc["minAvailable"]},
			{Name: "Max Unavailable", Type: "string", Description: doc["maxUnavailable"]},
			{Name: "Allowed Disruptions", Type: "integer", Description: policyv1.PodDisruptionBudgetStatus{}.SwaggerDoc()["disruptionsAllowed"]},
			ageColumn,
		},
		func(pdb *policyv1.PodDisruptionBudget) metav1.TableRow {
			bound := func(v *intstr.IntOrString) string {
				if v == nil {
					return "N/A"
				}
				return v.String()
			}
			return cells(pdb.Name, bound(pdb.Spec.MinAvailable), bound(pdb.Spec.MaxUnavailable),
				int64(pdb.Status.DisruptionsAllowed), translateTimestampSince(pdb.CreationTimestamp))
		})
}
