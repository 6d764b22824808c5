package apis

import (
	"math"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// createdJob is a Job as the store sees it on create: defaulted, with a UID and the generated
// selector.
func createdJob() *batchv1.Job {
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "pi", Namespace: "ns", UID: types.UID("uid-1"), ResourceVersion: "3"},
		Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "pi", Image: "perl:5.34"}},
				},
			},
		},
	}
	DefaultJob(job)
	GenerateJobSelector(job)
	return job
}

func createdCronJob() *batchv1.CronJob {
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "ns", ResourceVersion: "3"},
		Spec: batchv1.CronJobSpec{
			Schedule: "*/5 * * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyOnFailure, Containers: []corev1.Container{{Name: "hello", Image: "busybox"}}},
			}}},
		},
	}
	DefaultCronJob(cj)
	return cj
}

func TestDefaultJobAsUpstream(t *testing.T) {
	job := createdJob()
	s := job.Spec
	if *s.Completions != 1 || *s.Parallelism != 1 || *s.BackoffLimit != 6 || *s.CompletionMode != batchv1.NonIndexedCompletion ||
		*s.Suspend || *s.ManualSelector || *s.PodReplacementPolicy != batchv1.TerminatingOrFailed {
		t.Errorf("defaulted spec = %+v", s)
	}
	if s.Template.Spec.DNSPolicy != corev1.DNSClusterFirst || s.Template.Spec.Containers[0].TerminationMessagePath == "" {
		t.Errorf("the pod template was not defaulted: %+v", s.Template.Spec)
	}

	workQueue := &batchv1.Job{Spec: batchv1.JobSpec{Parallelism: ptr.To[int32](4)}}
	DefaultJob(workQueue)
	if workQueue.Spec.Completions != nil || *workQueue.Spec.Parallelism != 4 {
		t.Errorf("a work queue keeps completions unset: %v %v", workQueue.Spec.Completions, *workQueue.Spec.Parallelism)
	}

	perIndex := &batchv1.Job{Spec: batchv1.JobSpec{BackoffLimitPerIndex: ptr.To[int32](1), PodFailurePolicy: &batchv1.PodFailurePolicy{
		Rules: []batchv1.PodFailurePolicyRule{{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget}}}},
	}}}
	DefaultJob(perIndex)
	if *perIndex.Spec.BackoffLimit != math.MaxInt32 {
		t.Errorf("backoffLimit with backoffLimitPerIndex = %d, want MaxInt32", *perIndex.Spec.BackoffLimit)
	}
	if *perIndex.Spec.PodReplacementPolicy != batchv1.Failed {
		t.Errorf("podReplacementPolicy with a pod failure policy = %s, want Failed", *perIndex.Spec.PodReplacementPolicy)
	}
	if got := perIndex.Spec.PodFailurePolicy.Rules[0].OnPodConditions[0].Status; got != corev1.ConditionTrue {
		t.Errorf("condition pattern status = %q, want True", got)
	}

	labelled := &batchv1.Job{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}}}}}
	DefaultJob(labelled)
	if labelled.Labels["app"] != "x" {
		t.Errorf("a Job without labels takes its template's: %v", labelled.Labels)
	}
}

func TestDefaultCronJobAsUpstream(t *testing.T) {
	cj := createdCronJob()
	if cj.Spec.ConcurrencyPolicy != batchv1.AllowConcurrent || *cj.Spec.Suspend || *cj.Spec.SuccessfulJobsHistoryLimit != 3 || *cj.Spec.FailedJobsHistoryLimit != 1 {
		t.Errorf("defaulted spec = %+v", cj.Spec)
	}
	if cj.Spec.JobTemplate.Spec.BackoffLimit != nil {
		t.Errorf("the job template's own fields are left to the Job's defaulting")
	}
}

func TestGenerateJobSelectorLabelsTheTemplateWithNameAndUID(t *testing.T) {
	job := createdJob()
	want := map[string]string{
		"batch.kubernetes.io/controller-uid": "uid-1", "controller-uid": "uid-1",
		"batch.kubernetes.io/job-name": "pi", "job-name": "pi",
	}
	for k, v := range want {
		if job.Spec.Template.Labels[k] != v {
			t.Errorf("template label %s = %q, want %q", k, job.Spec.Template.Labels[k], v)
		}
	}
	if got := metav1.FormatLabelSelector(job.Spec.Selector); got != "batch.kubernetes.io/controller-uid=uid-1" {
		t.Errorf("selector = %s", got)
	}
	checkFieldErrors(t, ValidateJob(job))

	manual := &batchv1.Job{Spec: batchv1.JobSpec{ManualSelector: ptr.To(true)}}
	GenerateJobSelector(manual)
	if manual.Spec.Selector != nil || manual.Spec.Template.Labels != nil {
		t.Errorf("a manual selector is the user's: %+v", manual.Spec)
	}
}

func TestValidateJob(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*batchv1.Job)
		want   []string
	}{
		{name: "valid", change: func(*batchv1.Job) {}},
		{
			name:   "negative parallelism",
			change: func(j *batchv1.Job) { j.Spec.Parallelism = ptr.To[int32](-1) },
			want:   []string{"spec.parallelism: Invalid value: -1: must be greater than or equal to 0"},
		},
		{
			name:   "restartPolicy Always",
			change: func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways },
			want:   []string{`spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"`},
		},
		{
			name:   "a user's selector that is not the generated one",
			change: func(j *batchv1.Job) { j.Spec.Selector.MatchLabels["batch.kubernetes.io/controller-uid"] = "other" },
			want: []string{
				`spec.selector: Invalid value: {"matchLabels":{"batch.kubernetes.io/controller-uid":"other"}}: ` + "`selector` not auto-generated",
				`spec.template.metadata.labels: Invalid value: {"batch.kubernetes.io/controller-uid":"uid-1","batch.kubernetes.io/job-name":"pi","controller-uid":"uid-1","job-name":"pi"}: ` + "`selector` does not match template `labels`",
			},
		},
		{
			name: "backoffLimitPerIndex needs Indexed",
			change: func(j *batchv1.Job) {
				j.Spec.BackoffLimitPerIndex = ptr.To[int32](1)
				j.Spec.MaxFailedIndexes = ptr.To[int32](1)
			},
			want: []string{
				"spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
				"spec.maxFailedIndexes: Invalid value: 1: requires indexed completion mode",
			},
		},
		{
			name: "Indexed needs completions and a name that makes hostnames",
			change: func(j *batchv1.Job) {
				j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
				j.Spec.Completions = nil
			},
			want: []string{"spec.completions: Required value: when completion mode is Indexed"},
		},
		{
			name: "the largest index must still make a DNS label",
			change: func(j *batchv1.Job) {
				j.Name = strings.Repeat("a", 62)
				j.Spec.Template.Labels["job-name"] = j.Name
				j.Spec.Template.Labels["batch.kubernetes.io/job-name"] = j.Name
				j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
				j.Spec.Completions = ptr.To[int32](10)
			},
			want: []string{"metadata.name: Invalid value: \"" + strings.Repeat("a", 62) + "\": will not able to create pod with invalid DNS label: " + strings.Repeat("a", 62) + "-9"},
		},
		{
			name: "pod failure policy rules",
			change: func(j *batchv1.Job) {
				j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
					{Action: batchv1.PodFailurePolicyActionFailIndex, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
						ContainerName: ptr.To("nope"), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{3, 0, 3},
					}},
					{Action: "Retry"},
				}}
				j.Spec.PodReplacementPolicy = ptr.To(batchv1.TerminatingOrFailed)
			},
			want: []string{
				`spec.podFailurePolicy.rules[0].action: Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set`,
				`spec.podFailurePolicy.rules[0].onExitCodes.containerName: Invalid value: "nope": must be one of the container or initContainer names in the pod template`,
				"spec.podFailurePolicy.rules[0].onExitCodes.values[1]: Invalid value: 0: must not be 0 for the In operator",
				"spec.podFailurePolicy.rules[0].onExitCodes.values[2]: Duplicate value: 3",
				"spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: [3,0,3]: must be ordered",
				`spec.podFailurePolicy.rules[1].action: Unsupported value: "Retry": supported values: "Count", "FailIndex", "FailJob", "Ignore"`,
				"spec.podFailurePolicy.rules[1]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
				`spec.podReplacementPolicy: Unsupported value: "TerminatingOrFailed": supported values: "Failed"`,
			},
		},
		{
			name: "pod failure policy needs restartPolicy Never",
			change: func(j *batchv1.Job) {
				j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
				j.Spec.PodReplacementPolicy = ptr.To(batchv1.Failed)
				j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
					Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}},
				}}}
			},
			want: []string{`spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified`},
		},
		{
			name: "success policy",
			change: func(j *batchv1.Job) {
				j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
				j.Spec.Completions = ptr.To[int32](5)
				j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{
					{SucceededIndexes: ptr.To("0-2,2"), SucceededCount: ptr.To[int32](6)},
					{},
				}}
			},
			want: []string{
				`spec.successPolicy.rules[0].succeededIndexes: Invalid value: "0-2,2": error parsing succeededIndexes: non-increasing order, previous: 2, current: 2`,
				"spec.successPolicy.rules[0].succeededCount: Invalid value: 6: must be less than or equal to 5 (the number of specified completions)",
				"spec.successPolicy.rules[0].succeededCount: Invalid value: 6: must be less than or equal to 0 (the number of indexes in the specified succeededIndexes field)",
				"spec.successPolicy.rules[1]: Required value: at least one of succeededCount or succeededIndexes must be specified",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := createdJob()
			tc.change(job)
			checkFieldErrors(t, ValidateJob(job), tc.want...)
		})
	}
}

func TestValidateJobUpdateKeepsTheTemplateUnlessSuspendedAndNeverStarted(t *testing.T) {
	old := createdJob()
	job := old.DeepCopy()
	job.Spec.Template.Spec.NodeSelector = map[string]string{"zone": "a"}
	errs := ValidateJobUpdate(job, old)
	if len(errs) != 1 || errs[0].Field != "spec.template" || !strings.HasSuffix(errs[0].Error(), "field is immutable") {
		t.Errorf("errors = %v, want spec.template immutable", errs)
	}

	old.Spec.Suspend = ptr.To(true)
	job.Spec.Suspend = ptr.To(true)
	checkFieldErrors(t, ValidateJobUpdate(job, old))

	old.Status.StartTime = &metav1.Time{Time: time.Now()}
	if errs := ValidateJobUpdate(job, old); len(errs) != 1 {
		t.Errorf("a Job that started keeps its template: %v", errs)
	}
}

func TestValidateJobUpdateCompletionsOnlyWithParallelismOnIndexedJobs(t *testing.T) {
	old := createdJob()
	job := old.DeepCopy()
	job.Spec.Completions = ptr.To[int32](3)
	checkFieldErrors(t, ValidateJobUpdate(job, old), "spec.completions: Invalid value: 3: field is immutable")

	old.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	job.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	checkFieldErrors(t, ValidateJobUpdate(job, old), "spec.completions: Invalid value: 3: can only be modified in tandem with spec.parallelism")
	job.Spec.Parallelism = ptr.To[int32](3)
	checkFieldErrors(t, ValidateJobUpdate(job, old))
}

func TestValidateJobStatusUpdate(t *testing.T) {
	old := createdJob()
	old.Status.Succeeded = 2
	now := metav1.Now()

	job := old.DeepCopy()
	job.Status.Succeeded = 1
	checkFieldErrors(t, ValidateJobStatusUpdate(job, old), "status.succeeded: Invalid value: 1: cannot decrease the succeeded counter")

	job = old.DeepCopy()
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	checkFieldErrors(t, ValidateJobStatusUpdate(job, old),
		"status.completionTime: Required value: completionTime is required for Complete jobs",
		"status.conditions: Invalid value: cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
		"status.startTime: Required value: startTime is required for finished job",
	)

	job = old.DeepCopy()
	job.Status.StartTime = &now
	job.Status.CompletionTime = &now
	job.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue},
	}
	checkFieldErrors(t, ValidateJobStatusUpdate(job, old))

	back := job.DeepCopy()
	back.Status.Conditions = nil
	back.Status.CompletionTime = nil
	errs := ValidateJobStatusUpdate(back, job)
	if !strings.Contains(errorsText(errs), "cannot disable the terminal Complete=True condition") {
		t.Errorf("a Complete Job cannot go back: %v", errs)
	}
}

func errorsText(errs field.ErrorList) string {
	if agg := errs.ToAggregate(); agg != nil {
		return agg.Error()
	}
	return ""
}

func TestValidateCronJob(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*batchv1.CronJob)
		want   []string
	}{
		{name: "valid", change: func(*batchv1.CronJob) {}},
		{name: "descriptors", change: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "@hourly" }},
		{name: "a time zone", change: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptr.To("Europe/Paris") }},
		{
			name:   "a bad schedule",
			change: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "61 * * * *" },
			want:   []string{`spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61`},
		},
		{
			name:   "TZ in the schedule",
			change: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "TZ=UTC 0 * * * *" },
			want:   []string{`spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead`},
		},
		{
			name:   "unknown time zone",
			change: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptr.To("Mars/Olympus") },
			want:   []string{`spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus`},
		},
		{
			name:   "Local is not a time zone",
			change: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptr.To("Local") },
			want:   []string{`spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones`},
		},
		{
			name:   "concurrency policy",
			change: func(cj *batchv1.CronJob) { cj.Spec.ConcurrencyPolicy = "Sometimes" },
			want:   []string{`spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"`},
		},
		{
			name: "the Job's selector is generated",
			change: func(cj *batchv1.CronJob) {
				cj.Spec.JobTemplate.Spec.Selector = &metav1.LabelSelector{}
				cj.Spec.JobTemplate.Spec.ManualSelector = ptr.To(true)
			},
			want: []string{
				"spec.jobTemplate.spec.selector: Invalid value: {}: `selector` will be auto-generated",
				`spec.jobTemplate.spec.manualSelector: Unsupported value: true: supported values: "nil", "false"`,
			},
		},
		{
			name:   "a name leaving room for the Jobs' suffix",
			change: func(cj *batchv1.CronJob) { cj.Name = strings.Repeat("c", 53) },
			want:   []string{`metadata.name: Invalid value: "` + strings.Repeat("c", 53) + `": must be no more than 52 characters`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cj := createdCronJob()
			tc.change(cj)
			checkFieldErrors(t, ValidateCronJob(cj), tc.want...)
		})
	}
}

func TestValidateCronJobUpdateKeepsAnOldTZSchedule(t *testing.T) {
	old := createdCronJob()
	old.Spec.Schedule = "CRON_TZ=UTC 0 * * * *"
	cj := old.DeepCopy()
	cj.Spec.Suspend = ptr.To(true)
	checkFieldErrors(t, ValidateCronJobUpdate(cj, old))
	cj.Spec.TimeZone = ptr.To("UTC")
	checkFieldErrors(t, ValidateCronJobUpdate(cj, old),
		`spec.schedule: Invalid value: "CRON_TZ=UTC 0 * * * *": cannot use both timeZone field and TZ or CRON_TZ in schedule`)
}

func TestJobRow(t *testing.T) {
	job := createdJob()
	start := metav1.NewTime(time.Now().Add(-time.Hour))
	end := metav1.NewTime(start.Add(90 * time.Second))
	job.Status = batchv1.JobStatus{Succeeded: 1, StartTime: &start, CompletionTime: &end, Conditions: []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue}, {Type: batchv1.JobComplete, Status: corev1.ConditionTrue},
	}}
	row := JobRow(job)
	if len(row.Cells) != len(JobColumns) {
		t.Fatalf("%d cells for %d columns", len(row.Cells), len(JobColumns))
	}
	want := []any{"pi", "Complete", "1/1", "90s"}
	for i, w := range want {
		if row.Cells[i] != w {
			t.Errorf("cell %s = %v, want %v", JobColumns[i].Name, row.Cells[i], w)
		}
	}
	if row.Cells[7] != "batch.kubernetes.io/controller-uid=uid-1" || row.Cells[5] != "pi" || row.Cells[6] != "perl:5.34" {
		t.Errorf("wide cells = %v", row.Cells[5:])
	}

	queue := createdJob()
	queue.Spec.Completions = nil
	queue.Spec.Parallelism = ptr.To[int32](3)
	queue.Spec.Suspend = ptr.To(true)
	queue.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobSuspended, Status: corev1.ConditionTrue}}
	if row := JobRow(queue); row.Cells[1] != "Suspended" || row.Cells[2] != "0/1 of 3" || row.Cells[3] != "" {
		t.Errorf("suspended work queue cells = %v", row.Cells[:4])
	}
}

func TestCronJobRow(t *testing.T) {
	cj := createdCronJob()
	cj.Status.Active = []corev1.ObjectReference{{Name: "hello-1"}}
	row := CronJobRow(cj)
	if len(row.Cells) != len(CronJobColumns) {
		t.Fatalf("%d cells for %d columns", len(row.Cells), len(CronJobColumns))
	}
	want := []any{"hello", "*/5 * * * *", "<none>", "False", int64(1), "<none>"}
	for i, w := range want {
		if row.Cells[i] != w {
			t.Errorf("cell %s = %#v, want %#v", CronJobColumns[i].Name, row.Cells[i], w)
		}
	}
}

func TestJobFieldsSelectSuccessful(t *testing.T) {
	job := createdJob()
	job.Status.Succeeded = 2
	set := JobFields(job)
	if set["status.successful"] != "2" || set["metadata.name"] != "pi" || set["metadata.namespace"] != "ns" {
		t.Errorf("fields = %v", set)
	}
}

// Upstream defaults again whenever it reads a Job from etcd, so a Job created without labels
// carries its template's generated ones from then on; DefaultJob after GenerateJobSelector
// gives the same.
func TestDefaultingACreatedJobAgainGivesItTheTemplateLabels(t *testing.T) {
	job := createdJob()
	if len(job.Labels) != 0 {
		t.Fatalf("labels before = %v", job.Labels)
	}
	DefaultJob(job)
	if job.Labels["batch.kubernetes.io/job-name"] != "pi" || job.Labels["controller-uid"] != "uid-1" {
		t.Errorf("labels = %v, want the template's", job.Labels)
	}
	checkFieldErrors(t, ValidateJob(job))
}
