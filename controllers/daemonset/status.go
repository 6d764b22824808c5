package daemonset

import (
	"context"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/controllers"
)

// updateStatus counts ds's nodes and pods into its status (and, when observed, the
// generation it acted on), writing only a change.
func (c *Controller) updateStatus(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector, nodes []*corev1.Node, hash string, observed bool) error {
	nodeToPods, err := c.nodesToDaemonPods(ctx, ds, selector)
	if err != nil {
		return err
	}
	spec := daemonPodSpec(ds)
	now := c.now()
	gen := templateGeneration(ds)
	var desired, current, misscheduled, ready, updated, available int32
	for _, node := range nodes {
		run, _ := shouldRun(spec, node)
		pods := nodeToPods[node.Name]
		if !run {
			if len(pods) > 0 {
				misscheduled++
			}
			continue
		}
		desired++
		if len(pods) == 0 {
			continue
		}
		current++
		sorted := append([]*corev1.Pod(nil), pods...)
		sort.Sort(podsByCreationAndPhase(sorted))
		pod := sorted[0]
		if controllers.IsPodReady(pod) {
			ready++
			if controllers.IsPodAvailable(pod, ds.Spec.MinReadySeconds, now) {
				available++
			}
		}
		if isPodUpdated(pod, hash, gen) {
			updated++
		}
	}
	status := ds.Status.DeepCopy()
	status.DesiredNumberScheduled = desired
	status.CurrentNumberScheduled = current
	status.NumberMisscheduled = misscheduled
	status.NumberReady = ready
	status.UpdatedNumberScheduled = updated
	status.NumberAvailable = available
	status.NumberUnavailable = desired - available
	if observed {
		status.ObservedGeneration = ds.Generation
	}
	if err := c.storeStatus(ctx, ds, *status); err != nil {
		return err
	}
	if ds.Spec.MinReadySeconds > 0 && ready != available {
		if key, err := controllers.KeyOf(ds); err == nil {
			c.queue.AddAfter(key, time.Duration(ds.Spec.MinReadySeconds)*time.Second)
		}
	}
	return nil
}

// storeStatus writes status unless it is what ds has, reading ds again once on a conflict.
func (c *Controller) storeStatus(ctx context.Context, ds *appsv1.DaemonSet, status appsv1.DaemonSetStatus) error {
	if equalStatus(ds.Status, status) {
		return nil
	}
	client := c.client.AppsV1().DaemonSets(ds.Namespace)
	ds = ds.DeepCopy()
	for attempt := 0; ; attempt++ {
		collisions := ds.Status.CollisionCount
		ds.Status = status
		ds.Status.CollisionCount = collisions
		_, err := client.UpdateStatus(ctx, ds, metav1.UpdateOptions{})
		if err == nil || attempt >= 1 {
			return err
		}
		fresh, getErr := client.Get(ctx, ds.Name, metav1.GetOptions{})
		if getErr != nil {
			return getErr
		}
		ds = fresh
	}
}

func equalStatus(a, b appsv1.DaemonSetStatus) bool {
	return a.DesiredNumberScheduled == b.DesiredNumberScheduled && a.CurrentNumberScheduled == b.CurrentNumberScheduled &&
		a.NumberMisscheduled == b.NumberMisscheduled && a.NumberReady == b.NumberReady &&
		a.UpdatedNumberScheduled == b.UpdatedNumberScheduled && a.NumberAvailable == b.NumberAvailable &&
		a.NumberUnavailable == b.NumberUnavailable && a.ObservedGeneration == b.ObservedGeneration
}
