// Package ttlafterfinished is the TTL-after-finished controller: it deletes a Job
// spec.ttlSecondsAfterFinished seconds after the Job finished (its Complete or Failed
// condition's transition), with foreground propagation so that its pods go first, as
// upstream's.
//
// It must never delete a Job whose TTL has not expired by the latest read of it (a user may
// have raised or removed the TTL since the cache saw it), nor a Job recreated under the same
// name.
package ttlafterfinished

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

// Name is the controller's name in --controllers, logs and metrics.
const Name = "ttl-after-finished"

// Controller is the TTL-after-finished controller.
type Controller struct {
	client    kubernetes.Interface
	jobLister batchlisters.JobLister
	synced    []cache.InformerSynced
	queue     controllers.Queue
	metrics   *controllers.Metrics
	now       func() time.Time
}

// New makes a TTL-after-finished controller on a shared Job informer.
func New(jobInformer batchinformers.JobInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client:    client,
		jobLister: jobInformer.Lister(),
		synced:    []cache.InformerSynced{jobInformer.Informer().HasSynced},
		queue:     controllers.NewQueue(Name, r),
		metrics:   r.Metrics,
		now:       time.Now,
	}
	handle := func(obj any) {
		if job, ok := obj.(*batchv1.Job); ok && job.DeletionTimestamp == nil && needsCleanup(job) {
			if key, err := controllers.KeyOf(job); err == nil {
				c.queue.Add(key)
			}
		}
	}
	if _, err := jobInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, cur any) { handle(cur) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run deletes expired Jobs with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func needsCleanup(job *batchv1.Job) bool {
	return job.Spec.TTLSecondsAfterFinished != nil && finishedAt(job) != nil
}

// finishedAt is when the Job's Complete or Failed condition became true, or nil while it runs.
func finishedAt(job *batchv1.Job) *time.Time {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return ptr.To(c.LastTransitionTime.Time)
		}
	}
	return nil
}

// sync deletes the Job named by key if its TTL has expired by the cache and, read again, by the
// API; otherwise it asks to come back when it will.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.jobLister.Jobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if expired, err := c.expired(key, cached); err != nil || !expired {
		return err
	}
	fresh, err := c.client.BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if expired, err := c.expired(key, fresh); err != nil || !expired {
		return err
	}
	err = c.client.BatchV1().Jobs(namespace).Delete(ctx, name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationForeground),
		Preconditions:     &metav1.Preconditions{UID: &fresh.UID},
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// expired reports whether the Job's TTL has run out, queueing key for when it will.
func (c *Controller) expired(key string, job *batchv1.Job) (bool, error) {
	if job.DeletionTimestamp != nil || !needsCleanup(job) {
		return false, nil
	}
	finished := finishedAt(job)
	if finished.IsZero() {
		return false, fmt.Errorf("unable to find the time when the Job %s/%s finished", job.Namespace, job.Name)
	}
	now := c.now()
	if finished.After(now) {
		slog.Info("found Job finished in the future, likely clock skew; its cleanup waits", "controller", Name, "job", key)
	}
	left := finished.Add(time.Duration(*job.Spec.TTLSecondsAfterFinished) * time.Second).Sub(now)
	if left > 0 {
		c.queue.AddAfter(key, left)
		return false, nil
	}
	return true, nil
}
