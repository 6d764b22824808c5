// Package disruption is the disruption controller: it keeps the status of each
// PodDisruptionBudget (currentHealthy, desiredHealthy, expectedPods, disruptionsAllowed, the
// DisruptionAllowed condition) true to the pods the budget selects, as upstream's. Percentages
// and maxUnavailable count from the scale of the pods' controllers, found through the
// controller's kind: ReplicaSets (the Deployment's scale when a Deployment owns them) from the
// cache, any other kind through its scale subresource, custom resources' included. It also
// forgets the evictions pods/eviction granted (status.disruptedPods) once their pods are gone
// or two minutes have passed. It must never write anything but budgets' status.
package disruption

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	policyinformers "k8s.io/client-go/informers/policy/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "disruption"
	// Component names the controller in the Events it records.
	Component = "controllermanager"
	// DeletionTimeout is how long an eviction's pod is counted out (status.disruptedPods)
	// while waiting to see it deleted, as upstream's.
	DeletionTimeout = 2 * time.Minute
	// StalePodDisruptionTimeout is how long a pod may carry a DisruptionTarget condition
	// without being deleted before the condition is cleared (an eviction whose delete failed),
	// as upstream's.
	StalePodDisruptionTimeout = 2 * time.Minute
)

// Controller is the disruption controller.
type Controller struct {
	client    kubernetes.Interface
	pdbLister policylisters.PodDisruptionBudgetLister
	podLister corelisters.PodLister
	rsLister  appslisters.ReplicaSetLister
	dLister   appslisters.DeploymentLister
	scales    scale.ScalesGetter
	mapper    meta.RESTMapper
	synced    []cache.InformerSynced
	queue     controllers.Queue
	// stalePods holds pods ("namespace/name") whose DisruptionTarget condition may be stale
	stalePods controllers.Queue
	recorder  record.EventRecorder
	metrics   *controllers.Metrics
	now       func() time.Time
}

// New makes a disruption controller on shared informers. scales and mapper read the scale
// subresource of controllers that are not ReplicaSets or Deployments (StatefulSets,
// ReplicationControllers, custom resources); mapper must find kinds added after it was made
// (a discovery-backed mapper that resets on a miss).
func New(pdbInformer policyinformers.PodDisruptionBudgetInformer, podInformer coreinformers.PodInformer,
	rsInformer appsinformers.ReplicaSetInformer, dInformer appsinformers.DeploymentInformer,
	client kubernetes.Interface, scales scale.ScalesGetter, mapper meta.RESTMapper, r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client:    client,
		pdbLister: pdbInformer.Lister(),
		podLister: podInformer.Lister(),
		rsLister:  rsInformer.Lister(),
		dLister:   dInformer.Lister(),
		scales:    scales,
		mapper:    mapper,
		synced: []cache.InformerSynced{pdbInformer.Informer().HasSynced, podInformer.Informer().HasSynced,
			rsInformer.Informer().HasSynced, dInformer.Informer().HasSynced},
		queue:     controllers.NewQueue(Name, r),
		stalePods: controllers.NewQueue(Name+"-stale-pod-disruption", r),
		recorder:  r.EventRecorder(Component),
		metrics:   r.Metrics,
		now:       time.Now,
	}
	if _, err := pdbInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, err
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.podChanged,
		UpdateFunc: func(old, cur any) {
			c.podChanged(cur)
			if !apiequality.Semantic.DeepEqual(old.(*corev1.Pod).Labels, cur.(*corev1.Pod).Labels) {
				c.podChanged(old) // budgets that no longer select it
			}
		},
		DeleteFunc: c.podChanged,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run syncs budgets with workers goroutines, and clears stale DisruptionTarget conditions with
// one more, until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		controllers.Workers{Name: Name + "-stale-pod-disruption", Queue: c.stalePods, Sync: c.syncStalePodDisruption,
			Metrics: c.metrics, Synced: c.synced}.Run(ctx, 1)
	}()
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
	<-done
}

func (c *Controller) enqueue(obj any) {
	if key, err := controllers.KeyOf(obj); err == nil {
		c.queue.Add(key)
	}
}

// podChanged enqueues the budgets that select the pod.
func (c *Controller) podChanged(obj any) {
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
	if stale, after := staleDisruptionTarget(pod, c.now()); stale {
		c.stalePods.AddAfter(controllers.PodKey(pod), after)
	}
	pdbs, err := c.pdbLister.PodDisruptionBudgets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, pdb := range pdbs {
		selector, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err == nil && selector.Matches(labels.Set(pod.Labels)) {
			c.enqueue(pdb)
		}
	}
}

// sync brings the status of the budget named by key up to date.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pdb, err := c.pdbLister.PodDisruptionBudgets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	recheck, err := c.trySync(ctx, pdb)
	if apierrors.IsConflict(err) {
		return err // a newer budget is on its way; nothing failed
	}
	if err != nil {
		// a budget whose status cannot be computed allows nothing, as upstream's fail-safe
		if fsErr := c.failSafe(ctx, pdb, err); fsErr != nil {
			return fsErr
		}
		return err
	}
	if recheck != nil {
		return controllers.RequeueAfter(recheck.Sub(c.now())+time.Second, errors.New("an eviction's pod may outlive its timeout"))
	}
	return nil
}

// trySync computes and writes the budget's status; it returns when the controller must look
// again to expire an eviction that has not happened.
func (c *Controller) trySync(ctx context.Context, pdb *policyv1.PodDisruptionBudget) (*time.Time, error) {
	pods, err := c.podsOf(pdb)
	if err != nil {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "NoPods", "Failed to get pods: %v", err)
		return nil, err
	}
	if len(pods) == 0 {
		c.recorder.Event(pdb, corev1.EventTypeNormal, "NoPods", "No matching pods found")
	}
	expected, desired, unmanaged, err := c.expectedPodCount(ctx, pdb, pods)
	if err != nil {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "CalculateExpectedPodCountFailed", "Failed to calculate the number of expected pods: %v", err)
		return nil, err
	}
	if len(unmanaged) > 0 {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "UnmanagedPods",
			"Pods selected by this PodDisruptionBudget (selector: %v) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
			pdb.Spec.Selector)
	}
	now := c.now()
	disrupted, recheck := c.pendingDisruptions(pdb, pods, now)
	healthy := countHealthy(pods, disrupted, now)
	return recheck, c.updateStatus(ctx, pdb, healthy, desired, expected, disrupted)
}

// podsOf are the pods the budget selects: none for a null selector, all in its namespace for
// an empty one (policy/v1).
func (c *Controller) podsOf(pdb *policyv1.PodDisruptionBudget) ([]*corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return nil, err
	}
	return c.podLister.Pods(pdb.Namespace).List(selector)
}

// expectedPodCount is upstream's arithmetic: an integer minAvailable counts the selected pods;
// a percentage, or maxUnavailable, counts the replicas their controllers want, rounding the
// scaled value up. Neither set means nothing is desired.
func (c *Controller) expectedPodCount(ctx context.Context, pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod) (expected, desired int32, unmanaged []string, err error) {
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		if expected, unmanaged, err = c.expectedScale(ctx, pods); err != nil {
			return 0, 0, nil, err
		}
		maxUnavailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true)
		if err != nil {
			return 0, 0, nil, err
		}
		desired = max(expected-int32(maxUnavailable), 0)
	case pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.Type == intstr.Int:
		desired, expected = pdb.Spec.MinAvailable.IntVal, int32(len(pods))
	case pdb.Spec.MinAvailable != nil:
		if expected, unmanaged, err = c.expectedScale(ctx, pods); err != nil {
			return 0, 0, nil, err
		}
		minAvailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(expected), true)
		if err != nil {
			return 0, 0, nil, err
		}
		desired = int32(minAvailable)
	}
	return expected, desired, unmanaged, nil
}

// expectedScale sums the desired replicas of the pods' controllers, each counted once; pods
// without a controller are returned by name.
func (c *Controller) expectedScale(ctx context.Context, pods []*corev1.Pod) (int32, []string, error) {
	scales := map[types.UID]int32{}
	seen := map[types.UID]bool{}
	var unmanaged []string
	for _, pod := range pods {
		ref := metav1.GetControllerOf(pod)
		if ref == nil {
			unmanaged = append(unmanaged, pod.Name)
			continue
		}
		if seen[ref.UID] {
			continue
		}
		uid, replicas, found, err := c.controllerScale(ctx, pod.Namespace, ref)
		if err != nil {
			return 0, nil, err
		}
		if !found {
			return 0, nil, fmt.Errorf("found no controllers for pod %q", pod.Name)
		}
		seen[ref.UID] = true
		scales[uid] = replicas
	}
	var sum int32
	for _, n := range scales {
		sum += n
	}
	return sum, unmanaged, nil
}

var (
	replicaSetKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet").GroupKind()
	deploymentKind = appsv1.SchemeGroupVersion.WithKind("Deployment").GroupKind()
)

// controllerScale finds the controller ref names (with its UID) and the replicas it wants: a
// ReplicaSet a Deployment controls counts as that Deployment, as upstream; other kinds answer
// through their scale subresource.
func (c *Controller) controllerScale(ctx context.Context, ns string, ref *metav1.OwnerReference) (types.UID, int32, bool, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return "", 0, false, nil
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: ref.Kind}
	if gk == replicaSetKind {
		rs, err := c.rsLister.ReplicaSets(ns).Get(ref.Name)
		if err != nil || rs.UID != ref.UID {
			return "", 0, false, nil
		}
		if dref := metav1.GetControllerOf(rs); dref != nil && dref.Kind == deploymentKind.Kind {
			d, err := c.dLister.Deployments(ns).Get(dref.Name)
			if err != nil || d.UID != dref.UID {
				return "", 0, false, nil
			}
			return d.UID, replicasOf(d.Spec.Replicas), true, nil
		}
		return rs.UID, replicasOf(rs.Spec.Replicas), true, nil
	}
	if gk == deploymentKind {
		d, err := c.dLister.Deployments(ns).Get(ref.Name)
		if err != nil || d.UID != ref.UID {
			return "", 0, false, nil
		}
		return d.UID, replicasOf(d.Spec.Replicas), true, nil
	}
	mapping, err := c.mapper.RESTMapping(gk, gv.Version)
	if meta.IsNoMatchError(err) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, err
	}
	s, err := c.scales.Scales(ns).Get(ctx, mapping.Resource.GroupResource(), ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, err
	}
	if s.UID != ref.UID {
		return "", 0, false, nil
	}
	return s.UID, s.Spec.Replicas, true, nil
}

func replicasOf(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// pendingDisruptions are the evictions still expected to delete their pods, and the earliest
// time one of them expires.
func (c *Controller) pendingDisruptions(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, now time.Time) (map[string]metav1.Time, *time.Time) {
	result := map[string]metav1.Time{}
	var recheck *time.Time
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil {
			continue // the eviction happened
		}
		t, ok := pdb.Status.DisruptedPods[pod.Name]
		if !ok {
			continue
		}
		expires := t.Add(DeletionTimeout)
		if expires.Before(now) {
			slog.Info("pod was expected to be deleted but it was not", "controller", Name, "pod", controllers.PodKey(pod), "budget", pdb.Name)
			c.recorder.Eventf(pod, corev1.EventTypeWarning, "NotDeleted", "Pod was expected by PDB %s/%s to be deleted but it wasn't", pdb.Namespace, pdb.Name)
			continue
		}
		if recheck == nil || expires.Before(*recheck) {
			recheck = &expires
		}
		result[pod.Name] = t
	}
	return result, recheck
}

// countHealthy counts the ready pods that are neither being deleted nor about to be.
func countHealthy(pods []*corev1.Pod, disrupted map[string]metav1.Time, now time.Time) int32 {
	var n int32
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil {
			continue
		}
		if t, ok := disrupted[pod.Name]; ok && t.Add(DeletionTimeout).After(now) {
			continue
		}
		if podReady(pod) {
			n++
		}
	}
	return n
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// updateStatus writes the computed status when it differs from the stored one.
func (c *Controller) updateStatus(ctx context.Context, pdb *policyv1.PodDisruptionBudget, healthy, desired, expected int32, disrupted map[string]metav1.Time) error {
	allowed := healthy - desired
	if expected <= 0 || allowed <= 0 {
		allowed = 0
	}
	st := pdb.Status
	if st.CurrentHealthy == healthy && st.DesiredHealthy == desired && st.ExpectedPods == expected &&
		st.DisruptionsAllowed == allowed && maps.EqualFunc(st.DisruptedPods, disrupted, func(a, b metav1.Time) bool { return a.Equal(&b) }) &&
		st.ObservedGeneration == pdb.Generation && conditionCurrent(pdb) {
		return nil
	}
	next := pdb.DeepCopy()
	next.Status = policyv1.PodDisruptionBudgetStatus{
		CurrentHealthy: healthy, DesiredHealthy: desired, ExpectedPods: expected, DisruptionsAllowed: allowed,
		DisruptedPods: disrupted, ObservedGeneration: pdb.Generation, Conditions: next.Status.Conditions,
	}
	if len(disrupted) == 0 {
		next.Status.DisruptedPods = nil
	}
	setDisruptionAllowedCondition(next)
	_, err := c.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	return err
}

// conditionCurrent says whether the DisruptionAllowed condition already says what
// disruptionsAllowed does.
func conditionCurrent(pdb *policyv1.PodDisruptionBudget) bool {
	cond := meta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition)
	if cond == nil || cond.ObservedGeneration != pdb.Status.ObservedGeneration {
		return false
	}
	if pdb.Status.DisruptionsAllowed > 0 {
		return cond.Status == metav1.ConditionTrue && cond.Reason == policyv1.SufficientPodsReason
	}
	return cond.Status == metav1.ConditionFalse && cond.Reason == policyv1.InsufficientPodsReason
}

// failSafe allows no disruption on a budget whose status could not be computed, and says why
// in its DisruptionAllowed condition (SyncFailed).
func (c *Controller) failSafe(ctx context.Context, pdb *policyv1.PodDisruptionBudget, cause error) error {
	next := pdb.DeepCopy()
	next.Status.DisruptionsAllowed = 0
	meta.SetStatusCondition(&next.Status.Conditions, metav1.Condition{
		Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse, Reason: policyv1.SyncFailedReason,
		Message: cause.Error(), ObservedGeneration: next.Status.ObservedGeneration,
	})
	if apiequality.Semantic.DeepEqual(next.Status, pdb.Status) {
		return nil
	}
	_, err := c.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	return err
}

// setDisruptionAllowedCondition sets the DisruptionAllowed condition from
// status.disruptionsAllowed, as upstream's helper (the eviction subresource sets it the same
// way).
func setDisruptionAllowedCondition(pdb *policyv1.PodDisruptionBudget) {
	c := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, ObservedGeneration: pdb.Status.ObservedGeneration,
		Status: metav1.ConditionFalse, Reason: policyv1.InsufficientPodsReason}
	if pdb.Status.DisruptionsAllowed > 0 {
		c.Status, c.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	}
	meta.SetStatusCondition(&pdb.Status.Conditions, c)
}

// staleDisruptionTarget says whether the pod carries a DisruptionTarget condition that was
// set for a deletion that has not come (an eviction whose delete failed), and how long until
// it counts as stale. Conditions the kubelet sets, and those of finished pods, never do.
func staleDisruptionTarget(pod *corev1.Pod, now time.Time) (bool, time.Duration) {
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false, 0
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type != corev1.DisruptionTarget {
			continue
		}
		if cond.Status != corev1.ConditionTrue || cond.Reason == corev1.PodReasonTerminationByKubelet {
			return false, 0
		}
		return true, max(StalePodDisruptionTimeout-now.Sub(cond.LastTransitionTime.Time), 0)
	}
	return false, 0
}

// syncStalePodDisruption sets a stale DisruptionTarget condition to False, as upstream, so that
// the pod is no longer taken for one about to go.
func (c *Controller) syncStalePodDisruption(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := c.podLister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	stale, after := staleDisruptionTarget(pod, c.now())
	if !stale {
		return nil
	}
	if after > 0 {
		return controllers.RequeueAfter(after, errors.New("disruption condition not yet stale"))
	}
	next := pod.DeepCopy()
	for i := range next.Status.Conditions {
		if cond := &next.Status.Conditions[i]; cond.Type == corev1.DisruptionTarget {
			cond.Status = corev1.ConditionFalse
			cond.LastTransitionTime = metav1.NewTime(c.now())
		}
	}
	_, err = c.client.CoreV1().Pods(ns).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	return err
}
