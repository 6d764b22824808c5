// Package job is the Job controller: it runs each batch/v1 Job's pods to completion, as
// upstream's. It creates pods up to parallelism and the remaining completions (one per index
// for an Indexed Job, with JOB_COMPLETION_INDEX and the hostname <job>-<index>), recreates
// failed ones after an exponential back-off, counts every finished pod exactly once through
// the batch.kubernetes.io/job-tracking finalizer and status.uncountedTerminatedPods, applies
// backoffLimit, backoffLimitPerIndex, the pod failure policy, the success policy and
// activeDeadlineSeconds, suspends and resumes, and writes the Job's status and conditions.
//
// It must never touch pods another controller owns, never count a pod twice (a pod's finalizer
// comes off only after its UID is in the status), and never mark a Job finished while a pod of
// it is still uncounted or terminating.
package job

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "job"
	// Component names the controller in the Events it records.
	Component = "job-controller"
	// ManagedBy is the spec.managedBy value of Jobs this controller syncs (or none).
	ManagedBy = "kubernetes.io/job-controller"

	// MaxPodCreateDeletePerSync bounds the pods one sync creates or deletes.
	MaxPodCreateDeletePerSync = 500
	// MaxUncountedPods bounds the UIDs one status write adds to uncountedTerminatedPods, so
	// that the Job object stays small.
	MaxUncountedPods = 500
	// DefaultJobPodFailureBackOff is the wait before recreating a pod after one failure; it
	// doubles with each further failure up to MaxJobPodFailureBackOff.
	DefaultJobPodFailureBackOff = 10 * time.Second
	MaxJobPodFailureBackOff     = 10 * time.Minute

	// CompletionIndexEnv is the variable through which an Indexed Job's pod learns its index.
	CompletionIndexEnv = "JOB_COMPLETION_INDEX"
	// CompletionIndexLabel carries the index as a label too, for selection.
	CompletionIndexLabel = batchv1.JobCompletionIndexAnnotation
)

var controllerKind = batchv1.SchemeGroupVersion.WithKind("Job")

// Controller is the Job controller.
type Controller struct {
	client    kubernetes.Interface
	jobLister batchlisters.JobLister
	podStore  cache.Indexer
	synced    []cache.InformerSynced
	queue     controllers.Queue
	// orphans holds keys of pods that carry our finalizer but whose Job is gone.
	orphans      controllers.Queue
	expectations *controllers.Expectations
	finalizers   *finalizerExpectations
	backoff      *backoffStore
	recorder     record.EventRecorder
	metrics      *controllers.Metrics
	now          func() time.Time
}

// New makes a Job controller on shared informers of Jobs and pods. Call it before the
// informers start: it adds an index to the pod informer.
func New(jobInformer batchinformers.JobInformer, podInformer coreinformers.PodInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	if err := controllers.AddControllerUIDIndex(podInformer.Informer()); err != nil {
		return nil, fmt.Errorf("index pods by controller: %w", err)
	}
	c := &Controller{
		client:       client,
		jobLister:    jobInformer.Lister(),
		podStore:     podInformer.Informer().GetIndexer(),
		synced:       []cache.InformerSynced{jobInformer.Informer().HasSynced, podInformer.Informer().HasSynced},
		queue:        controllers.NewQueue(Name, r),
		orphans:      controllers.NewQueue(Name+"_orphan_pod", r),
		expectations: controllers.NewExpectations(),
		finalizers:   newFinalizerExpectations(),
		backoff:      newBackoffStore(),
		recorder:     r.EventRecorder(Component),
		metrics:      r.Metrics,
		now:          time.Now,
	}
	if _, err := jobInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.enqueue(obj) },
		UpdateFunc: c.updateJob,
		DeleteFunc: c.deleteJob,
	}); err != nil {
		return nil, err
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run syncs Jobs with workers goroutines, and frees orphaned pods of their finalizer with one,
// until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		controllers.Workers{Name: Name + "-orphan-pods", Queue: c.orphans, Sync: c.syncOrphanPod, Metrics: c.metrics, Synced: c.synced}.Run(ctx, 1)
	}()
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
	<-done
}

func (c *Controller) enqueue(obj any) {
	if key, err := controllers.KeyOf(obj); err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) updateJob(old, cur any) {
	oldJob, curJob := old.(*batchv1.Job), cur.(*batchv1.Job)
	if oldJob.UID != curJob.UID {
		if key, err := controllers.KeyOf(oldJob); err == nil {
			c.deleteJob(cache.DeletedFinalStateUnknown{Key: key, Obj: oldJob})
		}
	}
	c.enqueue(curJob)
}

func (c *Controller) deleteJob(obj any) {
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
	key, err := controllers.KeyOf(job)
	if err != nil {
		return
	}
	c.expectations.Delete(key)
	c.finalizers.forget(key)
	c.backoff.forget(key)
	// its pods may still carry our finalizer: nobody else will take it off
	if pods, err := c.podStore.ByIndex(controllers.ControllerUIDIndex, string(job.UID)); err == nil {
		for _, obj := range pods {
			if pod := obj.(*corev1.Pod); hasTrackingFinalizer(pod) {
				c.orphans.Add(controllers.PodKey(pod))
			}
		}
	}
	c.queue.Add(key)
}

// resolveControllerRef is the Job a ControllerRef names, if it is in the cache with that UID.
func (c *Controller) resolveControllerRef(namespace string, ref *metav1.OwnerReference) *batchv1.Job {
	if ref.Kind != controllerKind.Kind || ref.APIVersion != controllerKind.GroupVersion().String() {
		return nil
	}
	job, err := c.jobLister.Jobs(namespace).Get(ref.Name)
	if err != nil || job.UID != ref.UID {
		return nil
	}
	return job
}

// jobOfPod is the key of the Job controlling pod, or "". A pod carrying our finalizer whose
// Job is gone or finished is queued to lose it: no sync of that Job will count it.
func (c *Controller) jobOfPod(pod *corev1.Pod) string {
	ref := metav1.GetControllerOf(pod)
	var job *batchv1.Job
	if ref != nil {
		job = c.resolveControllerRef(pod.Namespace, ref)
	}
	if hasTrackingFinalizer(pod) && (job == nil || isFinished(job)) {
		c.orphans.Add(controllers.PodKey(pod))
	}
	if job == nil {
		return ""
	}
	key, err := controllers.KeyOf(job)
	if err != nil {
		return ""
	}
	return key
}

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		c.deletePod(pod)
		return
	}
	if key := c.jobOfPod(pod); key != "" {
		c.expectations.CreationObserved(key)
		c.queue.Add(key)
		return
	}
	// an orphan: a Job whose selector matches may adopt it
	if metav1.GetControllerOf(pod) == nil {
		for _, job := range c.jobsSelecting(pod) {
			c.enqueue(job)
		}
	}
}

func (c *Controller) jobsSelecting(pod *corev1.Pod) []*batchv1.Job {
	jobs, err := c.jobLister.GetPodJobs(pod)
	if err != nil {
		return nil
	}
	out := make([]*batchv1.Job, len(jobs))
	for i := range jobs {
		out[i] = &jobs[i]
	}
	return out
}

func (c *Controller) updatePod(old, cur any) {
	oldPod, curPod := old.(*corev1.Pod), cur.(*corev1.Pod)
	if hasTrackingFinalizer(oldPod) && !hasTrackingFinalizer(curPod) {
		if ref := metav1.GetControllerOf(oldPod); ref != nil {
			if job := c.resolveControllerRef(oldPod.Namespace, ref); job != nil {
				if key, err := controllers.KeyOf(job); err == nil {
					c.finalizers.observed(key, curPod.UID)
				}
			}
		}
	}
	if curPod.ResourceVersion == oldPod.ResourceVersion {
		return // a resync: nothing changed
	}
	if curPod.DeletionTimestamp != nil && oldPod.DeletionTimestamp == nil {
		// a graceful deletion started: act now, not when the pod is gone
		c.deletePod(curPod)
		return
	}
	oldRef, curRef := metav1.GetControllerOf(oldPod), metav1.GetControllerOf(curPod)
	if oldRef != nil && (curRef == nil || oldRef.UID != curRef.UID) {
		if job := c.resolveControllerRef(oldPod.Namespace, oldRef); job != nil {
			c.enqueue(job)
		}
	}
	if key := c.jobOfPod(curPod); key != "" {
		c.queue.Add(key)
		return
	}
	if curRef == nil {
		for _, job := range c.jobsSelecting(curPod) {
			c.enqueue(job)
		}
	}
}

func (c *Controller) deletePod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		tombstone, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if pod, ok = tombstone.Obj.(*corev1.Pod); !ok {
			return
		}
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return
	}
	job := c.resolveControllerRef(pod.Namespace, ref)
	if job == nil {
		if hasTrackingFinalizer(pod) && pod.DeletionTimestamp != nil {
			c.orphans.Add(controllers.PodKey(pod))
		}
		return
	}
	key, err := controllers.KeyOf(job)
	if err != nil {
		return
	}
	c.expectations.DeletionObserved(key, controllers.PodKey(pod))
	if _, exists, _ := c.podStore.Get(pod); !exists {
		// gone with its finalizer: there is nothing left to remove
		c.finalizers.observed(key, pod.UID)
	}
	c.queue.Add(key)
}

// syncOrphanPod takes our finalizer off a pod whose Job is gone, finished or never was, so
// that it can be deleted.
func (c *Controller) syncOrphanPod(ctx context.Context, key string) error {
	obj, exists, err := c.podStore.GetByKey(key)
	if err != nil || !exists {
		return err
	}
	pod := obj.(*corev1.Pod)
	if !hasTrackingFinalizer(pod) {
		return nil
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		if ref.Kind != controllerKind.Kind || ref.APIVersion != controllerKind.GroupVersion().String() {
			return nil // another kind of controller put it there: not ours to remove
		}
		if job := c.resolveControllerRef(pod.Namespace, ref); job != nil {
			if m := job.Spec.ManagedBy; (m != nil && *m != ManagedBy) || !isFinished(job) {
				return nil // its Job counts it (or another controller runs that Job)
			}
		}
	}
	if err := c.removeTrackingFinalizer(ctx, pod); err != nil && !isGone(err) {
		return err
	}
	return nil
}

// removeTrackingFinalizerPatch removes our finalizer and nothing else; the UID makes it fail
// on a pod recreated under the same name.
func removeTrackingFinalizerPatch(uid types.UID) []byte {
	return fmt.Appendf(nil, `{"metadata":{"$deleteFromPrimitiveList/finalizers":[%q],"uid":%q}}`, batchv1.JobTrackingFinalizer, uid)
}

func (c *Controller) removeTrackingFinalizer(ctx context.Context, pod *corev1.Pod) error {
	_, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, removeTrackingFinalizerPatch(pod.UID), metav1.PatchOptions{})
	return err
}

// isGone: the pod of a finalizer removal is gone, or was replaced by one with another UID.
func isGone(err error) bool { return apierrors.IsNotFound(err) || apierrors.IsInvalid(err) }
