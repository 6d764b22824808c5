// Package servicelb is skiff's load balancer for `type: LoadBalancer` Services, as k3s's
// ServiceLB: there is no load balancer in front of the cluster, so a Service's load balancer
// is the nodes themselves. The controller writes the nodes' addresses into
// status.loadBalancer.ingress, and every node's proxy (proxy/) answers traffic to those
// addresses on the Service's ports as it answers external IPs, sending it to the endpoints.
//
// It acts on LoadBalancer Services with no spec.loadBalancerClass or with LoadBalancerClass;
// a Service of another class belongs to another implementation and is never touched. It only
// ever writes services/status.
package servicelb

import (
	"context"
	"net/netip"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in logs and metrics.
	Name = "servicelb"
	// LoadBalancerClass is the spec.loadBalancerClass that names this implementation; a
	// Service with no class is served too.
	LoadBalancerClass = "skiff.dev/service-lb"
	// ExcludeLabel keeps a node out of every load balancer, upstream's label for it.
	ExcludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"
)

// Controller keeps status.loadBalancer of the LoadBalancer Services skiff serves.
type Controller struct {
	client        kubernetes.Interface
	serviceLister corelisters.ServiceLister
	nodeLister    corelisters.NodeLister
	sliceLister   discoverylisters.EndpointSliceLister
	synced        []cache.InformerSynced
	queue         controllers.Queue
	metrics       *controllers.Metrics
}

// New makes the controller on shared informers of Services, Nodes and EndpointSlices (for
// externalTrafficPolicy: Local). Call it before the informers start.
func New(services coreinformers.ServiceInformer, nodes coreinformers.NodeInformer,
	epSlices discoveryinformers.EndpointSliceInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client:        client,
		serviceLister: services.Lister(),
		nodeLister:    nodes.Lister(),
		sliceLister:   epSlices.Lister(),
		synced: []cache.InformerSynced{services.Informer().HasSynced, nodes.Informer().HasSynced,
			epSlices.Informer().HasSynced},
		queue:   controllers.NewQueue(Name, r),
		metrics: r.Metrics,
	}
	if _, err := services.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
	}); err != nil {
		return nil, err
	}
	// a node's addresses or readiness change every load balancer
	all := func(any) { c.enqueueAll() }
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: all,
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*corev1.Node)
			n, ok2 := cur.(*corev1.Node)
			if !ok1 || !ok2 || nodeAddress(o) != nodeAddress(n) || eligible(o) != eligible(n) {
				c.enqueueAll()
			}
		},
		DeleteFunc: all,
	}); err != nil {
		return nil, err
	}
	// where a Local-policy Service's endpoints run decides its nodes
	slice := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok && s.Labels[discoveryv1.LabelServiceName] != "" {
			c.queue.Add(s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName])
		}
	}
	if _, err := epSlices.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: slice, UpdateFunc: func(_, cur any) { slice(cur) }, DeleteFunc: slice,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run syncs Services with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) enqueue(obj any) {
	if key, err := controllers.KeyOf(obj); err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) enqueueAll() {
	services, err := c.serviceLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, svc := range services {
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			c.enqueue(svc)
		}
	}
}

// Serves says whether this implementation is the load balancer of svc.
func Serves(svc *corev1.Service) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	class := ptr.Deref(svc.Spec.LoadBalancerClass, "")
	return class == "" || class == LoadBalancerClass
}

// sync writes the ingress of the Service key names: the addresses of the eligible nodes, or
// for externalTrafficPolicy: Local those of the eligible nodes running one of its ready
// endpoints (all eligible nodes while none does). A Service that is no longer a LoadBalancer loses the ingress it had.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.serviceLister.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	var want []corev1.LoadBalancerIngress
	switch {
	case Serves(svc):
		want, err = c.ingress(svc)
		if err != nil {
			return err
		}
	case svc.Spec.Type == corev1.ServiceTypeLoadBalancer:
		return nil // another implementation's
	case len(svc.Status.LoadBalancer.Ingress) == 0:
		return nil
	}
	if apiequality.Semantic.DeepEqual(svc.Status.LoadBalancer.Ingress, want) {
		return nil
	}
	out := svc.DeepCopy()
	out.Status.LoadBalancer.Ingress = want
	_, err = c.client.CoreV1().Services(namespace).UpdateStatus(ctx, out, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (c *Controller) ingress(svc *corev1.Service) ([]corev1.LoadBalancerIngress, error) {
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var local map[string]bool
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		if local, err = c.endpointNodes(svc); err != nil {
			return nil, err
		}
	}
	collect := func(only map[string]bool) []netip.Addr {
		var addrs []netip.Addr
		for _, n := range nodes {
			if !eligible(n) || (only != nil && !only[n.Name]) {
				continue
			}
			if a := nodeAddress(n); a.IsValid() {
				addrs = append(addrs, a)
			}
		}
		return addrs
	}
	addrs := collect(local)
	if len(addrs) == 0 && local != nil {
		// no node has an endpoint (yet, or between two rollouts): every node answers, and
		// drops, rather than the load balancer flapping back to pending
		addrs = collect(nil)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	addrs = slices.Compact(addrs)
	var out []corev1.LoadBalancerIngress
	for _, a := range addrs {
		out = append(out, corev1.LoadBalancerIngress{IP: a.String(), IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)})
	}
	return out, nil
}

// endpointNodes are the nodes running a ready endpoint of svc.
func (c *Controller) endpointNodes(svc *corev1.Service) (map[string]bool, error) {
	epSlices, err := c.sliceLister.EndpointSlices(svc.Namespace).List(labels.SelectorFromSet(labels.Set{
		discoveryv1.LabelServiceName: svc.Name}))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, s := range epSlices {
		for _, e := range s.Endpoints {
			if ptr.Deref(e.Conditions.Ready, true) && e.NodeName != nil {
				out[*e.NodeName] = true
			}
		}
	}
	return out, nil
}

// eligible says whether a node answers for load balancers: Ready, and not excluded.
func eligible(n *corev1.Node) bool {
	if _, excluded := n.Labels[ExcludeLabel]; excluded || n.DeletionTimestamp != nil {
		return false
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// nodeAddress is the IPv4 address a node is reached at from outside: its ExternalIP when it
// has one, as k3s's ServiceLB, else its InternalIP. The proxy routes IPv4 only.
func nodeAddress(n *corev1.Node) netip.Addr {
	for _, t := range []corev1.NodeAddressType{corev1.NodeExternalIP, corev1.NodeInternalIP} {
		for _, a := range n.Status.Addresses {
			if a.Type != t {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
				return ip
			}
		}
	}
	return netip.Addr{}
}
