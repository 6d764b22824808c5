// Package resourcequota is the resource quota controller: it keeps each ResourceQuota's
// status (hard as the spec says, used as counted) true to what its namespace holds, as
// upstream's. Pods are counted from the shared cache, and every change of a pod recounts the
// quotas of its namespace, so that what a deleted or finished pod held comes back at once;
// other kinds are listed through the dynamic client, recounted when one of them is deleted
// (a metadata watch per kind that quotas name) and every resync period. What
// an object uses is apis/quota's, which the ResourceQuota admission plugin charges with. It
// must never write anything but quotas' status.
package resourcequota

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apis/quota"
	"github.com/skiff-dev/skiff/controllers"
)

// Name is the controller's name in --controllers, logs and metrics.
const Name = "resourcequota"

// DefaultResyncPeriod is how often every quota is recounted in full (upstream's
// --resource-quota-sync-period).
const DefaultResyncPeriod = 5 * time.Minute

var podsGR = schema.GroupResource{Resource: "pods"}

// Controller is the resource quota controller.
type Controller struct {
	client      kubernetes.Interface
	dynamic     dynamic.Interface
	mapper      meta.RESTMapper
	quotaLister corelisters.ResourceQuotaLister
	podLister   corelisters.PodLister
	synced      []cache.InformerSynced
	queue       controllers.Queue
	metrics     *controllers.Metrics
	resync      time.Duration
	now         func() time.Time
	replenish   *replenisher // nil: other kinds are recounted at resyncs only
}

// New makes a quota controller on shared informers of quotas and pods. dyn and mapper list
// the other kinds quotas count (count/deployments.apps, services, ...), and md, when not nil,
// watches their metadata so that a deletion is recounted at once; resync is how often a quota
// is recounted in full (DefaultResyncPeriod when 0).
func New(quotaInformer coreinformers.ResourceQuotaInformer, podInformer coreinformers.PodInformer, client kubernetes.Interface,
	dyn dynamic.Interface, md metadata.Interface, mapper meta.RESTMapper, resync time.Duration, r controllers.Reporting) (*Controller, error) {
	if resync <= 0 {
		resync = DefaultResyncPeriod
	}
	c := &Controller{
		client: client, dynamic: dyn, mapper: mapper,
		quotaLister: quotaInformer.Lister(), podLister: podInformer.Lister(),
		synced: []cache.InformerSynced{quotaInformer.Informer().HasSynced, podInformer.Informer().HasSynced},
		queue:  controllers.NewQueue(Name, r), metrics: r.Metrics, resync: resync, now: time.Now,
	}
	if md != nil {
		c.replenish = newReplenisher(md, mapper, c.namespaceChanged)
	}
	if _, err := quotaInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(old, cur any) {
			// our own status writes need no recount; spec changes do
			if !equalLists(old.(*corev1.ResourceQuota).Spec.Hard, cur.(*corev1.ResourceQuota).Spec.Hard) ||
				!equalLists(cur.(*corev1.ResourceQuota).Spec.Hard, cur.(*corev1.ResourceQuota).Status.Hard) {
				c.enqueue(cur)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.podChanged,
		UpdateFunc: func(old, cur any) {
			o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
			if o.Status.Phase != n.Status.Phase || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) {
				c.podChanged(cur)
			}
		},
		DeleteFunc: c.podChanged,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run syncs quotas with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	if c.replenish != nil {
		c.replenish.start(ctx)
	}
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) enqueue(obj any) {
	if key, err := controllers.KeyOf(obj); err == nil {
		c.queue.Add(key)
	}
}

// podChanged recounts the quotas of the pod's namespace.
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
	c.namespaceChanged(pod.Namespace)
}

// namespaceChanged recounts the quotas of namespace.
func (c *Controller) namespaceChanged(namespace string) {
	quotas, err := c.quotaLister.ResourceQuotas(namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, q := range quotas {
		c.enqueue(q)
	}
}

// errResync asks for a quota again after the resync period.
var errResync = errors.New("periodic recount")

// sync recounts the quota named by key and writes its status when it changed.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	q, err := c.quotaLister.ResourceQuotas(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	used, err := c.usage(ctx, q)
	if err != nil {
		return err
	}
	if !equalLists(q.Status.Hard, q.Spec.Hard) || !equalLists(q.Status.Used, used) {
		next := q.DeepCopy()
		next.Status = corev1.ResourceQuotaStatus{Hard: q.Spec.Hard.DeepCopy(), Used: used}
		if _, err := c.client.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, next, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return controllers.RequeueAfter(c.resync, errResync)
}

// legacyResources are the bare quota names and the kind whose objects they count.
var legacyResources = map[corev1.ResourceName]string{
	corev1.ResourceServices: "services", corev1.ResourceServicesNodePorts: "services", corev1.ResourceServicesLoadBalancers: "services",
	corev1.ResourceConfigMaps: "configmaps", corev1.ResourceSecrets: "secrets", corev1.ResourceQuotas: "resourcequotas",
	corev1.ResourceReplicationControllers: "replicationcontrollers", corev1.ResourcePersistentVolumeClaims: "persistentvolumeclaims",
	corev1.ResourceRequestsStorage: "persistentvolumeclaims",
}

// usage counts what the quota tracks: the usage of every object it selects, summed, for each
// resource of spec.hard (zero for what nothing uses).
func (c *Controller) usage(ctx context.Context, q *corev1.ResourceQuota) (corev1.ResourceList, error) {
	kinds := map[schema.GroupResource]bool{}
	for k := range q.Spec.Hard {
		if gr, ok := quota.ParseObjectCountName(k); ok {
			kinds[gr] = true
		} else if r, ok := legacyResources[k]; ok {
			kinds[schema.GroupResource{Resource: r}] = true
		} else {
			kinds[podsGR] = true // compute resources and the pod count
		}
	}
	now := c.now()
	sum := corev1.ResourceList{}
	for gr := range kinds {
		if c.replenish != nil {
			if err := c.replenish.watch(gr); err != nil {
				return nil, err
			}
		}
		objs, err := c.objects(ctx, q.Namespace, gr)
		if err != nil {
			return nil, err
		}
		for _, obj := range objs {
			if quota.Matches(q, obj) {
				sum = quota.Add(sum, quota.Usage(gr, obj, now))
			}
		}
	}
	used := corev1.ResourceList{}
	for k := range q.Spec.Hard {
		if v, ok := sum[k]; ok {
			used[k] = v
		} else {
			used[k] = *resource.NewQuantity(0, resource.DecimalSI)
		}
	}
	return used, nil
}

// objects lists the namespace's objects of gr: pods from the cache, core services and claims
// typed (their usage reads their spec), other kinds as unstructured objects; a kind that is not
// served has none.
func (c *Controller) objects(ctx context.Context, ns string, gr schema.GroupResource) ([]runtime.Object, error) {
	if gr == podsGR {
		pods, err := c.podLister.Pods(ns).List(labels.Everything())
		if err != nil {
			return nil, err
		}
		out := make([]runtime.Object, len(pods))
		for i, p := range pods {
			out[i] = p
		}
		return out, nil
	}
	gvr, err := c.mapper.ResourceFor(gr.WithVersion(""))
	if meta.IsNoMatchError(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	list, err := c.dynamic.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]runtime.Object, 0, len(list.Items))
	for i := range list.Items {
		var typed runtime.Object = &list.Items[i]
		switch gr {
		case schema.GroupResource{Resource: "services"}:
			typed = &corev1.Service{}
		case schema.GroupResource{Resource: "persistentvolumeclaims"}:
			typed = &corev1.PersistentVolumeClaim{}
		}
		if typed != runtime.Object(&list.Items[i]) {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(list.Items[i].Object, typed); err != nil {
				return nil, err
			}
		}
		out = append(out, typed)
	}
	return out, nil
}

// equalLists compares resource lists by quantity, as the API does.
func equalLists(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}
