package job

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

// The reasons and messages of the conditions and Events a Job gets, as upstream's.
const (
	reasonBackoffLimitExceeded = batchv1.JobReasonBackoffLimitExceeded
	msgBackoffLimitExceeded    = "Job has reached the specified backoff limit"
	reasonDeadlineExceeded     = batchv1.JobReasonDeadlineExceeded
	msgDeadlineExceeded        = "Job was active longer than specified deadline"
	msgMaxFailedIndexes        = "Job has exceeded the specified maximal number of failed indexes"
	msgFailedIndexes           = "Job has failed indexes"
	msgCompletionsReached      = "Reached expected number of succeeded pods"
)

// jobSync is one sync of one Job: what it found and what it decided.
type jobSync struct {
	job        *batchv1.Job // our copy; its status is what gets written
	pods       []*corev1.Pod
	active     []*corev1.Pod
	expectedRm sets.Set[types.UID] // pods whose finalizer removal we have not seen yet

	uncountedSucceeded, uncountedFailed sets.Set[types.UID]
	succeeded, failed                   int32
	ready, terminating                  int32

	// finished is the condition this sync moves the Job towards: FailureTarget or
	// SuccessCriteriaMet first, then Failed or Complete once every pod is counted and gone.
	finished *batchv1.JobCondition
	backoff  backoffRecord

	prevSucceededIndexes, succeededIndexes sets.Set[int]
	failedIndexes                          sets.Set[int] // nil without backoffLimitPerIndex
	// delayed holds, per index, the last failed pod whose finalizer stays until a
	// replacement runs, because it carries the index's failure counts.
	delayed map[int]*corev1.Pod
}

func isFinished(job *batchv1.Job) bool {
	return conditionTrue(job, batchv1.JobComplete) || conditionTrue(job, batchv1.JobFailed)
}

func conditionTrue(job *batchv1.Job, t batchv1.JobConditionType) bool {
	c := findCondition(job, t)
	return c != nil && c.Status == corev1.ConditionTrue
}

func findCondition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if job.Status.Conditions[i].Type == t {
			return &job.Status.Conditions[i]
		}
	}
	return nil
}

func newCondition(t batchv1.JobConditionType, status corev1.ConditionStatus, reason, message string, now time.Time) *batchv1.JobCondition {
	return &batchv1.JobCondition{Type: t, Status: status, Reason: reason, Message: message,
		LastProbeTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}
}

// ensureCondition sets a condition, reporting whether anything changed; a False condition
// that is not there stays absent.
func ensureCondition(job *batchv1.Job, t batchv1.JobConditionType, status corev1.ConditionStatus, reason, message string, now time.Time) bool {
	if c := findCondition(job, t); c != nil {
		if c.Status == status && c.Reason == reason && c.Message == message {
			return false
		}
		*c = *newCondition(t, status, reason, message, now)
		return true
	}
	if status == corev1.ConditionFalse {
		return false
	}
	job.Status.Conditions = append(job.Status.Conditions, *newCondition(t, status, reason, message, now))
	return true
}

func suspended(job *batchv1.Job) bool { return ptr.Deref(job.Spec.Suspend, false) }

// sync brings the Job named by key one step closer to done: it counts finished pods, decides
// whether the Job has failed or succeeded, creates or deletes pods, and writes the status.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	shared, err := c.jobLister.Jobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.expectations.Delete(key)
		c.finalizers.forget(key)
		c.backoff.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if m := shared.Spec.ManagedBy; m != nil && *m != ManagedBy {
		return nil // another controller runs this Job
	}
	if isFinished(shared) {
		c.backoff.forget(key)
		return nil
	}
	if shared.Spec.Selector == nil {
		return nil // the API server always sets one; nothing sane to do without
	}
	job := shared.DeepCopy()
	now := c.now()
	expectedRm := c.finalizers.expected(key)
	satisfied := c.expectations.Satisfied(key) && expectedRm.Len() == 0

	pods, err := c.podsForJob(ctx, job)
	if err != nil {
		return err
	}
	s := &jobSync{job: job, pods: pods, expectedRm: expectedRm, uncountedSucceeded: sets.New[types.UID](), uncountedFailed: sets.New[types.UID]()}
	for _, p := range pods {
		if controllers.IsPodActive(p) {
			s.active = append(s.active, p)
			if controllers.IsPodReady(p) {
				s.ready++
			}
		}
		if controllers.IsPodTerminating(p) {
			s.terminating++
		}
	}
	if u := job.Status.UncountedTerminatedPods; u != nil {
		s.uncountedSucceeded.Insert(u.Succeeded...)
		s.uncountedFailed.Insert(u.Failed...)
	}
	newSucceeded, newFailed := s.newFinishedPods()
	s.succeeded = job.Status.Succeeded + int32(len(newSucceeded)+s.uncountedSucceeded.Len())
	s.failed = job.Status.Failed + int32(countedFailures(job, newFailed)+s.uncountedFailed.Len())
	if job.Status.StartTime == nil && !suspended(job) {
		job.Status.StartTime = ptr.To(metav1.NewTime(now))
	}
	s.backoff = c.backoff.get(key).next(newSucceeded, newFailed, now)

	c.decideFailure(key, s, now)
	if isIndexed(job) {
		c.decideByIndexes(s, now)
	}

	active := int32(len(s.active))
	var manageErr error
	if s.finished != nil {
		// finishing: stop what runs; the pods keep their finalizer to be counted as failed
		deleted, deletedReady, err := c.deletePods(ctx, "", job, s.active, false)
		if deleted != active || !satisfied {
			// some pod may not be gone, or not yet in the cache: finish later
			s.finished = nil
		}
		active -= deleted
		s.terminating += deleted
		s.ready -= deletedReady
		manageErr = err
	} else {
		managed := false
		if satisfied && job.DeletionTimestamp == nil {
			active, manageErr = c.manageJob(ctx, key, s, active, now)
			managed = true
		}
		var complete bool
		if job.Spec.Completions == nil {
			// a work queue is done once any pod succeeded and the others have stopped
			complete = s.succeeded > 0 && active == 0
		} else {
			complete = s.succeeded >= *job.Spec.Completions && active == 0
		}
		switch {
		case complete:
			s.finished = newCondition(batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue, batchv1.JobReasonCompletionsReached, msgCompletionsReached, now)
		case managed && suspended(job):
			if ensureCondition(job, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", now) {
				c.recorder.Event(job, corev1.EventTypeNormal, "Suspended", "Job suspended")
			}
			// a suspended Job has not started: activeDeadlineSeconds counts from the resume,
			// and the status validation lets a resume set startTime only from none
			job.Status.StartTime = nil
		case managed:
			if ensureCondition(job, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", now) {
				c.recorder.Event(job, corev1.EventTypeNormal, "Resumed", "Job resumed")
				job.Status.StartTime = ptr.To(metav1.NewTime(now))
			}
		}
	}
	job.Status.Active = active
	job.Status.Ready = ptr.To(s.ready)
	job.Status.Terminating = ptr.To(s.terminating)
	if err := c.trackStatusAndRemoveFinalizers(ctx, key, shared, s, now); err != nil {
		return err
	}
	return manageErr
}

// decideFailure finds whether the Job has failed: an earlier FailureTarget, a FailJob rule of
// the pod failure policy, too many failures (or restarts, with restartPolicy OnFailure), or
// too long active. Otherwise it asks to be synced again when the deadline passes.
func (c *Controller) decideFailure(key string, s *jobSync, now time.Time) {
	job := s.job
	if met := findCondition(job, batchv1.JobSuccessCriteriaMet); met != nil && met.Status == corev1.ConditionTrue {
		// success was decided in an earlier sync; the failure rules no longer apply
		s.finished = met.DeepCopy()
		return
	}
	if target := findCondition(job, batchv1.JobFailureTarget); target != nil && target.Status == corev1.ConditionTrue {
		s.finished = newCondition(batchv1.JobFailed, corev1.ConditionTrue, target.Reason, target.Message, now)
		return
	}
	if msg := failJobMessage(job, s.pods); msg != nil {
		s.finished = newCondition(batchv1.JobFailureTarget, corev1.ConditionTrue, batchv1.JobReasonPodFailurePolicy, *msg, now)
		return
	}
	switch {
	case s.failed > ptr.Deref(job.Spec.BackoffLimit, 6) || pastBackoffLimitOnFailure(job, s.pods):
		s.finished = newCondition(batchv1.JobFailureTarget, corev1.ConditionTrue, reasonBackoffLimitExceeded, msgBackoffLimitExceeded, now)
	case pastActiveDeadline(job, now):
		s.finished = newCondition(batchv1.JobFailureTarget, corev1.ConditionTrue, reasonDeadlineExceeded, msgDeadlineExceeded, now)
	case job.Spec.ActiveDeadlineSeconds != nil && !suspended(job) && job.Status.StartTime != nil:
		left := time.Duration(*job.Spec.ActiveDeadlineSeconds)*time.Second - now.Sub(job.Status.StartTime.Time)
		c.queue.AddAfter(key, left)
	}
}

// decideByIndexes computes an Indexed Job's succeeded and failed indexes, and whether they
// fail it (too many failed indexes, or every index finished with some failed) or satisfy its
// success policy.
func (c *Controller) decideByIndexes(s *jobSync, now time.Time) {
	job := s.job
	completions := ptr.Deref(job.Spec.Completions, 0)
	s.prevSucceededIndexes = parseIndexes(job.Status.CompletedIndexes, completions)
	s.succeededIndexes = s.prevSucceededIndexes.Clone()
	for _, p := range s.pods {
		if ix := completionIndex(p); p.Status.Phase == corev1.PodSucceeded && validIndex(job, ix) && hasTrackingFinalizer(p) {
			s.succeededIndexes.Insert(ix)
		}
	}
	s.succeeded = int32(s.succeededIndexes.Len())
	if hasBackoffLimitPerIndex(job) {
		s.failedIndexes = failedIndexes(job, s.pods)
		s.delayed = podsWithDelayedDeletion(s)
		if s.finished == nil {
			switch n := s.failedIndexes.Len(); {
			case job.Spec.MaxFailedIndexes != nil && n > int(*job.Spec.MaxFailedIndexes):
				s.finished = newCondition(batchv1.JobFailureTarget, corev1.ConditionTrue, batchv1.JobReasonMaxFailedIndexesExceeded, msgMaxFailedIndexes, now)
			case n > 0 && n+s.succeededIndexes.Len() >= int(completions):
				s.finished = newCondition(batchv1.JobFailureTarget, corev1.ConditionTrue, batchv1.JobReasonFailedIndexes, msgFailedIndexes, now)
			}
		}
	}
	if s.finished == nil {
		if msg, met := matchSuccessPolicy(job.Spec.SuccessPolicy, completions, s.succeededIndexes); met {
			s.finished = newCondition(batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue, batchv1.JobReasonSuccessPolicy, msg, now)
		}
	}
}

// newFinishedPods are the finished pods not counted yet: they still carry our finalizer, are
// not in uncountedTerminatedPods, and (Indexed) have a valid index.
func (s *jobSync) newFinishedPods() (succeeded, failed []*corev1.Pod) {
	for _, p := range s.pods {
		if !hasTrackingFinalizer(p) || s.expectedRm.Has(p.UID) {
			continue
		}
		if isIndexed(s.job) && !validIndex(s.job, completionIndex(p)) {
			continue
		}
		switch {
		case p.Status.Phase == corev1.PodSucceeded && !s.uncountedSucceeded.Has(p.UID):
			succeeded = append(succeeded, p)
		case isPodFailed(p, s.job) && !s.uncountedFailed.Has(p.UID):
			failed = append(failed, p)
		}
	}
	return succeeded, failed
}

// countedFailures is how many of failed count towards backoffLimit: those the pod failure
// policy does not ignore.
func countedFailures(job *batchv1.Job, failed []*corev1.Pod) int {
	n := 0
	for _, p := range failed {
		if matchPodFailurePolicy(job.Spec.PodFailurePolicy, p).countFailed {
			n++
		}
	}
	return n
}

func failJobMessage(job *batchv1.Job, pods []*corev1.Pod) *string {
	if job.Spec.PodFailurePolicy == nil {
		return nil
	}
	for _, p := range pods {
		if isPodFailed(p, job) {
			if m := matchPodFailurePolicy(job.Spec.PodFailurePolicy, p); m.failJobMessage != nil {
				return m.failJobMessage
			}
		}
	}
	return nil
}

// pastBackoffLimitOnFailure: with restartPolicy OnFailure the kubelet restarts failing
// containers in place, so their restarts count as the Job's failures.
func pastBackoffLimitOnFailure(job *batchv1.Job, pods []*corev1.Pod) bool {
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var restarts int32
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending {
			continue
		}
		for _, cs := range p.Status.InitContainerStatuses {
			restarts += cs.RestartCount
		}
		for _, cs := range p.Status.ContainerStatuses {
			restarts += cs.RestartCount
		}
	}
	limit := ptr.Deref(job.Spec.BackoffLimit, 6)
	if limit == 0 {
		return restarts > 0
	}
	return restarts >= limit
}

func pastActiveDeadline(job *batchv1.Job, now time.Time) bool {
	if job.Spec.ActiveDeadlineSeconds == nil || job.Status.StartTime == nil || suspended(job) {
		return false
	}
	return now.Sub(job.Status.StartTime.Time) >= time.Duration(*job.Spec.ActiveDeadlineSeconds)*time.Second
}

// failedIndexes are the indexes already failed and those whose pod failed past
// backoffLimitPerIndex or by a FailIndex rule.
func failedIndexes(job *batchv1.Job, pods []*corev1.Pod) sets.Set[int] {
	completions := ptr.Deref(job.Spec.Completions, 0)
	out := parseIndexes(ptr.Deref(job.Status.FailedIndexes, ""), completions)
	for _, p := range pods {
		ix := completionIndex(p)
		if !hasTrackingFinalizer(p) || !isPodFailed(p, job) || !validIndex(job, ix) {
			continue
		}
		m := matchPodFailurePolicy(job.Spec.PodFailurePolicy, p)
		counted, _ := indexFailureCounts(p)
		if (m.action != nil && *m.action == batchv1.PodFailurePolicyActionFailIndex) || (m.countFailed && counted >= *job.Spec.BackoffLimitPerIndex) {
			out.Insert(ix)
		}
	}
	return out
}

// podsWithDelayedDeletion picks, per index still to run and without a running pod, its last
// failed pod: the replacement takes its failure counts from it.
func podsWithDelayedDeletion(s *jobSync) map[int]*corev1.Pod {
	running := sets.New[int]()
	for _, p := range s.active {
		running.Insert(completionIndex(p))
	}
	out := map[int]*corev1.Pod{}
	for _, p := range s.pods {
		ix := completionIndex(p)
		if !hasTrackingFinalizer(p) || !isPodFailed(p, s.job) || !validIndex(s.job, ix) ||
			running.Has(ix) || s.succeededIndexes.Has(ix) || s.failedIndexes.Has(ix) {
			continue
		}
		if last, ok := out[ix]; ok {
			lc, li := indexFailureCounts(last)
			pc, pi := indexFailureCounts(p)
			if lc+li > pc+pi || podFinishedTime(p, time.Time{}).Before(podFinishedTime(last, time.Time{})) {
				continue
			}
		}
		out[ix] = p
	}
	return out
}

// matchSuccessPolicy reports the first rule of the success policy that the succeeded indexes
// satisfy: all its indexes (or succeededCount of them), or succeededCount of any.
func matchSuccessPolicy(policy *batchv1.SuccessPolicy, completions int32, succeeded sets.Set[int]) (string, bool) {
	if policy == nil || succeeded.Len() == 0 {
		return "", false
	}
	for i, rule := range policy.Rules {
		met := false
		if rule.SucceededIndexes != nil {
			want := parseIndexes(*rule.SucceededIndexes, completions)
			got := want.Intersection(succeeded).Len()
			if rule.SucceededCount == nil {
				met = got > 0 && got == want.Len()
			} else {
				met = got >= int(*rule.SucceededCount)
			}
		} else if rule.SucceededCount != nil {
			met = succeeded.Len() >= int(*rule.SucceededCount)
		}
		if met {
			return fmt.Sprintf("Matched rules at index %d", i), true
		}
	}
	return "", false
}

// podsForJob returns the Job's pods, finished ones included, adopting and releasing by the
// ControllerRef rules.
func (c *Controller) podsForJob(ctx context.Context, job *batchv1.Job) ([]*corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(job.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("job %s/%s has an invalid selector: %w", job.Namespace, job.Name, err)
	}
	objs, err := controllers.ObjectsOf(c.podStore, string(job.UID), job.Namespace)
	if err != nil {
		return nil, err
	}
	candidates := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		candidates = append(candidates, o.(*corev1.Pod))
	}
	m := controllers.NewRefManager(job, controllerKind, selector, func(ctx context.Context) (metav1.Object, error) {
		return c.client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
	})
	claimed, err := m.ClaimPods(ctx, c.client, candidates)
	// an adopted pod gets our finalizer, so that it is counted when it finishes like the pods
	// we created
	for i, pod := range claimed {
		if metav1.IsControlledBy(pod, job) || hasTrackingFinalizer(pod) {
			continue
		}
		patch := fmt.Appendf(nil, `{"metadata":{"finalizers":[%q],"uid":%q}}`, batchv1.JobTrackingFinalizer, pod.UID)
		if _, perr := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); perr != nil {
			if err == nil && !isGone(perr) {
				err = perr
			}
			continue
		}
		claimed[i] = pod.DeepCopy()
		claimed[i].Finalizers = append(claimed[i].Finalizers, batchv1.JobTrackingFinalizer)
	}
	return claimed, err
}

// manageJob creates or deletes pods so that the right number runs: none while suspended, up
// to parallelism and the remaining completions otherwise, after the back-off of recent
// failures. It returns the number of active pods it leaves.
func (c *Controller) manageJob(ctx context.Context, key string, s *jobSync, active int32, now time.Time) (int32, error) {
	job := s.job
	if suspended(job) {
		deleted, deletedReady, err := c.deletePods(ctx, key, job, activePodsForRemoval(job, s.active, len(s.active)), true)
		s.terminating += deleted
		s.ready -= deletedReady
		return active - deleted, err
	}
	parallelism := ptr.Deref(job.Spec.Parallelism, 1)
	var want int32
	switch {
	case job.Spec.Completions == nil && s.succeeded > 0:
		want = active // a work queue with a success lets the others finish and starts none
	case job.Spec.Completions == nil:
		want = parallelism
	default:
		want = min(max(*job.Spec.Completions-s.succeeded, 0), parallelism)
	}

	toDelete := activePodsForRemoval(job, s.active, int(max(active-want, 0)))
	if len(toDelete) > MaxPodCreateDeletePerSync {
		toDelete = toDelete[:MaxPodCreateDeletePerSync]
	}
	if len(toDelete) > 0 {
		deleted, deletedReady, err := c.deletePods(ctx, key, job, toDelete, true)
		s.terminating += deleted
		s.ready -= deletedReady
		return active - deleted, err
	}

	var terminating int32
	if onlyReplaceFailedPods(job) {
		terminating = s.terminating // a terminating pod still holds its place
	}
	diff := min(want-terminating-active, MaxPodCreateDeletePerSync)
	if diff <= 0 {
		return active, nil
	}
	if !hasBackoffLimitPerIndex(job) {
		if wait := s.backoff.remaining(now); wait > 0 {
			c.queue.AddAfter(key, wait)
			return active, nil
		}
	}
	var indexes []int
	if isIndexed(job) {
		indexes = firstPendingIndexes(s, int(diff))
		if hasBackoffLimitPerIndex(job) {
			var wait time.Duration
			indexes, wait = indexesPastBackoff(s, indexes, now)
			if wait > 0 {
				c.queue.AddAfter(key, wait)
			}
		}
		diff = int32(len(indexes))
		if diff == 0 {
			return active, nil
		}
	}

	c.expectations.ExpectCreations(key, int(diff))
	template := job.Spec.Template.DeepCopy()
	if isIndexed(job) {
		addCompletionIndexEnv(template)
	}
	if !slices.Contains(template.Finalizers, batchv1.JobTrackingFinalizer) {
		template.Finalizers = append(template.Finalizers, batchv1.JobTrackingFinalizer)
	}
	ref := metav1.NewControllerRef(job, controllerKind)
	var next, created atomic.Int32
	_, err := controllers.SlowStartBatch(int(diff), controllers.SlowStartInitialBatchSize, func() error {
		pod := controllers.PodFromTemplate(template, job, ref)
		if isIndexed(job) {
			ix := indexes[next.Add(1)-1]
			setCompletionIndex(job, pod, ix, s.delayed[ix])
		}
		if err := c.createPod(ctx, job, pod); err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil // every creation fails in a terminating namespace: nothing to report
			}
			return err
		}
		created.Add(1)
		return nil
	})
	// the creations that failed, or were never attempted, will never be observed
	for range diff - created.Load() {
		c.expectations.CreationObserved(key)
	}
	return active + created.Load(), err
}

// activePodsForRemoval picks at least rmAtLeast pods to delete: for an Indexed Job first every
// pod with a bad or duplicated index, then in upstream's deletion order.
func activePodsForRemoval(job *batchv1.Job, pods []*corev1.Pod, rmAtLeast int) []*corev1.Pod {
	var rm, left []*corev1.Pod
	if isIndexed(job) {
		byIndex := map[int][]*corev1.Pod{}
		for _, p := range pods {
			if ix := completionIndex(p); validIndex(job, ix) {
				byIndex[ix] = append(byIndex[ix], p)
			} else {
				rm = append(rm, p)
			}
		}
		for _, same := range byIndex {
			sortPodsToDelete(same) // keep the one last in deletion order
			rm = append(rm, same[:len(same)-1]...)
			left = append(left, same[len(same)-1])
		}
	} else {
		left = append(left, pods...)
	}
	if len(rm) < rmAtLeast {
		sortPodsToDelete(left)
		rm = append(rm, left[:min(rmAtLeast-len(rm), len(left))]...)
	}
	return rm
}

// firstPendingIndexes are up to n of the lowest indexes neither done, failed nor running.
func firstPendingIndexes(s *jobSync, n int) []int {
	taken := s.succeededIndexes.Union(s.failedIndexes)
	for _, p := range s.active {
		taken.Insert(completionIndex(p))
	}
	if onlyReplaceFailedPods(s.job) {
		for _, p := range s.pods {
			if controllers.IsPodTerminating(p) {
				taken.Insert(completionIndex(p))
			}
		}
	}
	var out []int
	for i := 0; i < int(ptr.Deref(s.job.Spec.Completions, 0)) && len(out) < n; i++ {
		if !taken.Has(i) {
			out = append(out, i)
		}
	}
	return out
}

// indexesPastBackoff keeps the indexes whose own back-off has passed, and says how long until
// the first of the others may start.
func indexesPastBackoff(s *jobSync, indexes []int, now time.Time) ([]int, time.Duration) {
	var ready []int
	var wait time.Duration
	for _, ix := range indexes {
		if last := s.delayed[ix]; last != nil {
			counted, ignored := indexFailureCounts(last)
			finished := podFinishedTime(last, now)
			if d := remainingBackoff(counted+ignored+1, &finished, now); d > 0 {
				if wait == 0 || d < wait {
					wait = d
				}
				continue
			}
		}
		ready = append(ready, ix)
	}
	return ready, wait
}

// addCompletionIndexEnv gives every container JOB_COMPLETION_INDEX from the pod's index
// label.
func addCompletionIndexEnv(template *corev1.PodTemplateSpec) {
	env := corev1.EnvVar{Name: CompletionIndexEnv, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
		FieldPath: fmt.Sprintf("metadata.labels['%s']", CompletionIndexLabel),
	}}}
	add := func(containers []corev1.Container) {
		for i := range containers {
			present := false
			for _, e := range containers[i].Env {
				present = present || e.Name == CompletionIndexEnv
			}
			if !present {
				containers[i].Env = append(containers[i].Env, env)
			}
		}
	}
	add(template.Spec.InitContainers)
	add(template.Spec.Containers)
}

// maxGeneratedNameLength leaves room for the five random characters the server appends.
const maxGeneratedNameLength = 63 - 5

// setCompletionIndex makes pod the one of index ix: the index annotation and label, the
// hostname <job>-<ix>, the name <job>-<ix>-xxxxx, and the failure counts of the pod it
// replaces.
func setCompletionIndex(job *batchv1.Job, pod *corev1.Pod, ix int, replaced *corev1.Pod) {
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Annotations[batchv1.JobCompletionIndexAnnotation] = strconv.Itoa(ix)
	pod.Labels[CompletionIndexLabel] = strconv.Itoa(ix)
	pod.Spec.Hostname = fmt.Sprintf("%s-%d", job.Name, ix)
	suffix := "-" + strconv.Itoa(ix) + "-"
	prefix := job.Name
	if len(prefix)+len(suffix) > maxGeneratedNameLength {
		prefix = prefix[:maxGeneratedNameLength-len(suffix)]
	}
	pod.GenerateName = prefix + suffix
	if hasBackoffLimitPerIndex(job) {
		counted, ignored := replacementFailureCounts(job, replaced)
		pod.Annotations[batchv1.JobIndexFailureCountAnnotation] = strconv.Itoa(int(counted))
		if ignored > 0 {
			pod.Annotations[batchv1.JobIndexIgnoredFailureCountAnnotation] = strconv.Itoa(int(ignored))
		}
	}
}

func (c *Controller) createPod(ctx context.Context, job *batchv1.Job, pod *corev1.Pod) error {
	created, err := c.client.CoreV1().Pods(job.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			c.recorder.Eventf(job, corev1.EventTypeWarning, controllers.FailedCreatePodReason, "Error creating: %v", err)
		}
		return err
	}
	c.recorder.Eventf(job, corev1.EventTypeNormal, controllers.SuccessfulCreatePodReason, "Created pod: %v", created.Name)
	return nil
}

// deletePods deletes pods of the Job and returns how many (and how many ready) it deleted.
// With uncount (suspend, scale-down) it takes our finalizer off first, so that the pods do not
// count as failures, and expects the deletions under key; without it (the Job is finishing)
// the pods keep the finalizer and are counted once they terminate.
func (c *Controller) deletePods(ctx context.Context, key string, job *batchv1.Job, pods []*corev1.Pod, uncount bool) (deleted, deletedReady int32, err error) {
	if len(pods) == 0 {
		return 0, 0, nil
	}
	if uncount {
		keys := make([]string, len(pods))
		for i, p := range pods {
			keys[i] = controllers.PodKey(p)
		}
		c.expectations.ExpectDeletions(key, keys)
	}
	podControl := controllers.PodControl{Client: c.client, Recorder: c.recorder}
	var nDeleted, nReady atomic.Int32
	errs := make(chan error, len(pods))
	var wg sync.WaitGroup
	for _, pod := range pods {
		wg.Go(func() {
			fail := func(err error) {
				if uncount {
					c.expectations.DeletionObserved(key, controllers.PodKey(pod)) // never to be seen
				}
				if !apierrors.IsNotFound(err) {
					errs <- err
				}
			}
			if uncount && hasTrackingFinalizer(pod) {
				if err := c.removeTrackingFinalizer(ctx, pod); err != nil {
					if apierrors.IsInvalid(err) {
						err = apierrors.NewNotFound(corev1.Resource("pods"), pod.Name) // replaced: ours is gone
					}
					fail(err)
					return
				}
			}
			if err := podControl.DeletePod(ctx, pod.Namespace, pod.Name, job); err != nil {
				fail(err)
				return
			}
			nDeleted.Add(1)
			if controllers.IsPodReady(pod) {
				nReady.Add(1)
			}
		})
	}
	wg.Wait()
	select {
	case err = <-errs:
	default:
	}
	return nDeleted.Load(), nReady.Load(), err
}

// trackStatusAndRemoveFinalizers counts the finished pods exactly once: it first writes their
// UIDs to uncountedTerminatedPods (or, Indexed, their indexes to completedIndexes), then takes
// their finalizers off, then moves the UIDs whose finalizer is gone into the counters, and
// finally sets the Complete or Failed condition once nothing is left uncounted or terminating.
func (c *Controller) trackStatusAndRemoveFinalizers(ctx context.Context, key string, shared *batchv1.Job, s *jobSync, now time.Time) error {
	job := s.job
	if job.Status.UncountedTerminatedPods == nil {
		job.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	uncounted := job.Status.UncountedTerminatedPods
	withFinalizer := s.expectedRm.Clone()
	for _, p := range s.pods {
		if hasTrackingFinalizer(p) {
			withFinalizer.Insert(p.UID)
		}
	}
	var toRemove []*corev1.Pod
	reachedMax := false
	newIndexes := 0
	for _, pod := range s.pods {
		if !hasTrackingFinalizer(pod) || s.expectedRm.Has(pod.UID) {
			continue
		}
		failed := isPodFailed(pod, job)
		if !canRemoveFinalizer(s, pod, failed) {
			continue
		}
		toRemove = append(toRemove, pod)
		ix := completionIndex(pod)
		switch {
		case pod.Status.Phase == corev1.PodSucceeded && !s.uncountedFailed.Has(pod.UID):
			if isIndexed(job) {
				if validIndex(job, ix) && !s.prevSucceededIndexes.Has(ix) {
					newIndexes++ // already in s.succeededIndexes
				}
			} else if !s.uncountedSucceeded.Has(pod.UID) {
				uncounted.Succeeded = append(uncounted.Succeeded, pod.UID)
			}
		case failed || (s.finished != nil && s.finished.Type != batchv1.JobSuccessCriteriaMet):
			// once the Job is failing, every pod not finished counts as failed
			if !s.uncountedFailed.Has(pod.UID) && (!isIndexed(job) || validIndex(job, ix)) &&
				matchPodFailurePolicy(job.Spec.PodFailurePolicy, pod).countFailed {
				uncounted.Failed = append(uncounted.Failed, pod.UID)
			}
		}
		if newIndexes+len(uncounted.Succeeded)+len(uncounted.Failed) >= MaxUncountedPods {
			reachedMax = true
			break
		}
	}
	if isIndexed(job) {
		job.Status.CompletedIndexes = formatIndexes(s.succeededIndexes)
		job.Status.Succeeded = int32(s.succeededIndexes.Len())
		if s.failedIndexes != nil {
			job.Status.FailedIndexes = ptr.To(formatIndexes(s.failedIndexes))
		}
	}
	// the interim conditions go to the API before any finalizer comes off, so that a restart
	// cannot forget why the Job is finishing
	if s.finished != nil && s.finished.Type == batchv1.JobFailureTarget {
		job.Status.Conditions = append(job.Status.Conditions, *s.finished)
		s.finished = newCondition(batchv1.JobFailed, corev1.ConditionTrue, s.finished.Reason, s.finished.Message, now)
	}
	if s.finished != nil && s.finished.Type == batchv1.JobSuccessCriteriaMet {
		if findCondition(job, batchv1.JobSuccessCriteriaMet) == nil {
			job.Status.Conditions = append(job.Status.Conditions, *s.finished)
		}
		s.finished = newCondition(batchv1.JobComplete, corev1.ConditionTrue, s.finished.Reason, s.finished.Message, now)
	}
	if !equality.Semantic.DeepEqual(shared.Status, job.Status) {
		if err := c.updateStatus(ctx, s); err != nil {
			return fmt.Errorf("adding uncounted pods to status: %w", err)
		}
	}

	removed, rmErr := c.removeFinalizers(ctx, key, toRemove)
	withFinalizer = withFinalizer.Difference(removed)
	needsFlush := countPodsWithoutFinalizer(&s.job.Status, withFinalizer)
	finished := !reachedMax && c.enactFinished(s)
	if needsFlush || finished {
		if err := c.updateStatus(ctx, s); err != nil {
			return fmt.Errorf("removing uncounted pods from status: %w", err)
		}
		if finished {
			c.recordFinished(s.job, s.finished)
		}
	}
	if rmErr != nil {
		return rmErr
	}
	c.backoff.set(key, s.backoff)
	if reachedMax {
		c.queue.Add(key)
	}
	return nil
}

// canRemoveFinalizer: the pod is finished and counted (or, with backoffLimitPerIndex, not the
// last failure of an index waiting for its replacement), or the Job is finishing or deleted.
func canRemoveFinalizer(s *jobSync, pod *corev1.Pod, failed bool) bool {
	if s.job.DeletionTimestamp != nil || s.finished != nil || pod.Status.Phase == corev1.PodSucceeded {
		return true
	}
	if !failed {
		return false
	}
	if hasBackoffLimitPerIndex(s.job) {
		if last := s.delayed[completionIndex(pod)]; last != nil && last.UID == pod.UID {
			return false
		}
	}
	return true
}

// countPodsWithoutFinalizer moves the uncounted pods whose finalizer is gone into the
// counters; it reports whether the status changed.
func countPodsWithoutFinalizer(status *batchv1.JobStatus, withFinalizer sets.Set[types.UID]) bool {
	changed := false
	keep := func(uids []types.UID, counter *int32) []types.UID {
		var out []types.UID
		for _, uid := range uids {
			if withFinalizer.Has(uid) {
				out = append(out, uid)
			} else {
				*counter++
				changed = true
			}
		}
		return out
	}
	u := status.UncountedTerminatedPods
	u.Succeeded = keep(u.Succeeded, &status.Succeeded)
	u.Failed = keep(u.Failed, &status.Failed)
	return changed
}

// removeFinalizers takes our finalizer off pods, expecting to see each removal, and returns
// the UIDs it took it off (or whose pod is gone).
func (c *Controller) removeFinalizers(ctx context.Context, key string, pods []*corev1.Pod) (sets.Set[types.UID], error) {
	removed := sets.New[types.UID]()
	if len(pods) == 0 {
		return removed, nil
	}
	uids := make([]types.UID, len(pods))
	for i, p := range pods {
		uids[i] = p.UID
	}
	c.finalizers.expect(key, uids...)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for _, pod := range pods {
		wg.Go(func() {
			err := c.removeTrackingFinalizer(ctx, pod)
			mu.Lock()
			defer mu.Unlock()
			if isGone(err) {
				// no update will show the removal, and the pod counts as without finalizer
				c.finalizers.observed(key, pod.UID)
				err = nil
			}
			if err != nil {
				c.finalizers.observed(key, pod.UID) // never to be seen
				if firstErr == nil {
					firstErr = fmt.Errorf("removing tracking finalizer of pod %s: %w", controllers.PodKey(pod), err)
				}
				return
			}
			removed.Insert(pod.UID)
		})
	}
	wg.Wait()
	return removed, firstErr
}

// enactFinished sets the final condition (and completionTime) once every pod is counted and
// none is terminating.
func (c *Controller) enactFinished(s *jobSync) bool {
	if s.finished == nil {
		return false
	}
	u := s.job.Status.UncountedTerminatedPods
	if len(u.Succeeded)+len(u.Failed) > 0 || s.terminating > 0 {
		return false
	}
	f := s.finished
	if s.job.Status.StartTime == nil {
		// a finished Job has a start (one of no completions can finish before it starts)
		s.job.Status.StartTime = ptr.To(f.LastTransitionTime)
	}
	ensureCondition(s.job, f.Type, f.Status, f.Reason, f.Message, f.LastTransitionTime.Time)
	if f.Type == batchv1.JobComplete {
		s.job.Status.CompletionTime = ptr.To(f.LastTransitionTime)
	}
	return true
}

func (c *Controller) recordFinished(job *batchv1.Job, cond *batchv1.JobCondition) {
	if cond.Type == batchv1.JobComplete {
		c.recorder.Event(job, corev1.EventTypeNormal, "Completed", "Job completed")
		return
	}
	c.recorder.Event(job, corev1.EventTypeWarning, cond.Reason, cond.Message)
}

// updateStatus writes s.job's status and carries on from what the server returned.
func (c *Controller) updateStatus(ctx context.Context, s *jobSync) error {
	updated, err := c.client.BatchV1().Jobs(s.job.Namespace).UpdateStatus(ctx, s.job, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	s.job = updated
	return nil
}
