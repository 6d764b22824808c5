// Package daemonset is the DaemonSet controller: it keeps one pod of each DaemonSet on every
// node its template may run on (node name, node selector, node affinity, and taints against
// its tolerations plus the ones upstream adds to every daemon pod), as upstream's. It does not
// place pods itself: each pod it creates requires, by node affinity on metadata.name, the node
// it is for, and the scheduler binds it there. It rolls template changes out node by node
// (RollingUpdate with maxUnavailable or maxSurge; OnDelete waits for the user), keeps the
// DaemonSet's history as ControllerRevisions (what kubectl rollout history and undo read), and
// writes the DaemonSet's status.
//
// It must never touch pods another controller owns, and never binds a pod to a node.
package daemonset

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "daemonset"
	// Component names the controller in the Events it records.
	Component = "daemonset-controller"
	// BurstReplicas is the most pods one sync creates or deletes.
	BurstReplicas = 250

	// TemplateGenerationLabel is the pod label holding the template generation the pod was made
	// from (upstream's pod-template-generation).
	TemplateGenerationLabel = "pod-template-generation"
	// TemplateGenerationAnnotation is where an apps/v1 DaemonSet keeps its template generation.
	TemplateGenerationAnnotation = "deprecated.daemonset.template.generation"
)

var controllerKind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

var discardLogs = logr.Discard()

// Controller is the DaemonSet controller.
type Controller struct {
	client        kubernetes.Interface
	dsLister      appslisters.DaemonSetLister
	historyLister appslisters.ControllerRevisionLister
	nodeLister    corelisters.NodeLister
	podIndexer    cache.Indexer
	synced        []cache.InformerSynced
	queue         controllers.Queue
	expectations  *controllers.Expectations
	podControl    controllers.PodControl
	recorder      record.EventRecorder
	metrics       *controllers.Metrics
	burstReplicas int
	now           func() time.Time
	// failedPodsBackoff spaces the replacements of a DaemonSet's failed pods on one node, so
	// that a node whose kubelet keeps refusing the pod is not hot-looped.
	failedPodsBackoff *flowcontrol.Backoff
}

// New makes a DaemonSet controller on shared informers of DaemonSets, ControllerRevisions,
// pods and nodes. Call it before the informers start: it adds an index to the pod informer.
func New(dsInformer appsinformers.DaemonSetInformer, historyInformer appsinformers.ControllerRevisionInformer,
	podInformer coreinformers.PodInformer, nodeInformer coreinformers.NodeInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	if err := controllers.AddControllerUIDIndex(podInformer.Informer()); err != nil {
		return nil, fmt.Errorf("index pods by controller: %w", err)
	}
	recorder := r.EventRecorder(Component)
	c := &Controller{
		client:        client,
		dsLister:      dsInformer.Lister(),
		historyLister: historyInformer.Lister(),
		nodeLister:    nodeInformer.Lister(),
		podIndexer:    podInformer.Informer().GetIndexer(),
		synced: []cache.InformerSynced{dsInformer.Informer().HasSynced, historyInformer.Informer().HasSynced,
			podInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced},
		queue:         controllers.NewQueue(Name, r),
		expectations:  controllers.NewExpectations(),
		podControl:    controllers.PodControl{Client: client, Recorder: recorder},
		recorder:      recorder,
		metrics:       r.Metrics,
		burstReplicas: BurstReplicas,
		now:           time.Now,

		failedPodsBackoff: flowcontrol.NewBackOff(time.Second, 15*time.Minute),
	}
	handlers := []struct {
		informer cache.SharedIndexInformer
		funcs    cache.ResourceEventHandlerFuncs
	}{
		{dsInformer.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.enqueue(obj) },
			UpdateFunc: func(_, cur any) { c.enqueue(cur) },
			DeleteFunc: c.deleteDaemonSet,
		}},
		{historyInformer.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.addRevision,
			UpdateFunc: func(_, cur any) { c.enqueueOwner(cur) },
			DeleteFunc: c.enqueueOwner,
		}},
		{podInformer.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.addPod,
			UpdateFunc: c.updatePod,
			DeleteFunc: c.deletePod,
		}},
		{nodeInformer.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.nodeChanged(nil, obj.(*corev1.Node)) },
			UpdateFunc: func(old, cur any) { c.nodeChanged(old.(*corev1.Node), cur.(*corev1.Node)) },
		}},
	}
	for _, h := range handlers {
		reg, err := h.informer.AddEventHandler(h.funcs)
		if err != nil {
			return nil, err
		}
		// synced only once the handlers have seen the initial objects too: a sync before
		// that would count its own pods' add events against the expectations it just set
		c.synced = append(c.synced, reg.HasSynced)
	}
	return c, nil
}

// Run syncs DaemonSets with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.failedPodsBackoff.GC()
			}
		}
	}()
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) enqueue(obj any) {
	if key, err := controllers.KeyOf(obj); err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) deleteDaemonSet(obj any) {
	if key, err := controllers.KeyOf(obj); err == nil {
		c.expectations.Delete(key)
		c.queue.Add(key)
	}
}

// addRevision wakes the DaemonSets that may adopt an orphan revision. A revision with an owner
// wakes no one, as upstream's: its owner made it, or a user did (the ControllerRevision
// conformance spec adds a second current revision and counts two before deleting one, which
// a sync now would have deduplicated).
func (c *Controller) addRevision(obj any) {
	cr := obj.(*appsv1.ControllerRevision)
	if cr.DeletionTimestamp != nil {
		c.enqueueOwner(cr)
		return
	}
	if metav1.GetControllerOfNoCopy(cr) != nil {
		return
	}
	for _, ds := range c.selecting(cr) {
		c.enqueue(ds)
	}
}

// enqueueOwner enqueues the DaemonSet controlling a pod or a ControllerRevision.
func (c *Controller) enqueueOwner(obj any) {
	if ds := c.owner(obj); ds != nil {
		c.enqueue(ds)
	}
}

// owner is the DaemonSet named by obj's ControllerRef, if it is in the cache with that UID.
func (c *Controller) owner(obj any) *appsv1.DaemonSet {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil
	}
	ref := metav1.GetControllerOfNoCopy(m)
	if ref == nil || ref.Kind != controllerKind.Kind {
		return nil
	}
	ds, err := c.dsLister.DaemonSets(m.GetNamespace()).Get(ref.Name)
	if err != nil || ds.UID != ref.UID {
		return nil
	}
	return ds
}

// selecting are the DaemonSets whose selector matches an orphan (a pod or a revision).
func (c *Controller) selecting(orphan metav1.Object) []*appsv1.DaemonSet {
	all, err := c.dsLister.DaemonSets(orphan.GetNamespace()).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*appsv1.DaemonSet
	for _, ds := range all {
		s, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
		if err == nil && !s.Empty() && s.Matches(labels.Set(orphan.GetLabels())) {
			out = append(out, ds)
		}
	}
	return out
}

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		c.deletePod(pod)
		return
	}
	if metav1.GetControllerOfNoCopy(pod) != nil {
		if ds := c.owner(pod); ds != nil {
			if key, err := controllers.KeyOf(ds); err == nil {
				c.expectations.CreationObserved(key)
				c.queue.Add(key)
			}
		}
		return
	}
	for _, ds := range c.selecting(pod) {
		c.enqueue(ds)
	}
}

func (c *Controller) updatePod(old, cur any) {
	oldPod, curPod := old.(*corev1.Pod), cur.(*corev1.Pod)
	if curPod.ResourceVersion == oldPod.ResourceVersion {
		return
	}
	if curPod.DeletionTimestamp != nil {
		// replace a pod going away now, not once the kubelet is done with it
		c.deletePod(curPod)
		return
	}
	curRef, oldRef := metav1.GetControllerOfNoCopy(curPod), metav1.GetControllerOfNoCopy(oldPod)
	if !reflect.DeepEqual(curRef, oldRef) && oldRef != nil {
		c.enqueueOwner(oldPod)
	}
	if curRef != nil {
		ds := c.owner(curPod)
		if ds == nil {
			return
		}
		c.enqueue(ds)
		if !controllers.IsPodReady(oldPod) && controllers.IsPodReady(curPod) && ds.Spec.MinReadySeconds > 0 {
			if key, err := controllers.KeyOf(ds); err == nil {
				c.queue.AddAfter(key, time.Duration(ds.Spec.MinReadySeconds)*time.Second+time.Second)
			}
		}
		return
	}
	if !reflect.DeepEqual(curPod.Labels, oldPod.Labels) || !reflect.DeepEqual(curRef, oldRef) {
		for _, ds := range c.selecting(curPod) {
			c.enqueue(ds)
		}
	}
}

func (c *Controller) deletePod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		t, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if pod, ok = t.Obj.(*corev1.Pod); !ok {
			return
		}
	}
	ds := c.owner(pod)
	if ds == nil {
		return
	}
	if key, err := controllers.KeyOf(ds); err == nil {
		c.expectations.DeletionObserved(key, controllers.PodKey(pod))
		c.queue.Add(key)
	}
}

// nodeChanged enqueues the DaemonSets whose pods a new or changed node should now start or stop.
func (c *Controller) nodeChanged(old, cur *corev1.Node) {
	if old != nil && reflect.DeepEqual(old.Labels, cur.Labels) && reflect.DeepEqual(old.Spec.Taints, cur.Spec.Taints) {
		return
	}
	all, err := c.dsLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range all {
		spec := daemonPodSpec(ds)
		run, keep := shouldRun(spec, cur)
		if old == nil {
			if run {
				c.enqueue(ds)
			}
			continue
		}
		if oldRun, oldKeep := shouldRun(spec, old); oldRun != run || oldKeep != keep {
			c.enqueue(ds)
		}
	}
}

// daemonPodSpec is the spec of ds's pods before they are bound to a node: the template's, with
// the daemon tolerations.
func daemonPodSpec(ds *appsv1.DaemonSet) *corev1.PodSpec {
	spec := ds.Spec.Template.Spec.DeepCopy()
	addDaemonTolerations(spec)
	return spec
}

// sync makes the DaemonSet named by key have one up-to-date pod on each node that should run
// one, and a status that says so.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	ds, err := c.dsLister.DaemonSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.expectations.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || selector.Empty() {
		// validation refuses these; a selector of everything would claim every pod
		c.recorder.Event(ds, corev1.EventTypeWarning, "SelectingAll", "This daemon set is selecting all pods. A non-empty selector is required.")
		return nil
	}
	if ds.DeletionTimestamp != nil {
		return nil // the garbage collector takes its pods
	}
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return err
	}
	cur, old, err := c.constructHistory(ctx, ds, selector)
	if err != nil {
		return fmt.Errorf("failed to construct revisions of DaemonSet: %w", err)
	}
	hash := cur.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]

	if !c.expectations.Satisfied(key) {
		// our last creations or deletions are not all seen yet: only report
		return c.updateStatus(ctx, ds, selector, nodes, hash, false)
	}
	if err := c.manage(ctx, ds, selector, nodes, hash); err != nil {
		return err
	}
	if c.expectations.Satisfied(key) && ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if err := c.rollingUpdate(ctx, ds, selector, nodes, hash); err != nil {
			return err
		}
	}
	if err := c.cleanupHistory(ctx, ds, selector, old); err != nil {
		return fmt.Errorf("failed to clean up revisions of DaemonSet: %w", err)
	}
	return c.updateStatus(ctx, ds, selector, nodes, hash, true)
}

// nodesToDaemonPods claims ds's pods and groups them by the node each is for. Pods that are
// both finished and being deleted are left out.
func (c *Controller) nodesToDaemonPods(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector) (map[string][]*corev1.Pod, error) {
	candidates, err := controllers.ObjectsOf(c.podIndexer, string(ds.UID), ds.Namespace)
	if err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, 0, len(candidates))
	for _, obj := range candidates {
		pod := obj.(*corev1.Pod)
		if pod.DeletionTimestamp != nil && !controllers.IsPodActive(pod) && !controllers.IsPodTerminating(pod) {
			continue
		}
		pods = append(pods, pod)
	}
	m := controllers.NewRefManager(ds, controllerKind, selector, func(ctx context.Context) (metav1.Object, error) {
		return c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
	})
	claimed, err := m.ClaimPods(ctx, c.client, pods)
	if err != nil {
		return nil, err
	}
	out := map[string][]*corev1.Pod{}
	for _, pod := range claimed {
		node := targetNode(pod)
		out[node] = append(out[node], pod)
	}
	return out, nil
}

func templateGeneration(ds *appsv1.DaemonSet) string {
	return ds.Annotations[TemplateGenerationAnnotation]
}

// isPodUpdated: a pod is of ds's current template when its revision hash is the current one,
// or (pods made before revisions were hashed) its template generation is.
func isPodUpdated(pod *corev1.Pod, hash, generation string) bool {
	return (hash != "" && pod.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash) ||
		(generation != "" && pod.Labels[TemplateGenerationLabel] == generation)
}
