// Package replicaset is the ReplicaSet controller: it keeps spec.replicas pods matching each
// ReplicaSet's selector, as upstream's. It creates pods in slow-start batches and waits
// (expectations) to see its own creations and deletions before acting again, so informer lag
// never makes it overshoot; it adopts matching orphans and releases pods that stop matching
// (ControllerRef); on scale-down it deletes pods in upstream's order; and it writes the
// ReplicaSet's status. It must never touch pods another controller owns.
//
// The same controller runs over ReplicationControllers (NewForReplicationControllers), which it
// sees as ReplicaSets whose selector is a label set, as upstream's replication manager does.
package replicaset

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "replicaset"
	// Component names the controller in the Events it records.
	Component = "replicaset-controller"
	// BurstReplicas is the most pods one sync creates or deletes; the rest waits for the next.
	BurstReplicas = 500
)

// Controller is the ReplicaSet controller (or the ReplicationController one).
type Controller struct {
	client       kubernetes.Interface
	kind         managedKind
	podIndexer   cache.Indexer
	synced       []cache.InformerSynced
	queue        controllers.Queue
	expectations *controllers.Expectations
	podControl   controllers.PodControl
	recorder     record.EventRecorder
	metrics      *controllers.Metrics
	// burstReplicas bounds the creations or deletions of one sync.
	burstReplicas int
	now           func() time.Time
}

// New makes a ReplicaSet controller on shared informers of ReplicaSets and pods. Call it before
// the informers start: it adds an index to the pod informer.
func New(rsInformer appsinformers.ReplicaSetInformer, podInformer coreinformers.PodInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	return newController(replicaSetKind(rsInformer.Lister(), client), rsInformer.Informer(), podInformer, client, r)
}

func newController(kind managedKind, informer cache.SharedIndexInformer, podInformer coreinformers.PodInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	if err := controllers.AddControllerUIDIndex(podInformer.Informer()); err != nil {
		return nil, fmt.Errorf("index pods by controller: %w", err)
	}
	recorder := r.EventRecorder(kind.component)
	c := &Controller{
		client:        client,
		kind:          kind,
		podIndexer:    podInformer.Informer().GetIndexer(),
		synced:        []cache.InformerSynced{informer.HasSynced, podInformer.Informer().HasSynced},
		queue:         controllers.NewQueue(kind.name, r),
		expectations:  controllers.NewExpectations(),
		podControl:    controllers.PodControl{Client: client, Recorder: recorder},
		recorder:      recorder,
		metrics:       r.Metrics,
		burstReplicas: BurstReplicas,
		now:           time.Now,
	}
	asRS := kind.asReplicaSet
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.addRS(asRS(obj)) },
		UpdateFunc: func(old, cur any) { c.updateRS(asRS(old), asRS(cur)) },
		DeleteFunc: func(obj any) { c.deleteRS(asRS(obj)) },
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

// Run syncs ReplicaSets with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: c.kind.name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) enqueue(rs *appsv1.ReplicaSet) {
	if key, err := controllers.KeyOf(rs); err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) enqueueAfter(rs *appsv1.ReplicaSet, d time.Duration) {
	if key, err := controllers.KeyOf(rs); err == nil {
		c.queue.AddAfter(key, d)
	}
}

func (c *Controller) addRS(obj any) {
	if rs, ok := obj.(*appsv1.ReplicaSet); ok {
		c.enqueue(rs)
	}
}

func (c *Controller) updateRS(old, cur any) {
	oldRS, ok1 := old.(*appsv1.ReplicaSet)
	curRS, ok2 := cur.(*appsv1.ReplicaSet)
	if !ok1 || !ok2 {
		return
	}
	if curRS.UID != oldRS.UID {
		// deleted and made again under the same name between two events
		if key, err := controllers.KeyOf(oldRS); err == nil {
			c.deleteRS(cache.DeletedFinalStateUnknown{Key: key, Obj: oldRS})
		}
	}
	// every update syncs, so a resync retries ReplicaSets whose creations failed
	c.enqueue(curRS)
}

func (c *Controller) deleteRS(obj any) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		tombstone, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if rs, ok = tombstone.Obj.(*appsv1.ReplicaSet); !ok {
			return
		}
	}
	key, err := controllers.KeyOf(rs)
	if err != nil {
		return
	}
	// one made again under the same name starts clean
	c.expectations.Delete(key)
	c.queue.Add(key)
}

// resolveControllerRef is the ReplicaSet a ControllerRef names, if it is in the cache with that
// UID.
func (c *Controller) resolveControllerRef(namespace string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	if ref.Kind != c.kind.gvk.Kind {
		return nil
	}
	rs, err := c.kind.get(namespace, ref.Name)
	if err != nil || rs.UID != ref.UID {
		return nil
	}
	return rs
}

// podReplicaSets are the ReplicaSets whose selectors match an orphan pod.
func (c *Controller) podReplicaSets(pod *corev1.Pod) []*appsv1.ReplicaSet {
	all, err := c.kind.list(pod.Namespace)
	if err != nil {
		return nil
	}
	var rss []*appsv1.ReplicaSet
	for _, rs := range all {
		selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err != nil || selector.Empty() || !selector.Matches(labels.Set(pod.Labels)) {
			continue
		}
		rss = append(rss, rs)
	}
	if len(rss) > 1 {
		slog.Debug("more than one controller selects a pod", "controller", c.kind.name, "pod", controllers.PodKey(pod))
	}
	return rss
}

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		// seen for the first time while being deleted (a restart): not one of our creations
		c.deletePod(pod)
		return
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		rs := c.resolveControllerRef(pod.Namespace, ref)
		if rs == nil {
			return
		}
		key, err := controllers.KeyOf(rs)
		if err != nil {
			return
		}
		c.expectations.CreationObserved(key)
		c.queue.Add(key)
		return
	}
	// an orphan: whoever matches may adopt it; no creation is observed
	for _, rs := range c.podReplicaSets(pod) {
		c.enqueue(rs)
	}
}

func (c *Controller) updatePod(old, cur any) {
	oldPod, curPod := old.(*corev1.Pod), cur.(*corev1.Pod)
	if curPod.ResourceVersion == oldPod.ResourceVersion {
		return // a resync: nothing changed
	}
	labelChanged := !reflect.DeepEqual(curPod.Labels, oldPod.Labels)
	if curPod.DeletionTimestamp != nil {
		// a graceful deletion started: replace the pod now rather than when it is gone
		c.deletePod(curPod)
		if labelChanged {
			c.deletePod(oldPod)
		}
		return
	}
	curRef, oldRef := metav1.GetControllerOf(curPod), metav1.GetControllerOf(oldPod)
	refChanged := !reflect.DeepEqual(curRef, oldRef)
	if refChanged && oldRef != nil {
		if rs := c.resolveControllerRef(oldPod.Namespace, oldRef); rs != nil {
			c.enqueue(rs)
		}
	}
	if curRef != nil {
		rs := c.resolveControllerRef(curPod.Namespace, curRef)
		if rs == nil {
			return
		}
		c.enqueue(rs)
		if !controllers.IsPodReady(oldPod) && controllers.IsPodReady(curPod) && rs.Spec.MinReadySeconds > 0 {
			// look again once the pod has been ready long enough to be available
			c.enqueueAfter(rs, time.Duration(rs.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	if labelChanged || refChanged {
		for _, rs := range c.podReplicaSets(curPod) {
			c.enqueue(rs)
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
	rs := c.resolveControllerRef(pod.Namespace, ref)
	if rs == nil {
		return
	}
	key, err := controllers.KeyOf(rs)
	if err != nil {
		return
	}
	c.expectations.DeletionObserved(key, controllers.PodKey(pod))
	c.queue.Add(key)
}

// sync makes the ReplicaSet named by key have spec.replicas pods and a status that says so.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	rs, err := c.kind.get(namespace, name)
	if apierrors.IsNotFound(err) {
		c.expectations.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	needsSync := c.expectations.Satisfied(key)
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		// validation should have refused it; retrying will not help
		slog.Warn("invalid selector", "controller", c.kind.name, "object", key, "err", err)
		return nil
	}

	candidates, err := controllers.ObjectsOf(c.podIndexer, string(rs.UID), rs.Namespace)
	if err != nil {
		return err
	}
	var active, terminating []*corev1.Pod
	for _, obj := range candidates {
		pod := obj.(*corev1.Pod)
		if controllers.IsPodActive(pod) {
			active = append(active, pod)
		} else if controllers.IsPodTerminating(pod) && isControlledBy(pod, rs) && selector.Matches(labels.Set(pod.Labels)) {
			terminating = append(terminating, pod)
		}
	}
	claimed, err := c.claimPods(ctx, rs, selector, active)
	if err != nil {
		return err
	}

	var manageErr error
	if needsSync && rs.DeletionTimestamp == nil {
		manageErr = c.manageReplicas(ctx, claimed, rs)
	}

	now := c.now()
	status := calculateStatus(rs, claimed, terminating, manageErr, now)
	if !c.kind.countsTerminating {
		status.TerminatingReplicas = nil // a ReplicationController's status has no such field
	}
	updated, err := c.updateStatus(ctx, rs, status)
	if err != nil {
		return err
	}
	if manageErr == nil {
		if d, ok := nextAvailabilityCheck(claimed, updated.Spec.MinReadySeconds, now); ok {
			c.queue.AddAfter(key, d)
		}
	}
	return manageErr
}

func isControlledBy(pod *corev1.Pod, rs *appsv1.ReplicaSet) bool {
	ref := metav1.GetControllerOfNoCopy(pod)
	return ref != nil && ref.UID == rs.UID
}

// claimPods adopts and releases pods by the ControllerRef rules and returns the ReplicaSet's.
func (c *Controller) claimPods(ctx context.Context, rs *appsv1.ReplicaSet, selector labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	m := controllers.NewRefManager(rs, c.kind.gvk, selector, func(ctx context.Context) (metav1.Object, error) {
		return c.kind.fresh(ctx, rs.Namespace, rs.Name)
	})
	return m.ClaimPods(ctx, c.client, pods)
}

// manageReplicas creates or deletes pods until active has spec.replicas of them, at most
// burstReplicas per call; it does not wait for the informer to see what it did.
func (c *Controller) manageReplicas(ctx context.Context, active []*corev1.Pod, rs *appsv1.ReplicaSet) error {
	key, err := controllers.KeyOf(rs)
	if err != nil {
		return err
	}
	diff := len(active) - int(replicasOf(rs))
	switch {
	case diff < 0:
		diff = min(-diff, c.burstReplicas)
		c.expectations.ExpectCreations(key, diff)
		ref := metav1.NewControllerRef(rs, c.kind.gvk)
		created, err := controllers.SlowStartBatch(diff, controllers.SlowStartInitialBatchSize, func() error {
			err := c.podControl.CreatePod(ctx, rs.Namespace, &rs.Spec.Template, c.kind.eventObject(rs), ref)
			if err != nil && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil // every creation fails in a terminating namespace: nothing to report
			}
			return err
		})
		// the creations not attempted, or failed, will never be observed
		for range diff - created {
			c.expectations.CreationObserved(key)
		}
		return err
	case diff > 0:
		diff = min(diff, c.burstReplicas)
		related, err := c.relatedPods(rs)
		if err != nil {
			return err
		}
		victims := podsToDelete(active, related, diff, c.now())
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = controllers.PodKey(p)
		}
		c.expectations.ExpectDeletions(key, keys)
		errs := make(chan error, len(victims))
		var wg sync.WaitGroup
		for _, pod := range victims {
			wg.Go(func() {
				if err := c.podControl.DeletePod(ctx, rs.Namespace, pod.Name, c.kind.eventObject(rs)); err != nil {
					// a deletion that failed will never be observed
					c.expectations.DeletionObserved(key, controllers.PodKey(pod))
					if !apierrors.IsNotFound(err) {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
		}
	}
	return nil
}

func replicasOf(rs *appsv1.ReplicaSet) int32 {
	if rs.Spec.Replicas == nil {
		return 1
	}
	return *rs.Spec.Replicas
}

// relatedPods are the active pods of every ReplicaSet with the same controller as rs (the
// ReplicaSets of one Deployment), or rs's own when it has no controller: they decide which
// nodes are doubled up.
func (c *Controller) relatedPods(rs *appsv1.ReplicaSet) ([]*corev1.Pod, error) {
	owners := []*appsv1.ReplicaSet{rs}
	if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
		all, err := c.kind.list(rs.Namespace)
		if err != nil {
			return nil, err
		}
		owners = owners[:0]
		for _, r := range all {
			if o := metav1.GetControllerOfNoCopy(r); o != nil && o.UID == ref.UID {
				owners = append(owners, r)
			}
		}
	}
	var pods []*corev1.Pod
	for _, owner := range owners {
		objs, err := c.podIndexer.ByIndex(controllers.ControllerUIDIndex, string(owner.UID))
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			pods = append(pods, o.(*corev1.Pod))
		}
	}
	return pods, nil
}

// podsToDelete picks diff pods of filtered to delete, in upstream's order; pods sharing a node
// with more related pods go first.
func podsToDelete(filtered, related []*corev1.Pod, diff int, now time.Time) []*corev1.Pod {
	if diff >= len(filtered) {
		return filtered
	}
	onNode := map[string]int{}
	for _, p := range related {
		if controllers.IsPodActive(p) {
			onNode[p.Spec.NodeName]++
		}
	}
	ranked := controllers.PodsToDeleteFirst{
		Pods: append([]*corev1.Pod(nil), filtered...),
		Rank: make([]int, len(filtered)),
		Now:  metav1.NewTime(now),
	}
	for i, p := range ranked.Pods {
		ranked.Rank[i] = onNode[p.Spec.NodeName]
	}
	sort.Sort(ranked)
	return ranked.Pods[:diff]
}

// nextAvailabilityCheck is how long until the first ready pod that is not yet available
// (minReadySeconds) becomes available, if there is one.
func nextAvailabilityCheck(pods []*corev1.Pod, minReadySeconds int32, now time.Time) (time.Duration, bool) {
	if minReadySeconds == 0 {
		return 0, false
	}
	var next time.Duration
	found := false
	for _, p := range pods {
		c := controllers.PodReadyCondition(p)
		if c == nil || c.Status != corev1.ConditionTrue || controllers.IsPodAvailable(p, minReadySeconds, now) {
			continue
		}
		d := c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second).Sub(now)
		if d < 0 {
			d = 0
		}
		if !found || d < next {
			next, found = d, true
		}
	}
	// a second late rather than a moment early, when it would still not be available
	return next + time.Second, found
}
