package statefulset

import (
	"context"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/history"
)

// update brings set's pods one step closer to its spec and writes what it saw to the status.
func (c *Controller) update(ctx context.Context, set *appsv1.StatefulSet, pods []*corev1.Pod, revisions []*appsv1.ControllerRevision) error {
	history.Sort(revisions)
	current, updateRev, collisions, err := c.revisions(ctx, set, revisions)
	if err != nil {
		return err
	}
	status, actErr := c.act(ctx, set, pods, current, updateRev)
	status.CollisionCount = ptr.To(collisions)
	if err := c.storeStatus(ctx, set, status); err != nil {
		return err
	}
	if actErr != nil {
		return actErr
	}
	return c.trimHistory(ctx, set, pods, revisions, current, updateRev)
}

// revisions returns the current revision (what status.currentRevision names, or the update
// revision for a new set) and the update revision (the set's template now), creating or
// renumbering the latter as need be.
func (c *Controller) revisions(ctx context.Context, set *appsv1.StatefulSet, revisions []*appsv1.ControllerRevision) (current, update *appsv1.ControllerRevision, collisions int32, err error) {
	collisions = ptr.Deref(set.Status.CollisionCount, 0)
	patch, err := history.TemplatePatch(&set.Spec.Template)
	if err != nil {
		return nil, nil, 0, err
	}
	update = history.New(set, controllerKind, set.Spec.Template.Labels, patch, history.Next(revisions), &collisions)
	if update.Annotations == nil {
		update.Annotations = map[string]string{}
	}
	for k, v := range set.Annotations {
		update.Annotations[k] = v
	}
	equal := history.FindEqual(revisions, update)
	switch {
	case len(equal) > 0 && history.Equal(revisions[len(revisions)-1], equal[len(equal)-1]):
		update = revisions[len(revisions)-1] // unchanged
	case len(equal) > 0:
		// a rollback: the old revision becomes the newest
		if update, err = history.Renumber(ctx, c.client, equal[len(equal)-1], update.Revision); err != nil {
			return nil, nil, 0, err
		}
	default:
		if update, err = history.Create(ctx, c.client, set.Name, update, &collisions); err != nil {
			return nil, nil, 0, err
		}
	}
	for _, r := range revisions {
		if r.Name == set.Status.CurrentRevision {
			current = r
			break
		}
	}
	if current == nil {
		current = update
	}
	return current, update, collisions, nil
}

func startOrdinal(set *appsv1.StatefulSet) int {
	if set.Spec.Ordinals != nil {
		return int(set.Spec.Ordinals.Start)
	}
	return 0
}

// act is one step of upstream's StatefulSet algorithm: replace finished pods and create
// missing ones (in order and one at a time for OrderedReady), remove pods beyond the replicas
// (from the highest ordinal), then roll the template out from the highest ordinal down to the
// partition. It returns the status of the pods as they were found, adjusted for what it did.
func (c *Controller) act(ctx context.Context, set *appsv1.StatefulSet, pods []*corev1.Pod, currentRev, updateRev *appsv1.ControllerRevision) (appsv1.StatefulSetStatus, error) {
	currentTemplate, err := templateOf(currentRev)
	if err != nil {
		return set.Status, err
	}
	updateTemplate := &set.Spec.Template
	replicaCount := int(ptr.Deref(set.Spec.Replicas, 1))
	start := startOrdinal(set)
	status := c.countStatus(set, pods, currentRev, updateRev)

	replicas := make([]*corev1.Pod, replicaCount)
	var condemned []*corev1.Pod
	for _, pod := range pods {
		_, ord := parentAndOrdinal(pod)
		if ord >= start && ord < start+replicaCount {
			replicas[ord-start] = pod
		} else if ord >= 0 {
			condemned = append(condemned, pod)
		}
	}
	sort.Slice(condemned, func(i, j int) bool {
		_, a := parentAndOrdinal(condemned[i])
		_, b := parentAndOrdinal(condemned[j])
		return a < b
	})

	// Which template a missing pod gets: with RollingUpdate, pods below the partition (or,
	// without rollingUpdate parameters, below currentReplicas) stay on the current revision;
	// with OnDelete every new pod gets the update.
	partition, currentBelow := 0, 0
	if set.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil {
			partition = int(ptr.Deref(ru.Partition, 0))
			currentBelow = partition
		} else {
			currentBelow = int(set.Status.CurrentReplicas)
		}
	}
	makePod := func(i int) *corev1.Pod {
		if i < currentBelow {
			return newPod(set, currentTemplate, currentRev.Name, start+i)
		}
		return newPod(set, updateTemplate, updateRev.Name, start+i)
	}

	monotonic := set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	var firstUnhealthy *corev1.Pod
	for i := range replicas {
		pod := replicas[i]
		if pod != nil && isFinished(pod) && !isTerminating(pod) {
			// a pod that stopped is deleted and made again
			if err := c.deletePod(ctx, set, pod); err != nil {
				return status, err
			}
			if monotonic {
				return status, nil
			}
			continue
		}
		if pod == nil {
			pod = makePod(i)
			if err := c.createPod(ctx, set, pod, start+i); err != nil {
				return status, err
			}
			if monotonic {
				return status, nil
			}
			continue
		}
		if !c.isHealthy(set, pod) {
			if firstUnhealthy == nil {
				firstUnhealthy = pod
			}
			if monotonic {
				return status, nil // wait for it before going on
			}
		}
	}
	if firstUnhealthy == nil {
		for _, pod := range condemned {
			if !c.isHealthy(set, pod) {
				firstUnhealthy = pod
				break
			}
		}
	}

	// pods beyond the replicas go from the highest ordinal down
	for i := len(condemned) - 1; i >= 0; i-- {
		pod := condemned[i]
		if isTerminating(pod) {
			if monotonic {
				return status, nil
			}
			continue
		}
		if monotonic && !c.isHealthy(set, pod) && pod != firstUnhealthy {
			return status, nil
		}
		if err := c.releaseClaimsToPod(ctx, set, pod); err != nil {
			return status, err
		}
		if err := c.deletePod(ctx, set, pod); err != nil {
			return status, err
		}
		if monotonic {
			return status, nil
		}
	}

	if set.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		return status, nil
	}
	maxUnavailable := 1
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		if n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, replicaCount, false); err == nil {
			maxUnavailable = max(n, 1)
		}
	}
	unavailable := 0
	for _, pod := range replicas {
		if pod == nil || !c.isHealthy(set, pod) {
			unavailable++
		}
	}
	deleted := 0
	for i := len(replicas) - 1; i >= partition && unavailable+deleted < maxUnavailable; i-- {
		pod := replicas[i]
		if pod == nil || podRevision(pod) == updateRev.Name || isTerminating(pod) {
			continue
		}
		if err := c.deletePod(ctx, set, pod); err != nil {
			return status, err
		}
		deleted++
		if podRevision(pod) == currentRev.Name {
			status.CurrentReplicas--
		}
	}
	return status, nil
}

// countStatus is set's status as its pods show it.
func (c *Controller) countStatus(set *appsv1.StatefulSet, pods []*corev1.Pod, currentRev, updateRev *appsv1.ControllerRevision) appsv1.StatefulSetStatus {
	status := appsv1.StatefulSetStatus{
		ObservedGeneration: set.Generation,
		CurrentRevision:    currentRev.Name,
		UpdateRevision:     updateRev.Name,
		Conditions:         set.Status.Conditions,
	}
	now := c.now()
	for _, pod := range pods {
		if !isCreated(pod) || isTerminating(pod) {
			continue
		}
		status.Replicas++
		if pod.Status.Phase == corev1.PodRunning && controllers.IsPodReady(pod) {
			status.ReadyReplicas++
			if controllers.IsPodAvailable(pod, set.Spec.MinReadySeconds, now) {
				status.AvailableReplicas++
			}
		}
		if podRevision(pod) == currentRev.Name {
			status.CurrentReplicas++
		}
		if podRevision(pod) == updateRev.Name {
			status.UpdatedReplicas++
		}
	}
	// a finished rollout makes the update revision current
	if set.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType &&
		status.UpdatedReplicas == status.Replicas && status.ReadyReplicas == status.Replicas &&
		int(status.Replicas) == int(ptr.Deref(set.Spec.Replicas, 1)) {
		status.CurrentReplicas = status.UpdatedReplicas
		status.CurrentRevision = status.UpdateRevision
	}
	return status
}

// storeStatus writes status unless it is what set has, reading set again once on a conflict.
func (c *Controller) storeStatus(ctx context.Context, set *appsv1.StatefulSet, status appsv1.StatefulSetStatus) error {
	if equalStatus(set.Status, status) {
		return nil
	}
	client := c.client.AppsV1().StatefulSets(set.Namespace)
	set = set.DeepCopy()
	for attempt := 0; ; attempt++ {
		set.Status = status
		_, err := client.UpdateStatus(ctx, set, metav1.UpdateOptions{})
		if err == nil || attempt >= 1 {
			return err
		}
		fresh, getErr := client.Get(ctx, set.Name, metav1.GetOptions{})
		if getErr != nil {
			return getErr
		}
		set = fresh
	}
}

func equalStatus(a, b appsv1.StatefulSetStatus) bool {
	return a.ObservedGeneration == b.ObservedGeneration && a.Replicas == b.Replicas && a.ReadyReplicas == b.ReadyReplicas &&
		a.CurrentReplicas == b.CurrentReplicas && a.UpdatedReplicas == b.UpdatedReplicas && a.AvailableReplicas == b.AvailableReplicas &&
		a.CurrentRevision == b.CurrentRevision && a.UpdateRevision == b.UpdateRevision &&
		ptr.Deref(a.CollisionCount, 0) == ptr.Deref(b.CollisionCount, 0) && (a.CollisionCount == nil) == (b.CollisionCount == nil)
}

// trimHistory deletes the oldest revisions that neither the status nor any pod names, beyond
// revisionHistoryLimit.
func (c *Controller) trimHistory(ctx context.Context, set *appsv1.StatefulSet, pods []*corev1.Pod, revisions []*appsv1.ControllerRevision, current, update *appsv1.ControllerRevision) error {
	live := map[string]bool{current.Name: true, update.Name: true}
	for _, pod := range pods {
		live[podRevision(pod)] = true
	}
	var unused []*appsv1.ControllerRevision
	for _, r := range revisions {
		if !live[r.Name] {
			unused = append(unused, r)
		}
	}
	limit := int(ptr.Deref(set.Spec.RevisionHistoryLimit, 10))
	return history.Trim(ctx, c.client, unused, len(unused)-limit)
}
