// Package tainteviction is the taint eviction controller, as upstream's (the node lifecycle
// controller's taint manager until 1.29): a pod on a node with NoExecute taints it does not
// tolerate is deleted at once; one that tolerates them for a while (tolerationSeconds, 300s by
// default for not-ready and unreachable) is deleted when the shortest toleration runs out, unless
// the taints go first. It records TaintManagerEviction Events, and never deletes a pod that
// tolerates every NoExecute taint of its node forever.
package tainteviction

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "taint-eviction-controller"
	// Component names the controller in the Events it records, as upstream.
	Component = "taint-eviction-controller"
)

// scheduledEviction is a pod's pending deletion.
type scheduledEviction struct {
	createdAt, fireAt time.Time
}

// Controller is the taint eviction controller.
type Controller struct {
	client     kubernetes.Interface
	nodeLister corelisters.NodeLister
	podLister  corelisters.PodLister
	podIndexer cache.Indexer
	synced     []cache.InformerSynced
	// nodes holds node names whose pods must be looked at; evictions holds pod keys
	// ("namespace/name") due for deletion.
	nodes     controllers.Queue
	evictions controllers.Queue
	recorder  record.EventRecorder
	metrics   *controllers.Metrics
	now       func() time.Time

	mu        sync.Mutex
	scheduled map[string]scheduledEviction
}

// New makes a taint eviction controller on shared informers of pods and nodes.
func New(podInformer coreinformers.PodInformer, nodeInformer coreinformers.NodeInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	if err := controllers.AddPodNodeNameIndex(podInformer.Informer()); err != nil {
		return nil, err
	}
	c := &Controller{
		client:     client,
		nodeLister: nodeInformer.Lister(),
		podLister:  podInformer.Lister(),
		podIndexer: podInformer.Informer().GetIndexer(),
		synced:     []cache.InformerSynced{podInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced},
		nodes:      controllers.NewQueue("noexec_taint_node", r),
		evictions:  controllers.NewQueue("noexec_taint_pod", r),
		recorder:   r.EventRecorder(Component),
		metrics:    r.Metrics,
		now:        time.Now,
		scheduled:  map[string]scheduledEviction{},
	}
	if _, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.nodeChanged(nil, obj) },
		UpdateFunc: func(old, cur any) {
			c.nodeChanged(old, cur)
		},
		DeleteFunc: func(obj any) { c.nodeChanged(nil, obj) },
	}); err != nil {
		return nil, err
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.podChanged,
		UpdateFunc: func(_, cur any) { c.podChanged(cur) },
		DeleteFunc: c.podDeleted,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Controller) nodeChanged(old, cur any) {
	if t, ok := cur.(cache.DeletedFinalStateUnknown); ok {
		cur = t.Obj
	}
	n, ok := cur.(*corev1.Node)
	if !ok {
		return
	}
	if o, ok := old.(*corev1.Node); ok && equalTaints(noExecuteTaints(o.Spec.Taints), noExecuteTaints(n.Spec.Taints)) {
		return
	}
	c.nodes.Add(n.Name)
}

func (c *Controller) podChanged(obj any) {
	if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
		c.nodes.Add(p.Spec.NodeName)
	}
}

func (c *Controller) podDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if p, ok := obj.(*corev1.Pod); ok {
		c.mu.Lock()
		delete(c.scheduled, p.Namespace+"/"+p.Name)
		c.mu.Unlock()
	}
}

// Run evicts with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	slog.Info("starting controller", "controller", Name)
	defer slog.Info("stopped controller", "controller", Name)
	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), c.synced...) {
		c.nodes.ShutDown()
		c.evictions.ShutDown()
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		controllers.Workers{Name: "noexec_taint_pod", Queue: c.evictions, Sync: c.evict, Metrics: c.metrics}.Run(ctx, workers)
	})
	controllers.Workers{Name: Name, Queue: c.nodes, Sync: c.sync, Metrics: c.metrics}.Run(ctx, workers)
	wg.Wait()
}

// sync schedules, reschedules or cancels the eviction of every pod on the node named key.
func (c *Controller) sync(ctx context.Context, key string) error {
	var taints []corev1.Taint
	node, err := c.nodeLister.Get(key)
	switch {
	case err == nil:
		taints = noExecuteTaints(node.Spec.Taints)
	case !apierrors.IsNotFound(err):
		return err
	}
	pods, err := c.podIndexer.ByIndex(controllers.PodNodeNameIndex, key)
	if err != nil {
		return err
	}
	now := c.now()
	for _, o := range pods {
		c.processPod(o.(*corev1.Pod), taints, now)
	}
	return nil
}

// processPod decides one pod's eviction from its node's NoExecute taints.
func (c *Controller) processPod(pod *corev1.Pod, taints []corev1.Taint, now time.Time) {
	key := pod.Namespace + "/" + pod.Name
	if pod.DeletionTimestamp != nil {
		return
	}
	if len(taints) == 0 {
		c.cancel(pod, key)
		return
	}
	used, all := matchingTolerations(taints, pod.Spec.Tolerations)
	if !all {
		c.schedule(key, now, now)
		return
	}
	min := minTolerationTime(used)
	if min < 0 {
		c.cancel(pod, key)
		return
	}
	c.mu.Lock()
	start := now
	if s, ok := c.scheduled[key]; ok {
		start = s.createdAt
	}
	c.mu.Unlock()
	c.schedule(key, start, start.Add(min))
}

// schedule sets a pod's deletion at fireAt, counted from createdAt.
func (c *Controller) schedule(key string, createdAt, fireAt time.Time) {
	c.mu.Lock()
	if s, ok := c.scheduled[key]; ok && s.fireAt.Equal(fireAt) {
		c.mu.Unlock()
		return
	}
	c.scheduled[key] = scheduledEviction{createdAt: createdAt, fireAt: fireAt}
	c.mu.Unlock()
	c.evictions.AddAfter(key, fireAt.Sub(c.now()))
}

// cancel drops a pod's pending deletion, telling the pod.
func (c *Controller) cancel(pod *corev1.Pod, key string) {
	c.mu.Lock()
	_, ok := c.scheduled[key]
	delete(c.scheduled, key)
	c.mu.Unlock()
	if ok {
		c.recorder.Eventf(pod, corev1.EventTypeNormal, "TaintManagerEviction", "Cancelling deletion of Pod %s", key)
	}
}

// evict deletes the pod named key if its deletion is still due.
func (c *Controller) evict(ctx context.Context, key string) error {
	c.mu.Lock()
	s, ok := c.scheduled[key]
	c.mu.Unlock()
	if !ok {
		return nil
	}
	if wait := s.fireAt.Sub(c.now()); wait > 0 {
		c.evictions.AddAfter(key, wait)
		return nil
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := c.podLister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key, s)
		return nil
	}
	if err != nil {
		return err
	}
	if pod.DeletionTimestamp != nil {
		c.forget(key, s)
		return nil
	}
	c.recorder.Eventf(pod, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s", key)
	if err := c.addConditionAndDelete(ctx, pod); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	c.forget(key, s)
	return nil
}

// forget drops a schedule unless it was replaced meanwhile.
func (c *Controller) forget(key string, s scheduledEviction) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.scheduled[key]; ok && cur == s {
		delete(c.scheduled, key)
	}
}

// addConditionAndDelete says why on the pod (DisruptionTarget) and deletes it gracefully.
func (c *Controller) addConditionAndDelete(ctx context.Context, pod *corev1.Pod) error {
	cond := corev1.PodCondition{
		Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(c.now()),
		Reason: "DeletionByTaintManager", Message: "Taint manager: deleting due to NoExecute taint",
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": pod.UID},
		"status":   map[string]any{"conditions": []corev1.PodCondition{cond}},
	})
	if err != nil {
		return err
	}
	if _, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return err
	}
	uid := pod.UID
	return c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
}

func noExecuteTaints(taints []corev1.Taint) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}

func equalTaints(a, b []corev1.Taint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].MatchTaint(&b[i]) || a[i].Value != b[i].Value {
			return false
		}
	}
	return true
}

// tolerates is a toleration's match of a taint, as core/v1's ToleratesTaint.
func tolerates(t *corev1.Toleration, taint *corev1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		return t.Value == taint.Value
	case corev1.TolerationOpExists:
		return true
	}
	return false
}

// matchingTolerations returns, for every taint, the first toleration that tolerates it, and
// whether every taint is tolerated.
func matchingTolerations(taints []corev1.Taint, tolerations []corev1.Toleration) ([]corev1.Toleration, bool) {
	var used []corev1.Toleration
	for i := range taints {
		found := false
		for j := range tolerations {
			if tolerates(&tolerations[j], &taints[i]) {
				used = append(used, tolerations[j])
				found = true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return used, true
}

// minTolerationTime is the shortest tolerationSeconds of the tolerations; negative means
// forever, zero means at once.
func minTolerationTime(tolerations []corev1.Toleration) time.Duration {
	if len(tolerations) == 0 {
		return 0
	}
	min := int64(math.MaxInt64)
	for _, t := range tolerations {
		if t.TolerationSeconds != nil {
			if *t.TolerationSeconds <= 0 {
				return 0
			}
			if *t.TolerationSeconds < min {
				min = *t.TolerationSeconds
			}
		}
	}
	if min == math.MaxInt64 {
		return -1
	}
	return time.Duration(min) * time.Second
}
