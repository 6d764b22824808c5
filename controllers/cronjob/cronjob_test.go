package cronjob

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/controllers"
)

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

// created is when the test CronJobs were made: 12:00:30 UTC.
var created = time.Date(2026, 3, 2, 12, 0, 30, 0, time.UTC)

func newFixture(t *testing.T, objects ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objects...)
	client.PrependReactor("create", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		obj := a.(clienttesting.CreateAction).GetObject().(metav1.Object)
		if obj.GetUID() == "" {
			obj.SetUID(types.UID(fmt.Sprintf("uid-%d", seq.Add(1))))
		}
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(1000)
	c, err := New(factory.Batch().V1().CronJobs(), factory.Batch().V1().Jobs(), client, controllers.Reporting{
		Recorder: func(string) record.EventRecorder { return recorder },
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, client: client, c: c, factory: factory, recorder: recorder, clock: created}
	c.now = f.now
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	t.Cleanup(c.queue.ShutDown)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return f
}

func (f *fixture) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clock
}

func (f *fixture) at(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = t
}

func newCronJob(name, schedule string) *batchv1.CronJob {
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name + "-uid"), CreationTimestamp: metav1.NewTime(created)},
		Spec: batchv1.CronJobSpec{
			Schedule: schedule,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}, Annotations: map[string]string{"note": "x"}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyOnFailure,
					Containers:    []corev1.Container{{Name: "hello", Image: "busybox"}},
				}}},
			},
		},
	}
	apis.DefaultCronJob(cj)
	return cj
}

// sync syncs the CronJob and waits until the informers show the Jobs and the status it wrote.
func (f *fixture) sync(name string) {
	f.t.Helper()
	if err := f.c.sync(context.Background(), "ns/"+name); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
	f.settle()
}

func (f *fixture) settle() {
	f.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		jobs, _ := f.client.BatchV1().Jobs("ns").List(ctx, metav1.ListOptions{})
		cjs, _ := f.client.BatchV1().CronJobs("ns").List(ctx, metav1.ListOptions{})
		if len(f.factory.Batch().V1().Jobs().Informer().GetStore().List()) != len(jobs.Items) {
			return false, nil
		}
		for i := range cjs.Items {
			cached, err := f.c.cronLister.CronJobs("ns").Get(cjs.Items[i].Name)
			if err != nil || !equalStatus(&cached.Status, &cjs.Items[i].Status) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		f.t.Fatalf("informers never caught up: %v", err)
	}
}

func equalStatus(a, b *batchv1.CronJobStatus) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func (f *fixture) cronJob(name string) *batchv1.CronJob {
	f.t.Helper()
	cj, err := f.client.BatchV1().CronJobs("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return cj
}

func (f *fixture) jobs() []batchv1.Job {
	f.t.Helper()
	list, err := f.client.BatchV1().Jobs("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b batchv1.Job) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return list.Items
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

// finish marks a Job finished as the Job controller would.
func (f *fixture) finish(name string, as batchv1.JobConditionType, start, end time.Time) {
	f.t.Helper()
	job, err := f.client.BatchV1().Jobs("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	job.Status.StartTime = ptr.To(metav1.NewTime(start))
	job.Status.Conditions = []batchv1.JobCondition{{Type: as, Status: corev1.ConditionTrue}}
	if as == batchv1.JobComplete {
		job.Status.CompletionTime = ptr.To(metav1.NewTime(end))
	}
	if _, err := f.client.BatchV1().Jobs("ns").UpdateStatus(context.Background(), job, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		cached, err := f.factory.Batch().V1().Jobs().Lister().Jobs("ns").Get(name)
		return err == nil && len(cached.Status.Conditions) == 1, nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func TestCronJobCreatesOneJobPerScheduledTime(t *testing.T) {
	f := newFixture(t, newCronJob("hello", "*/5 * * * *"))
	f.at(created.Add(time.Minute))
	f.sync("hello")
	if n := len(f.jobs()); n != 0 {
		t.Fatalf("%d jobs before the first scheduled time", n)
	}

	scheduled := time.Date(2026, 3, 2, 12, 5, 0, 0, time.UTC)
	f.at(scheduled.Add(nextScheduleDelta))
	f.sync("hello")
	jobs := f.jobs()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs at the scheduled time, want 1", len(jobs))
	}
	job := jobs[0]
	if want := fmt.Sprintf("hello-%d", scheduled.Unix()/60); job.Name != want {
		t.Errorf("job name %q, want %q", job.Name, want)
	}
	if job.Annotations[batchv1.CronJobScheduledTimestampAnnotation] != "2026-03-02T12:05:00Z" || job.Annotations["note"] != "x" || job.Labels["app"] != "hello" {
		t.Errorf("job labels %v annotations %v", job.Labels, job.Annotations)
	}
	if ref := metav1.GetControllerOf(&job); ref == nil || ref.Kind != "CronJob" || ref.UID != "hello-uid" {
		t.Errorf("controllerRef = %+v", ref)
	}
	if job.Spec.Template.Spec.Containers[0].Image != "busybox" {
		t.Errorf("job spec not from the template: %+v", job.Spec)
	}
	cj := f.cronJob("hello")
	if len(cj.Status.Active) != 1 || cj.Status.Active[0].Name != job.Name || cj.Status.Active[0].Kind != "Job" ||
		cj.Status.LastScheduleTime == nil || !cj.Status.LastScheduleTime.Time.Equal(scheduled) {
		t.Errorf("status = %+v", cj.Status)
	}
	if e := f.events(); !slices.Contains(e, "Normal SuccessfulCreate Created job "+job.Name) {
		t.Errorf("events = %q", e)
	}

	f.sync("hello")
	if n := len(f.jobs()); n != 1 {
		t.Errorf("a second sync of the same time made %d jobs", n)
	}
}

func TestCronJobInItsTimeZone(t *testing.T) {
	cj := newCronJob("tokyo", "0 9 * * *")
	cj.Spec.TimeZone = ptr.To("Asia/Tokyo")
	f := newFixture(t, cj)
	f.at(time.Date(2026, 3, 3, 0, 0, 1, 0, time.UTC)) // 09:00:01 in Tokyo
	f.sync("tokyo")
	jobs := f.jobs()
	if len(jobs) != 1 || jobs[0].Annotations[batchv1.CronJobScheduledTimestampAnnotation] != "2026-03-03T09:00:00+09:00" {
		t.Fatalf("jobs = %d, annotation %v", len(jobs), jobs)
	}
}

func TestCronJobDescriptors(t *testing.T) {
	f := newFixture(t, newCronJob("hourly", "@hourly"))
	f.at(time.Date(2026, 3, 2, 13, 0, 5, 0, time.UTC))
	f.sync("hourly")
	if jobs := f.jobs(); len(jobs) != 1 || jobs[0].Name != fmt.Sprintf("hourly-%d", time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC).Unix()/60) {
		t.Errorf("jobs = %v", jobs)
	}
}

func TestSuspendedCronJobStartsNothing(t *testing.T) {
	cj := newCronJob("paused", "* * * * *")
	cj.Spec.Suspend = ptr.To(true)
	f := newFixture(t, cj)
	f.at(created.Add(10 * time.Minute))
	f.sync("paused")
	if n := len(f.jobs()); n != 0 {
		t.Errorf("a suspended CronJob started %d jobs", n)
	}
}

func TestStartingDeadlineSkipsTimesTooLongAgo(t *testing.T) {
	cj := newCronJob("late", "0 13 * * *")
	cj.Spec.StartingDeadlineSeconds = ptr.To[int64](60)
	f := newFixture(t, cj)
	f.at(time.Date(2026, 3, 2, 13, 2, 0, 0, time.UTC))
	f.sync("late")
	if n := len(f.jobs()); n != 0 {
		t.Errorf("started %d jobs two minutes after a one-minute deadline", n)
	}
	f.at(time.Date(2026, 3, 3, 13, 0, 30, 0, time.UTC))
	f.sync("late")
	if n := len(f.jobs()); n != 1 {
		t.Errorf("started %d jobs within the deadline, want 1", n)
	}
}

func TestMissedScheduleWithoutDeadlineRunsTheLatestTimeOnce(t *testing.T) {
	f := newFixture(t, newCronJob("catchup", "*/10 * * * *"))
	f.at(created.Add(time.Hour))
	f.sync("catchup")
	jobs := f.jobs()
	if len(jobs) != 1 || jobs[0].Annotations[batchv1.CronJobScheduledTimestampAnnotation] != "2026-03-02T13:00:00Z" {
		t.Errorf("jobs = %d, want one for 13:00", len(jobs))
	}
}

func TestConcurrencyPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy     batchv1.ConcurrencyPolicy
		wantJobs   int
		wantActive int
		wantEvent  string
	}{
		{batchv1.AllowConcurrent, 2, 2, ""},
		{batchv1.ForbidConcurrent, 1, 1, "Normal JobAlreadyActive Not starting job because prior execution is running and concurrency policy is Forbid"},
		{batchv1.ReplaceConcurrent, 1, 1, "Normal SuccessfulDelete Deleted job "},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			cj := newCronJob("c", "*/5 * * * *")
			cj.Spec.ConcurrencyPolicy = tc.policy
			f := newFixture(t, cj)
			f.at(time.Date(2026, 3, 2, 12, 5, 1, 0, time.UTC))
			f.sync("c")
			first := f.jobs()[0].Name
			f.events()
			f.at(time.Date(2026, 3, 2, 12, 10, 1, 0, time.UTC))
			f.sync("c")
			jobs := f.jobs()
			if len(jobs) != tc.wantJobs || len(f.cronJob("c").Status.Active) != tc.wantActive {
				t.Errorf("%d jobs, %d active; want %d, %d", len(jobs), len(f.cronJob("c").Status.Active), tc.wantJobs, tc.wantActive)
			}
			if tc.policy == batchv1.ReplaceConcurrent && jobs[0].Name == first {
				t.Errorf("the running job was not replaced")
			}
			if tc.wantEvent != "" {
				e := f.events()
				if !slices.ContainsFunc(e, func(s string) bool { return len(s) >= len(tc.wantEvent) && s[:len(tc.wantEvent)] == tc.wantEvent }) {
					t.Errorf("events = %q, want %q", e, tc.wantEvent)
				}
			}
		})
	}
}

func TestFinishedJobsLeaveTheActiveListAndSetLastSuccessfulTime(t *testing.T) {
	f := newFixture(t, newCronJob("done", "*/5 * * * *"))
	f.at(time.Date(2026, 3, 2, 12, 5, 1, 0, time.UTC))
	f.sync("done")
	name := f.jobs()[0].Name
	end := time.Date(2026, 3, 2, 12, 6, 0, 0, time.UTC)
	f.finish(name, batchv1.JobComplete, time.Date(2026, 3, 2, 12, 5, 1, 0, time.UTC), end)
	f.at(end)
	f.sync("done")
	if cj := f.cronJob("done"); len(cj.Status.Active) != 0 {
		t.Errorf("active = %v", cj.Status.Active)
	}
	if e := f.events(); !slices.Contains(e, "Normal SawCompletedJob Saw completed job: "+name+", condition: Complete") {
		t.Errorf("events = %q", e)
	}
	f.sync("done")
	if cj := f.cronJob("done"); cj.Status.LastSuccessfulTime == nil || !cj.Status.LastSuccessfulTime.Time.Equal(end) {
		t.Errorf("lastSuccessfulTime = %v, want %v", cj.Status.LastSuccessfulTime, end)
	}
}

func TestHistoryLimitsDeleteTheOldestFinishedJobs(t *testing.T) {
	cj := newCronJob("hist", "* * * * *")
	cj.Spec.SuccessfulJobsHistoryLimit = ptr.To[int32](2)
	cj.Spec.FailedJobsHistoryLimit = ptr.To[int32](0)
	f := newFixture(t, cj)
	var names []string
	for i := range 4 {
		f.at(created.Add(time.Duration(i+1) * time.Minute))
		f.sync("hist")
		jobs := f.jobs()
		names = append(names, jobs[len(jobs)-1].Name)
	}
	for i, name := range names[:3] {
		start := created.Add(time.Duration(i+1) * time.Minute)
		f.finish(name, batchv1.JobComplete, start, start.Add(time.Second))
	}
	f.finish(names[3], batchv1.JobFailed, created.Add(4*time.Minute), time.Time{})
	f.sync("hist")
	var left []string
	for _, j := range f.jobs() {
		left = append(left, j.Name)
	}
	if !slices.Equal(left, names[1:3]) {
		t.Errorf("jobs left %v, want the two newest successes %v", left, names[1:3])
	}
}

func TestMissingActiveJobIsDropped(t *testing.T) {
	f := newFixture(t, newCronJob("lost", "*/5 * * * *"))
	f.at(time.Date(2026, 3, 2, 12, 5, 1, 0, time.UTC))
	f.sync("lost")
	name := f.jobs()[0].Name
	if err := f.client.BatchV1().Jobs("ns").Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.events()
	f.sync("lost")
	if cj := f.cronJob("lost"); len(cj.Status.Active) != 0 {
		t.Errorf("active = %v", cj.Status.Active)
	}
	if e := f.events(); !slices.Contains(e, "Normal MissingJob Active job went missing: "+name) {
		t.Errorf("events = %q", e)
	}
}

func TestNextSyncIsJustAfterTheNextScheduledTime(t *testing.T) {
	cj := newCronJob("next", "*/5 * * * *")
	sched, err := cron.ParseStandard(cj.Spec.Schedule)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 12, 2, 0, 0, time.UTC)
	if got, want := nextSyncAfter(cj, now, sched), 3*time.Minute+nextScheduleDelta; got != want {
		t.Errorf("next sync after %v, want %v", got, want)
	}
	cj.Status.LastScheduleTime = ptr.To(metav1.NewTime(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)))
	now = time.Date(2026, 3, 2, 12, 7, 0, 0, time.UTC)
	if got, want := nextSyncAfter(cj, now, sched), 3*time.Minute+nextScheduleDelta; got != want {
		t.Errorf("with a missed 12:05, next sync after %v, want %v", got, want)
	}
}

func TestImpossibleScheduleIsReported(t *testing.T) {
	f := newFixture(t, newCronJob("never", "59 23 31 2 *"))
	f.at(created.Add(time.Hour))
	f.sync("never")
	if n := len(f.jobs()); n != 0 {
		t.Errorf("%d jobs for a schedule that cannot happen", n)
	}
}

func TestJobFromTemplateIsAValidJobOnceTheServerDefaultsIt(t *testing.T) {
	cj := newCronJob("valid", "@daily")
	if errs := apis.ValidateCronJob(cj); len(errs) > 0 {
		t.Fatalf("the test CronJob is invalid: %v", errs)
	}
	job := JobFromTemplate(cj, time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC))
	job.UID = "job-uid"
	apis.DefaultJob(job)
	apis.GenerateJobSelector(job)
	if errs := apis.ValidateJob(job); len(errs) > 0 {
		t.Errorf("the API server would refuse the Job: %v", errs)
	}
	if job.Name != "valid-29541600" {
		t.Errorf("name = %q", job.Name)
	}
}
