// Package cronjob is the CronJob controller: at each time a CronJob's schedule names (in its
// time zone) it creates a Job from the CronJob's template, named <cronjob>-<scheduled minutes
// since the epoch> so that a time is never run twice, as upstream's. It honours
// startingDeadlineSeconds, suspend and the concurrency policy (Allow, Forbid, Replace), keeps
// status.active, lastScheduleTime and lastSuccessfulTime, and deletes finished Jobs beyond the
// history limits.
//
// It must never create a Job for a time it has already run, never start one in a suspended
// CronJob, and never touch Jobs another owner controls.
package cronjob

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // time zones resolve even on machines without a zone database, as upstream's

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "cronjob"
	// Component names the controller in the Events it records.
	Component = "cronjob-controller"

	// nextScheduleDelta is how long after a scheduled time the CronJob is synced, so that the
	// time is surely past.
	nextScheduleDelta = 100 * time.Millisecond
	// tooManyMissed is how many missed times make the controller warn about clock skew or a
	// missing startingDeadlineSeconds.
	tooManyMissed = 100
)

var controllerKind = batchv1.SchemeGroupVersion.WithKind("CronJob")

// Controller is the CronJob controller.
type Controller struct {
	client     kubernetes.Interface
	cronLister batchlisters.CronJobLister
	jobStore   cache.Indexer
	synced     []cache.InformerSynced
	queue      controllers.Queue
	recorder   record.EventRecorder
	metrics    *controllers.Metrics
	// now is the controller's clock; tests replace it.
	now func() time.Time
}

// New makes a CronJob controller on shared informers of CronJobs and Jobs. Call it before the
// informers start: it adds an index to the Job informer.
func New(cronInformer batchinformers.CronJobInformer, jobInformer batchinformers.JobInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	if err := controllers.AddControllerUIDIndex(jobInformer.Informer()); err != nil {
		return nil, fmt.Errorf("index jobs by controller: %w", err)
	}
	c := &Controller{
		client:     client,
		cronLister: cronInformer.Lister(),
		jobStore:   jobInformer.Informer().GetIndexer(),
		synced:     []cache.InformerSynced{cronInformer.Informer().HasSynced, jobInformer.Informer().HasSynced},
		queue:      controllers.NewQueue(Name, r),
		recorder:   r.EventRecorder(Component),
		metrics:    r.Metrics,
		now:        time.Now,
	}
	if _, err := cronInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: c.updateCronJob,
		DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, err
	}
	if _, err := jobInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueOwner,
		UpdateFunc: func(old, cur any) { c.enqueueOwner(old); c.enqueueOwner(cur) },
		DeleteFunc: c.enqueueOwner,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run syncs CronJobs with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) enqueue(obj any) {
	if key, err := controllers.KeyOf(obj); err == nil {
		c.queue.Add(key)
	}
}

// updateCronJob syncs at once, except when the schedule or time zone changed: then at the
// new schedule's next time (a time already queued earlier is a harmless extra sync).
func (c *Controller) updateCronJob(old, cur any) {
	oldCJ, curCJ := old.(*batchv1.CronJob), cur.(*batchv1.CronJob)
	if oldCJ.Spec.Schedule == curCJ.Spec.Schedule && ptr.Equal(oldCJ.Spec.TimeZone, curCJ.Spec.TimeZone) {
		c.enqueue(cur)
		return
	}
	sched, err := cron.ParseStandard(scheduleWithTimeZone(curCJ))
	if err != nil {
		c.recorder.Eventf(curCJ, corev1.EventTypeWarning, "UnParseableCronJobSchedule", "unparseable schedule for cronjob: %s", curCJ.Spec.Schedule)
		return
	}
	if key, err := controllers.KeyOf(cur); err == nil {
		c.queue.AddAfter(key, nextSyncAfter(curCJ, c.now(), sched))
	}
}

func (c *Controller) enqueueOwner(obj any) {
	job, ok := obj.(*batchv1.Job)
	if !ok {
		tombstone, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if job, ok = tombstone.Obj.(*batchv1.Job); !ok {
			return
		}
	}
	ref := metav1.GetControllerOf(job)
	if ref == nil || ref.Kind != controllerKind.Kind || ref.APIVersion != controllerKind.GroupVersion().String() {
		return
	}
	cj, err := c.cronLister.CronJobs(job.Namespace).Get(ref.Name)
	if err != nil || cj.UID != ref.UID {
		return
	}
	c.enqueue(cj)
}

// sync reconciles the CronJob named by key: its active list with its Jobs, a new Job if a
// scheduled time has come, the history limits; then it asks to be synced at the next time.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	shared, err := c.cronLister.CronJobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil // its Jobs go with it, by the garbage collector
	}
	if err != nil {
		return err
	}
	objs, err := c.jobStore.ByIndex(controllers.ControllerUIDIndex, string(shared.UID))
	if err != nil {
		return err
	}
	jobs := make([]*batchv1.Job, 0, len(objs))
	for _, o := range objs {
		jobs = append(jobs, o.(*batchv1.Job))
	}
	cj := shared.DeepCopy()
	requeueAfter, updateStatus, syncErr := c.syncCronJob(ctx, cj, jobs)
	if c.cleanupFinishedJobs(ctx, cj, jobs) {
		updateStatus = true
	}
	if updateStatus {
		if _, err := c.client.BatchV1().CronJobs(cj.Namespace).UpdateStatus(ctx, cj, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating status of cronjob %s: %w", key, err)
		}
	}
	if requeueAfter != nil {
		c.queue.AddAfter(key, *requeueAfter)
	}
	return syncErr
}

// syncCronJob does the work of one sync on cj (a copy whose status it changes): it returns when
// to look again, whether the status changed, and an error to retry.
func (c *Controller) syncCronJob(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) (*time.Duration, bool, error) {
	now := c.now()
	updateStatus := false
	children := map[types.UID]bool{}
	for _, j := range jobs {
		children[j.UID] = true
		found := inActiveList(cj, j.UID)
		finished, finishedAs := jobFinished(j)
		switch {
		case !found && !finished:
			fresh, err := c.client.BatchV1().CronJobs(cj.Namespace).Get(ctx, cj.Name, metav1.GetOptions{})
			if err != nil {
				return nil, updateStatus, err
			}
			if inActiveList(fresh, j.UID) {
				// our cache was behind our own status update
				fresh.Status.DeepCopyInto(&cj.Status)
				continue
			}
			// we crashed between creating it and recording it, or someone made it for us
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnexpectedJob", "Saw a job that the controller did not create or forgot: %s", j.Name)
		case found && finished:
			deleteFromActiveList(cj, j.UID)
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "SawCompletedJob", "Saw completed job: %s, condition: %v", j.Name, finishedAs)
			updateStatus = true
		case finishedAs == batchv1.JobComplete && j.Status.CompletionTime != nil:
			// a finished Job need not be in the active list to count as the last success
			if last := cj.Status.LastSuccessfulTime; last == nil || j.Status.CompletionTime.After(last.Time) {
				cj.Status.LastSuccessfulTime = j.Status.CompletionTime.DeepCopy()
				updateStatus = true
			}
		}
	}
	// Jobs in the active list that no longer exist
	for _, ref := range append([]corev1.ObjectReference(nil), cj.Status.Active...) {
		if children[ref.UID] {
			continue
		}
		job, err := c.client.BatchV1().Jobs(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) || (err == nil && job.UID != ref.UID):
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "MissingJob", "Active job went missing: %v", ref.Name)
			deleteFromActiveList(cj, ref.UID)
			updateStatus = true
		case err != nil:
			return nil, updateStatus, err
		}
	}

	if cj.DeletionTimestamp != nil {
		return nil, updateStatus, nil // the garbage collector is deleting it: start nothing
	}
	if tz := cj.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err != nil {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnknownTimeZone", "invalid timeZone: %q: %s", *tz, err)
			return nil, updateStatus, nil
		}
	}
	if ptr.Deref(cj.Spec.Suspend, false) {
		return nil, updateStatus, nil
	}
	if strings.Contains(cj.Spec.Schedule, "TZ") {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnsupportedSchedule",
			"CRON_TZ or TZ used in schedule %q is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details", cj.Spec.Schedule)
	}
	sched, err := cron.ParseStandard(scheduleWithTimeZone(cj))
	if err != nil {
		// a user's error: nothing to do until the spec changes
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %q : %s", cj.Spec.Schedule, err)
		return nil, updateStatus, nil
	}

	scheduled, err := c.nextScheduledTime(cj, now, sched)
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "InvalidSchedule", "invalid schedule: %s : %s", cj.Spec.Schedule, err)
		return nil, updateStatus, nil
	}
	later := ptr.To(nextSyncAfter(cj, now, sched))
	if scheduled == nil {
		return later, updateStatus, nil
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && scheduled.Add(time.Duration(*d)*time.Second).Before(now) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "MissSchedule", "Missed scheduled time to start a job: %s", scheduled.UTC().Format(time.RFC1123Z))
		return later, updateStatus, nil
	}
	name := JobName(cj, *scheduled)
	if inActiveListByName(cj, name) || (cj.Status.LastScheduleTime != nil && cj.Status.LastScheduleTime.Time.Equal(*scheduled)) {
		return later, updateStatus, nil // this time was run already
	}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(cj.Status.Active) > 0 {
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
			return later, updateStatus, nil
		}
	case batchv1.ReplaceConcurrent:
		for _, ref := range append([]corev1.ObjectReference(nil), cj.Status.Active...) {
			job, err := c.client.BatchV1().Jobs(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedGet", "Get job: %v", err)
				return nil, updateStatus, err
			}
			if !c.deleteJob(ctx, cj, job) {
				return nil, updateStatus, fmt.Errorf("could not replace job %s/%s", job.Namespace, job.Name)
			}
			updateStatus = true
		}
	}

	job, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, JobFromTemplate(cj, *scheduled), metav1.CreateOptions{})
	switch {
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil, updateStatus, err
	case apierrors.IsAlreadyExists(err):
		// made by us before a status update that failed, or by someone else
		existing, err := c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, updateStatus, err
		}
		if !metav1.IsControlledBy(existing, cj) || inActiveList(cj, existing.UID) {
			return nil, updateStatus, nil
		}
		job = existing
	case err != nil:
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		return nil, updateStatus, err
	default:
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulCreate", "Created job %v", job.Name)
	}
	cj.Status.Active = append(cj.Status.Active, corev1.ObjectReference{
		Kind: "Job", APIVersion: batchv1.SchemeGroupVersion.String(),
		Namespace: job.Namespace, Name: job.Name, UID: job.UID, ResourceVersion: job.ResourceVersion,
	})
	cj.Status.LastScheduleTime = &metav1.Time{Time: *scheduled}
	return ptr.To(nextSyncAfter(cj, now, sched)), true, nil
}

// scheduleWithTimeZone is the schedule the cron library parses: the spec's, prefixed with
// TZ=<timeZone> when one is set.
func scheduleWithTimeZone(cj *batchv1.CronJob) string {
	if cj.Spec.TimeZone != nil {
		return fmt.Sprintf("TZ=%s %s", *cj.Spec.TimeZone, cj.Spec.Schedule)
	}
	return cj.Spec.Schedule
}

// JobName is the name of the Job for a scheduled time: the CronJob's name and the minutes
// since the epoch, so that two syncs of one time make one Job.
func JobName(cj *batchv1.CronJob, scheduled time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, scheduled.Unix()/60)
}

// JobFromTemplate is the Job a CronJob starts for a scheduled time: its template's labels,
// annotations and spec, the scheduled time in the batch.kubernetes.io/cronjob-scheduled-timestamp
// annotation (RFC 3339, in the CronJob's time zone, else UTC), and the CronJob as controller.
func JobFromTemplate(cj *batchv1.CronJob, scheduled time.Time) *batchv1.Job {
	labels := map[string]string{}
	for k, v := range cj.Spec.JobTemplate.Labels {
		labels[k] = v
	}
	annotations := map[string]string{}
	for k, v := range cj.Spec.JobTemplate.Annotations {
		annotations[k] = v
	}
	loc, err := time.LoadLocation(ptr.Deref(cj.Spec.TimeZone, "")) // "" is UTC
	if err != nil {
		loc = time.UTC // sync refuses an unknown zone before it gets here
	}
	annotations[batchv1.CronJobScheduledTimestampAnnotation] = scheduled.In(loc).Format(time.RFC3339)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            JobName(cj, scheduled),
			Namespace:       cj.Namespace,
			Labels:          labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, controllerKind)},
		},
	}
	cj.Spec.JobTemplate.Spec.DeepCopyInto(&job.Spec)
	return job
}

// mostRecentScheduleTime finds the latest scheduled time not after now and after the last
// one run (or the CronJob's creation), no earlier than startingDeadlineSeconds ago when
// withDeadline; and how many times were missed before it.
func mostRecentScheduleTime(cj *batchv1.CronJob, now time.Time, sched cron.Schedule, withDeadline bool) (earliest time.Time, recent *time.Time, missed int64, err error) {
	earliest = cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		earliest = cj.Status.LastScheduleTime.Time
	}
	if d := cj.Spec.StartingDeadlineSeconds; withDeadline && d != nil {
		if deadline := now.Add(-time.Duration(*d) * time.Second); deadline.After(earliest) {
			earliest = deadline // nothing earlier may start anyway
		}
	}
	t1 := sched.Next(earliest)
	t2 := sched.Next(t1)
	if now.Before(t1) {
		return earliest, nil, 0, nil
	}
	if now.Before(t2) {
		return earliest, &t1, 1, nil
	}
	// a schedule that cannot happen ("59 23 31 2 *") gives no second time
	between := int64(t2.Sub(t1).Round(time.Second).Seconds())
	if between < 1 {
		return earliest, nil, 0, fmt.Errorf("time difference between two schedules is less than 1 second")
	}
	// Count the missed times roughly by the interval, then walk the last few exactly: this
	// stays cheap after a long outage, and is exact for irregular schedules and @every.
	missed = int64(now.Sub(t1).Seconds())/between + 1
	var last time.Time
	for t := sched.Next(t1.Add(time.Duration((missed-2)*between) * time.Second)); !t.After(now); t = sched.Next(t) {
		last = t
	}
	if last.IsZero() {
		return earliest, nil, missed, nil
	}
	return earliest, &last, missed, nil
}

// nextScheduledTime is the scheduled time to run now, if any.
func (c *Controller) nextScheduledTime(cj *batchv1.CronJob, now time.Time, sched cron.Schedule) (*time.Time, error) {
	_, recent, missed, err := mostRecentScheduleTime(cj, now, sched, true)
	if recent == nil || recent.After(now) {
		return nil, err
	}
	if missed > tooManyMissed {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "TooManyMissedTimes", "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew")
	}
	return recent, err
}

// nextSyncAfter is how long until just after the next scheduled time.
func nextSyncAfter(cj *batchv1.CronJob, now time.Time, sched cron.Schedule) time.Duration {
	earliest, recent, missed, err := mostRecentScheduleTime(cj, now, sched, false)
	from := now
	switch {
	case err != nil:
	case recent != nil:
		from = *recent
	case missed == 0:
		from = earliest
	}
	return sched.Next(from).Add(nextScheduleDelta).Sub(now)
}

// cleanupFinishedJobs deletes the oldest finished Jobs beyond the history limits.
func (c *Controller) cleanupFinishedJobs(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) bool {
	var succeeded, failed []*batchv1.Job
	for _, j := range jobs {
		switch _, as := jobFinished(j); as {
		case batchv1.JobComplete:
			succeeded = append(succeeded, j)
		case batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	changed := false
	if l := cj.Spec.SuccessfulJobsHistoryLimit; l != nil && c.removeOldestJobs(ctx, cj, succeeded, *l) {
		changed = true
	}
	if l := cj.Spec.FailedJobsHistoryLimit; l != nil && c.removeOldestJobs(ctx, cj, failed, *l) {
		changed = true
	}
	return changed
}

func (c *Controller) removeOldestJobs(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job, keep int32) bool {
	n := len(jobs) - int(keep)
	if n <= 0 {
		return false
	}
	sort.Slice(jobs, func(i, k int) bool {
		a, b := jobs[i].Status.StartTime, jobs[k].Status.StartTime
		switch {
		case a == nil && b == nil:
			return jobs[i].Name < jobs[k].Name
		case a == nil || b == nil:
			return b == nil // Jobs that never started sort last
		case a.Equal(b):
			return jobs[i].Name < jobs[k].Name
		}
		return a.Before(b)
	})
	changed := false
	for _, j := range jobs[:n] {
		if c.deleteJob(ctx, cj, j) {
			changed = true
		}
	}
	return changed
}

// deleteJob deletes a Job of cj with its pods in the background, and takes it off the active
// list.
func (c *Controller) deleteJob(ctx context.Context, cj *batchv1.CronJob, job *batchv1.Job) bool {
	err := c.client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
	if err != nil && !apierrors.IsNotFound(err) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedDelete", "Deleted job: %v", err)
		return false
	}
	deleteFromActiveList(cj, job.UID)
	c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %v", job.Name)
	return true
}

// jobFinished reports whether a Job is finished and as what (Complete or Failed).
func jobFinished(j *batchv1.Job) (bool, batchv1.JobConditionType) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true, c.Type
		}
	}
	return false, ""
}

func inActiveList(cj *batchv1.CronJob, uid types.UID) bool {
	for _, r := range cj.Status.Active {
		if r.UID == uid {
			return true
		}
	}
	return false
}

func inActiveListByName(cj *batchv1.CronJob, name string) bool {
	for _, r := range cj.Status.Active {
		if r.Name == name && r.Namespace == cj.Namespace {
			return true
		}
	}
	return false
}

func deleteFromActiveList(cj *batchv1.CronJob, uid types.UID) {
	var kept []corev1.ObjectReference
	for _, r := range cj.Status.Active {
		if r.UID != uid {
			kept = append(kept, r)
		}
	}
	cj.Status.Active = kept
}
