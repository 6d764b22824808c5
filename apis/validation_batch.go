package apis

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones validate even on machines without a zone database, as upstream's

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// batch/v1 validation, as upstream's pkg/apis/batch/validation with the options its Job and
// CronJob strategies pass on a 1.37 server (JobManagedBy, ElasticIndexedJob and the prefixed
// labels on): the same rules, paths and words.

// The limits upstream puts on Jobs.
const (
	maxParallelismForIndexedJob             = 100_000
	maxFailedIndexesForIndexedJob           = 100_000
	completionsSoftLimit                    = 100_000
	parallelismLimitForHighCompletions      = 10_000
	maxFailedIndexesLimitForHighCompletions = 10_000
	maxPodFailurePolicyRules                = 20
	maxPodFailurePolicyOnExitCodesValues    = 255
	maxPodFailurePolicyOnPodConditions      = 20
	maxManagedByLength                      = 63
	maxSuccessPolicySucceededIndexesLength  = 64 * 1024
	maxSuccessPolicyRules                   = 20
	// a CronJob's Jobs are named <cronjob>-<minutes since the epoch>: 11 more characters that
	// must still fit a 63-character label
	maxCronJobNameLength = validation.DNS1035LabelMaxLength - 11
)

var (
	podFailurePolicyActions = []batchv1.PodFailurePolicyAction{
		batchv1.PodFailurePolicyActionCount, batchv1.PodFailurePolicyActionFailIndex,
		batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyActionIgnore,
	}
	podFailurePolicyOperators = []batchv1.PodFailurePolicyOnExitCodesOperator{
		batchv1.PodFailurePolicyOnExitCodesOpIn, batchv1.PodFailurePolicyOnExitCodesOpNotIn,
	}
	podConditionStatuses     = []corev1.ConditionStatus{corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionUnknown}
	podReplacementPolicies   = []batchv1.PodReplacementPolicy{batchv1.Failed, batchv1.TerminatingOrFailed}
	concurrencyPolicies      = []batchv1.ConcurrencyPolicy{batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent}
	validTimeZoneComponent   = regexp.MustCompile(`^[A-Za-z\.\-_0-9+]{1,14}$`)
	jobNamePath, jobSpecPath = field.NewPath("metadata", "name"), field.NewPath("spec")
)

// jobValidation are the choices upstream's Job strategy makes per request.
type jobValidation struct {
	// requirePrefixedLabels: the generated selector must come with the batch.kubernetes.io
	// labels (always on create; on update only if the old Job had them).
	requirePrefixedLabels bool
	// allowMutableSchedulingDirectives: a suspended Job that never started may change its pod
	// template's node affinity, node selector, tolerations, labels, annotations and
	// scheduling gates (to be placed by a queueing controller before it starts).
	allowMutableSchedulingDirectives bool
}

// ValidateJob checks a new Job (after DefaultJob and GenerateJobSelector).
func ValidateJob(job *batchv1.Job) field.ErrorList {
	return validateJob(job, jobValidation{requirePrefixedLabels: true})
}

// ValidateJobUpdate checks job replacing old: everything ValidateJob checks, and that the
// selector, completion mode, pod failure policy, success policy, backoffLimitPerIndex and
// managedBy never change, completions only for an Indexed Job and together with parallelism,
// and the pod template only in its scheduling directives while the Job is suspended and has
// never started. It returns what upstream's strategy does, which checks the spec twice (its
// create rules and again in the update rules); the message of the error deduplicates them.
func ValidateJobUpdate(job, old *batchv1.Job) field.ErrorList {
	opts := jobValidation{
		allowMutableSchedulingDirectives: ptr.Deref(old.Spec.Suspend, false) && old.Status.StartTime == nil,
	}
	_, hadName := old.Spec.Template.Labels[batchv1.JobNameLabel]
	_, hadUID := old.Spec.Template.Labels[batchv1.ControllerUidLabel]
	opts.requirePrefixedLabels = hadName && hadUID

	allErrs := validateJob(job, opts)
	allErrs = append(allErrs, ValidateObjectMetaUpdate(&job.ObjectMeta, &old.ObjectMeta, metadataPath)...)
	spec, oldSpec := &job.Spec, &old.Spec
	allErrs = append(allErrs, validateJobSpecWithSelector(spec, jobSpecPath)...)
	allErrs = append(allErrs, validateJobCompletionsUpdate(spec, oldSpec, jobSpecPath.Child("completions"))...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(spec.Selector, oldSpec.Selector, jobSpecPath.Child("selector"))...)
	allErrs = append(allErrs, validateJobTemplateUpdate(spec, oldSpec, opts)...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(spec.CompletionMode, oldSpec.CompletionMode, jobSpecPath.Child("completionMode"))...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(spec.PodFailurePolicy, oldSpec.PodFailurePolicy, jobSpecPath.Child("podFailurePolicy"))...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(spec.BackoffLimitPerIndex, oldSpec.BackoffLimitPerIndex, jobSpecPath.Child("backoffLimitPerIndex"))...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(spec.ManagedBy, oldSpec.ManagedBy, jobSpecPath.Child("managedBy"))...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(spec.SuccessPolicy, oldSpec.SuccessPolicy, jobSpecPath.Child("successPolicy"))...)
	return allErrs
}

func validateJob(job *batchv1.Job, opts jobValidation) field.ErrorList {
	// Jobs are named like ReplicationControllers: DNS subdomains
	allErrs := ValidateObjectMeta(&job.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	allErrs = append(allErrs, validateGeneratedSelector(job, opts.requirePrefixedLabels)...)
	allErrs = append(allErrs, validateJobSpecWithSelector(&job.Spec, jobSpecPath)...)
	if ptr.Deref(job.Spec.CompletionMode, "") == batchv1.IndexedCompletion && ptr.Deref(job.Spec.Completions, 0) > 0 {
		// pods are named <job>-<index> as hostnames: the largest index must still make a label
		host := fmt.Sprintf("%s-%d", job.Name, *job.Spec.Completions-1)
		if errs := validation.IsDNS1123Label(host); len(errs) > 0 {
			allErrs = append(allErrs, field.Invalid(jobNamePath, job.Name, fmt.Sprintf("will not able to create pod with invalid DNS label: %s", host)))
		}
	}
	return allErrs
}

// validateGeneratedSelector checks, unless the selector is manual, that the template carries
// the labels the server generated and that the selector selects them.
func validateGeneratedSelector(job *batchv1.Job, requirePrefixedLabels bool) field.ErrorList {
	if ptr.Deref(job.Spec.ManualSelector, false) || job.Spec.Selector == nil {
		return nil
	}
	var allErrs field.ErrorList
	if job.UID == "" {
		allErrs = append(allErrs, field.Required(metadataPath.Child("uid"), ""))
	}
	templateMeta := jobSpecPath.Child("template", "metadata")
	expected := map[string]string{}
	want := [][2]string{{LegacyControllerUIDLabel, string(job.UID)}, {LegacyJobNameLabel, job.Name}}
	if requirePrefixedLabels {
		want = append(want, [2]string{batchv1.ControllerUidLabel, string(job.UID)}, [2]string{batchv1.JobNameLabel, job.Name})
	}
	for _, kv := range want {
		allErrs = append(allErrs, validateHasLabel(job.Spec.Template.ObjectMeta, templateMeta, kv[0], kv[1])...)
		expected[kv[0]] = kv[1]
	}
	if selector, err := metav1.LabelSelectorAsSelector(job.Spec.Selector); err == nil && !selector.Matches(labels.Set(expected)) {
		allErrs = append(allErrs, field.Invalid(jobSpecPath.Child("selector"), job.Spec.Selector, "`selector` not auto-generated"))
	}
	return allErrs
}

// validateHasLabel is upstream's ValidateHasLabel.
func validateHasLabel(meta metav1.ObjectMeta, fldPath *field.Path, key, value string) field.ErrorList {
	actual, found := meta.Labels[key]
	if !found {
		return field.ErrorList{field.Required(fldPath.Child("labels").Key(key), fmt.Sprintf("must be '%s'", value))}
	}
	if actual != value {
		return field.ErrorList{field.Invalid(fldPath.Child("labels").Key(key), meta.Labels, fmt.Sprintf("must be '%s'", value))}
	}
	return nil
}

// validateJobSpecWithSelector is a Job's spec rules: those a CronJob's template shares, a
// required valid selector, and a template the selector matches.
func validateJobSpecWithSelector(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	allErrs := validateJobSpec(spec, fldPath)
	if spec.Selector == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("selector"), ""))
	} else {
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
	}
	if selector, err := metav1.LabelSelectorAsSelector(spec.Selector); err == nil && !selector.Matches(labels.Set(spec.Template.Labels)) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("template", "metadata", "labels"), spec.Template.Labels, "`selector` does not match template `labels`"))
	}
	return allErrs
}

func validateJobSpec(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	nonNegative := func(v *int32, name string) {
		if v != nil {
			allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*v), fldPath.Child(name))...)
		}
	}
	nonNegative(spec.Parallelism, "parallelism")
	nonNegative(spec.Completions, "completions")
	if spec.ActiveDeadlineSeconds != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(*spec.ActiveDeadlineSeconds, fldPath.Child("activeDeadlineSeconds"))...)
	}
	nonNegative(spec.BackoffLimit, "backoffLimit")
	nonNegative(spec.TTLSecondsAfterFinished, "ttlSecondsAfterFinished")
	nonNegative(spec.BackoffLimitPerIndex, "backoffLimitPerIndex")
	if spec.MaxFailedIndexes != nil {
		nonNegative(spec.MaxFailedIndexes, "maxFailedIndexes")
		if spec.BackoffLimitPerIndex == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"))
		}
	}
	if spec.ManagedBy != nil {
		allErrs = append(allErrs, validation.IsDomainPrefixedPath(fldPath.Child("managedBy"), *spec.ManagedBy)...)
		if len(*spec.ManagedBy) > maxManagedByLength {
			allErrs = append(allErrs, field.TooLongMaxLength(fldPath.Child("managedBy"), *spec.ManagedBy, maxManagedByLength))
		}
	}
	if spec.CompletionMode != nil {
		if *spec.CompletionMode != batchv1.NonIndexedCompletion && *spec.CompletionMode != batchv1.IndexedCompletion {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("completionMode"), spec.CompletionMode, []batchv1.CompletionMode{batchv1.NonIndexedCompletion, batchv1.IndexedCompletion}))
		}
		if *spec.CompletionMode == batchv1.IndexedCompletion {
			allErrs = append(allErrs, validateIndexedJobLimits(spec, fldPath)...)
		}
	}
	if ptr.Deref(spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.NonIndexedCompletion {
		if spec.BackoffLimitPerIndex != nil {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("backoffLimitPerIndex"), *spec.BackoffLimitPerIndex, "requires indexed completion mode"))
		}
		if spec.MaxFailedIndexes != nil {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("maxFailedIndexes"), *spec.MaxFailedIndexes, "requires indexed completion mode"))
		}
	}
	if spec.PodFailurePolicy != nil {
		allErrs = append(allErrs, validatePodFailurePolicy(spec, fldPath.Child("podFailurePolicy"))...)
	}
	if spec.SuccessPolicy != nil {
		if ptr.Deref(spec.CompletionMode, batchv1.NonIndexedCompletion) != batchv1.IndexedCompletion {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("successPolicy"), *spec.SuccessPolicy, "requires indexed completion mode"))
		} else {
			allErrs = append(allErrs, validateSuccessPolicy(spec, fldPath.Child("successPolicy"))...)
		}
	}
	if p := spec.PodReplacementPolicy; p != nil {
		if spec.PodFailurePolicy != nil {
			if *p != batchv1.Failed {
				allErrs = append(allErrs, field.NotSupported(fldPath.Child("podReplacementPolicy"), *p, []batchv1.PodReplacementPolicy{batchv1.Failed}))
			}
		} else if !slices.Contains(podReplacementPolicies, *p) {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("podReplacementPolicy"), *p, podReplacementPolicies))
		}
	}

	templatePath := fldPath.Child("template")
	allErrs = append(allErrs, ValidatePodTemplateSpec(&spec.Template, templatePath)...)
	restartPath := templatePath.Child("spec", "restartPolicy")
	switch rp := spec.Template.Spec.RestartPolicy; {
	case rp == corev1.RestartPolicyAlways || rp == "":
		// defaulting makes an unset policy Always, so both mean the user did not choose
		allErrs = append(allErrs, field.Required(restartPath, fmt.Sprintf("valid values: %q, %q", corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)))
	case rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever:
		allErrs = append(allErrs, field.NotSupported(restartPath, rp, []corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
	case spec.PodFailurePolicy != nil && rp != corev1.RestartPolicyNever:
		allErrs = append(allErrs, field.Invalid(restartPath, rp, fmt.Sprintf("only %q is supported when podFailurePolicy is specified", corev1.RestartPolicyNever)))
	}
	return allErrs
}

// validateIndexedJobLimits caps what an Indexed Job may ask for, so that its completed and
// failed index lists stay small enough to store.
func validateIndexedJobLimits(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if spec.Completions == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("completions"), fmt.Sprintf("when completion mode is %s", batchv1.IndexedCompletion)))
	}
	if spec.Parallelism != nil && *spec.Parallelism > maxParallelismForIndexedJob {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("parallelism"), *spec.Parallelism, fmt.Sprintf("must be less than or equal to %d when completion mode is %s", maxParallelismForIndexedJob, batchv1.IndexedCompletion)))
	}
	if spec.Completions != nil && spec.MaxFailedIndexes != nil && *spec.MaxFailedIndexes > *spec.Completions {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("maxFailedIndexes"), *spec.MaxFailedIndexes, "must be less than or equal to completions"))
	}
	if spec.MaxFailedIndexes != nil && *spec.MaxFailedIndexes > maxFailedIndexesForIndexedJob {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("maxFailedIndexes"), *spec.MaxFailedIndexes, fmt.Sprintf("must be less than or equal to %d", maxFailedIndexesForIndexedJob)))
	}
	if spec.Completions != nil && *spec.Completions > completionsSoftLimit && spec.BackoffLimitPerIndex != nil {
		if spec.MaxFailedIndexes == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child("maxFailedIndexes"), fmt.Sprintf("must be specified when completions is above %d", completionsSoftLimit)))
		}
		if spec.Parallelism != nil && *spec.Parallelism > parallelismLimitForHighCompletions {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("parallelism"), *spec.Parallelism, fmt.Sprintf("must be less than or equal to %d when completions are above %d and used with backoff limit per index", parallelismLimitForHighCompletions, completionsSoftLimit)))
		}
		if spec.MaxFailedIndexes != nil && *spec.MaxFailedIndexes > maxFailedIndexesLimitForHighCompletions {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("maxFailedIndexes"), *spec.MaxFailedIndexes, fmt.Sprintf("must be less than or equal to %d when completions are above %d and used with backoff limit per index", maxFailedIndexesLimitForHighCompletions, completionsSoftLimit)))
		}
	}
	return allErrs
}

func validatePodFailurePolicy(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	rulesPath := fldPath.Child("rules")
	if n := len(spec.PodFailurePolicy.Rules); n > maxPodFailurePolicyRules {
		allErrs = append(allErrs, field.TooMany(rulesPath, n, maxPodFailurePolicyRules))
	}
	containers := sets.New[string]()
	for _, c := range spec.Template.Spec.Containers {
		containers.Insert(c.Name)
	}
	for _, c := range spec.Template.Spec.InitContainers {
		containers.Insert(c.Name)
	}
	for i := range spec.PodFailurePolicy.Rules {
		allErrs = append(allErrs, validatePodFailurePolicyRule(spec, &spec.PodFailurePolicy.Rules[i], rulesPath.Index(i), containers)...)
	}
	return allErrs
}

func validatePodFailurePolicyRule(spec *batchv1.JobSpec, rule *batchv1.PodFailurePolicyRule, rulePath *field.Path, containers sets.Set[string]) field.ErrorList {
	var allErrs field.ErrorList
	actionPath := rulePath.Child("action")
	switch {
	case rule.Action == "":
		allErrs = append(allErrs, field.Required(actionPath, fmt.Sprintf("valid values: %q", podFailurePolicyActions)))
	case rule.Action == batchv1.PodFailurePolicyActionFailIndex:
		if spec.BackoffLimitPerIndex == nil {
			allErrs = append(allErrs, field.Invalid(actionPath, rule.Action, "requires the backoffLimitPerIndex to be set"))
		}
	case !slices.Contains(podFailurePolicyActions, rule.Action):
		allErrs = append(allErrs, field.NotSupported(actionPath, rule.Action, podFailurePolicyActions))
	}
	if rule.OnExitCodes != nil {
		allErrs = append(allErrs, validateOnExitCodes(rule.OnExitCodes, rulePath.Child("onExitCodes"), containers)...)
	}
	if len(rule.OnPodConditions) > 0 {
		allErrs = append(allErrs, validateOnPodConditions(rule.OnPodConditions, rulePath.Child("onPodConditions"))...)
	}
	if rule.OnExitCodes != nil && len(rule.OnPodConditions) > 0 {
		allErrs = append(allErrs, field.Invalid(rulePath, field.OmitValueType{}, "specifying both OnExitCodes and OnPodConditions is not supported"))
	}
	if rule.OnExitCodes == nil && len(rule.OnPodConditions) == 0 {
		allErrs = append(allErrs, field.Invalid(rulePath, field.OmitValueType{}, "specifying one of OnExitCodes and OnPodConditions is required"))
	}
	return allErrs
}

func validateOnPodConditions(patterns []batchv1.PodFailurePolicyOnPodConditionsPattern, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(patterns) > maxPodFailurePolicyOnPodConditions {
		allErrs = append(allErrs, field.TooMany(fldPath, len(patterns), maxPodFailurePolicyOnPodConditions))
	}
	for j, p := range patterns {
		pPath := fldPath.Index(j)
		for _, msg := range validation.IsQualifiedName(string(p.Type)) {
			allErrs = append(allErrs, field.Invalid(pPath.Child("type"), string(p.Type), msg))
		}
		statusPath := pPath.Child("status")
		if p.Status == "" {
			allErrs = append(allErrs, field.Required(statusPath, fmt.Sprintf("valid values: %q", podConditionStatuses)))
		} else if !slices.Contains(podConditionStatuses, p.Status) {
			allErrs = append(allErrs, field.NotSupported(statusPath, p.Status, podConditionStatuses))
		}
	}
	return allErrs
}

func validateOnExitCodes(req *batchv1.PodFailurePolicyOnExitCodesRequirement, fldPath *field.Path, containers sets.Set[string]) field.ErrorList {
	var allErrs field.ErrorList
	opPath := fldPath.Child("operator")
	if req.Operator == "" {
		allErrs = append(allErrs, field.Required(opPath, fmt.Sprintf("valid values: %q", podFailurePolicyOperators)))
	} else if !slices.Contains(podFailurePolicyOperators, req.Operator) {
		allErrs = append(allErrs, field.NotSupported(opPath, req.Operator, podFailurePolicyOperators))
	}
	if req.ContainerName != nil && !containers.Has(*req.ContainerName) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("containerName"), *req.ContainerName, "must be one of the container or initContainer names in the pod template"))
	}
	valuesPath := fldPath.Child("values")
	if len(req.Values) == 0 {
		allErrs = append(allErrs, field.Invalid(valuesPath, req.Values, "at least one value is required"))
	} else if len(req.Values) > maxPodFailurePolicyOnExitCodesValues {
		allErrs = append(allErrs, field.TooMany(valuesPath, len(req.Values), maxPodFailurePolicyOnExitCodesValues))
	}
	ordered := true
	seen := sets.New[int32]()
	for j, v := range req.Values {
		if req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && v == 0 {
			allErrs = append(allErrs, field.Invalid(valuesPath.Index(j), v, "must not be 0 for the In operator"))
		}
		if seen.Has(v) {
			allErrs = append(allErrs, field.Duplicate(valuesPath.Index(j), v))
		}
		seen.Insert(v)
		if j > 0 && req.Values[j-1] > v {
			ordered = false
		}
	}
	if !ordered {
		allErrs = append(allErrs, field.Invalid(valuesPath, req.Values, "must be ordered"))
	}
	return allErrs
}

func validateSuccessPolicy(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	rulesPath := fldPath.Child("rules")
	rules := spec.SuccessPolicy.Rules
	if len(rules) == 0 {
		allErrs = append(allErrs, field.Required(rulesPath, "at least one rules must be specified when the successPolicy is specified"))
	}
	if len(rules) > maxSuccessPolicyRules {
		allErrs = append(allErrs, field.TooMany(rulesPath, len(rules), maxSuccessPolicyRules))
	}
	completions := ptr.Deref(spec.Completions, 0) // required for Indexed Jobs, reported elsewhere
	for i, rule := range rules {
		rulePath := rulesPath.Index(i)
		if rule.SucceededCount == nil && rule.SucceededIndexes == nil {
			allErrs = append(allErrs, field.Required(rulePath, "at least one of succeededCount or succeededIndexes must be specified"))
		}
		var total int32
		if rule.SucceededIndexes != nil {
			p := rulePath.Child("succeededIndexes")
			if len(*rule.SucceededIndexes) > maxSuccessPolicySucceededIndexesLength {
				allErrs = append(allErrs, field.TooLong(p, *rule.SucceededIndexes, maxSuccessPolicySucceededIndexesLength))
			}
			var err error
			if total, err = countIndexes(*rule.SucceededIndexes, completions); err != nil {
				allErrs = append(allErrs, field.Invalid(p, *rule.SucceededIndexes, fmt.Sprintf("error parsing succeededIndexes: %s", err)))
			}
		}
		if rule.SucceededCount != nil {
			p := rulePath.Child("succeededCount")
			allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*rule.SucceededCount), p)...)
			if *rule.SucceededCount > completions {
				allErrs = append(allErrs, field.Invalid(p, *rule.SucceededCount, fmt.Sprintf("must be less than or equal to %d (the number of specified completions)", completions)))
			}
			if rule.SucceededIndexes != nil && *rule.SucceededCount > total {
				allErrs = append(allErrs, field.Invalid(p, *rule.SucceededCount, fmt.Sprintf("must be less than or equal to %d (the number of indexes in the specified succeededIndexes field)", total)))
			}
		}
	}
	return allErrs
}

// countIndexes parses an index list ("1,3-5,7") whose indexes are below completions and
// strictly increasing, and counts its indexes.
func countIndexes(list string, completions int32) (int32, error) {
	if list == "" {
		return 0, nil
	}
	var total int32
	var last *int32
	for _, interval := range strings.Split(list, ",") {
		x, y, err := parseIndexInterval(interval, completions)
		if err != nil {
			return 0, err
		}
		if last != nil && *last >= x {
			return 0, fmt.Errorf("non-increasing order, previous: %d, current: %d", *last, x)
		}
		total += y - x + 1
		last = &y
	}
	return total, nil
}

func parseIndexInterval(interval string, completions int32) (int32, int32, error) {
	limits := strings.Split(interval, "-")
	if len(limits) > 2 {
		return 0, 0, fmt.Errorf("the fragment %q violates the requirement that an index interval can have at most two parts separated by '-'", interval)
	}
	x, err := strconv.Atoi(limits[0])
	if err != nil {
		return 0, 0, fmt.Errorf("cannot convert string to integer for index: %q", limits[0])
	}
	if x >= int(completions) {
		return 0, 0, fmt.Errorf("too large index: %q", limits[0])
	}
	if len(limits) == 1 {
		return int32(x), int32(x), nil
	}
	y, err := strconv.Atoi(limits[1])
	if err != nil {
		return 0, 0, fmt.Errorf("cannot convert string to integer for index: %q", limits[1])
	}
	if y >= int(completions) {
		return 0, 0, fmt.Errorf("too large index: %q", limits[1])
	}
	if x >= y {
		return 0, 0, fmt.Errorf("non-increasing order, previous: %d, current: %d", x, y)
	}
	return int32(x), int32(y), nil
}

// validateJobCompletionsUpdate: completions never change, except on an Indexed Job scaled
// elastically, where they change together with parallelism.
func validateJobCompletionsUpdate(spec, old *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	if ptr.Deref(spec.CompletionMode, "") != batchv1.IndexedCompletion {
		return apivalidation.ValidateImmutableField(spec.Completions, old.Completions, fldPath)
	}
	if equality.Semantic.DeepEqual(spec.Completions, old.Completions) || spec.Completions == nil {
		return nil // a missing completions is reported by the spec rules
	}
	if *spec.Completions != ptr.Deref(spec.Parallelism, -1) {
		return field.ErrorList{field.Invalid(fldPath, spec.Completions, fmt.Sprintf("can only be modified in tandem with %s", fldPath.Root().Child("parallelism")))}
	}
	return nil
}

func validateJobTemplateUpdate(spec, old *batchv1.JobSpec, opts jobValidation) field.ErrorList {
	template, oldTemplate := &spec.Template, &old.Template
	if opts.allowMutableSchedulingDirectives {
		// compare with the old template carrying the new scheduling directives
		oldTemplate = old.Template.DeepCopy()
		switch {
		case template.Spec.Affinity == nil && oldTemplate.Spec.Affinity != nil:
			// the affinity may be cleared if it held only node affinity
			oldTemplate.Spec.Affinity.NodeAffinity = nil
			if *oldTemplate.Spec.Affinity == (corev1.Affinity{}) {
				oldTemplate.Spec.Affinity = nil
			}
		case template.Spec.Affinity != nil && oldTemplate.Spec.Affinity == nil:
			oldTemplate.Spec.Affinity = &corev1.Affinity{NodeAffinity: template.Spec.Affinity.NodeAffinity}
		case template.Spec.Affinity != nil && oldTemplate.Spec.Affinity != nil:
			oldTemplate.Spec.Affinity.NodeAffinity = template.Spec.Affinity.NodeAffinity
		}
		oldTemplate.Spec.NodeSelector = template.Spec.NodeSelector
		oldTemplate.Spec.Tolerations = template.Spec.Tolerations
		oldTemplate.Annotations = template.Annotations
		oldTemplate.Labels = template.Labels
		oldTemplate.Spec.SchedulingGates = template.Spec.SchedulingGates
	}
	return apivalidation.ValidateImmutableField(template, oldTemplate, jobSpecPath.Child("template"))
}

// ValidateJobStatusUpdate checks a write to jobs/status. As upstream's with Job managedBy (a
// Job's status may be written by a controller other than ours), each rule is checked only
// when a field it concerns changed, so that an update unrelated to a bad field goes through.
func ValidateJobStatusUpdate(job, old *batchv1.Job) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&job.ObjectMeta, &old.ObjectMeta, metadataPath)
	statusPath := field.NewPath("status")
	st, oldSt := &job.Status, &old.Status

	isIndexed := ptr.Deref(job.Spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion
	finishedChanged := isJobFinished(job) != isJobFinished(old)
	completeChanged := isJobComplete(job) != isJobComplete(old)
	failedChanged := isJobFailed(job) != isJobFailed(old)
	failureTargetChanged := jobConditionTrue(job, batchv1.JobFailureTarget) != jobConditionTrue(old, batchv1.JobFailureTarget)
	completedIndexesChanged := st.CompletedIndexes != oldSt.CompletedIndexes
	failedIndexesChanged := !ptr.Equal(st.FailedIndexes, oldSt.FailedIndexes)
	activeChanged := st.Active != oldSt.Active
	startChanged := !equality.Semantic.DeepEqual(st.StartTime, oldSt.StartTime)
	completionChanged := !equality.Semantic.DeepEqual(st.CompletionTime, oldSt.CompletionTime)
	uncountedChanged := !equality.Semantic.DeepEqual(st.UncountedTerminatedPods, oldSt.UncountedTerminatedPods)

	for _, c := range []struct {
		name  string
		value int32
	}{{"active", st.Active}, {"succeeded", st.Succeeded}, {"failed", st.Failed}} {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(c.value), statusPath.Child(c.name))...)
	}
	if st.Ready != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*st.Ready), statusPath.Child("ready"))...)
	}
	if st.Terminating != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*st.Terminating), statusPath.Child("terminating"))...)
	}
	if u := st.UncountedTerminatedPods; u != nil {
		p := statusPath.Child("uncountedTerminatedPods")
		seen := sets.New[types.UID]()
		for _, list := range []struct {
			name string
			uids []types.UID
		}{{"succeeded", u.Succeeded}, {"failed", u.Failed}} {
			for i, uid := range list.uids {
				ip := p.Child(list.name).Index(i)
				switch {
				case uid == "":
					allErrs = append(allErrs, field.Invalid(ip, uid, "must not be empty"))
				case seen.Has(uid):
					allErrs = append(allErrs, field.Duplicate(ip, uid))
				default:
					seen.Insert(uid)
				}
			}
		}
	}
	conditions := statusPath.Child("conditions")
	invalidConditions := func(msg string) {
		allErrs = append(allErrs, field.Invalid(conditions, field.OmitValueType{}, msg))
	}
	if (completeChanged || failedChanged) && isJobComplete(job) && isJobFailed(job) {
		invalidConditions("cannot set Complete=True and Failed=true conditions")
	}
	if (completeChanged || failureTargetChanged) && isJobComplete(job) && jobConditionTrue(job, batchv1.JobFailureTarget) {
		invalidConditions("cannot set Complete=True and FailureTarget=true conditions")
	}
	if (completeChanged || completionChanged) && st.CompletionTime != nil && !isJobComplete(job) {
		allErrs = append(allErrs, field.Invalid(statusPath.Child("completionTime"), st.CompletionTime, "cannot set completionTime when there is no Complete=True condition"))
	}
	if (completeChanged || completionChanged) && st.CompletionTime == nil && isJobComplete(job) {
		allErrs = append(allErrs, field.Required(statusPath.Child("completionTime"), "completionTime is required for Complete jobs"))
	}
	if (startChanged || completionChanged) && st.StartTime != nil && st.CompletionTime != nil && st.CompletionTime.Before(st.StartTime) {
		allErrs = append(allErrs, field.Invalid(statusPath.Child("completionTime"), st.CompletionTime, "completionTime cannot be set before startTime"))
	}
	if finishedChanged && isJobFailed(job) && !jobConditionTrue(job, batchv1.JobFailureTarget) {
		invalidConditions("cannot set Failed=True condition without the FailureTarget=true condition")
	}
	if finishedChanged && isJobComplete(job) && !jobConditionTrue(job, batchv1.JobSuccessCriteriaMet) {
		invalidConditions("cannot set Complete=True condition without the SuccessCriteriaMet=true condition")
	}
	if (finishedChanged || activeChanged) && st.Active > 0 && isJobFinished(job) {
		allErrs = append(allErrs, field.Invalid(statusPath.Child("active"), st.Active, "active>0 is invalid for finished job"))
	}
	if (finishedChanged || startChanged) && st.StartTime == nil && isJobFinished(job) {
		allErrs = append(allErrs, field.Required(statusPath.Child("startTime"), "startTime is required for finished job"))
	}
	if (finishedChanged || uncountedChanged) && isJobFinished(job) && st.UncountedTerminatedPods != nil &&
		len(st.UncountedTerminatedPods.Failed)+len(st.UncountedTerminatedPods.Succeeded) > 0 {
		allErrs = append(allErrs, field.Invalid(statusPath.Child("uncountedTerminatedPods"), st.UncountedTerminatedPods, "uncountedTerminatedPods needs to be empty for finished job"))
	}
	if completedIndexesChanged && job.Spec.Completions != nil {
		if _, err := countIndexes(st.CompletedIndexes, *job.Spec.Completions); err != nil {
			allErrs = append(allErrs, field.Invalid(statusPath.Child("completedIndexes"), st.CompletedIndexes, fmt.Sprintf("error parsing completedIndexes: %s", err)))
		}
	}
	if failedIndexesChanged && job.Spec.Completions != nil && job.Spec.BackoffLimitPerIndex != nil && st.FailedIndexes != nil {
		if _, err := countIndexes(*st.FailedIndexes, *job.Spec.Completions); err != nil {
			allErrs = append(allErrs, field.Invalid(statusPath.Child("failedIndexes"), st.FailedIndexes, fmt.Sprintf("error parsing failedIndexes: %s", err)))
		}
	}
	if completedIndexesChanged && st.CompletedIndexes != "" && !isIndexed {
		allErrs = append(allErrs, field.Invalid(statusPath.Child("completedIndexes"), st.CompletedIndexes, "cannot set non-empty completedIndexes when non-indexed completion mode"))
	}
	if failedIndexesChanged && job.Spec.BackoffLimitPerIndex == nil && st.FailedIndexes != nil {
		allErrs = append(allErrs, field.Invalid(statusPath.Child("failedIndexes"), *st.FailedIndexes, "cannot set non-null failedIndexes when backoffLimitPerIndex is null"))
	}
	if (failedIndexesChanged || completedIndexesChanged) && job.Spec.Completions != nil && st.FailedIndexes != nil {
		if at, overlap := indexesOverlap(st.CompletedIndexes, *st.FailedIndexes, *job.Spec.Completions); overlap {
			allErrs = append(allErrs, field.Invalid(statusPath.Child("failedIndexes"), *st.FailedIndexes, fmt.Sprintf("failedIndexes and completedIndexes overlap at index: %d", at)))
		}
	}
	successCriteriaMet := jobConditionTrue(job, batchv1.JobSuccessCriteriaMet)
	if successCriteriaMet && isJobFailed(job) {
		invalidConditions("cannot set SuccessCriteriaMet=True and Failed=true conditions")
	}
	if successCriteriaMet && jobConditionTrue(job, batchv1.JobFailureTarget) {
		invalidConditions("cannot set SuccessCriteriaMet=True and FailureTarget=true conditions")
	}
	if job.Spec.SuccessPolicy != nil && !successCriteriaMet && isJobComplete(job) {
		invalidConditions("cannot set Complete=True for Job with SuccessPolicy unless SuccessCriteriaMet=True")
	}

	// transitions
	for _, t := range []batchv1.JobConditionType{batchv1.JobFailed, batchv1.JobComplete, batchv1.JobFailureTarget} {
		if jobConditionTrue(old, t) && !jobConditionTrue(job, t) {
			invalidConditions(fmt.Sprintf("cannot disable the terminal %s=True condition", t))
		}
	}
	if st.Failed < oldSt.Failed {
		allErrs = append(allErrs, field.Invalid(statusPath.Child("failed"), st.Failed, "cannot decrease the failed counter"))
	}
	// an elastic Indexed Job (completions == parallelism) may be scaled down, and its
	// succeeded count with it
	if (!isIndexed || !ptr.Equal(job.Spec.Completions, job.Spec.Parallelism)) && st.Succeeded < oldSt.Succeeded {
		allErrs = append(allErrs, field.Invalid(statusPath.Child("succeeded"), st.Succeeded, "cannot decrease the succeeded counter"))
	}
	if st.CompletionTime != nil && oldSt.CompletionTime != nil && !st.CompletionTime.Equal(oldSt.CompletionTime) {
		allErrs = append(allErrs, field.Invalid(statusPath.Child("completionTime"), st.CompletionTime, "completionTime cannot be mutated"))
	}
	if startChanged && oldSt.StartTime != nil && !ptr.Deref(job.Spec.Suspend, false) {
		allErrs = append(allErrs, field.Required(statusPath.Child("startTime"), "startTime cannot be removed for unsuspended job"))
	}
	if jobConditionTrue(old, batchv1.JobSuccessCriteriaMet) && !successCriteriaMet {
		invalidConditions("cannot disable the SuccessCriteriaMet=True condition")
	}
	if isJobComplete(old) && !jobConditionTrue(old, batchv1.JobSuccessCriteriaMet) && successCriteriaMet {
		invalidConditions("cannot set SuccessCriteriaMet=True for Job already has Complete=true conditions")
	}
	return allErrs
}

func isJobComplete(job *batchv1.Job) bool { return jobConditionTrue(job, batchv1.JobComplete) }
func isJobFailed(job *batchv1.Job) bool   { return jobConditionTrue(job, batchv1.JobFailed) }
func isJobFinished(job *batchv1.Job) bool { return isJobComplete(job) || isJobFailed(job) }

// indexesOverlap reports the first index in both lists; unparsable intervals are skipped (the
// format rules report them).
func indexesOverlap(completed, failed string, completions int32) (int32, bool) {
	if completed == "" || failed == "" {
		return 0, false
	}
	type interval struct{ x, y int32 }
	parse := func(list string) []interval {
		var out []interval
		for _, s := range strings.Split(list, ",") {
			if x, y, err := parseIndexInterval(s, completions); err == nil {
				out = append(out, interval{x, y})
			}
		}
		return out
	}
	c, f := parse(completed), parse(failed)
	for i, j := 0, 0; i < len(c) && j < len(f); {
		if c[i].x <= f[j].y && f[j].x <= c[i].y {
			return max(c[i].x, f[j].x), true
		}
		if c[i].x <= f[j].x {
			i++
		} else {
			j++
		}
	}
	return 0, false
}

// ValidateCronJob checks a new CronJob: its name leaves room for the Jobs' suffix, and its
// spec as on update.
func ValidateCronJob(cj *batchv1.CronJob) field.ErrorList {
	allErrs := ValidateObjectMeta(&cj.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	allErrs = append(allErrs, validateCronJobSpec(&cj.Spec, nil, field.NewPath("spec"))...)
	if len(cj.Name) > maxCronJobNameLength {
		allErrs = append(allErrs, field.Invalid(jobNamePath, cj.Name, "must be no more than 52 characters"))
	}
	return allErrs
}

// ValidateCronJobUpdate checks cj replacing old. A long name made before the limit existed
// stays valid, and so does a TZ= in a schedule that already had one.
func ValidateCronJobUpdate(cj, old *batchv1.CronJob) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&cj.ObjectMeta, &old.ObjectMeta, metadataPath)
	return append(allErrs, validateCronJobSpec(&cj.Spec, &old.Spec, field.NewPath("spec"))...)
}

func validateCronJobSpec(spec, old *batchv1.CronJobSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if spec.Schedule == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("schedule"), ""))
	} else {
		allowTZ := old != nil && strings.Contains(old.Schedule, "TZ")
		allErrs = append(allErrs, validateSchedule(spec.Schedule, allowTZ, spec.TimeZone, fldPath.Child("schedule"))...)
	}
	if spec.StartingDeadlineSeconds != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(*spec.StartingDeadlineSeconds, fldPath.Child("startingDeadlineSeconds"))...)
	}
	if old == nil || !ptr.Equal(old.TimeZone, spec.TimeZone) {
		allErrs = append(allErrs, validateTimeZone(spec.TimeZone, fldPath.Child("timeZone"))...)
	}
	switch p := spec.ConcurrencyPolicy; {
	case p == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("concurrencyPolicy"), ""))
	case !slices.Contains(concurrencyPolicies, p):
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("concurrencyPolicy"), p, concurrencyPolicies))
	}
	templatePath := fldPath.Child("jobTemplate")
	allErrs = append(allErrs, validateJobSpec(&spec.JobTemplate.Spec, templatePath.Child("spec"))...)
	// the controller generates every Job's selector
	if spec.JobTemplate.Spec.Selector != nil {
		allErrs = append(allErrs, field.Invalid(templatePath.Child("spec", "selector"), spec.JobTemplate.Spec.Selector, "`selector` will be auto-generated"))
	}
	if ptr.Deref(spec.JobTemplate.Spec.ManualSelector, false) {
		allErrs = append(allErrs, field.NotSupported(templatePath.Child("spec", "manualSelector"), spec.JobTemplate.Spec.ManualSelector, []string{"nil", "false"}))
	}
	if spec.SuccessfulJobsHistoryLimit != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*spec.SuccessfulJobsHistoryLimit), fldPath.Child("successfulJobsHistoryLimit"))...)
	}
	if spec.FailedJobsHistoryLimit != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*spec.FailedJobsHistoryLimit), fldPath.Child("failedJobsHistoryLimit"))...)
	}
	return allErrs
}

// parseCronSchedule parses a CronJob's schedule as upstream does (and as the CronJob
// controller schedules by): five fields or a descriptor (@hourly, @daily, @every 1h30m, ...).
func parseCronSchedule(schedule string) (cron.Schedule, error) {
	return cron.ParseStandard(schedule)
}

func validateSchedule(schedule string, allowTZ bool, timeZone *string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if _, err := parseCronSchedule(schedule); err != nil {
		allErrs = append(allErrs, field.Invalid(fldPath, schedule, err.Error()))
	}
	switch {
	case allowTZ && strings.Contains(schedule, "TZ") && timeZone != nil:
		allErrs = append(allErrs, field.Invalid(fldPath, schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
	case !allowTZ && strings.Contains(schedule, "TZ"):
		allErrs = append(allErrs, field.Invalid(fldPath, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
	}
	return allErrs
}

// validateTimeZone accepts names of the IANA database (as IANA's naming rules, with digits and
// '+' for the legacy names) that this machine's zone database, or Go's embedded one, knows;
// "Local" is refused, since it would mean whatever zone the controller manager runs in.
func validateTimeZone(tz *string, fldPath *field.Path) field.ErrorList {
	if tz == nil {
		return nil
	}
	if *tz == "" {
		return field.ErrorList{field.Invalid(fldPath, tz, "timeZone must be nil or non-empty string")}
	}
	for _, part := range strings.Split(*tz, "/") {
		if part == "." || part == ".." || strings.HasPrefix(part, "-") || !validTimeZoneComponent.MatchString(part) {
			return field.ErrorList{field.Invalid(fldPath, tz, fmt.Sprintf("unknown time zone %s", *tz))}
		}
	}
	var allErrs field.ErrorList
	if strings.EqualFold(*tz, "Local") {
		allErrs = append(allErrs, field.Invalid(fldPath, tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
	}
	if _, err := time.LoadLocation(*tz); err != nil {
		allErrs = append(allErrs, field.Invalid(fldPath, tz, err.Error()))
	}
	return allErrs
}
