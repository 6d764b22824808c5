package daemonset

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/controllers"
)

// manage starts a pod on every node that should run one and has none, and deletes the pods
// of nodes that should run none, failed pods, pods beyond one per node (two while surging),
// and pods waiting for nodes that are gone.
func (c *Controller) manage(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector, nodes []*corev1.Node, hash string) error {
	nodeToPods, err := c.nodesToDaemonPods(ctx, ds, selector)
	if err != nil {
		return err
	}
	spec := daemonPodSpec(ds)
	var needPods []string
	var deletePods []*corev1.Pod
	known := make(map[string]bool, len(nodes))
	for _, node := range nodes {
		known[node.Name] = true
		run, keep := shouldRun(spec, node)
		create, del := c.podsShouldBeOnNode(ds, node.Name, nodeToPods[node.Name], run, keep, hash)
		needPods = append(needPods, create...)
		deletePods = append(deletePods, del...)
	}
	for node, pods := range nodeToPods {
		if known[node] {
			continue
		}
		for _, pod := range pods {
			// waiting for a node that is not there: it would never be scheduled
			if pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil {
				deletePods = append(deletePods, pod)
			}
		}
	}
	return c.syncNodes(ctx, ds, deletePods, needPods, hash)
}

// podsShouldBeOnNode decides one node, as upstream's podsShouldBeOnNode.
func (c *Controller) podsShouldBeOnNode(ds *appsv1.DaemonSet, node string, pods []*corev1.Pod, run, keep bool, hash string) (create []string, del []*corev1.Pod) {
	switch {
	case run && len(pods) == 0:
		return []string{node}, nil
	case keep:
		var running []*corev1.Pod
		for _, pod := range pods {
			if pod.DeletionTimestamp != nil {
				continue
			}
			if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
				// a daemon pod that stopped is replaced, once it is gone, at most as often as
				// the back-off of its node allows
				backoffKey := fmt.Sprintf("%s/%d/%s", ds.UID, ds.Status.ObservedGeneration, node)
				now := c.now()
				if c.failedPodsBackoff.IsInBackOffSinceUpdate(backoffKey, now) {
					if key, err := controllers.KeyOf(ds); err == nil {
						c.queue.AddAfter(key, c.failedPodsBackoff.Get(backoffKey))
					}
					continue
				}
				c.failedPodsBackoff.Next(backoffKey, now)
				c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDaemonPod", "Found failed daemon pod %s/%s on node %s, will try to kill it", pod.Namespace, pod.Name, node)
				del = append(del, pod)
				continue
			}
			running = append(running, pod)
		}
		if !allowsSurge(ds) {
			if len(running) > 1 {
				sort.Sort(podsByCreationAndPhase(running))
				del = append(del, running[1:]...)
			}
			return nil, del
		}
		if len(running) == 0 {
			if run {
				create = []string{node}
			}
			return create, del
		}
		// while surging a node may hold the oldest new pod and the oldest old pod; the old
		// one goes once the new one is available, or at once if it is not ready itself
		sort.Sort(podsByCreationAndPhase(running))
		var oldestNew, oldestOld *corev1.Pod
		for _, pod := range running {
			if isPodUpdated(pod, hash, templateGeneration(ds)) {
				if oldestNew == nil {
					oldestNew = pod
					continue
				}
			} else if oldestOld == nil {
				oldestOld = pod
				continue
			}
			del = append(del, pod)
		}
		if oldestNew != nil && oldestOld != nil &&
			(!controllers.IsPodReady(oldestOld) || controllers.IsPodAvailable(oldestNew, ds.Spec.MinReadySeconds, c.now())) {
			del = append(del, oldestOld)
		}
		return nil, del
	case len(pods) > 0:
		for _, pod := range pods {
			if pod.DeletionTimestamp == nil {
				del = append(del, pod)
			}
		}
	}
	return nil, del
}

// syncNodes deletes pods and creates one pod for each of nodes, at most burstReplicas of each
// per call, expecting to see them all before acting again.
func (c *Controller) syncNodes(ctx context.Context, ds *appsv1.DaemonSet, deletePods []*corev1.Pod, nodes []string, hash string) error {
	key, err := controllers.KeyOf(ds)
	if err != nil {
		return err
	}
	if len(nodes) > c.burstReplicas {
		nodes = nodes[:c.burstReplicas]
	}
	if len(deletePods) > c.burstReplicas {
		deletePods = deletePods[:c.burstReplicas]
	}
	podKeys := make([]string, len(deletePods))
	for i, p := range deletePods {
		podKeys[i] = controllers.PodKey(p)
	}
	c.expectations.Expect(key, len(nodes), podKeys)

	template := ds.Spec.Template.DeepCopy()
	addDaemonTolerations(&template.Spec)
	if template.Labels == nil {
		template.Labels = map[string]string{}
	}
	if gen := templateGeneration(ds); gen != "" {
		template.Labels[TemplateGenerationLabel] = gen
	}
	if hash != "" {
		template.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] = hash
	}
	ref := metav1.NewControllerRef(ds, controllerKind)
	var next atomic.Int64
	created, createErr := controllers.SlowStartBatch(len(nodes), controllers.SlowStartInitialBatchSize, func() error {
		node := nodes[next.Add(1)-1]
		t := template.DeepCopy()
		bindToNode(&t.Spec, node)
		err := c.podControl.CreatePod(ctx, ds.Namespace, t, ds, ref)
		if err != nil && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		return err
	})
	for range len(nodes) - created {
		c.expectations.CreationObserved(key)
	}

	errs := make(chan error, len(deletePods))
	var wg sync.WaitGroup
	for _, pod := range deletePods {
		wg.Go(func() {
			if err := c.podControl.DeletePod(ctx, ds.Namespace, pod.Name, ds); err != nil {
				c.expectations.DeletionObserved(key, controllers.PodKey(pod))
				if !apierrors.IsNotFound(err) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	if createErr != nil {
		return createErr
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func allowsSurge(ds *appsv1.DaemonSet) bool {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	return ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType && ru != nil &&
		ru.MaxSurge != nil && intOrPercent(ru.MaxSurge, 100) != 0
}

func intOrPercent(v *intstr.IntOrString, total int) int {
	if v == nil {
		return 0
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, total, true)
	if err != nil {
		return 0
	}
	return n
}

// podsByCreationAndPhase puts first the pod a node keeps: scheduled before not, running
// before not, older before newer.
type podsByCreationAndPhase []*corev1.Pod

func (o podsByCreationAndPhase) Len() int      { return len(o) }
func (o podsByCreationAndPhase) Swap(i, j int) { o[i], o[j] = o[j], o[i] }
func (o podsByCreationAndPhase) Less(i, j int) bool {
	a, b := o[i], o[j]
	if (a.Spec.NodeName != "") != (b.Spec.NodeName != "") {
		return a.Spec.NodeName != ""
	}
	if (a.Status.Phase == corev1.PodRunning) != (b.Status.Phase == corev1.PodRunning) {
		return a.Status.Phase == corev1.PodRunning
	}
	if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.Name < b.Name
	}
	return a.CreationTimestamp.Before(&b.CreationTimestamp)
}

// rollingUpdate replaces old pods by new ones within maxUnavailable (deleting old pods, which
// manage then replaces) or maxSurge (starting new pods beside old ones, which podsShouldBeOnNode
// then removes), as upstream's.
func (c *Controller) rollingUpdate(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector, nodes []*corev1.Node, hash string) error {
	nodeToPods, err := c.nodesToDaemonPods(ctx, ds, selector)
	if err != nil {
		return err
	}
	spec := daemonPodSpec(ds)
	desired := 0
	for _, node := range nodes {
		if run, _ := shouldRun(spec, node); run {
			desired++
			if _, ok := nodeToPods[node.Name]; !ok {
				nodeToPods[node.Name] = nil // a node waiting for its pod counts as unavailable
			}
		}
	}
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	maxSurge, maxUnavailable := intOrPercent(ru.MaxSurge, desired), intOrPercent(ru.MaxUnavailable, desired)
	if maxSurge == 0 && maxUnavailable == 0 {
		maxUnavailable = 1 // refused by validation; never stall
	}
	now := c.now()
	gen := templateGeneration(ds)
	available := func(p *corev1.Pod) bool { return controllers.IsPodAvailable(p, ds.Spec.MinReadySeconds, now) }

	if maxSurge == 0 {
		unavailable := 0
		var replace, candidates []*corev1.Pod
		for _, node := range sortedNodes(nodeToPods) {
			newPod, oldPod, ok := updatedPodsOnNode(nodeToPods[node], hash, gen)
			switch {
			case !ok, oldPod == nil && newPod == nil, oldPod != nil && newPod != nil:
				unavailable++ // manage sorts this node out
			case newPod != nil:
				if !available(newPod) {
					unavailable++
				}
			case !available(oldPod):
				// unavailable already: replaced at once, and counted, as upstream counts it
				replace = append(replace, oldPod)
				unavailable++
			case unavailable < maxUnavailable:
				candidates = append(candidates, oldPod)
			}
		}
		room := max(0, min(maxUnavailable-unavailable, len(candidates)))
		return c.syncNodes(ctx, ds, append(replace, candidates[:room]...), nil, hash)
	}

	surging := 0
	var deletePods []*corev1.Pod
	var allowed, candidates []string
	for _, node := range sortedNodes(nodeToPods) {
		newPod, oldPod, ok := updatedPodsOnNode(nodeToPods[node], hash, gen)
		if !ok {
			surging++
			continue
		}
		switch {
		case oldPod == nil:
		case newPod == nil:
			switch {
			case !available(oldPod):
				allowed = append(allowed, node)
			case surging < maxSurge:
				candidates = append(candidates, node)
			}
		default:
			if !available(newPod) {
				surging++
				continue
			}
			deletePods = append(deletePods, oldPod)
		}
	}
	room := max(0, min(maxSurge-surging, len(candidates)))
	return c.syncNodes(ctx, ds, deletePods, append(allowed, candidates[:room]...), hash)
}

func sortedNodes(m map[string][]*corev1.Pod) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// updatedPodsOnNode is the node's one new and one old pod (either may be nil); ok is false
// when it has more than one of either, which manage cleans up first.
func updatedPodsOnNode(pods []*corev1.Pod, hash, gen string) (newPod, oldPod *corev1.Pod, ok bool) {
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil {
			continue
		}
		if isPodUpdated(pod, hash, gen) {
			if newPod != nil {
				return nil, nil, false
			}
			newPod = pod
		} else {
			if oldPod != nil {
				return nil, nil, false
			}
			oldPod = pod
		}
	}
	return newPod, oldPod, true
}
