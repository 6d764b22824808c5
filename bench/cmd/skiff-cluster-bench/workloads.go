package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The workload scenarios of the workloads issue, each timed from the create to the state a
// user waits for (`kubectl wait --for=condition=complete`, `kubectl rollout status`).

// jobCompletions runs a Job of --replicas completions at --job-parallelism and measures until
// its Complete condition. Its pods exit 0 at once: skiff sim by the fake runtime's script
// annotation, kwok by its pod-complete stage for pods a Job owns.
func (b *bench) jobCompletions(ctx context.Context, _ *cluster) ([]row, error) {
	labels := map[string]string{"scenario": "job"}
	template := b.podTemplate(labels)
	template.Annotations = map[string]string{"fake.skiff.dev/app": "exit=0"}
	template.Spec.RestartPolicy = corev1.RestartPolicyNever
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "completions"},
		Spec: batchv1.JobSpec{
			Completions:  ptr.To(int32(b.o.replicas)),
			Parallelism:  ptr.To(int32(b.o.jobParallelism)),
			BackoffLimit: ptr.To[int32](0),
			Template:     template,
		},
	}
	start := time.Now()
	if _, err := b.client.BatchV1().Jobs(namespace).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	err := b.poll(ctx, func() (bool, string, error) {
		j, err := b.client.BatchV1().Jobs(namespace).Get(ctx, job.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		for _, c := range j.Status.Conditions {
			if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
				if c.Type == batchv1.JobFailed {
					return false, "", fmt.Errorf("job failed: %s", c.Message)
				}
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d of %d succeeded, %d active", j.Status.Succeeded, b.o.replicas, j.Status.Active), nil
	})
	if err != nil {
		return nil, err
	}
	r := row{scenario: "job completions", count: b.o.replicas, wall: time.Since(start),
		note: fmt.Sprintf("parallelism %d; create to the Complete condition", b.o.jobParallelism)}
	if err := b.client.BatchV1().Jobs(namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
		return []row{r}, err
	}
	return []row{r}, b.deleteAll(ctx, "scenario", "job")
}

// daemonSetRollout creates a DaemonSet and measures until a pod is ready on every node, then
// changes its template and measures the rolling update (maxUnavailable 10%) to its end.
func (b *bench) daemonSetRollout(ctx context.Context, _ *cluster) ([]row, error) {
	labels := map[string]string{"scenario": "daemonset"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: b.podTemplate(labels),
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{
					MaxUnavailable: ptr.To(intstr.FromString("10%"))},
			},
		},
	}
	start := time.Now()
	created, err := b.client.AppsV1().DaemonSets(namespace).Create(ctx, ds, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	r, stalled, err := b.waitOrReportStall(ctx, created.Name, created.Generation, start,
		row{scenario: "daemonset create", count: b.o.nodes, note: "create to a ready pod on every node"})
	if err != nil && !stalled {
		return nil, err
	}
	rows := []row{r}
	if err != nil {
		return rows, err
	}
	if !stalled {
		start = time.Now()
		patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"bench.skiff.dev/restartedAt":%q}}}}}`, start.Format(time.RFC3339Nano))
		updated, err := b.client.AppsV1().DaemonSets(namespace).Patch(ctx, ds.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil {
			return rows, err
		}
		r, stalled, err = b.waitOrReportStall(ctx, updated.Name, updated.Generation, start,
			row{scenario: "daemonset rollout", count: b.o.nodes, note: "template change to every node's pod updated and ready (maxUnavailable 10%)"})
		if err != nil && !stalled {
			return rows, err
		}
		rows = append(rows, r)
		if err != nil {
			return rows, err
		}
	}
	if err := b.client.AppsV1().DaemonSets(namespace).Delete(ctx, ds.Name, metav1.DeleteOptions{}); err != nil {
		return rows, err
	}
	return rows, b.deleteAll(ctx, "scenario", "daemonset")
}

// rolloutBound is how long a DaemonSet's pods may take to be all updated and available before
// it is reported as stalled.
const rolloutBound = 5 * time.Minute

// waitOrReportStall waits for the DaemonSet as waitDaemonSet does, for at most rolloutBound,
// and returns r with the time since start. One that does not get there is a finding, not the
// end of the run: r says STALLED, and what the DaemonSet waits for is written out.
func (b *bench) waitOrReportStall(ctx context.Context, name string, generation int64, start time.Time, r row) (_ row, stalled bool, _ error) {
	waitCtx, cancel := context.WithTimeout(ctx, rolloutBound)
	err := b.waitDaemonSet(waitCtx, name, generation)
	cancel()
	b.reportPodsMarkedNotReady(ctx, os.Stderr)
	switch {
	case err == nil:
		r.wall = time.Since(start)
		return r, false, nil
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		r.note = fmt.Sprintf("STALLED: not complete after %s (%v)", rolloutBound, err)
		if err := b.describeStalledDaemonSet(ctx, os.Stderr, name); err != nil {
			return r, true, err
		}
		if b.o.holdOnStall {
			fmt.Fprintf(os.Stderr, "holding the cluster as it is (--hold-on-stall; KUBECONFIG=%s); interrupt to tear it down\n", b.kubeconfig)
			<-ctx.Done()
			return r, true, ctx.Err()
		}
		return r, true, nil
	default:
		return r, false, err
	}
}

// waitDaemonSet waits as `kubectl rollout status daemonset` does: the generation observed,
// every node's pod updated and available.
func (b *bench) waitDaemonSet(ctx context.Context, name string, generation int64) error {
	return b.poll(ctx, func() (bool, string, error) {
		d, err := b.client.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		s := d.Status
		done := s.ObservedGeneration >= generation && s.DesiredNumberScheduled == int32(b.o.nodes) &&
			s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberAvailable == s.DesiredNumberScheduled
		return done, fmt.Sprintf("%d updated, %d available of %d", s.UpdatedNumberScheduled, s.NumberAvailable, s.DesiredNumberScheduled), nil
	})
}

// statefulSetOrdered creates a StatefulSet of --statefulset-replicas with OrderedReady pod
// management, each pod created only when the one before it is ready, and measures until all
// are ready.
func (b *bench) statefulSetOrdered(ctx context.Context, _ *cluster) ([]row, error) {
	labels := map[string]string{"scenario": "statefulset"}
	n := int32(b.o.statefulSetReplicas)
	ss := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "ordered"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(n),
			ServiceName:         "ordered",
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template:            b.podTemplate(labels),
		},
	}
	start := time.Now()
	if _, err := b.client.AppsV1().StatefulSets(namespace).Create(ctx, ss, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	err := b.poll(ctx, func() (bool, string, error) {
		s, err := b.client.AppsV1().StatefulSets(namespace).Get(ctx, ss.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		return s.Status.ReadyReplicas == n, fmt.Sprintf("%d of %d ready", s.Status.ReadyReplicas, n), nil
	})
	if err != nil {
		return nil, err
	}
	r := row{scenario: "statefulset ordered", count: int(n), wall: time.Since(start), note: "OrderedReady: create to every replica ready, one after another"}
	if err := b.client.AppsV1().StatefulSets(namespace).Delete(ctx, ss.Name, metav1.DeleteOptions{}); err != nil {
		return []row{r}, err
	}
	return []row{r}, b.deleteAll(ctx, "scenario", "statefulset")
}

// poll calls check every 100 ms until it reports done, an error, or ctx ends; the progress
// it describes is printed every few seconds and given with a timeout.
func (b *bench) poll(ctx context.Context, check func() (done bool, progress string, err error)) error {
	lastReport := time.Now()
	for {
		done, progress, err := check()
		if err != nil || done {
			return err
		}
		if time.Since(lastReport) > 5*time.Second {
			fmt.Fprintf(os.Stderr, "  %s\n", progress)
			lastReport = time.Now()
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("%s: %w", progress, err)
		}
	}
}
