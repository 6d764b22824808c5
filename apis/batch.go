package apis

import (
	"fmt"
	"math"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/utils/ptr"
)

// batch/v1 Jobs and CronJobs: upstream's defaulting, the selector the server generates for a
// Job, the field selectors and the Table columns. Validation is in validation_batch.go.
//
// Nothing here is registered: the declaration of the batch/v1 kinds wires DefaultJob,
// DefaultCronJob, JobColumns/JobRow, CronJobColumns/CronJobRow and JobFields in.

// The unprefixed labels the server has always put on a Job's pod template beside the
// batch.kubernetes.io ones; old clients and old pods still select on them.
const (
	LegacyJobNameLabel       = "job-name"
	LegacyControllerUIDLabel = "controller-uid"
)

// DefaultJob fills in what upstream's SetDefaults_Job does: completions and parallelism 1 when
// neither is set (parallelism 1 when only it is missing), backoffLimit 6 (MaxInt32 with
// backoffLimitPerIndex, whose per-index limit then governs), the template's labels as the Job's
// when it has none, completionMode NonIndexed, suspend false, status True for pod failure
// policy condition patterns without one, podReplacementPolicy Failed with a pod failure policy
// and TerminatingOrFailed without, manualSelector false, and the pod template's spec defaults.
func DefaultJob(job *batchv1.Job) {
	spec := &job.Spec
	if spec.Completions == nil && spec.Parallelism == nil {
		spec.Completions = ptr.To[int32](1)
		spec.Parallelism = ptr.To[int32](1)
	}
	if spec.Parallelism == nil {
		spec.Parallelism = ptr.To[int32](1)
	}
	if spec.BackoffLimit == nil {
		if spec.BackoffLimitPerIndex != nil {
			spec.BackoffLimit = ptr.To[int32](math.MaxInt32)
		} else {
			spec.BackoffLimit = ptr.To[int32](6)
		}
	}
	if spec.Template.Labels != nil && len(job.Labels) == 0 {
		// the very map, as upstream's: the labels GenerateJobSelector then adds to the
		// template show on the Job too
		job.Labels = spec.Template.Labels
	}
	if spec.CompletionMode == nil {
		spec.CompletionMode = ptr.To(batchv1.NonIndexedCompletion)
	}
	if spec.Suspend == nil {
		spec.Suspend = ptr.To(false)
	}
	if spec.PodFailurePolicy != nil {
		for _, rule := range spec.PodFailurePolicy.Rules {
			for i := range rule.OnPodConditions {
				if rule.OnPodConditions[i].Status == "" {
					rule.OnPodConditions[i].Status = corev1.ConditionTrue
				}
			}
		}
	}
	if spec.PodReplacementPolicy == nil {
		if spec.PodFailurePolicy != nil {
			spec.PodReplacementPolicy = ptr.To(batchv1.Failed)
		} else {
			spec.PodReplacementPolicy = ptr.To(batchv1.TerminatingOrFailed)
		}
	}
	if spec.ManualSelector == nil {
		spec.ManualSelector = ptr.To(false)
	}
	DefaultPodSpec(&spec.Template.Spec)
}

// DefaultCronJob fills in what upstream's SetDefaults_CronJob does: concurrencyPolicy Allow,
// suspend false, three successful and one failed Job kept, and the pod template's spec
// defaults. The Job template's own fields (backoffLimit, completions, ...) are not defaulted
// here: the Job made from it is defaulted when it is created.
func DefaultCronJob(cj *batchv1.CronJob) {
	if cj.Spec.ConcurrencyPolicy == "" {
		cj.Spec.ConcurrencyPolicy = batchv1.AllowConcurrent
	}
	if cj.Spec.Suspend == nil {
		cj.Spec.Suspend = ptr.To(false)
	}
	if cj.Spec.SuccessfulJobsHistoryLimit == nil {
		cj.Spec.SuccessfulJobsHistoryLimit = ptr.To[int32](3)
	}
	if cj.Spec.FailedJobsHistoryLimit == nil {
		cj.Spec.FailedJobsHistoryLimit = ptr.To[int32](1)
	}
	DefaultPodSpec(&cj.Spec.JobTemplate.Spec.Template.Spec)
}

// GenerateJobSelector is what the server does to a Job on create unless spec.manualSelector is
// true (call it after defaulting, once the Job has its UID): it labels the pod template with the
// Job's name and UID under both the batch.kubernetes.io and the legacy keys, leaving labels the
// user set alone, and makes the selector match the batch.kubernetes.io/controller-uid label.
// A user's conflicting label or selector is left for validation to refuse.
func GenerateJobSelector(job *batchv1.Job) {
	if ptr.Deref(job.Spec.ManualSelector, false) {
		return
	}
	if job.Spec.Template.Labels == nil {
		job.Spec.Template.Labels = map[string]string{}
	}
	for _, key := range []string{LegacyJobNameLabel, batchv1.JobNameLabel} {
		if _, set := job.Spec.Template.Labels[key]; !set {
			job.Spec.Template.Labels[key] = job.Name
		}
	}
	for _, key := range []string{LegacyControllerUIDLabel, batchv1.ControllerUidLabel} {
		if _, set := job.Spec.Template.Labels[key]; !set {
			job.Spec.Template.Labels[key] = string(job.UID)
		}
	}
	if job.Spec.Selector == nil {
		job.Spec.Selector = &metav1.LabelSelector{}
	}
	if job.Spec.Selector.MatchLabels == nil {
		job.Spec.Selector.MatchLabels = map[string]string{}
	}
	if _, set := job.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel]; !set {
		job.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel] = string(job.UID)
	}
}

// JobFields are the fields Jobs can be selected by: the metadata ones and status.successful,
// the count of succeeded pods.
func JobFields(obj runtime.Object) fields.Set {
	set := objectMetaFields(obj)
	set["status.successful"] = strconv.Itoa(int(obj.(*batchv1.Job).Status.Succeeded))
	return set
}

// CronJobFields are the fields CronJobs can be selected by: only the metadata ones.
func CronJobFields(obj runtime.Object) fields.Set { return objectMetaFields(obj) }

var selectorColumn = metav1.TableColumnDefinition{Name: "Selector", Type: "string", Priority: 1, Description: batchv1.JobSpec{}.SwaggerDoc()["selector"]}

// JobColumns are the columns of `kubectl get jobs`, and with -o wide.
var JobColumns = []metav1.TableColumnDefinition{
	nameColumn,
	{Name: "Status", Type: "string", Description: "Status of the job."},
	{Name: "Completions", Type: "string", Description: batchv1.JobStatus{}.SwaggerDoc()["succeeded"]},
	{Name: "Duration", Type: "string", Description: "Time required to complete the job."},
	ageColumn,
	containersColumn,
	imagesColumn,
	selectorColumn,
}

// JobRow prints a Job: STATUS is the first of Complete, Failed, Terminating (being deleted),
// Suspended, FailureTarget, SuccessCriteriaMet whose condition holds, else Running;
// COMPLETIONS is succeeded/completions ("n/1 of p" for a work queue of parallelism p);
// DURATION runs from startTime to completionTime, or to now while the Job runs.
func JobRow(job *batchv1.Job) metav1.TableRow {
	var completions string
	if job.Spec.Completions != nil {
		completions = fmt.Sprintf("%d/%d", job.Status.Succeeded, *job.Spec.Completions)
	} else if p := ptr.Deref(job.Spec.Parallelism, 0); p > 1 {
		completions = fmt.Sprintf("%d/1 of %d", job.Status.Succeeded, p)
	} else {
		completions = fmt.Sprintf("%d/1", job.Status.Succeeded)
	}
	var took string
	switch {
	case job.Status.StartTime == nil:
	case job.Status.CompletionTime == nil:
		took = duration.HumanDuration(time.Since(job.Status.StartTime.Time))
	default:
		took = duration.HumanDuration(job.Status.CompletionTime.Sub(job.Status.StartTime.Time))
	}
	status := "Running"
	switch {
	case jobConditionTrue(job, batchv1.JobComplete):
		status = "Complete"
	case jobConditionTrue(job, batchv1.JobFailed):
		status = "Failed"
	case job.DeletionTimestamp != nil:
		status = "Terminating"
	case jobConditionTrue(job, batchv1.JobSuspended):
		status = "Suspended"
	case jobConditionTrue(job, batchv1.JobFailureTarget):
		status = "FailureTarget"
	case jobConditionTrue(job, batchv1.JobSuccessCriteriaMet):
		status = "SuccessCriteriaMet"
	}
	names, images := layoutContainerCells(job.Spec.Template.Spec.Containers)
	return cells(job.Name, status, completions, took, translateTimestampSince(job.CreationTimestamp),
		names, images, metav1.FormatLabelSelector(job.Spec.Selector))
}

// CronJobColumns are the columns of `kubectl get cronjobs`, and with -o wide.
var CronJobColumns = []metav1.TableColumnDefinition{
	nameColumn,
	{Name: "Schedule", Type: "string", Description: batchv1.CronJobSpec{}.SwaggerDoc()["schedule"]},
	{Name: "Timezone", Type: "string", Description: batchv1.CronJobSpec{}.SwaggerDoc()["timeZone"]},
	{Name: "Suspend", Type: "boolean", Description: batchv1.CronJobSpec{}.SwaggerDoc()["suspend"]},
	{Name: "Active", Type: "integer", Description: batchv1.CronJobStatus{}.SwaggerDoc()["active"]},
	{Name: "Last Schedule", Type: "string", Description: batchv1.CronJobStatus{}.SwaggerDoc()["lastScheduleTime"]},
	ageColumn,
	containersColumn,
	imagesColumn,
	selectorColumn,
}

// CronJobRow prints a CronJob: SUSPEND is True, False or <unset>, ACTIVE counts the running
// Jobs, LAST SCHEDULE is how long ago the last Job was scheduled.
func CronJobRow(cj *batchv1.CronJob) metav1.TableRow {
	last := "<none>"
	if cj.Status.LastScheduleTime != nil {
		last = translateTimestampSince(*cj.Status.LastScheduleTime)
	}
	tz := "<none>"
	if cj.Spec.TimeZone != nil {
		tz = *cj.Spec.TimeZone
	}
	suspend := "<unset>"
	if cj.Spec.Suspend != nil {
		suspend = "False"
		if *cj.Spec.Suspend {
			suspend = "True"
		}
	}
	names, images := layoutContainerCells(cj.Spec.JobTemplate.Spec.Template.Spec.Containers)
	return cells(cj.Name, cj.Spec.Schedule, tz, suspend, int64(len(cj.Status.Active)), last,
		translateTimestampSince(cj.CreationTimestamp), names, images, metav1.FormatLabelSelector(cj.Spec.JobTemplate.Spec.Selector))
}

func jobConditionTrue(job *batchv1.Job, t batchv1.JobConditionType) bool {
	return jobConditionIsTrue(job.Status.Conditions, t)
}

func jobConditionIsTrue(conds []batchv1.JobCondition, t batchv1.JobConditionType) bool {
	for _, c := range conds {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
