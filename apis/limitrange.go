package apis

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// LimitRanges (v1): per-namespace defaults and bounds of containers', pods' and claims'
// resources, which the LimitRanger admission plugin applies. Upstream's defaulting,
// validation; upstream prints them with the default columns (Name, Created At: defaultTablePrinter).

// defaultLimitRange is upstream's v1 defaulting of a Container item: a max is the default
// limit, a default limit the default request, and a min the default request.
func defaultLimitRange(lr *corev1.LimitRange) {
	for i := range lr.Spec.Limits {
		item := &lr.Spec.Limits[i]
		if item.Type != corev1.LimitTypeContainer {
			continue
		}
		if item.Default == nil {
			item.Default = corev1.ResourceList{}
		}
		if item.DefaultRequest == nil {
			item.DefaultRequest = corev1.ResourceList{}
		}
		for k, v := range item.Max {
			if _, ok := item.Default[k]; !ok {
				item.Default[k] = v.DeepCopy()
			}
		}
		for k, v := range item.Default {
			if _, ok := item.DefaultRequest[k]; !ok {
				item.DefaultRequest[k] = v.DeepCopy()
			}
		}
		for k, v := range item.Min {
			if _, ok := item.DefaultRequest[k]; !ok {
				item.DefaultRequest[k] = v.DeepCopy()
			}
		}
	}
}

// limitRangeStrategy keeps what a client sends; a limit range has no status.
type limitRangeStrategy struct{}

// LimitRangeStrategy is the strategy of limit ranges.
var LimitRangeStrategy = limitRangeStrategy{}

var _ Strategy = limitRangeStrategy{}

func (limitRangeStrategy) PrepareForCreate(context.Context, runtime.Object) {}
func (limitRangeStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateLimitRange(obj.(*corev1.LimitRange))
}
func (limitRangeStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}
func (limitRangeStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	lr, oldLR := obj.(*corev1.LimitRange), old.(*corev1.LimitRange)
	allErrs := ValidateObjectMetaUpdate(&lr.ObjectMeta, &oldLR.ObjectMeta, metadataPath)
	return append(allErrs, validateLimitRangeSpec(lr)...)
}
func (limitRangeStrategy) AllowCreateOnUpdate() bool      { return true }
func (limitRangeStrategy) AllowUnconditionalUpdate() bool { return true }

// ValidateLimitRange checks a new limit range as upstream: one item per type, known resource
// names, and bounds that agree with each other (min <= default request <= default <= max,
// ratios of at least 1 and within max/min).
func ValidateLimitRange(lr *corev1.LimitRange) field.ErrorList {
	allErrs := ValidateObjectMeta(&lr.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateLimitRangeSpec(lr)...)
}

var standardLimitTypes = map[string]bool{
	string(corev1.LimitTypePod): true, string(corev1.LimitTypeContainer): true, string(corev1.LimitTypePersistentVolumeClaim): true,
}

func validateLimitRangeSpec(lr *corev1.LimitRange) field.ErrorList {
	var allErrs field.ErrorList
	fldPath := field.NewPath("spec", "limits")
	seen := map[corev1.LimitType]bool{}
	for i := range lr.Spec.Limits {
		idxPath := fldPath.Index(i)
		limit := &lr.Spec.Limits[i]
		allErrs = append(allErrs, validateLimitRangeType(string(limit.Type), idxPath.Child("type"))...)
		if seen[limit.Type] {
			allErrs = append(allErrs, field.Duplicate(idxPath.Child("type"), limit.Type))
		}
		seen[limit.Type] = true

		keys := map[corev1.ResourceName]bool{}
		checkNames := func(list corev1.ResourceList, child string) {
			for k := range list {
				allErrs = append(allErrs, validateLimitRangeResourceName(limit.Type, k, idxPath.Child(child).Key(string(k)))...)
				keys[k] = true
			}
		}
		checkNames(limit.Max, "max")
		checkNames(limit.Min, "min")
		if limit.Type == corev1.LimitTypePod {
			if len(limit.Default) > 0 {
				allErrs = append(allErrs, field.Forbidden(idxPath.Child("default"), "may not be specified when `type` is 'Pod'"))
			}
			if len(limit.DefaultRequest) > 0 {
				allErrs = append(allErrs, field.Forbidden(idxPath.Child("defaultRequest"), "may not be specified when `type` is 'Pod'"))
			}
		} else {
			checkNames(limit.Default, "default")
			checkNames(limit.DefaultRequest, "defaultRequest")
		}
		if limit.Type == corev1.LimitTypePersistentVolumeClaim {
			_, hasMin := limit.Min[corev1.ResourceStorage]
			_, hasMax := limit.Max[corev1.ResourceStorage]
			if !hasMin && !hasMax {
				allErrs = append(allErrs, field.Required(idxPath.Child("limits"), "either minimum or maximum storage value is required, but neither was provided"))
			}
		}
		checkNames(limit.MaxLimitRequestRatio, "maxLimitRequestRatio")

		names := make([]string, 0, len(keys))
		for k := range keys {
			names = append(names, string(k))
		}
		sort.Strings(names)
		for _, name := range names {
			allErrs = append(allErrs, validateLimitRangeBounds(limit, corev1.ResourceName(name), idxPath)...)
		}
	}
	return allErrs
}

// validateLimitRangeBounds checks that one resource's bounds in an item agree, in upstream's
// words.
func validateLimitRangeBounds(limit *corev1.LimitRangeItem, k corev1.ResourceName, idxPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	minQ, hasMin := limit.Min[k]
	maxQ, hasMax := limit.Max[k]
	def, hasDef := limit.Default[k]
	defReq, hasDefReq := limit.DefaultRequest[k]
	ratio, hasRatio := limit.MaxLimitRequestRatio[k]
	key := string(k)
	if hasMin && hasMax && minQ.Cmp(maxQ) > 0 {
		allErrs = append(allErrs, field.Invalid(idxPath.Child("min").Key(key), minQ, fmt.Sprintf("min value %s is greater than max value %s", minQ.String(), maxQ.String())))
	}
	if hasDefReq && hasMin && minQ.Cmp(defReq) > 0 {
		allErrs = append(allErrs, field.Invalid(idxPath.Child("defaultRequest").Key(key), defReq, fmt.Sprintf("min value %s is greater than default request value %s", minQ.String(), defReq.String())))
	}
	if hasDefReq && hasMax && defReq.Cmp(maxQ) > 0 {
		allErrs = append(allErrs, field.Invalid(idxPath.Child("defaultRequest").Key(key), defReq, fmt.Sprintf("default request value %s is greater than max value %s", defReq.String(), maxQ.String())))
	}
	if hasDefReq && hasDef && defReq.Cmp(def) > 0 {
		allErrs = append(allErrs, field.Invalid(idxPath.Child("defaultRequest").Key(key), defReq, fmt.Sprintf("default request value %s is greater than default limit value %s", defReq.String(), def.String())))
	}
	if hasDef && hasMin && minQ.Cmp(def) > 0 {
		allErrs = append(allErrs, field.Invalid(idxPath.Child("default").Key(key), minQ, fmt.Sprintf("min value %s is greater than default value %s", minQ.String(), def.String())))
	}
	if hasDef && hasMax && def.Cmp(maxQ) > 0 {
		allErrs = append(allErrs, field.Invalid(idxPath.Child("default").Key(key), maxQ, fmt.Sprintf("default value %s is greater than max value %s", def.String(), maxQ.String())))
	}
	if hasRatio && ratio.Cmp(*resource.NewQuantity(1, resource.DecimalSI)) < 0 {
		allErrs = append(allErrs, field.Invalid(idxPath.Child("maxLimitRequestRatio").Key(key), ratio, fmt.Sprintf("ratio %s is less than 1", ratio.String())))
	}
	if hasRatio && hasMin && hasMax {
		ratioValue, minValue, maxValue := float64(ratio.Value()), minQ.Value(), maxQ.Value()
		if ratio.Value() < resource.MaxMilliValue && minValue < resource.MaxMilliValue && maxValue < resource.MaxMilliValue {
			ratioValue, minValue, maxValue = float64(ratio.MilliValue())/1000, minQ.MilliValue(), maxQ.MilliValue()
		}
		if bound := float64(maxValue) / float64(minValue); ratioValue > bound {
			allErrs = append(allErrs, field.Invalid(idxPath.Child("maxLimitRequestRatio").Key(key), ratio, fmt.Sprintf("ratio %s is greater than max/min = %f", ratio.String(), bound)))
		}
	}
	// devices and huge pages are not overcommitted: their default limit is their request
	if !isOvercommitAllowed(k) && hasDef && hasDefReq && def.Cmp(defReq) != 0 {
		allErrs = append(allErrs, field.Invalid(idxPath.Child("defaultRequest").Key(key), defReq, fmt.Sprintf("default value %s must equal to defaultRequest value %s in %s", def.String(), defReq.String(), key)))
	}
	return allErrs
}

func validateLimitRangeType(value string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range validation.IsQualifiedName(value) {
		allErrs = append(allErrs, field.Invalid(fldPath, value, msg))
	}
	if len(allErrs) == 0 && !strings.Contains(value, "/") && !standardLimitTypes[value] {
		allErrs = append(allErrs, field.Invalid(fldPath, value, "must be a standard limit type or fully qualified"))
	}
	return allErrs
}

func validateLimitRangeResourceName(limitType corev1.LimitType, name corev1.ResourceName, fldPath *field.Path) field.ErrorList {
	if limitType == corev1.LimitTypePod || limitType == corev1.LimitTypeContainer {
		return validateContainerResourceName(name, fldPath)
	}
	return validateComputeResourceName(name, fldPath)
}
