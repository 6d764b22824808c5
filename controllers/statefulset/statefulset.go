// Package statefulset is the StatefulSet controller, as upstream's: each StatefulSet has pods
// with stable names <set>-<ordinal> (from spec.ordinals.start), stable hostnames under the
// governing Service (spec.serviceName), and, per volumeClaimTemplate, a PersistentVolumeClaim
// <claim>-<set>-<ordinal> that outlives the pod. With OrderedReady it creates pods one at a
// time in ordinal order, each once the one before is Running and Ready, and removes them in
// reverse; with Parallel it creates and removes them all at once. Template changes roll out
// from the highest ordinal down to the partition (RollingUpdate, within maxUnavailable) or wait
// for the user to delete pods (OnDelete). Its history is ControllerRevisions; its status says
// how many pods are ready, current and updated, and which revisions are current and updating.
//
// It must never touch pods another controller owns, and never deletes a claim.
package statefulset

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "statefulset"
	// Component names the controller in the Events it records.
	Component = "statefulset-controller"
)

var controllerKind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// Controller is the StatefulSet controller.
type Controller struct {
	client        kubernetes.Interface
	setLister     appslisters.StatefulSetLister
	historyLister appslisters.ControllerRevisionLister
	podIndexer    cache.Indexer
	synced        []cache.InformerSynced
	queue         controllers.Queue
	recorder      record.EventRecorder
	metrics       *controllers.Metrics
	now           func() time.Time
}

// New makes a StatefulSet controller on shared informers of StatefulSets, ControllerRevisions
// and pods. Call it before the informers start: it adds an index to the pod informer.
func New(setInformer appsinformers.StatefulSetInformer, historyInformer appsinformers.ControllerRevisionInformer,
	podInformer coreinformers.PodInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	if err := controllers.AddControllerUIDIndex(podInformer.Informer()); err != nil {
		return nil, fmt.Errorf("index pods by controller: %w", err)
	}
	c := &Controller{
		client:        client,
		setLister:     setInformer.Lister(),
		historyLister: historyInformer.Lister(),
		podIndexer:    podInformer.Informer().GetIndexer(),
		synced: []cache.InformerSynced{setInformer.Informer().HasSynced, historyInformer.Informer().HasSynced,
			podInformer.Informer().HasSynced},
		queue:    controllers.NewQueue(Name, r),
		recorder: r.EventRecorder(Component),
		metrics:  r.Metrics,
		now:      time.Now,
	}
	if _, err := setInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, err
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.podChanged,
		UpdateFunc: func(old, cur any) {
			oldPod, curPod := old.(*corev1.Pod), cur.(*corev1.Pod)
			if oldPod.ResourceVersion == curPod.ResourceVersion {
				return
			}
			if ref := metav1.GetControllerOfNoCopy(oldPod); ref != nil && !reflect.DeepEqual(ref, metav1.GetControllerOfNoCopy(curPod)) {
				c.podChanged(oldPod)
			}
			c.podChanged(curPod)
			if !controllers.IsPodReady(oldPod) && controllers.IsPodReady(curPod) {
				if set := c.owner(curPod); set != nil && set.Spec.MinReadySeconds > 0 {
					if key, err := controllers.KeyOf(set); err == nil {
						c.queue.AddAfter(key, time.Duration(set.Spec.MinReadySeconds)*time.Second+time.Second)
					}
				}
			}
		},
		DeleteFunc: c.podChanged,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run syncs StatefulSets with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) enqueue(obj any) {
	if key, err := controllers.KeyOf(obj); err == nil {
		c.queue.Add(key)
	}
}

// podChanged enqueues the set controlling a pod, or, for an orphan, the sets selecting it.
func (c *Controller) podChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if metav1.GetControllerOfNoCopy(pod) != nil {
		if set := c.owner(pod); set != nil {
			c.enqueue(set)
		}
		return
	}
	sets, err := c.setLister.StatefulSets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, set := range sets {
		if s, err := metav1.LabelSelectorAsSelector(set.Spec.Selector); err == nil && !s.Empty() && s.Matches(labels.Set(pod.Labels)) {
			c.enqueue(set)
		}
	}
}

func (c *Controller) owner(pod *corev1.Pod) *appsv1.StatefulSet {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil || ref.Kind != controllerKind.Kind {
		return nil
	}
	set, err := c.setLister.StatefulSets(pod.Namespace).Get(ref.Name)
	if err != nil || set.UID != ref.UID {
		return nil
	}
	return set
}

// sync makes the StatefulSet named by key have its pods, in order, and a status that says so.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	set, err := c.setLister.StatefulSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	selector, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil || selector.Empty() {
		return nil // validation refuses these
	}
	if set.DeletionTimestamp != nil {
		return nil // the garbage collector takes its pods
	}
	pods, err := c.claimPods(ctx, set, selector)
	if err != nil {
		return err
	}
	revisions, err := c.claimRevisions(ctx, set, selector)
	if err != nil {
		return err
	}
	return c.update(ctx, set, pods, revisions)
}

func (c *Controller) claimPods(ctx context.Context, set *appsv1.StatefulSet, selector labels.Selector) ([]*corev1.Pod, error) {
	candidates, err := controllers.ObjectsOf(c.podIndexer, string(set.UID), set.Namespace)
	if err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, 0, len(candidates))
	for _, obj := range candidates {
		pods = append(pods, obj.(*corev1.Pod))
	}
	m := controllers.NewRefManager(set, controllerKind, selector, func(ctx context.Context) (metav1.Object, error) {
		return c.client.AppsV1().StatefulSets(set.Namespace).Get(ctx, set.Name, metav1.GetOptions{})
	})
	claimed, err := m.ClaimPods(ctx, c.client, pods)
	if err != nil {
		return nil, err
	}
	var members []*corev1.Pod
	for _, pod := range claimed {
		if parent, _ := parentAndOrdinal(pod); parent == set.Name {
			members = append(members, pod)
		}
	}
	return members, nil
}

func (c *Controller) claimRevisions(ctx context.Context, set *appsv1.StatefulSet, selector labels.Selector) ([]*appsv1.ControllerRevision, error) {
	all, err := c.historyLister.ControllerRevisions(set.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	m := controllers.NewRefManager(set, controllerKind, selector, func(ctx context.Context) (metav1.Object, error) {
		return c.client.AppsV1().StatefulSets(set.Namespace).Get(ctx, set.Name, metav1.GetOptions{})
	})
	return m.ClaimControllerRevisions(ctx, c.client, all)
}

var memberName = regexp.MustCompile(`^(.*)-([0-9]+)$`)

// parentAndOrdinal reads a member pod's set and ordinal from its name; -1 when it has none.
func parentAndOrdinal(pod *corev1.Pod) (string, int) {
	m := memberName.FindStringSubmatch(pod.Name)
	if m == nil {
		return "", -1
	}
	n, err := strconv.ParseInt(m[2], 10, 32)
	if err != nil {
		return "", -1
	}
	return m[1], int(n)
}
