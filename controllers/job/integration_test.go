package job_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/cronjob"
	"github.com/skiff-dev/skiff/controllers/job"
)

// startBatch runs an API server with the Job and CronJob controllers and a stand-in kubelet
// that runs every pod to success at once.
func startBatch(t *testing.T) *apiservertest.Server {
	t.Helper()
	s := apiservertest.Start(t)
	client := s.Client
	ctx, cancel := context.WithCancel(context.Background())
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	r := controllers.Reporting{Recorder: func(component string) record.EventRecorder {
		return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
	}}
	factory := informers.NewSharedInformerFactory(client, 0)
	jc, err := job.New(factory.Batch().V1().Jobs(), factory.Core().V1().Pods(), client, r)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cronjob.New(factory.Batch().V1().CronJobs(), factory.Batch().V1().Jobs(), client, r)
	if err != nil {
		t.Fatal(err)
	}
	factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			pod := obj.(*corev1.Pod).DeepCopy()
			now := metav1.Now()
			pod.Status.Phase = corev1.PodSucceeded
			pod.Status.StartTime = &now
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: pod.Spec.Containers[0].Name, Image: pod.Spec.Containers[0].Image,
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}}}}
			client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		},
	})
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context, int){jc.Run, cc.Run} {
		wg.Go(func() { run(ctx, 2) })
	}
	t.Cleanup(func() { cancel(); wg.Wait(); factory.Shutdown(); broadcaster.Shutdown() })
	return s
}

func TestJobRunsItsCompletionsAndKubectlWaitsForComplete(t *testing.T) {
	s := startBatch(t)
	ctx := context.Background()
	j, err := s.Client.BatchV1().Jobs("default").Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "pi"},
		Spec: batchv1.JobSpec{
			Completions: ptr.To[int32](3), Parallelism: ptr.To[int32](2),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "pi", Image: "busybox"}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// the server generated the selector and labels from the uid, and defaulted the rest
	if j.Spec.Selector == nil || j.Spec.Selector.MatchLabels["batch.kubernetes.io/controller-uid"] != string(j.UID) ||
		j.Spec.Template.Labels["batch.kubernetes.io/job-name"] != "pi" || *j.Spec.BackoffLimit != 6 || *j.Spec.CompletionMode != batchv1.NonIndexedCompletion {
		t.Fatalf("job not defaulted: selector %v labels %v", j.Spec.Selector, j.Spec.Template.Labels)
	}

	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	kubeconfig := filepath.Join(s.DataDir, "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "wait", "--for=condition=complete", "--timeout=60s", "job/pi").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "job.batch/pi condition met") {
		t.Fatalf("kubectl wait: %v\n%s", err, out)
	}
	done, err := s.Client.BatchV1().Jobs("default").Get(ctx, "pi", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if done.Status.Succeeded != 3 || done.Status.CompletionTime == nil {
		t.Errorf("status %+v", done.Status)
	}
	out, err = exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "jobs").CombinedOutput()
	if lines := strings.Split(string(out), "\n"); err != nil || len(lines) < 2 ||
		strings.Join(strings.Fields(lines[0]), " ") != "NAME STATUS COMPLETIONS DURATION AGE" ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "pi Complete 3/3 ") {
		t.Errorf("kubectl get jobs: %v\n%s", err, out)
	}
	// a delete that names no propagation policy orphans the pods (batch/v1's default): the
	// orphan finalizer holds the Job for the garbage collector
	if err := s.Client.BatchV1().Jobs("default").Delete(ctx, "pi", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	gone, err := s.Client.BatchV1().Jobs("default").Get(ctx, "pi", metav1.GetOptions{})
	if err != nil || gone.DeletionTimestamp == nil || !slices.Contains(gone.Finalizers, metav1.FinalizerOrphanDependents) {
		t.Errorf("job after a delete without a policy: %v %v", gone.Finalizers, err)
	}
}

func TestCronJobStartsAJobOnSchedule(t *testing.T) {
	s := startBatch(t)
	ctx := context.Background()
	if _, err := s.Client.BatchV1().CronJobs("default").Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "every-minute"},
		Spec: batchv1.CronJobSpec{
			Schedule: "* * * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyOnFailure, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// the next minute starts a Job named after its scheduled time, owned by the CronJob
	if err := wait.PollUntilContextTimeout(ctx, time.Second, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		jobs, err := s.Client.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{})
		if err != nil || len(jobs.Items) == 0 {
			return false, err
		}
		j := jobs.Items[0]
		if !strings.HasPrefix(j.Name, "every-minute-") || len(j.OwnerReferences) != 1 || j.OwnerReferences[0].Kind != "CronJob" {
			t.Fatalf("job %s owners %v", j.Name, j.OwnerReferences)
		}
		return true, nil
	}); err != nil {
		t.Fatalf("no job started: %v", err)
	}
}

// `kubectl create job --from=cronjob/NAME` makes a Job from the CronJob's template, owned by
// it and marked as started by hand; the Job controller runs it like any other.
func TestKubectlCreatesAJobFromACronJob(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	s := startBatch(t)
	ctx := context.Background()
	cj, err := s.Client.BatchV1().CronJobs("default").Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "backup"},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 3 * * *", Suspend: ptr.To(true), // only the manual run starts
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "backup"}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyOnFailure, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(s.DataDir, "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("create", "job", "backup-now", "--from=cronjob/backup"); !strings.Contains(out, "job.batch/backup-now created") {
		t.Fatalf("create job --from: %s", out)
	}
	run("wait", "--for=condition=complete", "--timeout=60s", "job/backup-now")
	j, err := s.Client.BatchV1().Jobs("default").Get(ctx, "backup-now", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(j.OwnerReferences) != 1 || j.OwnerReferences[0].UID != cj.UID || j.OwnerReferences[0].Kind != "CronJob" ||
		j.Annotations["cronjob.kubernetes.io/instantiate"] != "manual" || j.Labels["app"] != "backup" || j.Status.Succeeded != 1 {
		t.Errorf("job from the cronjob: owners %v annotations %v labels %v succeeded %d", j.OwnerReferences, j.Annotations, j.Labels, j.Status.Succeeded)
	}
	// a suspended CronJob's controller leaves a Job it did not start alone
	if jobs, err := s.Client.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{}); err != nil || len(jobs.Items) != 1 {
		t.Errorf("jobs: %d, %v", len(jobs.Items), err)
	}
}
