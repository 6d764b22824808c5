// Package endpointslice is the EndpointSlice controller, with upstream's Endpoints controller
// folded in: for every Service with a selector it keeps EndpointSlices listing the selected
// pods (their addresses, ready/serving/terminating conditions, node, zone and hostname, with
// named target ports resolved per pod, at most 100 endpoints a slice) and the v1 Endpoints of
// the same name (ready and not-ready addresses grouped by port set), as upstream's two
// controllers do.
//
// It only ever writes slices labelled as managed by it and Endpoints of Services with a
// selector; it must never touch the slices of another manager (the API server's for
// default/kubernetes, the DNS component's for kube-dns) nor Endpoints that a user writes for a
// Service without a selector.
package endpointslice

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "endpointslice"
	// ManagedBy is the endpointslice.kubernetes.io/managed-by value of the slices this
	// controller owns, as upstream's.
	ManagedBy = "endpointslice-controller.k8s.io"
	// MaxEndpointsPerSlice is how many endpoints one slice holds at most (upstream's default
	// --max-endpoints-per-slice).
	MaxEndpointsPerSlice = 100
	// maxEndpointsAddresses is how many addresses a v1 Endpoints object keeps; beyond it the
	// object is truncated and annotated, as upstream.
	maxEndpointsAddresses = 1000
	// overCapacityAnnotation marks a truncated Endpoints object.
	overCapacityAnnotation = "endpoints.kubernetes.io/over-capacity"
	// headlessLabel marks the endpoints of a Service without a cluster IP.
	headlessLabel = "service.kubernetes.io/headless"
	// zoneLabel is the node label whose value becomes an endpoint's zone.
	zoneLabel = "topology.kubernetes.io/zone"
)

var serviceKind = corev1.SchemeGroupVersion.WithKind("Service")

// Controller keeps the EndpointSlices and Endpoints of every Service with a selector.
type Controller struct {
	client         kubernetes.Interface
	serviceLister  corelisters.ServiceLister
	podLister      corelisters.PodLister
	nodeLister     corelisters.NodeLister
	sliceLister    discoverylisters.EndpointSliceLister
	endpointLister corelisters.EndpointsLister
	synced         []cache.InformerSynced
	queue          controllers.Queue
	metrics        *controllers.Metrics
	// written remembers the slices this controller wrote, so that a sync on a cache that has
	// not seen its own writes yet waits instead of creating duplicates.
	written *controllers.WriteTracker[*discoveryv1.EndpointSlice]
	// maxPerSlice bounds a slice's endpoints; MaxEndpointsPerSlice except in tests.
	maxPerSlice int
}

// New makes the controller on shared informers of pods, services, nodes (for zones),
// EndpointSlices and Endpoints. Call it before the informers start.
func New(pods coreinformers.PodInformer, services coreinformers.ServiceInformer, nodes coreinformers.NodeInformer,
	slices discoveryinformers.EndpointSliceInformer, endpoints coreinformers.EndpointsInformer,
	client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client:         client,
		serviceLister:  services.Lister(),
		podLister:      pods.Lister(),
		nodeLister:     nodes.Lister(),
		sliceLister:    slices.Lister(),
		endpointLister: endpoints.Lister(),
		synced: []cache.InformerSynced{pods.Informer().HasSynced, services.Informer().HasSynced,
			nodes.Informer().HasSynced, slices.Informer().HasSynced, endpoints.Informer().HasSynced},
		queue:       controllers.NewQueue(Name, r),
		metrics:     r.Metrics,
		written:     controllers.NewWriteTracker[*discoveryv1.EndpointSlice]("EndpointSlice"),
		maxPerSlice: MaxEndpointsPerSlice,
	}
	handlers := []struct {
		informer cache.SharedIndexInformer
		h        cache.ResourceEventHandler
	}{
		{services.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueObject,
			UpdateFunc: func(_, cur any) { c.enqueueObject(cur) },
			DeleteFunc: c.enqueueObject,
		}},
		{pods.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.addPod,
			UpdateFunc: c.updatePod,
			DeleteFunc: c.deletePod,
		}},
		{slices.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.sliceChanged,
			UpdateFunc: func(_, cur any) { c.sliceChanged(cur) },
			DeleteFunc: c.sliceChanged,
		}},
		{endpoints.Informer(), cache.ResourceEventHandlerFuncs{
			// someone else changed or removed the Endpoints of a Service we keep: put them back.
			// Endpoints of no Service are the writer's own: upstream's controller, and its
			// conformance test of the Endpoints lifecycle, leave them be until deleted.
			UpdateFunc: func(_, cur any) {
				if c.keepsEndpoints(cur) {
					c.enqueueObject(cur)
				}
			},
			DeleteFunc: c.enqueueObject,
		}},
	}
	for _, h := range handlers {
		if _, err := h.informer.AddEventHandler(h.h); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Run syncs Services with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

// enqueueObject queues the Service of the same namespace and name as obj (a Service, or its
// Endpoints).
func (c *Controller) enqueueObject(obj any) {
	if key, err := controllers.KeyOf(obj); err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) sliceChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	slice, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || slice.Labels[discoveryv1.LabelManagedBy] != ManagedBy {
		return
	}
	if svc := slice.Labels[discoveryv1.LabelServiceName]; svc != "" {
		c.queue.Add(slice.Namespace + "/" + svc)
	}
}

func podOf(obj any) *corev1.Pod {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, _ := obj.(*corev1.Pod)
	return pod
}

// enqueuePodServices queues every Service whose selector matches one of the label sets.
func (c *Controller) enqueuePodServices(namespace string, sets ...labels.Set) {
	services, err := c.serviceLister.Services(namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, svc := range services {
		if svc.Spec.Selector == nil {
			continue
		}
		selector := labels.SelectorFromValidatedSet(svc.Spec.Selector)
		for _, set := range sets {
			if selector.Matches(set) {
				c.queue.Add(svc.Namespace + "/" + svc.Name)
				break
			}
		}
	}
}

func (c *Controller) addPod(obj any) {
	if pod := podOf(obj); pod != nil {
		c.enqueuePodServices(pod.Namespace, pod.Labels)
	}
}

func (c *Controller) updatePod(old, cur any) {
	oldPod, curPod := podOf(old), podOf(cur)
	if oldPod == nil || curPod == nil || oldPod.ResourceVersion == curPod.ResourceVersion {
		return // a resync: nothing changed
	}
	c.enqueuePodServices(curPod.Namespace, curPod.Labels, oldPod.Labels)
}

func (c *Controller) deletePod(obj any) {
	if pod := podOf(obj); pod != nil {
		c.enqueuePodServices(pod.Namespace, pod.Labels)
	}
}

// sync makes the EndpointSlices and Endpoints of the Service key names match its pods.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key we made
	}
	svc, err := c.serviceLister.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		svc = nil
	} else if err != nil {
		return err
	}
	slices, err := c.sliceLister.EndpointSlices(namespace).List(labels.SelectorFromSet(labels.Set{
		discoveryv1.LabelServiceName: name,
		discoveryv1.LabelManagedBy:   ManagedBy,
	}))
	if err != nil {
		return err
	}
	if err := c.written.Check(key, slices); err != nil {
		return err
	}

	if svc == nil || svc.Spec.Selector == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		// Slices of a deleted Service would go with it (owner references), but not before a
		// garbage collector runs; those of a Service that lost its selector are ours to remove.
		// The Endpoints of a Service without a selector belong to whoever writes them.
		var errs []error
		for _, s := range slices {
			if svc == nil || metav1.IsControlledBy(s, svc) || len(s.OwnerReferences) == 0 {
				errs = append(errs, c.deleteSlice(ctx, key, s))
			}
		}
		if svc == nil {
			errs = append(errs, c.deleteEndpoints(ctx, namespace, name))
			if errors.Join(errs...) == nil {
				c.written.Forget(key)
			}
		}
		return errors.Join(errs...)
	}

	pods, err := c.podLister.Pods(namespace).List(labels.SelectorFromValidatedSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	var errs []error
	if err := c.reconcileSlices(ctx, key, svc, pods, slices); err != nil {
		errs = append(errs, fmt.Errorf("endpoint slices: %w", err))
	}
	if err := c.reconcileEndpoints(ctx, svc, pods); err != nil {
		errs = append(errs, fmt.Errorf("endpoints: %w", err))
	}
	return errors.Join(errs...)
}

// keepsEndpoints says whether obj, an Endpoints, is that of a Service with a selector, which
// this controller writes.
func (c *Controller) keepsEndpoints(obj any) bool {
	ep, ok := obj.(*corev1.Endpoints)
	if !ok {
		return false
	}
	svc, err := c.serviceLister.Services(ep.Namespace).Get(ep.Name)
	return err == nil && svc.Spec.Selector != nil && svc.Spec.Type != corev1.ServiceTypeExternalName
}

func (c *Controller) deleteEndpoints(ctx context.Context, namespace, name string) error {
	if _, err := c.endpointLister.Endpoints(namespace).Get(name); apierrors.IsNotFound(err) {
		return nil
	}
	err := c.client.CoreV1().Endpoints(namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
