package apis

import batchv1 "k8s.io/api/batch/v1"

// Jobs and CronJobs have upstream's spec-and-status strategies. A new Job gets its generated
// selector and labels (which need its uid, so they come after the store set it) and is
// defaulted again for them, as upstream's defaulting on read would.
var (
	jobStrategy, jobStatusStrategy = SpecAndStatus[*batchv1.Job]{
		PrepareForCreate: func(job *batchv1.Job) {
			GenerateJobSelector(job)
			DefaultJob(job)
		},
		Validate:             ValidateJob,
		ValidateUpdate:       ValidateJobUpdate,
		ValidateStatusUpdate: ValidateJobStatusUpdate,
	}.Strategies()

	cronJobStrategy, cronJobStatusStrategy = SpecAndStatus[*batchv1.CronJob]{
		Validate:       ValidateCronJob,
		ValidateUpdate: ValidateCronJobUpdate,
	}.Strategies()
)
