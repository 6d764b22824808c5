// Package namespace is the namespace controller: it empties a namespace being deleted of every
// namespaced resource the API server serves (pods first, gracefully), reports its progress in the
// namespace's conditions as upstream does, then removes the "kubernetes" finalizer through
// namespaces/finalize so that the namespace goes. It must never touch a namespace that is not
// being deleted.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "namespace"
	// ResyncPeriod is how often every terminating namespace is looked at again.
	ResyncPeriod = 5 * time.Minute
	// DeletionGracePeriod is how long the controller waits after seeing a namespace change
	// before acting, as upstream: every API server must have seen it terminate and refuse new
	// content first.
	DeletionGracePeriod = 5 * time.Second
	// finalizerEstimateSeconds is how long objects with finalizers are given, per round.
	finalizerEstimateSeconds = int64(15)
)

// DiscoverResourcesFunc lists the namespaced resources the API server serves
// (discovery.ServerPreferredNamespacedResources).
type DiscoverResourcesFunc func() ([]*metav1.APIResourceList, error)

// Controller is the namespace controller.
type Controller struct {
	client    kubernetes.Interface
	dynamic   dynamic.Interface
	discover  DiscoverResourcesFunc
	lister    corelisters.NamespaceLister
	synced    cache.InformerSynced
	queue     controllers.Queue
	metrics   *controllers.Metrics
	gracetime time.Duration
	now       func() time.Time
}

// New makes a namespace controller. dyn lists and deletes content of every resource; discover
// says which resources there are.
func New(nsInformer coreinformers.NamespaceInformer, client kubernetes.Interface, dyn dynamic.Interface, discover DiscoverResourcesFunc, r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client:   client,
		dynamic:  dyn,
		discover: discover,
		lister:   nsInformer.Lister(),
		synced:   nsInformer.Informer().HasSynced,
		queue: controllers.NewQueueWithRateLimiter(Name,
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](5*time.Millisecond, 60*time.Second), r),
		metrics:   r.Metrics,
		gracetime: DeletionGracePeriod,
		now:       time.Now,
	}
	_, err := nsInformer.Informer().AddEventHandlerWithResyncPeriod(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
	}, ResyncPeriod)
	return c, err
}

func (c *Controller) enqueue(obj any) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok || ns.DeletionTimestamp == nil {
		return
	}
	if key, err := controllers.KeyOf(ns); err == nil {
		c.queue.AddAfter(key, c.gracetime)
	}
}

// Run empties terminating namespaces with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: []cache.InformerSynced{c.synced}}.Run(ctx, workers)
}

// resourcesRemaining is the error of a round that deleted what it could and must wait.
type resourcesRemaining struct{ estimate int64 }

func (e *resourcesRemaining) Error() string {
	return fmt.Sprintf("some content remains in the namespace, estimate %d seconds before it is removed", e.estimate)
}

// sync deletes the content of the namespace named key if it is terminating, and finalizes it
// once it is empty.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, err := c.lister.Get(key)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	err = c.deleteNamespace(ctx, ns.Name)
	var remaining *resourcesRemaining
	if errors.As(err, &remaining) {
		return controllers.RequeueAfter(time.Duration(remaining.estimate/2+1)*time.Second, err)
	}
	return err
}

// deleteNamespace is upstream's NamespacedResourcesDeleter.Delete.
func (c *Controller) deleteNamespace(ctx context.Context, name string) error {
	// other controllers edit terminating namespaces too: start from the latest
	ns, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil {
		return nil
	}
	ns, err = c.retryOnConflict(ctx, ns, c.markTerminating)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return nil
	}
	estimate, err := c.deleteAllContent(ctx, ns)
	if err != nil {
		return err
	}
	if estimate > 0 {
		return &resourcesRemaining{estimate: estimate}
	}
	finalized, err := c.retryOnConflict(ctx, ns, c.finalize)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	// An API server removes a namespace when its last finalizer goes; one that does not yet
	// (as upstream did before 1.10) is asked to once nothing holds it any more.
	if finalized != nil && finalized.Name != "" && len(finalized.Spec.Finalizers) == 0 && len(finalized.Finalizers) == 0 {
		uid := finalized.UID
		err := c.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
	}
	return nil
}

type namespaceUpdate func(ctx context.Context, ns *corev1.Namespace) (*corev1.Namespace, error)

// retryOnConflict applies fn to the latest namespace until it does not conflict, as long as the
// namespace is the same one (UID).
func (c *Controller) retryOnConflict(ctx context.Context, ns *corev1.Namespace, fn namespaceUpdate) (*corev1.Namespace, error) {
	for {
		result, err := fn(ctx, ns)
		if !apierrors.IsConflict(err) {
			return result, err
		}
		latest, err := c.client.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		if latest.UID != ns.UID {
			return nil, fmt.Errorf("namespace uid has changed across retries")
		}
		ns = latest
	}
}

func (c *Controller) markTerminating(ctx context.Context, ns *corev1.Namespace) (*corev1.Namespace, error) {
	if ns.DeletionTimestamp == nil || ns.Status.Phase == corev1.NamespaceTerminating {
		return ns, nil
	}
	ns = ns.DeepCopy()
	ns.Status.Phase = corev1.NamespaceTerminating
	return c.client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{})
}

// finalize removes the "kubernetes" finalizer through namespaces/finalize.
func (c *Controller) finalize(ctx context.Context, ns *corev1.Namespace) (*corev1.Namespace, error) {
	ns = ns.DeepCopy()
	var kept []corev1.FinalizerName
	for _, f := range ns.Spec.Finalizers {
		if f != corev1.FinalizerKubernetes && !slices.Contains(kept, f) {
			kept = append(kept, f)
		}
	}
	slices.Sort(kept)
	ns.Spec.Finalizers = kept
	if ns.Spec.Finalizers == nil {
		ns.Spec.Finalizers = []corev1.FinalizerName{}
	}
	return c.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
}

// deletion is what one round of deleting a resource's content in a namespace left behind.
type deletion struct {
	// estimate: seconds to wait before looking again; 0 does not mean nothing is left.
	estimate   int64
	remaining  int
	finalizers map[string]int
}

// deleteAllContent deletes every namespaced resource's content, pods first: as upstream since
// 1.34, nothing else is deleted while pods remain, so that a pod never outlives the policies,
// secrets and config it runs with. It updates the namespace's conditions and returns how long to
// wait before the next round.
func (c *Controller) deleteAllContent(ctx context.Context, ns *corev1.Namespace) (int64, error) {
	var errs []error
	conditions := &conditionUpdater{}
	lists, err := c.discover()
	if err != nil {
		// partial discovery still lets us delete what was found
		errs = append(errs, err)
		conditions.discoveryFailed(err)
	}
	deletable := discovery.FilteredBy(discovery.SupportsAllVerbs{Verbs: []string{"delete"}}, lists)
	gvrs, err := discovery.GroupVersionResources(deletable)
	if err != nil {
		errs = append(errs, err)
		conditions.groupVersionFailed(err)
	}
	verbs := map[schema.GroupVersionResource]metav1.Verbs{}
	for _, l := range deletable {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			verbs[gv.WithResource(r.Name)] = r.Verbs
		}
	}

	totals := contentTotals{remaining: map[schema.GroupVersionResource]int{}, finalizers: map[string]int{}}
	var estimate int64
	deleteResource := func(gvr schema.GroupVersionResource) {
		d, err := c.deleteContentOf(ctx, gvr, verbs[gvr], ns)
		if err != nil {
			errs = append(errs, err)
			conditions.deleteContentFailed(err)
		}
		estimate = max(estimate, d.estimate)
		if d.remaining > 0 {
			totals.remaining[gvr] = d.remaining
			for f, n := range d.finalizers {
				totals.finalizers[f] += n
			}
		}
	}
	pods := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	if _, ok := gvrs[pods]; ok {
		deleteResource(pods)
		delete(gvrs, pods)
		if totals.remaining[pods] > 0 {
			// the rest waits until the pods are gone
			gvrs = nil
			estimate = max(estimate, 1)
		}
	}
	for gvr := range gvrs {
		deleteResource(gvr)
	}
	conditions.contentTotals(totals)
	if conditions.update(ns, c.now()) {
		if _, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{}); err != nil {
			slog.Info("cannot update namespace conditions", "controller", Name, "namespace", ns.Name, "err", err)
		}
	}
	return estimate, errors.Join(errs...)
}

// deleteContentOf deletes every object of one resource in the namespace, and says what is left.
func (c *Controller) deleteContentOf(ctx context.Context, gvr schema.GroupVersionResource, verbs metav1.Verbs, ns *corev1.Namespace) (deletion, error) {
	estimate, err := c.estimateGracefulTermination(ctx, gvr, ns)
	if err != nil {
		return deletion{}, err
	}
	client := c.dynamic.Resource(gvr).Namespace(ns.Name)
	// the garbage collector must not orphan anything here: every object goes
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	deletedCollection := false
	if slices.Contains(verbs, "deletecollection") {
		err := client.DeleteCollection(ctx, opts, metav1.ListOptions{})
		switch {
		case err == nil:
			deletedCollection = true
		case apierrors.IsMethodNotSupported(err) || apierrors.IsNotFound(err):
		default:
			return deletion{estimate: estimate}, err
		}
	}
	canList := slices.Contains(verbs, "list")
	if !deletedCollection && canList {
		list, err := client.List(ctx, metav1.ListOptions{})
		if err != nil && !apierrors.IsMethodNotSupported(err) && !apierrors.IsNotFound(err) {
			return deletion{estimate: estimate}, err
		}
		if list != nil {
			for _, item := range list.Items {
				err := client.Delete(ctx, item.GetName(), opts)
				if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
					return deletion{estimate: estimate}, err
				}
			}
		}
	}
	if !canList {
		return deletion{estimate: estimate}, nil
	}
	list, err := client.List(ctx, metav1.ListOptions{})
	if apierrors.IsMethodNotSupported(err) || apierrors.IsNotFound(err) {
		return deletion{estimate: estimate}, nil
	}
	if err != nil {
		return deletion{estimate: estimate}, err
	}
	if len(list.Items) == 0 {
		return deletion{}, nil
	}
	finalizers := map[string]int{}
	for _, item := range list.Items {
		for _, f := range item.GetFinalizers() {
			finalizers[f]++
		}
	}
	d := deletion{estimate: estimate, remaining: len(list.Items), finalizers: finalizers}
	switch {
	case estimate != 0:
		return d, nil
	case len(finalizers) > 0:
		d.estimate = finalizerEstimateSeconds
		return d, nil
	}
	return d, fmt.Errorf("unexpected items still remain in namespace: %s for gvr: %v", ns.Name, gvr)
}

// estimateGracefulTermination is, for pods, the longest grace period of a running pod, less the
// time since the namespace began terminating; 0 for other resources.
func (c *Controller) estimateGracefulTermination(ctx context.Context, gvr schema.GroupVersionResource, ns *corev1.Namespace) (int64, error) {
	if gvr.GroupResource() != (schema.GroupResource{Resource: "pods"}) {
		return 0, nil
	}
	pods, err := c.client.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	var estimate int64
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if p.Spec.TerminationGracePeriodSeconds != nil {
			estimate = max(estimate, *p.Spec.TerminationGracePeriodSeconds)
		}
	}
	if c.now().Sub(ns.DeletionTimestamp.Time) >= time.Duration(estimate)*time.Second {
		return 0, nil
	}
	return estimate, nil
}
