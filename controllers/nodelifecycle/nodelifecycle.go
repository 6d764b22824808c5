// Package nodelifecycle is the node lifecycle controller, as upstream's: it watches each node's
// Lease and status, marks a node whose kubelet went silent for longer than the grace period
// Ready=Unknown (and its pods not ready), taints it NoExecute node.kubernetes.io/unreachable (or
// not-ready when the kubelet says NotReady) at a rate that slows down when many nodes of a zone
// fail at once and stops when all fail, removes those taints when the node comes back, and keeps
// the NoSchedule condition taints (not-ready, unreachable, pressure, unschedulable) in step with
// the node. The taint eviction controller evicts pods from NoExecute-tainted nodes. It never
// deletes a node or a pod.
package nodelifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	coordinformers "k8s.io/client-go/informers/coordination/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "nodelifecycle"
	// Component names the controller in the Events it records.
	Component = "node-controller"
)

// Options are the controller's timings and rates; zero values are upstream's defaults.
type Options struct {
	// MonitorGracePeriod: a node whose kubelet neither renewed its Lease nor posted status for
	// this long is Unknown (--node-monitor-grace-period, 40s).
	MonitorGracePeriod time.Duration
	// StartupGracePeriod is that grace for a node that never posted status (1m).
	StartupGracePeriod time.Duration
	// MonitorPeriod is how often nodes are checked (5s).
	MonitorPeriod time.Duration
	// EvictionLimiterQPS is how many nodes per second are tainted NoExecute in a healthy zone
	// (0.1); SecondaryEvictionLimiterQPS in a partly disrupted large zone (0.01).
	EvictionLimiterQPS, SecondaryEvictionLimiterQPS float32
	// LargeClusterSizeThreshold: zones this small stop tainting when partly disrupted (50).
	LargeClusterSizeThreshold int
	// UnhealthyZoneThreshold: the share of not-ready nodes (at least 3) that makes a zone partly
	// disrupted (0.55).
	UnhealthyZoneThreshold float32
}

func (o *Options) setDefaults() {
	if o.MonitorGracePeriod == 0 {
		o.MonitorGracePeriod = 40 * time.Second
	}
	if o.StartupGracePeriod == 0 {
		o.StartupGracePeriod = time.Minute
	}
	if o.MonitorPeriod == 0 {
		o.MonitorPeriod = 5 * time.Second
	}
	if o.EvictionLimiterQPS == 0 {
		o.EvictionLimiterQPS = 0.1
	}
	if o.SecondaryEvictionLimiterQPS == 0 {
		o.SecondaryEvictionLimiterQPS = 0.01
	}
	if o.LargeClusterSizeThreshold == 0 {
		o.LargeClusterSizeThreshold = 50
	}
	if o.UnhealthyZoneThreshold == 0 {
		o.UnhealthyZoneThreshold = 0.55
	}
}

// nodeHealth is what the controller last observed of a node, with its own clock's times:
// kubelets' clocks are not trusted.
type nodeHealth struct {
	status                   *corev1.NodeStatus
	probeTimestamp           time.Time
	readyTransitionTimestamp time.Time
	lease                    *coordinationv1.Lease
}

// Controller is the node lifecycle controller.
type Controller struct {
	client      kubernetes.Interface
	nodeLister  corelisters.NodeLister
	leaseLister coordlisters.LeaseLister
	podIndexer  cache.Indexer
	synced      []cache.InformerSynced
	// queue holds node names whose NoSchedule condition taints may be out of step.
	queue    controllers.Queue
	recorder record.EventRecorder
	metrics  *controllers.Metrics
	opts     Options
	now      func() time.Time

	// the monitor's state, touched by one goroutine at a time
	mu           sync.Mutex
	health       map[string]*nodeHealth
	knownNodes   map[string]types.UID
	zoneStates   map[string]zoneState
	taintQueues  map[string]*taintQueue
	nodesToRetry map[string]bool
}

// New makes a node lifecycle controller on shared informers of nodes, node Leases and pods.
func New(nodeInformer coreinformers.NodeInformer, leaseInformer coordinformers.LeaseInformer, podInformer coreinformers.PodInformer,
	client kubernetes.Interface, opts Options, r controllers.Reporting) (*Controller, error) {
	opts.setDefaults()
	if err := controllers.AddPodNodeNameIndex(podInformer.Informer()); err != nil {
		return nil, err
	}
	c := &Controller{
		client:      client,
		nodeLister:  nodeInformer.Lister(),
		leaseLister: leaseInformer.Lister(),
		podIndexer:  podInformer.Informer().GetIndexer(),
		synced: []cache.InformerSynced{nodeInformer.Informer().HasSynced, leaseInformer.Informer().HasSynced,
			podInformer.Informer().HasSynced},
		queue:        controllers.NewQueue("node_lifecycle_controller", r),
		recorder:     r.EventRecorder(Component),
		metrics:      r.Metrics,
		opts:         opts,
		now:          time.Now,
		health:       map[string]*nodeHealth{},
		knownNodes:   map[string]types.UID{},
		zoneStates:   map[string]zoneState{},
		taintQueues:  map[string]*taintQueue{},
		nodesToRetry: map[string]bool{},
	}
	_, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
	})
	return c, err
}

func (c *Controller) enqueue(obj any) {
	if n, ok := obj.(*corev1.Node); ok {
		c.queue.Add(n.Name)
	}
}

// Run monitors nodes every MonitorPeriod, taints them at the zones' rates every 100ms, and
// keeps condition taints in step with workers goroutines, until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), c.synced...) {
		c.queue.ShutDown()
		return
	}
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := c.monitorNodeHealth(ctx); err != nil && ctx.Err() == nil {
			slog.Info("node health pass incomplete", "controller", Name, "err", err)
		}
	}, c.opts.MonitorPeriod)
	go wait.UntilWithContext(ctx, c.doNoExecuteTaintingPass, 100*time.Millisecond)
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics}.Run(ctx, workers)
}

// sync brings the NoSchedule condition taints of the node named key in step with its
// conditions and spec.unschedulable.
func (c *Controller) sync(ctx context.Context, key string) error {
	node, err := c.nodeLister.Get(key)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	want := wantedNoScheduleTaints(node)
	var add, remove []corev1.Taint
	for _, t := range want {
		if !taintExists(node.Spec.Taints, &t) {
			add = append(add, t)
		}
	}
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule && isConditionTaintKey(t.Key) && !taintExists(want, &t) {
			remove = append(remove, t)
		}
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	return ignoreNotFound(swapTaints(ctx, c.client, node.Name, add, remove, c.now()))
}

// monitorNodeHealth is one pass over every node: mark silent nodes Unknown, decide their
// NoExecute taints, and set each zone's tainting rate.
func (c *Controller) monitorNodeHealth(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return err
	}
	c.noticeAddedAndDeleted(nodes)
	zoneConditions := map[string][]*corev1.NodeCondition{}
	var errs []error
	for _, cached := range nodes {
		node := cached.DeepCopy()
		observed, current, err := c.tryUpdateNodeHealth(ctx, node)
		if err != nil {
			// try once more from the latest node
			fresh, getErr := c.client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
			if getErr != nil {
				errs = append(errs, err)
				continue
			}
			if observed, current, err = c.tryUpdateNodeHealth(ctx, fresh); err != nil {
				errs = append(errs, err)
				continue
			}
			node = fresh
		}
		if !excludedFromDisruption(node) {
			zone := zoneKey(node)
			zoneConditions[zone] = append(zoneConditions[zone], current)
		}
		if current == nil {
			continue
		}
		c.processTaintBaseEviction(ctx, node, &observed)
		retry := c.nodesToRetry[node.Name]
		switch {
		case current.Status != corev1.ConditionTrue && observed.Status == corev1.ConditionTrue:
			c.recordNodeStatusChange(node, "NodeNotReady")
			fallthrough
		case retry && observed.Status != corev1.ConditionTrue:
			if err := c.markPodsNotReady(ctx, node.Name); err != nil {
				c.nodesToRetry[node.Name] = true
				errs = append(errs, fmt.Errorf("mark pods of node %s not ready: %w", node.Name, err))
				continue
			}
		}
		delete(c.nodesToRetry, node.Name)
	}
	c.handleDisruption(ctx, zoneConditions, nodes)
	return errors.Join(errs...)
}

// noticeAddedAndDeleted records RegisteredNode and RemovingNode and forgets nodes gone.
func (c *Controller) noticeAddedAndDeleted(nodes []*corev1.Node) {
	seen := map[string]bool{}
	for _, n := range nodes {
		seen[n.Name] = true
		if _, ok := c.knownNodes[n.Name]; !ok {
			c.knownNodes[n.Name] = n.UID
			c.recorder.Eventf(nodeRef(n.Name, n.UID), corev1.EventTypeNormal, "RegisteredNode", "Registered Node %v in Controller", n.Name)
			c.taintQueueOf(zoneKey(n))
		}
	}
	for name, uid := range c.knownNodes {
		if !seen[name] {
			c.recorder.Eventf(nodeRef(name, uid), corev1.EventTypeNormal, "RemovingNode", "Removing Node %v from Controller", name)
			delete(c.knownNodes, name)
			delete(c.health, name)
			delete(c.nodesToRetry, name)
			for _, q := range c.taintQueues {
				q.remove(name)
			}
		}
	}
}

func nodeRef(name string, uid types.UID) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: name, UID: uid}
}

func (c *Controller) recordNodeStatusChange(node *corev1.Node, status string) {
	// upstream records these against the node's name as UID
	c.recorder.Eventf(nodeRef(node.Name, types.UID(node.Name)), corev1.EventTypeNormal, status, "Node %s status is now: %s", node.Name, status)
}

// tryUpdateNodeHealth is upstream's: it refreshes what the controller knows of the node and,
// when the kubelet has been silent past the grace period, writes its conditions Unknown. It
// returns the Ready condition as observed before and as it is now.
func (c *Controller) tryUpdateNodeHealth(ctx context.Context, node *corev1.Node) (corev1.NodeCondition, *corev1.NodeCondition, error) {
	h := c.health[node.Name]
	now := c.now()
	var observed corev1.NodeCondition
	var grace time.Duration
	current := nodeCondition(&node.Status, corev1.NodeReady)
	if current == nil {
		// never posted: pretend it did at creation, and give it the startup grace
		observed = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown,
			LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: node.CreationTimestamp}
		grace = c.opts.StartupGracePeriod
		if h != nil {
			h.status = &node.Status
		} else {
			h = &nodeHealth{status: &node.Status, probeTimestamp: node.CreationTimestamp.Time, readyTransitionTimestamp: node.CreationTimestamp.Time}
		}
	} else {
		observed = *current
		grace = c.opts.MonitorGracePeriod
	}
	var saved *corev1.NodeCondition
	var savedLease *coordinationv1.Lease
	if h != nil {
		saved = nodeCondition(h.status, corev1.NodeReady)
		savedLease = h.lease
	}
	switch {
	case h == nil, saved == nil && current != nil, saved != nil && current == nil:
		h = &nodeHealth{status: &node.Status, probeTimestamp: now, readyTransitionTimestamp: now}
	case saved != nil && current != nil && !saved.LastHeartbeatTime.Equal(&current.LastHeartbeatTime):
		transition := h.readyTransitionTimestamp
		if !saved.LastTransitionTime.Equal(&current.LastTransitionTime) {
			transition = now
		}
		h = &nodeHealth{status: &node.Status, probeTimestamp: now, readyTransitionTimestamp: transition, lease: h.lease}
	}
	// a renewed Lease is a sign of life as good as a status
	lease, _ := c.leaseLister.Leases(corev1.NamespaceNodeLease).Get(node.Name)
	if lease != nil && lease.Spec.RenewTime != nil &&
		(savedLease == nil || savedLease.Spec.RenewTime == nil || savedLease.Spec.RenewTime.Before(lease.Spec.RenewTime)) {
		h.lease = lease
		h.probeTimestamp = now
	}
	c.health[node.Name] = h

	if !now.After(h.probeTimestamp.Add(grace)) {
		return observed, current, nil
	}
	for _, t := range []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		cond := nodeCondition(&node.Status, t)
		if cond == nil {
			node.Status.Conditions = append(node.Status.Conditions, corev1.NodeCondition{
				Type: t, Status: corev1.ConditionUnknown, Reason: "NodeStatusNeverUpdated", Message: "Kubelet never posted node status.",
				LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: metav1.NewTime(now),
			})
		} else if cond.Status != corev1.ConditionUnknown {
			cond.Status = corev1.ConditionUnknown
			cond.Reason = "NodeStatusUnknown"
			cond.Message = "Kubelet stopped posting node status."
			cond.LastTransitionTime = metav1.NewTime(now)
		}
	}
	current = nodeCondition(&node.Status, corev1.NodeReady)
	if equality.Semantic.DeepEqual(current, &observed) {
		return observed, current, nil
	}
	if _, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return observed, current, err
	}
	c.health[node.Name] = &nodeHealth{status: &node.Status, probeTimestamp: h.probeTimestamp, readyTransitionTimestamp: now, lease: lease}
	return observed, current, nil
}

// processTaintBaseEviction decides a node's NoExecute taint from its Ready condition as it was
// observed: queue it for tainting (at the zone's rate), swap a taint of the other kind at once,
// or remove both when it is ready.
func (c *Controller) processTaintBaseEviction(ctx context.Context, node *corev1.Node, observed *corev1.NodeCondition) {
	zone := zoneKey(node)
	switch observed.Status {
	case corev1.ConditionFalse:
		if taintExists(node.Spec.Taints, &UnreachableTaint) {
			if err := swapTaints(ctx, c.client, node.Name, []corev1.Taint{NotReadyTaint}, []corev1.Taint{UnreachableTaint}, c.now()); err != nil {
				slog.Info("cannot swap unreachable for not-ready taint", "controller", Name, "node", node.Name, "err", err)
			}
		} else if !taintExists(node.Spec.Taints, &NotReadyTaint) {
			c.taintQueueOf(zone).add(node.Name, c.now())
		}
	case corev1.ConditionUnknown:
		if taintExists(node.Spec.Taints, &NotReadyTaint) {
			if err := swapTaints(ctx, c.client, node.Name, []corev1.Taint{UnreachableTaint}, []corev1.Taint{NotReadyTaint}, c.now()); err != nil {
				slog.Info("cannot swap not-ready for unreachable taint", "controller", Name, "node", node.Name, "err", err)
			}
		} else if !taintExists(node.Spec.Taints, &UnreachableTaint) {
			c.taintQueueOf(zone).add(node.Name, c.now())
		}
	case corev1.ConditionTrue:
		if err := c.markNodeAsReachable(ctx, node); err != nil {
			slog.Info("cannot remove NoExecute taints, will retry", "controller", Name, "node", node.Name, "err", err)
		}
	}
}

// markNodeAsReachable removes both NoExecute taints and any pending tainting.
func (c *Controller) markNodeAsReachable(ctx context.Context, node *corev1.Node) error {
	for _, q := range c.taintQueues {
		q.remove(node.Name)
	}
	if !taintExists(node.Spec.Taints, &UnreachableTaint) && !taintExists(node.Spec.Taints, &NotReadyTaint) {
		return nil
	}
	return ignoreNotFound(swapTaints(ctx, c.client, node.Name, nil, []corev1.Taint{UnreachableTaint, NotReadyTaint}, c.now()))
}

// doNoExecuteTaintingPass taints queued nodes, zone by zone, as fast as each zone's rate allows.
func (c *Controller) doNoExecuteTaintingPass(ctx context.Context) {
	c.mu.Lock()
	queues := make([]*taintQueue, 0, len(c.taintQueues))
	for _, q := range c.taintQueues {
		queues = append(queues, q)
	}
	c.mu.Unlock()
	now := c.now()
	for _, q := range queues {
		q.try(now, func(name string) (bool, time.Duration) {
			node, err := c.nodeLister.Get(name)
			if apierrors.IsNotFound(err) {
				return true, 0
			}
			if err != nil {
				return false, 50 * time.Millisecond
			}
			ready := nodeCondition(&node.Status, corev1.NodeReady)
			if ready == nil {
				return false, 50 * time.Millisecond
			}
			var add, opposite corev1.Taint
			switch ready.Status {
			case corev1.ConditionFalse:
				add, opposite = NotReadyTaint, UnreachableTaint
			case corev1.ConditionUnknown:
				add, opposite = UnreachableTaint, NotReadyTaint
			default:
				return true, 0 // ready again: no taint
			}
			if err := swapTaints(ctx, c.client, name, []corev1.Taint{add}, []corev1.Taint{opposite}, c.now()); err != nil {
				return apierrors.IsNotFound(err), 0
			}
			return true, 0
		})
	}
}

// markPodsNotReady sets the Ready condition of the node's pods False, as no kubelet will.
func (c *Controller) markPodsNotReady(ctx context.Context, nodeName string) error {
	objs, err := c.podIndexer.ByIndex(controllers.PodNodeNameIndex, nodeName)
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range objs {
		pod := o.(*corev1.Pod)
		i := slices.IndexFunc(pod.Status.Conditions, func(c corev1.PodCondition) bool { return c.Type == corev1.PodReady })
		if i < 0 || pod.Status.Conditions[i].Status == corev1.ConditionFalse {
			continue
		}
		pod = pod.DeepCopy()
		pod.Status.Conditions[i].Status = corev1.ConditionFalse
		pod.Status.Conditions[i].LastTransitionTime = metav1.NewTime(c.now())
		if _, err := c.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		c.recorder.Event(pod, corev1.EventTypeWarning, "NodeNotReady", "Node is not ready")
	}
	return errors.Join(errs...)
}

// excludedFromDisruption: nodes labelled node.kubernetes.io/exclude-disruption do not count in
// their zone's health.
func excludedFromDisruption(n *corev1.Node) bool {
	_, ok := n.Labels["node.kubernetes.io/exclude-disruption"]
	return ok
}

// computeZoneState is upstream's: no ready node is full disruption; at least three not-ready
// nodes making UnhealthyZoneThreshold of the zone is partial disruption.
func (c *Controller) computeZoneState(conditions []*corev1.NodeCondition) zoneState {
	ready, notReady := 0, 0
	for _, cond := range conditions {
		if cond != nil && cond.Status == corev1.ConditionTrue {
			ready++
		} else {
			notReady++
		}
	}
	switch {
	case ready == 0 && notReady > 0:
		return stateFullDisruption
	case notReady > 2 && float32(notReady)/float32(notReady+ready) >= c.opts.UnhealthyZoneThreshold:
		return statePartialDisruption
	default:
		return stateNormal
	}
}

// handleDisruption sets each zone's tainting rate from its state; when every zone is fully
// disrupted (the control plane probably lost the nodes, not the nodes their work) it stops
// tainting and removes the NoExecute taints, as upstream.
func (c *Controller) handleDisruption(ctx context.Context, zoneConditions map[string][]*corev1.NodeCondition, nodes []*corev1.Node) {
	newStates := map[string]zoneState{}
	allFullyDisrupted := len(zoneConditions) > 0
	for zone, conds := range zoneConditions {
		s := c.computeZoneState(conds)
		if s != stateFullDisruption {
			allFullyDisrupted = false
		}
		newStates[zone] = s
		c.taintQueueOf(zone)
	}
	allWereFullyDisrupted := true
	for zone, s := range c.zoneStates {
		if _, ok := zoneConditions[zone]; !ok {
			delete(c.zoneStates, zone)
			continue
		}
		if s != stateFullDisruption {
			allWereFullyDisrupted = false
		}
	}
	if allFullyDisrupted && allWereFullyDisrupted {
		return
	}
	if allFullyDisrupted {
		slog.Info("every node is not ready: entering disruption mode, no evictions", "controller", Name)
		for _, n := range nodes {
			if err := c.markNodeAsReachable(ctx, n); err != nil {
				slog.Info("cannot remove NoExecute taints", "controller", Name, "node", n.Name, "err", err)
			}
		}
		for zone := range c.zoneStates {
			c.taintQueueOf(zone).swapLimiter(0)
			c.zoneStates[zone] = stateFullDisruption
		}
		return
	}
	if allWereFullyDisrupted {
		slog.Info("some nodes are ready: leaving disruption mode", "controller", Name)
		now := c.now()
		for _, n := range nodes {
			if h := c.health[n.Name]; h != nil {
				h.probeTimestamp, h.readyTransitionTimestamp = now, now
			}
		}
	}
	for zone, s := range c.zoneStates {
		if ns := newStates[zone]; allWereFullyDisrupted || s != ns {
			c.setLimiterInZone(zone, len(zoneConditions[zone]), ns)
			c.zoneStates[zone] = ns
		}
	}
}

// taintQueueOf is the taint queue of a zone, made (with the zone's initial state) the first
// time the zone is seen; c.mu is held.
func (c *Controller) taintQueueOf(zone string) *taintQueue {
	q, ok := c.taintQueues[zone]
	if !ok {
		q = newTaintQueue(c.opts.EvictionLimiterQPS)
		c.taintQueues[zone] = q
	}
	if _, ok := c.zoneStates[zone]; !ok {
		c.zoneStates[zone] = stateInitial
	}
	return q
}

func (c *Controller) setLimiterInZone(zone string, size int, s zoneState) {
	q := c.taintQueueOf(zone)
	switch s {
	case stateNormal, stateFullDisruption:
		q.swapLimiter(c.opts.EvictionLimiterQPS)
	case statePartialDisruption:
		if size <= c.opts.LargeClusterSizeThreshold {
			q.swapLimiter(0)
		} else {
			q.swapLimiter(c.opts.SecondaryEvictionLimiterQPS)
		}
	}
}
