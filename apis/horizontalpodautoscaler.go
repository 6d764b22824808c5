package apis

import (
	"fmt"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// HorizontalPodAutoscalers (autoscaling/v2, also served as autoscaling/v1 from the same
// storage): how many replicas a scalable object should have for the metrics it is given.
// Upstream's defaulting, validation and columns; the horizontal pod autoscaler controller
// writes the status.

var (
	autoscalingV2 = autoscalingv2.SchemeGroupVersion
)

// Upstream's limits on behavior.
const (
	maxStabilizationWindowSeconds = 3600
	maxPeriodSeconds              = 1800
	// defaultCPUUtilization is the target of an autoscaler that names no metric.
	defaultCPUUtilization = 80
)

// HorizontalPodAutoscalerStrategy and HorizontalPodAutoscalerStatusStrategy are the strategies
// of horizontalpodautoscalers and their status in both versions: both store autoscaling/v2
// objects (the store converts v1 before the strategy sees them). Defaulting is done again on
// the stored version, as upstream defaults what it reads from etcd: a v1 write has no
// behavior and may name no metric.
var HorizontalPodAutoscalerStrategy, HorizontalPodAutoscalerStatusStrategy = SpecAndStatus[*autoscalingv2.HorizontalPodAutoscaler]{
	PrepareForCreate:     DefaultHorizontalPodAutoscaler,
	PrepareForUpdate:     func(hpa, _ *autoscalingv2.HorizontalPodAutoscaler) { DefaultHorizontalPodAutoscaler(hpa) },
	Validate:             ValidateHorizontalPodAutoscaler,
	ValidateUpdate:       ValidateHorizontalPodAutoscalerUpdate,
	ValidateStatusUpdate: ValidateHorizontalPodAutoscalerStatusUpdate,
}.Strategies()

// DefaultHorizontalPodAutoscaler is upstream's autoscaling/v2 defaulting: one minimum
// replica, 80% average CPU utilization when no metric is named, and every rule a given
// behavior leaves out.
func DefaultHorizontalPodAutoscaler(hpa *autoscalingv2.HorizontalPodAutoscaler) {
	if hpa.Spec.MinReplicas == nil {
		one := int32(1)
		hpa.Spec.MinReplicas = &one
	}
	if len(hpa.Spec.Metrics) == 0 {
		hpa.Spec.Metrics = []autoscalingv2.MetricSpec{cpuUtilizationMetric(defaultCPUUtilization)}
	}
	if b := hpa.Spec.Behavior; b != nil {
		b.ScaleUp = DefaultScaleUpRules(b.ScaleUp)
		b.ScaleDown = DefaultScaleDownRules(b.ScaleDown)
	}
}

// DefaultScaleUpRules fills what rules leave out with upstream's scale-up defaults: no
// stabilization, and the larger of 4 pods or doubling every 15 seconds.
func DefaultScaleUpRules(rules *autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	return defaultScalingRules(rules, 0, []autoscalingv2.HPAScalingPolicy{
		{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
		{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
	})
}

// DefaultScaleDownRules fills what rules leave out with upstream's scale-down defaults: a
// five-minute stabilization window, then down to the recommendation at once.
func DefaultScaleDownRules(rules *autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	return defaultScalingRules(rules, 300, []autoscalingv2.HPAScalingPolicy{
		{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
	})
}

func defaultScalingRules(rules *autoscalingv2.HPAScalingRules, window int32, policies []autoscalingv2.HPAScalingPolicy) *autoscalingv2.HPAScalingRules {
	if rules == nil {
		rules = &autoscalingv2.HPAScalingRules{}
	}
	if rules.StabilizationWindowSeconds == nil {
		rules.StabilizationWindowSeconds = &window
	}
	if rules.SelectPolicy == nil {
		max := autoscalingv2.MaxChangePolicySelect
		rules.SelectPolicy = &max
	}
	if rules.Policies == nil {
		rules.Policies = policies
	}
	return rules
}

// defaultHorizontalPodAutoscalerV1 is upstream's autoscaling/v1 defaulting.
func defaultHorizontalPodAutoscalerV1(hpa *autoscalingv1.HorizontalPodAutoscaler) {
	if hpa.Spec.MinReplicas == nil {
		one := int32(1)
		hpa.Spec.MinReplicas = &one
	}
}

func cpuUtilizationMetric(percent int32) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{
			Name:   corev1.ResourceCPU,
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &percent},
		},
	}
}

// ValidateHorizontalPodAutoscaler checks a new autoscaler.
func ValidateHorizontalPodAutoscaler(hpa *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	allErrs := ValidateObjectMeta(&hpa.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateHorizontalPodAutoscalerSpec(&hpa.Spec, field.NewPath("spec"))...)
}

// ValidateHorizontalPodAutoscalerUpdate checks hpa replacing old: every field of the spec may
// change.
func ValidateHorizontalPodAutoscalerUpdate(hpa, old *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&hpa.ObjectMeta, &old.ObjectMeta, metadataPath)
	return append(allErrs, validateHorizontalPodAutoscalerSpec(&hpa.Spec, field.NewPath("spec"))...)
}

// ValidateHorizontalPodAutoscalerStatusUpdate checks a write of the status subresource.
func ValidateHorizontalPodAutoscalerStatusUpdate(hpa, old *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&hpa.ObjectMeta, &old.ObjectMeta, metadataPath)
	status := field.NewPath("status")
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(hpa.Status.CurrentReplicas), status.Child("currentReplicas"))...)
	return append(allErrs, apivalidation.ValidateNonnegativeField(int64(hpa.Status.DesiredReplicas), status.Child("desiredReplicas"))...)
}

func validateHorizontalPodAutoscalerSpec(spec *autoscalingv2.HorizontalPodAutoscalerSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	// scaling to zero is an alpha feature upstream, off by default
	if spec.MinReplicas != nil && *spec.MinReplicas < 1 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("minReplicas"), *spec.MinReplicas, "must be greater than or equal to 1"))
	}
	if spec.MaxReplicas < 1 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("maxReplicas"), spec.MaxReplicas, "must be greater than 0"))
	}
	if spec.MinReplicas != nil && spec.MaxReplicas < *spec.MinReplicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("maxReplicas"), spec.MaxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	allErrs = append(allErrs, validateCrossVersionObjectReference(spec.ScaleTargetRef, fldPath.Child("scaleTargetRef"))...)
	for i := range spec.Metrics {
		allErrs = append(allErrs, validateMetricSpec(&spec.Metrics[i], fldPath.Child("metrics").Index(i))...)
	}
	if b := spec.Behavior; b != nil {
		allErrs = append(allErrs, validateScalingRules(b.ScaleUp, fldPath.Child("behavior", "scaleUp"))...)
		allErrs = append(allErrs, validateScalingRules(b.ScaleDown, fldPath.Child("behavior", "scaleDown"))...)
	}
	return allErrs
}

func validateCrossVersionObjectReference(ref autoscalingv2.CrossVersionObjectReference, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, f := range []struct{ name, value string }{{"kind", ref.Kind}, {"name", ref.Name}} {
		if f.value == "" {
			allErrs = append(allErrs, field.Required(fldPath.Child(f.name), ""))
			continue
		}
		for _, msg := range path.IsValidPathSegmentName(f.value) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child(f.name), f.value, msg))
		}
	}
	return allErrs
}

// metricSourceTypes are the metric source types, in the sorted order upstream lists them.
var metricSourceTypes = []string{"ContainerResource", "External", "Object", "Pods", "Resource"}

func validateMetricSpec(spec *autoscalingv2.MetricSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if spec.Type == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("type"), "must specify a metric source type"))
	}
	// the sources present, in upstream's order; only the first is validated
	var present []string
	source := func(name string, set bool, validate func(*field.Path) field.ErrorList) {
		if !set {
			return
		}
		present = append(present, name)
		if len(present) == 1 {
			allErrs = append(allErrs, validate(fldPath.Child(name))...)
		}
	}
	source("object", spec.Object != nil, func(p *field.Path) field.ErrorList { return validateObjectSource(spec.Object, p) })
	source("external", spec.External != nil, func(p *field.Path) field.ErrorList { return validateExternalSource(spec.External, p) })
	source("pods", spec.Pods != nil, func(p *field.Path) field.ErrorList { return validatePodsSource(spec.Pods, p) })
	source("resource", spec.Resource != nil, func(p *field.Path) field.ErrorList {
		return validateResourceSource(spec.Resource.Name, spec.Resource.Target, p)
	})
	source("containerResource", spec.ContainerResource != nil, func(p *field.Path) field.ErrorList {
		errs := validateResourceSource(spec.ContainerResource.Name, spec.ContainerResource.Target, p)
		if spec.ContainerResource.Container == "" {
			errs = append(errs, field.Required(p.Child("container"), "must specify a container"))
		}
		return errs
	})
	var expected string
	var given bool
	switch spec.Type {
	case autoscalingv2.ObjectMetricSourceType:
		expected, given = "object", spec.Object != nil
	case autoscalingv2.PodsMetricSourceType:
		expected, given = "pods", spec.Pods != nil
	case autoscalingv2.ResourceMetricSourceType:
		expected, given = "resource", spec.Resource != nil
	case autoscalingv2.ExternalMetricSourceType:
		expected, given = "external", spec.External != nil
	case autoscalingv2.ContainerResourceMetricSourceType:
		expected, given = "containerResource", spec.ContainerResource != nil
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("type"), spec.Type, metricSourceTypes))
		given = true
	}
	if !given {
		allErrs = append(allErrs, field.Required(fldPath.Child(expected), "must populate information for the given metric source"))
	}
	if len(present) > 1 {
		for _, name := range present {
			if name != expected {
				allErrs = append(allErrs, field.Forbidden(fldPath.Child(name), "must populate the given metric source only"))
			}
		}
	}
	return allErrs
}

func validateObjectSource(src *autoscalingv2.ObjectMetricSource, fldPath *field.Path) field.ErrorList {
	allErrs := validateCrossVersionObjectReference(src.DescribedObject, fldPath.Child("describedObject"))
	allErrs = append(allErrs, validateMetricIdentifier(src.Metric, fldPath.Child("metric"))...)
	allErrs = append(allErrs, validateMetricTarget(src.Target, fldPath.Child("target"))...)
	if src.Target.Value == nil && src.Target.AverageValue == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("target").Child("averageValue"), "must set either a target value or averageValue"))
	}
	return allErrs
}

func validateExternalSource(src *autoscalingv2.ExternalMetricSource, fldPath *field.Path) field.ErrorList {
	allErrs := validateMetricIdentifier(src.Metric, fldPath.Child("metric"))
	allErrs = append(allErrs, validateMetricTarget(src.Target, fldPath.Child("target"))...)
	if src.Target.Value == nil && src.Target.AverageValue == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("target").Child("averageValue"), "must set either a target value for metric or a per-pod target"))
	}
	if src.Target.Value != nil && src.Target.AverageValue != nil {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("target").Child("value"), "may not set both a target value for metric and a per-pod target"))
	}
	return allErrs
}

func validatePodsSource(src *autoscalingv2.PodsMetricSource, fldPath *field.Path) field.ErrorList {
	allErrs := validateMetricIdentifier(src.Metric, fldPath.Child("metric"))
	allErrs = append(allErrs, validateMetricTarget(src.Target, fldPath.Child("target"))...)
	if src.Target.AverageValue == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("target").Child("averageValue"), "must specify a positive target averageValue"))
	}
	return allErrs
}

func validateResourceSource(name corev1.ResourceName, target autoscalingv2.MetricTarget, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if name == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("name"), "must specify a resource name"))
	} else {
		allErrs = append(allErrs, validateContainerResourceName(name, fldPath.Child("name"))...)
	}
	allErrs = append(allErrs, validateMetricTarget(target, fldPath.Child("target"))...)
	if target.AverageUtilization == nil && target.AverageValue == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("target").Child("averageUtilization"), "must set either a target raw value or a target utilization"))
	}
	if target.AverageUtilization != nil && target.AverageValue != nil {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("target").Child("averageValue"), "may not set both a target raw value and a target utilization"))
	}
	return allErrs
}

func validateMetricIdentifier(id autoscalingv2.MetricIdentifier, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if id.Name == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("name"), "must specify a metric name"))
	} else {
		for _, msg := range path.IsValidPathSegmentName(id.Name) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("name"), id.Name, msg))
		}
	}
	return append(allErrs, metav1validation.ValidateLabelSelector(id.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
}

func validateMetricTarget(t autoscalingv2.MetricTarget, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if t.Type == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("type"), "must specify a metric target type"))
	}
	if t.Type != autoscalingv2.UtilizationMetricType && t.Type != autoscalingv2.ValueMetricType && t.Type != autoscalingv2.AverageValueMetricType {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("type"), t.Type, "must be either Utilization, Value, or AverageValue"))
	}
	if t.Value != nil && t.Value.Sign() != 1 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("value"), t.Value, "must be positive"))
	}
	if t.AverageValue != nil && t.AverageValue.Sign() != 1 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("averageValue"), t.AverageValue, "must be positive"))
	}
	if t.AverageUtilization != nil && *t.AverageUtilization < 1 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("averageUtilization"), t.AverageUtilization, "must be greater than 0"))
	}
	return allErrs
}

func validateScalingRules(rules *autoscalingv2.HPAScalingRules, fldPath *field.Path) field.ErrorList {
	if rules == nil {
		return nil
	}
	var allErrs field.ErrorList
	if w := rules.StabilizationWindowSeconds; w != nil && *w < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("stabilizationWindowSeconds"), w, "must be greater than or equal to zero"))
	}
	if w := rules.StabilizationWindowSeconds; w != nil && *w > maxStabilizationWindowSeconds {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("stabilizationWindowSeconds"), w,
			fmt.Sprintf("must be less than or equal to %v", maxStabilizationWindowSeconds)))
	}
	if p := rules.SelectPolicy; p != nil && *p != autoscalingv2.MaxChangePolicySelect && *p != autoscalingv2.MinChangePolicySelect && *p != autoscalingv2.DisabledPolicySelect {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("selectPolicy"), p, []string{"Disabled", "Max", "Min"}))
	}
	policiesPath := fldPath.Child("policies")
	if len(rules.Policies) == 0 {
		allErrs = append(allErrs, field.Required(policiesPath, "must specify at least one Policy"))
	}
	for i, p := range rules.Policies {
		idx := policiesPath.Index(i)
		if p.Type != autoscalingv2.PodsScalingPolicy && p.Type != autoscalingv2.PercentScalingPolicy {
			allErrs = append(allErrs, field.NotSupported(idx.Child("type"), p.Type, []string{"Percent", "Pods"}))
		}
		if p.Value <= 0 {
			allErrs = append(allErrs, field.Invalid(idx.Child("value"), p.Value, "must be greater than zero"))
		}
		if p.PeriodSeconds <= 0 {
			allErrs = append(allErrs, field.Invalid(idx.Child("periodSeconds"), p.PeriodSeconds, "must be greater than zero"))
		}
		if p.PeriodSeconds > maxPeriodSeconds {
			allErrs = append(allErrs, field.Invalid(idx.Child("periodSeconds"), p.PeriodSeconds,
				fmt.Sprintf("must be less than or equal to %v", maxPeriodSeconds)))
		}
	}
	if t := rules.Tolerance; t != nil && t.Sign() < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("tolerance"), t.String(), apivalidation.IsNegativeErrorMsg))
	}
	return allErrs
}

// horizontalPodAutoscalerColumns are upstream's columns of both versions.
func horizontalPodAutoscalerColumns() []metav1.TableColumnDefinition {
	doc := autoscalingv2.HorizontalPodAutoscalerSpec{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Reference", Type: "string", Description: doc["scaleTargetRef"]},
		{Name: "Targets", Type: "string", Description: doc["metrics"]},
		{Name: "MinPods", Type: "string", Description: doc["minReplicas"]},
		{Name: "MaxPods", Type: "integer", Description: doc["maxReplicas"]},
		{Name: "Replicas", Type: "integer", Description: autoscalingv2.HorizontalPodAutoscalerStatus{}.SwaggerDoc()["currentReplicas"]},
		ageColumn,
	}
}

func horizontalPodAutoscalerRow(hpa *autoscalingv2.HorizontalPodAutoscaler) metav1.TableRow {
	minPods := "<unset>"
	if hpa.Spec.MinReplicas != nil {
		minPods = fmt.Sprintf("%d", *hpa.Spec.MinReplicas)
	}
	return cells(hpa.Name, hpa.Spec.ScaleTargetRef.Kind+"/"+hpa.Spec.ScaleTargetRef.Name,
		formatHPAMetrics(hpa.Spec.Metrics, hpa.Status.CurrentMetrics), minPods,
		int64(hpa.Spec.MaxReplicas), int64(hpa.Status.CurrentReplicas), translateTimestampSince(hpa.CreationTimestamp))
}

func horizontalPodAutoscalerTable() *TablePrinter {
	return Columns(horizontalPodAutoscalerColumns(), horizontalPodAutoscalerRow)
}

// horizontalPodAutoscalerV1Table prints autoscaling/v1 objects as their v2 form, as upstream
// prints every version from its internal one.
func horizontalPodAutoscalerV1Table() *TablePrinter {
	return Columns(horizontalPodAutoscalerColumns(), func(in *autoscalingv1.HorizontalPodAutoscaler) metav1.TableRow {
		var out autoscalingv2.HorizontalPodAutoscaler
		if err := convertHPAV1ToV2(in, &out); err != nil {
			out = autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: in.ObjectMeta}
		}
		return horizontalPodAutoscalerRow(&out)
	})
}

// formatHPAMetrics is the TARGETS cell: "current/target" of the first two metrics, with the
// resource's name before resource metrics, as kubectl prints them.
func formatHPAMetrics(specs []autoscalingv2.MetricSpec, statuses []autoscalingv2.MetricStatus) string {
	if len(specs) == 0 {
		return "<none>"
	}
	const shown = 2
	var list []string
	for i, spec := range specs {
		var status *autoscalingv2.MetricStatus
		if i < len(statuses) {
			status = &statuses[i]
		}
		list = append(list, formatHPAMetric(spec, status))
	}
	if len(list) > shown {
		return fmt.Sprintf("%s + %d more...", strings.Join(list[:shown], ", "), len(list)-shown)
	}
	return strings.Join(list, ", ")
}

func formatHPAMetric(spec autoscalingv2.MetricSpec, status *autoscalingv2.MetricStatus) string {
	const unknown = "<unknown>"
	valueOrAverage := func(target autoscalingv2.MetricTarget, current *autoscalingv2.MetricValueStatus) string {
		cur := unknown
		if target.AverageValue != nil {
			if current != nil && current.AverageValue != nil {
				cur = current.AverageValue.String()
			}
			return fmt.Sprintf("%s/%s (avg)", cur, target.AverageValue.String())
		}
		if current != nil && current.Value != nil {
			cur = current.Value.String()
		}
		value := "<nil>"
		if target.Value != nil {
			value = target.Value.String()
		}
		return fmt.Sprintf("%s/%s", cur, value)
	}
	resource := func(name corev1.ResourceName, target autoscalingv2.MetricTarget, current *autoscalingv2.MetricValueStatus) string {
		cur := unknown
		if target.AverageValue != nil {
			if current != nil && current.AverageValue != nil {
				cur = current.AverageValue.String()
			}
			return fmt.Sprintf("%s: %s/%s", name, cur, target.AverageValue.String())
		}
		if current != nil && current.AverageUtilization != nil {
			cur = fmt.Sprintf("%d%%", *current.AverageUtilization)
		}
		want := "<auto>"
		if target.AverageUtilization != nil {
			want = fmt.Sprintf("%d%%", *target.AverageUtilization)
		}
		return fmt.Sprintf("%s: %s/%s", name, cur, want)
	}
	switch {
	case spec.Type == autoscalingv2.ExternalMetricSourceType && spec.External != nil:
		var cur *autoscalingv2.MetricValueStatus
		if status != nil && status.External != nil {
			cur = &status.External.Current
		}
		return valueOrAverage(spec.External.Target, cur)
	case spec.Type == autoscalingv2.PodsMetricSourceType && spec.Pods != nil:
		cur := unknown
		if status != nil && status.Pods != nil && status.Pods.Current.AverageValue != nil {
			cur = status.Pods.Current.AverageValue.String()
		}
		target := "<nil>"
		if spec.Pods.Target.AverageValue != nil {
			target = spec.Pods.Target.AverageValue.String()
		}
		return fmt.Sprintf("%s/%s", cur, target)
	case spec.Type == autoscalingv2.ObjectMetricSourceType && spec.Object != nil:
		var cur *autoscalingv2.MetricValueStatus
		if status != nil && status.Object != nil {
			cur = &status.Object.Current
		}
		return valueOrAverage(spec.Object.Target, cur)
	case spec.Type == autoscalingv2.ResourceMetricSourceType && spec.Resource != nil:
		var cur *autoscalingv2.MetricValueStatus
		if status != nil && status.Resource != nil {
			cur = &status.Resource.Current
		}
		return resource(spec.Resource.Name, spec.Resource.Target, cur)
	case spec.Type == autoscalingv2.ContainerResourceMetricSourceType && spec.ContainerResource != nil:
		var cur *autoscalingv2.MetricValueStatus
		if status != nil && status.ContainerResource != nil {
			cur = &status.ContainerResource.Current
		}
		return resource(spec.ContainerResource.Name, spec.ContainerResource.Target, cur)
	}
	return "<unknown type>"
}
