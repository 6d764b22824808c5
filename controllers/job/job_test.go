package job

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/controllers"
)

// fixture is a Job controller on a fake clientset whose informers have synced, with a clock
// the test moves.
type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	c        *Controller
	factory  informers.SharedInformerFactory
	recorder *record.FakeRecorder

	mu    sync.Mutex
	clock time.Time
}

var seq atomic.Int64

func newFixture(t *testing.T, objects ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objects...)
	// the fake tracker neither generates names nor UIDs
	client.PrependReactor("create", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		obj := a.(clienttesting.CreateAction).GetObject().(metav1.Object)
		if obj.GetName() == "" && obj.GetGenerateName() != "" {
			obj.SetName(fmt.Sprintf("%s%05d", obj.GetGenerateName(), seq.Add(1)))
		}
		if obj.GetUID() == "" {
			obj.SetUID(types.UID(fmt.Sprintf("uid-%d", seq.Add(1))))
		}
		obj.SetResourceVersion(strconv.FormatInt(seq.Add(1), 10))
		return false, nil, nil
	})
	// nor does it move resourceVersion on writes, which the controller relies on to tell
	// changes from resyncs
	tracker := client.Tracker()
	bump := func(a clienttesting.Action) (bool, runtime.Object, error) {
		handled, obj, err := clienttesting.ObjectReaction(tracker)(a)
		if err != nil || obj == nil {
			return handled, obj, err
		}
		obj.(metav1.Object).SetResourceVersion(strconv.FormatInt(seq.Add(1), 10))
		if err := tracker.Update(a.GetResource(), obj, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, obj, nil
	}
	client.PrependReactor("update", "*", bump)
	client.PrependReactor("patch", "*", bump)
	// every status the controller writes must pass the API server's validation
	client.PrependReactor("update", "jobs", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" {
			return false, nil, nil
		}
		job := a.(clienttesting.UpdateAction).GetObject().(*batchv1.Job)
		old, err := tracker.Get(a.GetResource(), job.Namespace, job.Name)
		if err != nil {
			return true, nil, err
		}
		var errs field.ErrorList
		for _, e := range apis.ValidateJobStatusUpdate(job, old.(*batchv1.Job)) {
			if strings.HasPrefix(e.Field, "status") {
				errs = append(errs, e)
			}
		}
		if len(errs) > 0 {
			t.Errorf("the controller wrote a status the API server refuses: %v", errs)
			return true, nil, apierrors.NewInvalid(batchv1.SchemeGroupVersion.WithKind("Job").GroupKind(), job.Name, errs)
		}
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(1000)
	c, err := New(factory.Batch().V1().Jobs(), factory.Core().V1().Pods(), client, controllers.Reporting{
		Recorder: func(string) record.EventRecorder { return recorder },
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, client: client, c: c, factory: factory, recorder: recorder, clock: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	c.now = f.now
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("informer of %v did not sync", typ)
		}
	}
	t.Cleanup(c.queue.ShutDown)
	t.Cleanup(c.orphans.ShutDown)
	return f
}

func (f *fixture) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clock
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(d)
}

// newJob is a Job as the API server stores it: defaulted, with its generated selector.
func newJob(name string, completions, parallelism *int32) *batchv1.Job {
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name + "-uid")},
		Spec: batchv1.JobSpec{
			Completions: completions,
			Parallelism: parallelism,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
			}},
		},
	}
	apis.DefaultJob(job)
	apis.GenerateJobSelector(job)
	return job
}

func indexed(job *batchv1.Job) *batchv1.Job {
	job.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	return job
}

// step syncs the Job and then waits until the informers show everything the sync wrote and
// the controller has seen its own creations, deletions and finalizer removals.
func (f *fixture) step(name string) {
	f.t.Helper()
	if err := f.c.sync(context.Background(), "ns/"+name); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
	f.settle()
}

func (f *fixture) settle() {
	f.t.Helper()
	why := ""
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, _ := f.client.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{})
		jobs, _ := f.client.BatchV1().Jobs("ns").List(ctx, metav1.ListOptions{})
		podStore := f.factory.Core().V1().Pods().Informer().GetStore()
		jobStore := f.factory.Batch().V1().Jobs().Informer().GetStore()
		if len(podStore.List()) != len(pods.Items) || len(jobStore.List()) != len(jobs.Items) {
			why = "object counts differ"
			return false, nil
		}
		for i := range pods.Items {
			if cached, ok, _ := podStore.Get(&pods.Items[i]); !ok || !equality.Semantic.DeepEqual(cached, &pods.Items[i]) {
				why = "pod " + pods.Items[i].Name + " differs"
				return false, nil
			}
		}
		for i := range jobs.Items {
			cached, ok, _ := jobStore.Get(&jobs.Items[i])
			if !ok || !equality.Semantic.DeepEqual(cached, &jobs.Items[i]) {
				why = "job differs"
				return false, nil
			}
			key, _ := cache.MetaNamespaceKeyFunc(&jobs.Items[i])
			if !f.c.expectations.Satisfied(key) || f.c.finalizers.expected(key).Len() > 0 {
				add, del := f.c.expectations.Pending(key)
				why = fmt.Sprintf("expectations of %s: %d creations, %d deletions, finalizers %v", key, add, del, sets.List(f.c.finalizers.expected(key)))
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		f.t.Fatalf("informers never caught up (%s): %v", why, err)
	}
}

func (f *fixture) job(name string) *batchv1.Job {
	f.t.Helper()
	job, err := f.client.BatchV1().Jobs("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return job
}

// pods are the Job's pods that are not finished, by name.
func (f *fixture) activePods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range f.allPods() {
		if controllers.IsPodActive(p) {
			out = append(out, p)
		}
	}
	return out
}

func (f *fixture) allPods() []*corev1.Pod {
	f.t.Helper()
	list, err := f.client.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	out := make([]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// finish ends a pod's only container with exitCode (0: Succeeded, else Failed), now.
func (f *fixture) finish(pod *corev1.Pod, exitCode int32) {
	f.t.Helper()
	pod = pod.DeepCopy()
	pod.Status.Phase = corev1.PodSucceeded
	if exitCode != 0 {
		pod.Status.Phase = corev1.PodFailed
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: exitCode, FinishedAt: metav1.NewTime(f.now())},
	}}}
	if _, err := f.client.CoreV1().Pods("ns").UpdateStatus(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.settle()
}

func (f *fixture) run(pod *corev1.Pod, ready bool) {
	f.t.Helper()
	pod = pod.DeepCopy()
	pod.Status.Phase = corev1.PodRunning
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	if _, err := f.client.CoreV1().Pods("ns").UpdateStatus(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.settle()
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (f *fixture) creates() int {
	n := 0
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "pods" {
			n++
		}
	}
	return n
}

func condition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if job.Status.Conditions[i].Type == t {
			return &job.Status.Conditions[i]
		}
	}
	return nil
}

func wantCondition(t *testing.T, job *batchv1.Job, typ batchv1.JobConditionType, reason, message string) {
	t.Helper()
	c := condition(job, typ)
	if c == nil || c.Status != corev1.ConditionTrue || c.Reason != reason || c.Message != message {
		t.Errorf("condition %s = %+v, want True %s %q (conditions %+v)", typ, c, reason, message, job.Status.Conditions)
	}
}

func TestJobRunsItsCompletionsAtMostParallelismAtATime(t *testing.T) {
	f := newFixture(t, newJob("pi", ptr.To[int32](3), ptr.To[int32](2)))
	f.step("pi")
	pods := f.activePods()
	if len(pods) != 2 {
		t.Fatalf("%d pods, want parallelism 2", len(pods))
	}
	pod := pods[0]
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "Job" || ref.APIVersion != "batch/v1" || ref.UID != "pi-uid" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
		t.Errorf("controllerRef = %+v", ref)
	}
	if !hasTrackingFinalizer(pod) || pod.Labels[batchv1.ControllerUidLabel] != "pi-uid" || pod.Labels["job-name"] != "pi" || pod.GenerateName != "pi-" {
		t.Errorf("pod = finalizers %v labels %v generateName %q", pod.Finalizers, pod.Labels, pod.GenerateName)
	}
	job := f.job("pi")
	if job.Status.Active != 2 || ptr.Deref(job.Status.Ready, -1) != 0 || job.Status.StartTime == nil {
		t.Errorf("status = %+v, want 2 active, 0 ready, a start time", job.Status)
	}
	if e := f.events(); len(e) != 2 || !strings.HasPrefix(e[0], "Normal SuccessfulCreate Created pod: pi-") {
		t.Errorf("events = %q", e)
	}

	f.run(pods[1], true)
	f.finish(pods[0], 0)
	f.step("pi")
	job = f.job("pi")
	if job.Status.Succeeded != 1 || job.Status.Active != 2 || ptr.Deref(job.Status.Ready, -1) != 1 || len(job.Status.UncountedTerminatedPods.Succeeded) != 0 {
		t.Errorf("status = %+v, want 1 succeeded, 2 active (a new one), 1 ready", job.Status)
	}
	for _, p := range f.allPods() {
		if p.Status.Phase == corev1.PodSucceeded && hasTrackingFinalizer(p) {
			t.Errorf("counted pod %s still has the tracking finalizer", p.Name)
		}
	}

	for _, p := range f.activePods() {
		f.finish(p, 0)
	}
	f.step("pi")
	job = f.job("pi")
	wantCondition(t, job, batchv1.JobSuccessCriteriaMet, "CompletionsReached", "Reached expected number of succeeded pods")
	wantCondition(t, job, batchv1.JobComplete, "CompletionsReached", "Reached expected number of succeeded pods")
	if job.Status.Succeeded != 3 || job.Status.Active != 0 || job.Status.CompletionTime == nil {
		t.Errorf("status = %+v, want 3 succeeded and a completion time", job.Status)
	}
	if e := f.events(); !slices.Contains(e, "Normal Completed Job completed") {
		t.Errorf("events = %q, want Completed", e)
	}
	if n := f.creates(); n != 3 {
		t.Errorf("created %d pods for 3 completions", n)
	}
}

func TestSyncDoesNotCreateTwiceBeforeSeeingItsPods(t *testing.T) {
	f := newFixture(t, newJob("pi", ptr.To[int32](5), ptr.To[int32](5)))
	if err := f.c.sync(context.Background(), "ns/pi"); err != nil {
		t.Fatal(err)
	}
	if err := f.c.sync(context.Background(), "ns/pi"); err != nil {
		t.Fatal(err)
	}
	if n := f.creates(); n != 5 {
		t.Errorf("created %d pods, want 5", n)
	}
}

func TestWorkQueueJobCompletesWhenOnePodSucceededAndTheOthersStopped(t *testing.T) {
	f := newFixture(t, newJob("queue", nil, ptr.To[int32](2)))
	f.step("queue")
	pods := f.activePods()
	if len(pods) != 2 {
		t.Fatalf("%d pods, want 2", len(pods))
	}
	f.finish(pods[0], 0)
	f.step("queue")
	if n := len(f.activePods()); n != 1 {
		t.Errorf("%d active pods after a success, want the other one only", n)
	}
	if condition(f.job("queue"), batchv1.JobComplete) != nil {
		t.Errorf("complete while a pod still runs")
	}
	f.finish(pods[1], 0)
	f.step("queue")
	wantCondition(t, f.job("queue"), batchv1.JobComplete, "CompletionsReached", "Reached expected number of succeeded pods")
}

func TestIndexedJobGivesEachPodItsIndex(t *testing.T) {
	f := newFixture(t, indexed(newJob("idx", ptr.To[int32](3), ptr.To[int32](3))))
	f.step("idx")
	pods := f.activePods()
	if len(pods) != 3 {
		t.Fatalf("%d pods, want 3", len(pods))
	}
	seen := map[string]bool{}
	for _, p := range pods {
		ix := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		seen[ix] = true
		if p.Labels[CompletionIndexLabel] != ix || p.Spec.Hostname != "idx-"+ix || p.GenerateName != "idx-"+ix+"-" {
			t.Errorf("pod %s: label %q hostname %q generateName %q, want index %s", p.Name, p.Labels[CompletionIndexLabel], p.Spec.Hostname, p.GenerateName, ix)
		}
		env := p.Spec.Containers[0].Env
		if len(env) != 1 || env[0].Name != "JOB_COMPLETION_INDEX" || env[0].ValueFrom.FieldRef.FieldPath != "metadata.labels['batch.kubernetes.io/job-completion-index']" {
			t.Errorf("env = %+v", env)
		}
	}
	if len(seen) != 3 || !seen["0"] || !seen["2"] {
		t.Errorf("indexes %v, want 0, 1, 2", seen)
	}

	byIndex := func(ix string) *corev1.Pod {
		for _, p := range f.activePods() {
			if p.Annotations[batchv1.JobCompletionIndexAnnotation] == ix {
				return p
			}
		}
		t.Fatalf("no active pod of index %s", ix)
		return nil
	}
	f.finish(byIndex("0"), 0)
	f.finish(byIndex("2"), 0)
	f.step("idx")
	if job := f.job("idx"); job.Status.CompletedIndexes != "0,2" || job.Status.Succeeded != 2 {
		t.Errorf("completedIndexes %q succeeded %d, want 0,2 and 2", job.Status.CompletedIndexes, job.Status.Succeeded)
	}
	f.finish(byIndex("1"), 1)
	f.step("idx")
	// the failed index is run again, after the back-off
	if n := len(f.activePods()); n != 0 {
		t.Errorf("%d pods recreated inside the back-off", n)
	}
	f.advance(DefaultJobPodFailureBackOff)
	f.step("idx")
	if p := byIndex("1"); p.Spec.Hostname != "idx-1" {
		t.Errorf("replacement hostname %q", p.Spec.Hostname)
	}
	f.finish(byIndex("1"), 0)
	f.step("idx")
	job := f.job("idx")
	if job.Status.CompletedIndexes != "0-2" || job.Status.Failed != 1 {
		t.Errorf("completedIndexes %q failed %d", job.Status.CompletedIndexes, job.Status.Failed)
	}
	wantCondition(t, job, batchv1.JobComplete, "CompletionsReached", "Reached expected number of succeeded pods")
}

func TestFailedPodsAreRecreatedWithExponentialBackoffUntilTheBackoffLimit(t *testing.T) {
	job := newJob("flaky", ptr.To[int32](1), ptr.To[int32](1))
	job.Spec.BackoffLimit = ptr.To[int32](2)
	f := newFixture(t, job)
	f.step("flaky")

	for i, backoff := range []time.Duration{10 * time.Second, 20 * time.Second} {
		f.finish(f.activePods()[0], 1)
		f.step("flaky")
		if got := f.job("flaky").Status.Failed; got != int32(i+1) {
			t.Fatalf("failed = %d, want %d", got, i+1)
		}
		if n := len(f.activePods()); n != 0 {
			t.Fatalf("failure %d: a pod was recreated at once", i+1)
		}
		f.advance(backoff - time.Second)
		f.step("flaky")
		if n := len(f.activePods()); n != 0 {
			t.Fatalf("failure %d: a pod was recreated inside the back-off", i+1)
		}
		f.advance(time.Second)
		f.step("flaky")
		if n := len(f.activePods()); n != 1 {
			t.Fatalf("failure %d: %d pods after the back-off, want 1", i+1, n)
		}
	}
	f.events()
	f.finish(f.activePods()[0], 1)
	f.step("flaky")
	job = f.job("flaky")
	wantCondition(t, job, batchv1.JobFailureTarget, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
	wantCondition(t, job, batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
	if job.Status.Failed != 3 || job.Status.CompletionTime != nil {
		t.Errorf("status = %+v", job.Status)
	}
	if e := f.events(); !slices.Contains(e, "Warning BackoffLimitExceeded Job has reached the specified backoff limit") {
		t.Errorf("events = %q", e)
	}
}

func TestPodFailurePolicy(t *testing.T) {
	policy := &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		{Action: batchv1.PodFailurePolicyActionIgnore, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{7}}},
	}}
	job := newJob("policy", ptr.To[int32](2), ptr.To[int32](2))
	job.Spec.PodFailurePolicy = policy
	job.Spec.BackoffLimit = ptr.To[int32](0)
	f := newFixture(t, job)
	f.step("policy")

	// an ignored failure does not count against backoffLimit 0, and is replaced
	ignored := f.activePods()[0]
	f.finish(ignored, 7)
	f.step("policy")
	f.advance(DefaultJobPodFailureBackOff) // ignored or not, a failure backs off recreation
	f.step("policy")
	job = f.job("policy")
	if job.Status.Failed != 0 || condition(job, batchv1.JobFailureTarget) != nil || len(f.activePods()) != 2 {
		t.Fatalf("after an ignored failure: status %+v, %d active", job.Status, len(f.activePods()))
	}

	failing := f.activePods()[0]
	f.finish(failing, 42)
	f.step("policy")
	job = f.job("policy")
	msg := fmt.Sprintf("Container main for pod ns/%s failed with exit code 42 matching FailJob rule at index 0", failing.Name)
	wantCondition(t, job, batchv1.JobFailureTarget, "PodFailurePolicy", msg)
	if condition(job, batchv1.JobFailed) != nil {
		t.Errorf("Failed while the other pod was still terminating")
	}
	// the other pod was deleted and counted as failed; once it is gone the Job has failed
	f.step("policy")
	job = f.job("policy")
	wantCondition(t, job, batchv1.JobFailed, "PodFailurePolicy", msg)
	if job.Status.Active != 0 || len(f.activePods()) != 0 {
		t.Errorf("active = %d, pods %d, want none", job.Status.Active, len(f.activePods()))
	}
}

func TestActiveDeadlineFailsTheJobAndStopsItsPods(t *testing.T) {
	job := newJob("slow", ptr.To[int32](1), ptr.To[int32](1))
	job.Spec.ActiveDeadlineSeconds = ptr.To[int64](60)
	f := newFixture(t, job)
	f.step("slow")
	f.run(f.activePods()[0], true)
	f.advance(time.Minute)
	f.step("slow")
	wantCondition(t, f.job("slow"), batchv1.JobFailureTarget, "DeadlineExceeded", "Job was active longer than specified deadline")
	f.step("slow") // the pod is gone
	job = f.job("slow")
	wantCondition(t, job, batchv1.JobFailed, "DeadlineExceeded", "Job was active longer than specified deadline")
	if len(f.activePods()) != 0 || job.Status.Active != 0 || ptr.Deref(job.Status.Ready, -1) != 0 {
		t.Errorf("status %+v, %d pods left", job.Status, len(f.activePods()))
	}
}

func TestSuspendDeletesPodsUncountedAndResumeRestartsTheClock(t *testing.T) {
	f := newFixture(t, newJob("batch", ptr.To[int32](2), ptr.To[int32](2)))
	f.step("batch")
	job := f.job("batch")
	job.Spec.Suspend = ptr.To(true)
	if _, err := f.client.BatchV1().Jobs("ns").Update(context.Background(), job, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.step("batch")
	job = f.job("batch")
	wantCondition(t, job, batchv1.JobSuspended, "JobSuspended", "Job suspended")
	if len(f.allPods()) != 0 || job.Status.Active != 0 || job.Status.Failed != 0 || job.Status.StartTime != nil {
		t.Errorf("suspended: status %+v, %d pods", job.Status, len(f.allPods()))
	}

	f.advance(time.Hour)
	job.Spec.Suspend = ptr.To(false)
	if _, err := f.client.BatchV1().Jobs("ns").Update(context.Background(), job, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.step("batch")
	job = f.job("batch")
	c := condition(job, batchv1.JobSuspended)
	if c == nil || c.Status != corev1.ConditionFalse || c.Reason != "JobResumed" || c.Message != "Job resumed" {
		t.Errorf("Suspended condition after resume = %+v", c)
	}
	if job.Status.StartTime == nil || !job.Status.StartTime.Time.Equal(f.now()) || len(f.activePods()) != 2 {
		t.Errorf("resumed: start %v (now %v), %d pods", job.Status.StartTime, f.now(), len(f.activePods()))
	}
	e := f.events()
	if !slices.Contains(e, "Normal Suspended Job suspended") || !slices.Contains(e, "Normal Resumed Job resumed") {
		t.Errorf("events = %q", e)
	}
}

func TestBackoffLimitPerIndexFailsOnlyThatIndex(t *testing.T) {
	job := indexed(newJob("per", ptr.To[int32](3), ptr.To[int32](3)))
	job.Spec.BackoffLimitPerIndex = ptr.To[int32](1)
	apis.DefaultJob(job)
	f := newFixture(t, job)
	f.step("per")
	podOf := func(ix string) *corev1.Pod {
		for _, p := range f.activePods() {
			if p.Annotations[batchv1.JobCompletionIndexAnnotation] == ix {
				return p
			}
		}
		t.Fatalf("no pod of index %s", ix)
		return nil
	}
	if got := podOf("0").Annotations[batchv1.JobIndexFailureCountAnnotation]; got != "0" {
		t.Errorf("first pod's failure count = %q, want 0", got)
	}
	first := podOf("0")
	f.finish(first, 1)
	f.step("per")
	f.advance(DefaultJobPodFailureBackOff)
	f.step("per")
	second := podOf("0")
	if got := second.Annotations[batchv1.JobIndexFailureCountAnnotation]; got != "1" {
		t.Errorf("replacement's failure count = %q, want 1", got)
	}
	f.step("per")
	for _, p := range f.allPods() {
		if p.UID == first.UID && hasTrackingFinalizer(p) {
			t.Errorf("the replaced pod keeps its finalizer")
		}
	}
	f.finish(second, 1)
	f.step("per")
	job = f.job("per")
	if ptr.Deref(job.Status.FailedIndexes, "") != "0" || job.Status.Failed != 2 {
		t.Errorf("failedIndexes %v failed %d, want 0 and 2", ptr.Deref(job.Status.FailedIndexes, "<nil>"), job.Status.Failed)
	}
	if condition(job, batchv1.JobFailureTarget) != nil {
		t.Errorf("one failed index fails the Job only once every index is done")
	}
	f.finish(podOf("1"), 0)
	f.finish(podOf("2"), 0)
	f.step("per")
	job = f.job("per")
	wantCondition(t, job, batchv1.JobFailed, "FailedIndexes", "Job has failed indexes")
	if job.Status.CompletedIndexes != "1,2" {
		t.Errorf("completedIndexes %q", job.Status.CompletedIndexes)
	}
}

func TestSuccessPolicyCompletesTheJobAndStopsTheRest(t *testing.T) {
	job := indexed(newJob("leader", ptr.To[int32](3), ptr.To[int32](3)))
	job.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr.To("0")}}}
	f := newFixture(t, job)
	f.step("leader")
	for _, p := range f.activePods() {
		if p.Annotations[batchv1.JobCompletionIndexAnnotation] == "0" {
			f.finish(p, 0)
		}
	}
	f.step("leader")
	f.step("leader") // the other pods are gone
	job = f.job("leader")
	wantCondition(t, job, batchv1.JobSuccessCriteriaMet, "SuccessPolicy", "Matched rules at index 0")
	wantCondition(t, job, batchv1.JobComplete, "SuccessPolicy", "Matched rules at index 0")
	if len(f.activePods()) != 0 || job.Status.Failed != 0 || job.Status.Succeeded != 1 {
		t.Errorf("status %+v, %d pods running", job.Status, len(f.activePods()))
	}
}

func TestPodReplacementPolicyFailedWaitsForTerminatingPods(t *testing.T) {
	job := newJob("careful", ptr.To[int32](1), ptr.To[int32](1))
	job.Spec.PodReplacementPolicy = ptr.To(batchv1.Failed)
	f := newFixture(t, job)
	f.step("careful")
	pod := f.activePods()[0]
	// being deleted, as the API server shows a pod in its grace period
	pod.DeletionTimestamp = ptr.To(metav1.NewTime(f.now()))
	if _, err := f.client.CoreV1().Pods("ns").Update(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.step("careful")
	job = f.job("careful")
	if f.creates() != 1 || ptr.Deref(job.Status.Terminating, -1) != 1 || job.Status.Active != 0 || job.Status.Failed != 0 {
		t.Fatalf("while terminating: %d created, status %+v", f.creates(), job.Status)
	}
	f.finish(pod, 137)
	f.step("careful")
	f.advance(DefaultJobPodFailureBackOff)
	f.step("careful")
	job = f.job("careful")
	if f.creates() != 2 || job.Status.Failed != 1 || ptr.Deref(job.Status.Terminating, -1) != 0 {
		t.Errorf("after the pod failed: %d created, status %+v", f.creates(), job.Status)
	}
}

func TestDefaultReplacementCountsADeletedPodAsFailedAtOnce(t *testing.T) {
	f := newFixture(t, newJob("eager", ptr.To[int32](1), ptr.To[int32](1)))
	f.step("eager")
	pod := f.activePods()[0]
	pod.DeletionTimestamp = ptr.To(metav1.NewTime(f.now()))
	if _, err := f.client.CoreV1().Pods("ns").Update(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.step("eager")
	if job := f.job("eager"); job.Status.Failed != 1 {
		t.Errorf("failed = %d, want the terminating pod counted", job.Status.Failed)
	}
	for _, p := range f.allPods() {
		if hasTrackingFinalizer(p) {
			t.Errorf("the counted pod keeps its finalizer")
		}
	}
}

func TestOrphanedPodsLoseTheTrackingFinalizer(t *testing.T) {
	f := newFixture(t, newJob("gone", ptr.To[int32](1), ptr.To[int32](1)))
	f.step("gone")
	pod := f.activePods()[0]
	if err := f.client.BatchV1().Jobs("ns").Delete(context.Background(), "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return f.c.orphans.Len() > 0, nil
	})
	if err != nil {
		t.Fatal("the orphaned pod was never queued")
	}
	key, _ := f.c.orphans.Get()
	f.c.orphans.Done(key)
	if err := f.c.syncOrphanPod(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	got, _ := f.client.CoreV1().Pods("ns").Get(context.Background(), pod.Name, metav1.GetOptions{})
	if hasTrackingFinalizer(got) {
		t.Errorf("finalizers = %v, want the tracking one removed", got.Finalizers)
	}
}

func TestJobsManagedByAnotherControllerAreLeftAlone(t *testing.T) {
	job := newJob("kueue", ptr.To[int32](1), ptr.To[int32](1))
	job.Spec.ManagedBy = ptr.To("kueue.x-k8s.io/multikueue")
	f := newFixture(t, job)
	f.step("kueue")
	if n := f.creates(); n != 0 {
		t.Errorf("created %d pods for a Job managed elsewhere", n)
	}
}

func TestRestartsWithRestartPolicyOnFailureCountTowardsTheBackoffLimit(t *testing.T) {
	job := newJob("restarts", ptr.To[int32](1), ptr.To[int32](1))
	job.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	job.Spec.BackoffLimit = ptr.To[int32](2)
	f := newFixture(t, job)
	f.step("restarts")
	pod := f.activePods()[0].DeepCopy()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", RestartCount: 2}}
	if _, err := f.client.CoreV1().Pods("ns").UpdateStatus(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.step("restarts")
	f.step("restarts")
	wantCondition(t, f.job("restarts"), batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
}

func TestIndexesFormatAsUpstream(t *testing.T) {
	for list, want := range map[string]string{"": "", "0": "0", "0,1": "0,1", "0,1,2,5,7,8,9": "0-2,5,7-9", "3-5,1": "1,3-5"} {
		if got := formatIndexes(parseIndexes(list, 10)); got != want {
			t.Errorf("format(parse(%q)) = %q, want %q", list, got, want)
		}
	}
	if got := formatIndexes(parseIndexes("0-9", 4)); got != "0-3" {
		t.Errorf("indexes beyond completions are dropped: %q", got)
	}
}

func TestRemainingBackoffDoublesUpToTenMinutes(t *testing.T) {
	now := time.Now()
	for failures, want := range map[int32]time.Duration{0: 0, 1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 7: 10 * time.Minute, 30: 10 * time.Minute} {
		if got := remainingBackoff(failures, &now, now); got != want {
			t.Errorf("%d failures: %v, want %v", failures, got, want)
		}
	}
}

func TestOrphanPodsMatchingTheSelectorAreAdoptedAndTracked(t *testing.T) {
	job := newJob("adopter", ptr.To[int32](1), ptr.To[int32](1))
	orphan := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stray", Namespace: "ns", UID: "stray-uid", ResourceVersion: "1", Labels: job.Spec.Template.Labels},
		Spec:       job.Spec.Template.Spec,
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	f := newFixture(t, job, orphan)
	f.step("adopter")
	got := f.allPods()
	if len(got) != 1 {
		t.Fatalf("%d pods, want the adopted one only", len(got))
	}
	if ref := metav1.GetControllerOf(got[0]); ref == nil || ref.UID != job.UID || !hasTrackingFinalizer(got[0]) {
		t.Fatalf("adopted pod: controllerRef %+v finalizers %v", ref, got[0].Finalizers)
	}
	f.finish(got[0], 0)
	f.step("adopter")
	wantCondition(t, f.job("adopter"), batchv1.JobComplete, "CompletionsReached", "Reached expected number of succeeded pods")
}

func TestPodsOfAFinishedJobLoseTheTrackingFinalizer(t *testing.T) {
	job := newJob("finished", ptr.To[int32](1), ptr.To[int32](1))
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}
	straggler := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: "late", Namespace: "ns", UID: "late-uid", ResourceVersion: "1", Labels: job.Spec.Template.Labels,
		Finalizers:      []string{batchv1.JobTrackingFinalizer},
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, controllerKind)},
	}}
	f := newFixture(t, job, straggler)
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return f.c.orphans.Len() > 0, nil
	})
	if err != nil {
		t.Fatal("the pod of the finished Job was never queued")
	}
	key, _ := f.c.orphans.Get()
	f.c.orphans.Done(key)
	if err := f.c.syncOrphanPod(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if got := f.allPods()[0]; hasTrackingFinalizer(got) {
		t.Errorf("finalizers = %v", got.Finalizers)
	}
}
