package apis

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	extensionsv1beta1 "k8s.io/api/extensions/v1beta1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// DaemonSets: upstream's apps/v1 defaults, validation, strategy and columns.

// DaemonSetTemplateGenerationAnnotation is where apps/v1 keeps a daemon set's template
// generation (upstream's internal spec.templateGeneration): 1 on create, one more on every
// change of the template. The controller labels its pods with it (pod-template-generation).
const DaemonSetTemplateGenerationAnnotation = "deprecated.daemonset.template.generation"

func defaultDaemonSet(ds *appsv1.DaemonSet) {
	strategy := &ds.Spec.UpdateStrategy
	if strategy.Type == "" {
		strategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if strategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if strategy.RollingUpdate == nil {
			strategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		if strategy.RollingUpdate.MaxUnavailable == nil {
			strategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(1))
		}
		if strategy.RollingUpdate.MaxSurge == nil {
			strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(0))
		}
	}
	if ds.Spec.RevisionHistoryLimit == nil {
		ds.Spec.RevisionHistoryLimit = ptr.To[int32](10)
	}
	DefaultPodSpec(&ds.Spec.Template.Spec)
}

// DaemonSetStrategy and DaemonSetStatusStrategy are the strategies of daemon sets and of
// daemonsets/status.
var DaemonSetStrategy, DaemonSetStatusStrategy = SpecAndStatus[*appsv1.DaemonSet]{
	PrepareForCreate: func(ds *appsv1.DaemonSet) {
		if daemonSetTemplateGeneration(ds) < 1 {
			setDaemonSetTemplateGeneration(ds, 1)
		}
	},
	PrepareForUpdate: func(ds, old *appsv1.DaemonSet) {
		// the template generation is the server's: it counts template changes
		gen := daemonSetTemplateGeneration(old)
		if !apiequality.Semantic.DeepEqual(ds.Spec.Template, old.Spec.Template) {
			gen++
		}
		setDaemonSetTemplateGeneration(ds, gen)
	},
	Validate:             ValidateDaemonSet,
	ValidateUpdate:       ValidateDaemonSetUpdate,
	ValidateStatusUpdate: ValidateDaemonSetStatusUpdate,
}.Strategies()

func daemonSetTemplateGeneration(ds *appsv1.DaemonSet) int64 {
	n, _ := strconv.ParseInt(ds.Annotations[DaemonSetTemplateGenerationAnnotation], 10, 64)
	return n
}

func setDaemonSetTemplateGeneration(ds *appsv1.DaemonSet, gen int64) {
	if ds.Annotations == nil {
		ds.Annotations = map[string]string{}
	}
	ds.Annotations[DaemonSetTemplateGenerationAnnotation] = strconv.FormatInt(gen, 10)
}

// ValidateDaemonSet checks a new daemon set.
func ValidateDaemonSet(ds *appsv1.DaemonSet) field.ErrorList {
	allErrs := ValidateObjectMeta(&ds.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateDaemonSetSpec(&ds.Spec, field.NewPath("spec"))...)
}

// ValidateDaemonSetUpdate checks ds replacing old: as on create, and the selector never changes.
func ValidateDaemonSetUpdate(ds, old *appsv1.DaemonSet) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&ds.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(ds.Spec.Selector, old.Spec.Selector, field.NewPath("spec", "selector"))...)
	return append(allErrs, validateDaemonSetSpec(&ds.Spec, field.NewPath("spec"))...)
}

// ValidateDaemonSetStatusUpdate checks a write to daemonsets/status.
func ValidateDaemonSetStatusUpdate(ds, old *appsv1.DaemonSet) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&ds.ObjectMeta, &old.ObjectMeta, metadataPath)
	status, fldPath := ds.Status, field.NewPath("status")
	for _, count := range []struct {
		name  string
		value int64
	}{
		{"currentNumberScheduled", int64(status.CurrentNumberScheduled)},
		{"numberMisscheduled", int64(status.NumberMisscheduled)},
		{"desiredNumberScheduled", int64(status.DesiredNumberScheduled)},
		{"numberReady", int64(status.NumberReady)},
		{"observedGeneration", status.ObservedGeneration},
		{"updatedNumberScheduled", int64(status.UpdatedNumberScheduled)},
		{"numberAvailable", int64(status.NumberAvailable)},
		{"numberUnavailable", int64(status.NumberUnavailable)},
	} {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(count.value, fldPath.Child(count.name))...)
	}
	allErrs = append(allErrs, validateCollisionCount(status.CollisionCount, old.Status.CollisionCount, fldPath.Child("collisionCount"))...)
	return allErrs
}

// validateCollisionCount: not negative, and never lower than before.
func validateCollisionCount(count, old *int32, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if count != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*count), fldPath)...)
	}
	if old != nil && (count == nil || *count < *old) {
		allErrs = append(allErrs, field.Invalid(fldPath, ptr.Deref(count, 0), "cannot be decremented"))
	}
	return allErrs
}

func validateDaemonSetSpec(spec *appsv1.DaemonSetSpec, fldPath *field.Path) field.ErrorList {
	allErrs := metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))
	selector, err := metav1.LabelSelectorAsSelector(spec.Selector)
	if err == nil && !selector.Matches(labels.Set(spec.Template.Labels)) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("template", "metadata", "labels"), spec.Template.Labels, "`selector` does not match template `labels`"))
	}
	if spec.Selector != nil && len(spec.Selector.MatchLabels)+len(spec.Selector.MatchExpressions) == 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("selector"), spec.Selector, "empty selector is invalid for daemonset"))
	}
	allErrs = append(allErrs, ValidatePodTemplateSpec(&spec.Template, fldPath.Child("template"))...)
	allErrs = append(allErrs, validateWorkloadTemplateRestart(&spec.Template, "DaemonSet", fldPath.Child("template"))...)
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	allErrs = append(allErrs, validateDaemonSetUpdateStrategy(&spec.UpdateStrategy, fldPath.Child("updateStrategy"))...)
	if spec.RevisionHistoryLimit != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*spec.RevisionHistoryLimit), fldPath.Child("revisionHistoryLimit"))...)
	}
	return allErrs
}

// validateWorkloadTemplateRestart is what every workload's template must be beyond a valid pod
// template: restarted always, and never given a deadline. kind names the workload in upstream's
// words.
func validateWorkloadTemplateRestart(template *corev1.PodTemplateSpec, kind string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("spec", "restartPolicy"), template.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	if template.Spec.ActiveDeadlineSeconds != nil {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in "+kind+" is not Supported"))
	}
	return allErrs
}

func validateDaemonSetUpdateStrategy(strategy *appsv1.DaemonSetUpdateStrategy, fldPath *field.Path) field.ErrorList {
	switch strategy.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
		return nil
	case appsv1.RollingUpdateDaemonSetStrategyType:
		ru := strategy.RollingUpdate
		if ru == nil {
			return field.ErrorList{field.Required(fldPath.Child("rollingUpdate"), "")}
		}
		ruPath := fldPath.Child("rollingUpdate")
		allErrs := validatePositiveIntOrPercent(ru.MaxUnavailable, ruPath.Child("maxUnavailable"))
		allErrs = append(allErrs, validatePositiveIntOrPercent(ru.MaxSurge, ruPath.Child("maxSurge"))...)
		allErrs = append(allErrs, notMoreThan100Percent(ru.MaxUnavailable, ruPath.Child("maxUnavailable"))...)
		allErrs = append(allErrs, notMoreThan100Percent(ru.MaxSurge, ruPath.Child("maxSurge"))...)
		hasUnavailable, hasSurge := intOrPercentValue(ru.MaxUnavailable) != 0, intOrPercentValue(ru.MaxSurge) != 0
		switch {
		case hasUnavailable && hasSurge:
			allErrs = append(allErrs, field.Invalid(ruPath.Child("maxSurge"), ru.MaxSurge, "may not be set when maxUnavailable is non-zero"))
		case !hasUnavailable && !hasSurge:
			allErrs = append(allErrs, field.Required(ruPath.Child("maxUnavailable"), "cannot be 0 when maxSurge is 0"))
		}
		return allErrs
	default:
		return field.ErrorList{field.NotSupported(fldPath, strategy,
			[]string{string(appsv1.RollingUpdateDaemonSetStrategyType), string(appsv1.OnDeleteDaemonSetStrategyType)})}
	}
}

// notMoreThan100Percent refuses a percentage above 100%.
func notMoreThan100Percent(v *intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	if v == nil || v.Type != intstr.String || !percentRegexp.MatchString(v.StrVal) || intOrPercentValue(v) <= 100 {
		return nil
	}
	return field.ErrorList{field.Invalid(fldPath, v, "must not be greater than 100%")}
}

func daemonSetTable() *TablePrinter {
	specDoc, statusDoc := extensionsv1beta1.DaemonSetSpec{}.SwaggerDoc(), extensionsv1beta1.DaemonSetStatus{}.SwaggerDoc()
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Desired", Type: "integer", Description: statusDoc["desiredNumberScheduled"]},
			{Name: "Current", Type: "integer", Description: statusDoc["currentNumberScheduled"]},
			{Name: "Ready", Type: "integer", Description: statusDoc["numberReady"]},
			{Name: "Up-to-date", Type: "integer", Description: statusDoc["updatedNumberScheduled"]},
			{Name: "Available", Type: "integer", Description: statusDoc["numberAvailable"]},
			{Name: "Node Selector", Type: "string", Description: corev1.PodSpec{}.SwaggerDoc()["nodeSelector"]},
			ageColumn,
			containersColumn,
			imagesColumn,
			{Name: "Selector", Type: "string", Priority: 1, Description: specDoc["selector"]},
		},
		func(ds *appsv1.DaemonSet) metav1.TableRow {
			names, images := layoutContainerCells(ds.Spec.Template.Spec.Containers)
			s := ds.Status
			return cells(ds.Name, int64(s.DesiredNumberScheduled), int64(s.CurrentNumberScheduled), int64(s.NumberReady),
				int64(s.UpdatedNumberScheduled), int64(s.NumberAvailable), labels.FormatLabels(ds.Spec.Template.Spec.NodeSelector),
				translateTimestampSince(ds.CreationTimestamp), names, images, metav1.FormatLabelSelector(ds.Spec.Selector))
		})
}
