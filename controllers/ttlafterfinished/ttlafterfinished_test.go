package ttlafterfinished

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

var finished = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

func finishedJob(name string, ttl *int32, as batchv1.JobConditionType) *batchv1.Job {
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Spec:       batchv1.JobSpec{TTLSecondsAfterFinished: ttl},
	}
	if as != "" {
		job.Status.Conditions = []batchv1.JobCondition{{Type: as, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(finished)}}
	}
	return job
}

func newController(t *testing.T, now time.Time, objects ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objects...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Batch().V1().Jobs(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return now }
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	t.Cleanup(c.queue.ShutDown)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return c, client
}

func deletes(client *fake.Clientset) []clienttesting.DeleteActionImpl {
	var out []clienttesting.DeleteActionImpl
	for _, a := range client.Actions() {
		if d, ok := a.(clienttesting.DeleteActionImpl); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestExpiredJobIsDeletedInTheForegroundOnlyIfStillTheSame(t *testing.T) {
	job := finishedJob("done", ptr.To[int32](60), batchv1.JobComplete)
	c, client := newController(t, finished.Add(time.Minute), job)
	if err := c.sync(context.Background(), "ns/done"); err != nil {
		t.Fatal(err)
	}
	d := deletes(client)
	if len(d) != 1 || d[0].Name != "done" {
		t.Fatalf("deletes = %+v, want the job", d)
	}
	opts := d[0].DeleteOptions
	if ptr.Deref(opts.PropagationPolicy, "") != metav1.DeletePropagationForeground || opts.Preconditions == nil || ptr.Deref(opts.Preconditions.UID, "") != job.UID {
		t.Errorf("delete options = %+v, want foreground with the job's UID as precondition", opts)
	}
}

func TestFailedJobsExpireToo(t *testing.T) {
	c, client := newController(t, finished.Add(time.Hour), finishedJob("failed", ptr.To[int32](0), batchv1.JobFailed))
	if err := c.sync(context.Background(), "ns/failed"); err != nil {
		t.Fatal(err)
	}
	if len(deletes(client)) != 1 {
		t.Errorf("a failed job past its TTL was kept")
	}
}

func TestJobsNotExpiredAreKeptAndLookedAtAgain(t *testing.T) {
	for name, job := range map[string]*batchv1.Job{
		"ttl not reached": finishedJob("young", ptr.To[int32](3600), batchv1.JobComplete),
		"no ttl":          finishedJob("forever", nil, batchv1.JobComplete),
		"still running":   finishedJob("running", ptr.To[int32](0), ""),
	} {
		t.Run(name, func(t *testing.T) {
			c, client := newController(t, finished.Add(time.Minute), job)
			if err := c.sync(context.Background(), "ns/"+job.Name); err != nil {
				t.Fatal(err)
			}
			if d := deletes(client); len(d) != 0 {
				t.Errorf("deleted %+v", d)
			}
		})
	}
}

func TestTTLRaisedSinceTheCacheSawItKeepsTheJob(t *testing.T) {
	c, client := newController(t, finished.Add(time.Minute), finishedJob("raised", ptr.To[int32](10), batchv1.JobComplete))
	client.PrependReactor("get", "jobs", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, finishedJob("raised", ptr.To[int32](3600), batchv1.JobComplete), nil
	})
	if err := c.sync(context.Background(), "ns/raised"); err != nil {
		t.Fatal(err)
	}
	if d := deletes(client); len(d) != 0 {
		t.Errorf("deleted %+v after the TTL was raised", d)
	}
}
