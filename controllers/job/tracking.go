package job

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

// finalizerExpectations remember, per Job, the pods whose finalizer removal we asked for and
// have not yet seen: until then the Job does not count them again nor act on stale pods.
type finalizerExpectations struct {
	mu    sync.Mutex
	byJob map[string]sets.Set[types.UID]
}

func newFinalizerExpectations() *finalizerExpectations {
	return &finalizerExpectations{byJob: map[string]sets.Set[types.UID]{}}
}

func (e *finalizerExpectations) expect(key string, uids ...types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byJob[key] == nil {
		e.byJob[key] = sets.New[types.UID]()
	}
	e.byJob[key].Insert(uids...)
}

func (e *finalizerExpectations) observed(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.byJob[key]; s != nil {
		s.Delete(uid)
		if s.Len() == 0 {
			delete(e.byJob, key)
		}
	}
}

func (e *finalizerExpectations) expected(key string) sets.Set[types.UID] {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.byJob[key].Clone()
}

func (e *finalizerExpectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.byJob, key)
}

// backoffRecord is what a Job's pod recreation back-off is computed from: the failures since
// the last success and when the latest happened.
type backoffRecord struct {
	failuresAfterLastSuccess int32
	lastFailureTime          *time.Time
}

// backoffStore keeps each Job's record between syncs. It is rebuilt after a restart from
// pods not yet counted, so at worst a restarted controller waits less.
type backoffStore struct {
	mu    sync.Mutex
	byJob map[string]backoffRecord
}

func newBackoffStore() *backoffStore { return &backoffStore{byJob: map[string]backoffRecord{}} }

func (s *backoffStore) get(key string) backoffRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byJob[key]
}

func (s *backoffStore) set(key string, r backoffRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byJob[key] = r
}

func (s *backoffStore) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byJob, key)
}

// next is the record after newly finished pods: a success clears the failures before it.
func (r backoffRecord) next(succeeded, failed []*corev1.Pod, now time.Time) backoffRecord {
	if len(succeeded) == 0 && len(failed) == 0 {
		return r
	}
	byFinish := func(pods []*corev1.Pod) []time.Time {
		out := make([]time.Time, len(pods))
		for i, p := range pods {
			out[i] = podFinishedTime(p, now)
		}
		slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
		return out
	}
	failures := byFinish(failed)
	if len(succeeded) == 0 {
		last := failures[len(failures)-1]
		return backoffRecord{failuresAfterLastSuccess: r.failuresAfterLastSuccess + int32(len(failures)), lastFailureTime: &last}
	}
	successes := byFinish(succeeded)
	lastSuccess := successes[len(successes)-1]
	out := backoffRecord{}
	for i := len(failures) - 1; i >= 0 && failures[i].After(lastSuccess); i-- {
		if out.lastFailureTime == nil {
			out.lastFailureTime = &failures[i]
		}
		out.failuresAfterLastSuccess++
	}
	return out
}

func (r backoffRecord) remaining(now time.Time) time.Duration {
	return remainingBackoff(r.failuresAfterLastSuccess, r.lastFailureTime, now)
}

// remainingBackoff is how long after the last of failures another pod may start: 10s after
// one failure, doubling with each further one, at most 10 minutes.
func remainingBackoff(failures int32, last *time.Time, now time.Time) time.Duration {
	if failures == 0 || last == nil {
		return 0
	}
	d := DefaultJobPodFailureBackOff
	for i := int32(1); i < failures && d < MaxJobPodFailureBackOff; i++ {
		d *= 2
	}
	d = min(d, MaxJobPodFailureBackOff)
	if elapsed := now.Sub(*last); elapsed < d {
		return d - elapsed
	}
	return 0
}

// podFinishedTime is when a pod finished: its last container's termination, else when it
// stopped being ready, else its deletion, else now.
func podFinishedTime(p *corev1.Pod, now time.Time) time.Time {
	var last time.Time
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for _, cs := range list {
			if t := cs.State.Terminated; t != nil && t.FinishedAt.After(last) {
				last = t.FinishedAt.Time
			}
		}
	}
	if !last.IsZero() {
		return last
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	if p.DeletionTimestamp != nil {
		return p.DeletionTimestamp.Time
	}
	return now
}

func hasTrackingFinalizer(pod *corev1.Pod) bool {
	return slices.Contains(pod.Finalizers, batchv1.JobTrackingFinalizer)
}

func isIndexed(job *batchv1.Job) bool {
	return ptr.Deref(job.Spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion
}

func hasBackoffLimitPerIndex(job *batchv1.Job) bool {
	return isIndexed(job) && job.Spec.BackoffLimitPerIndex != nil
}

// onlyReplaceFailedPods: a pod being deleted is replaced (and counted) only once it has
// failed, with podReplacementPolicy Failed or a pod failure policy.
func onlyReplaceFailedPods(job *batchv1.Job) bool {
	return ptr.Deref(job.Spec.PodReplacementPolicy, "") == batchv1.Failed || job.Spec.PodFailurePolicy != nil
}

// isPodFailed: a Failed pod, or, unless only failed pods are replaced, one being deleted
// before it succeeded (an orphan or evicted pod may never reach the Failed phase).
func isPodFailed(p *corev1.Pod, job *batchv1.Job) bool {
	if p.Status.Phase == corev1.PodFailed {
		return true
	}
	if onlyReplaceFailedPods(job) {
		return false
	}
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded
}

const unknownIndex = -1

// completionIndex is the index of an Indexed Job's pod, from its annotation (the label of
// the same name is for selection only).
func completionIndex(pod *corev1.Pod) int {
	v, ok := pod.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		return unknownIndex
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 {
		return unknownIndex
	}
	return i
}

func validIndex(job *batchv1.Job, ix int) bool {
	return ix != unknownIndex && ix < int(ptr.Deref(job.Spec.Completions, 0))
}

// parseIndexes reads an index list ("1,3-5"), dropping what is malformed or not below
// completions (the list of a Job scaled down).
func parseIndexes(list string, completions int32) sets.Set[int] {
	out := sets.New[int]()
	if list == "" {
		return out
	}
	for _, part := range strings.Split(list, ",") {
		lo, hi, found := strings.Cut(part, "-")
		x, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		y := x
		if found {
			if y, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for i := x; i <= y && i < int(completions); i++ {
			out.Insert(i)
		}
	}
	return out
}

// formatIndexes writes indexes as upstream does: ascending, runs of three or more as ranges
// ("1,3-5,7"), runs of two as two numbers.
func formatIndexes(indexes sets.Set[int]) string {
	list := sets.List(indexes)
	var b strings.Builder
	for i := 0; i < len(list); {
		j := i
		for j+1 < len(list) && list[j+1] == list[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		switch {
		case j == i:
			fmt.Fprintf(&b, "%d", list[i])
		case j == i+1:
			fmt.Fprintf(&b, "%d,%d", list[i], list[j])
		default:
			fmt.Fprintf(&b, "%d-%d", list[i], list[j])
		}
		i = j + 1
	}
	return b.String()
}

// podFailurePolicyMatch is what a failed pod means under a Job's pod failure policy: the
// message failing the Job (FailJob), whether the failure counts towards the back-off limits,
// and the action of the rule that matched (nil when none did).
type podFailurePolicyMatch struct {
	failJobMessage *string
	countFailed    bool
	action         *batchv1.PodFailurePolicyAction
}

// matchPodFailurePolicy finds the first rule matching a failed pod: a container (or init
// container) that terminated with a non-zero exit code the rule's operator selects, or a pod
// condition of the rule's type and status.
func matchPodFailurePolicy(policy *batchv1.PodFailurePolicy, pod *corev1.Pod) podFailurePolicyMatch {
	if policy == nil {
		return podFailurePolicyMatch{countFailed: true}
	}
	for i, rule := range policy.Rules {
		var failJob string
		switch {
		case rule.OnExitCodes != nil:
			cs := matchOnExitCodes(&pod.Status, rule.OnExitCodes)
			if cs == nil {
				continue
			}
			failJob = fmt.Sprintf("Container %s for pod %s/%s failed with exit code %v matching %v rule at index %d",
				cs.Name, pod.Namespace, pod.Name, cs.State.Terminated.ExitCode, rule.Action, i)
		case len(rule.OnPodConditions) > 0:
			cond := matchOnPodConditions(&pod.Status, rule.OnPodConditions)
			if cond == nil {
				continue
			}
			failJob = fmt.Sprintf("Pod %s/%s has condition %v matching %v rule at index %d", pod.Namespace, pod.Name, cond.Type, rule.Action, i)
		default:
			continue
		}
		action := rule.Action
		switch action {
		case batchv1.PodFailurePolicyActionIgnore:
			return podFailurePolicyMatch{action: &action}
		case batchv1.PodFailurePolicyActionFailJob:
			return podFailurePolicyMatch{failJobMessage: &failJob, countFailed: true, action: &action}
		case batchv1.PodFailurePolicyActionFailIndex, batchv1.PodFailurePolicyActionCount:
			return podFailurePolicyMatch{countFailed: true, action: &action}
		}
	}
	return podFailurePolicyMatch{countFailed: true}
}

func matchOnExitCodes(status *corev1.PodStatus, req *batchv1.PodFailurePolicyOnExitCodesRequirement) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{status.ContainerStatuses, status.InitContainerStatuses} {
		for i := range list {
			cs := &list[i]
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 || (req.ContainerName != nil && *req.ContainerName != cs.Name) {
				continue
			}
			in := slices.Contains(req.Values, t.ExitCode)
			if (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && in) || (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpNotIn && !in) {
				return cs
			}
		}
	}
	return nil
}

func matchOnPodConditions(status *corev1.PodStatus, patterns []batchv1.PodFailurePolicyOnPodConditionsPattern) *corev1.PodCondition {
	for i := range status.Conditions {
		for _, p := range patterns {
			if status.Conditions[i].Type == p.Type && status.Conditions[i].Status == p.Status {
				return &status.Conditions[i]
			}
		}
	}
	return nil
}

// indexFailureCounts are the failures of a pod's index before it: those counted towards
// backoffLimitPerIndex and those the pod failure policy ignored.
func indexFailureCounts(pod *corev1.Pod) (counted, ignored int32) {
	parse := func(key string) int32 {
		n, err := strconv.ParseInt(pod.Annotations[key], 10, 32)
		if err != nil || n < 0 {
			return 0
		}
		return int32(n)
	}
	return parse(batchv1.JobIndexFailureCountAnnotation), parse(batchv1.JobIndexIgnoredFailureCountAnnotation)
}

// replacementFailureCounts are the counts the pod replacing failed carries.
func replacementFailureCounts(job *batchv1.Job, failed *corev1.Pod) (counted, ignored int32) {
	if failed == nil {
		return 0, 0
	}
	counted, ignored = indexFailureCounts(failed)
	if matchPodFailurePolicy(job.Spec.PodFailurePolicy, failed).countFailed {
		counted++
	} else {
		ignored++
	}
	return counted, ignored
}

// sortPodsToDelete orders active pods the way upstream picks which to delete first.
func sortPodsToDelete(pods []*corev1.Pod) {
	sort.Sort(controllers.PodsToDeleteFirst{Pods: pods, Rank: make([]int, len(pods))})
}
