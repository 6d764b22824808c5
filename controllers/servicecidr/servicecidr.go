// Package servicecidr is the ServiceCIDR controller, as upstream's: every ServiceCIDR gets the
// networking.k8s.io/service-cidr-finalizer and the Ready condition, which is what lets the API
// server's service allocator give out its addresses. A ServiceCIDR being deleted keeps its
// finalizer, Ready=False with reason Terminating, while an IPAddress of the cluster IP
// allocator lies in its ranges and no other ServiceCIDR covers it; once none does, and the
// deletion has had time to reach the allocators, the finalizer goes.
//
// It must never remove the finalizer of a ServiceCIDR that still holds an orphanable
// IPAddress, and it never writes IPAddresses or Services.
package servicecidr

import (
	"context"
	"net/netip"
	"slices"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	networkinginformers "k8s.io/client-go/informers/networking/v1"
	"k8s.io/client-go/kubernetes"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics, as upstream's.
	Name = "service-cidr-controller"
	// DeletionGracePeriod is how long a deleted ServiceCIDR keeps its finalizer after the
	// last IPAddress that needed it went, upstream's figure: an allocation that read the
	// ranges before the deletion may still be writing an address of it.
	DeletionGracePeriod = 10 * time.Second
	// ipAllocatorManager is the managed-by label of the IPAddresses cluster IPs hold.
	ipAllocatorManager = "ipallocator.k8s.io"

	readyMessage       = "Kubernetes Service CIDR is ready"
	terminatingMessage = "There are still IPAddresses referencing the ServiceCIDR, please remove them or create a new ServiceCIDR"
)

// Controller is the ServiceCIDR controller.
type Controller struct {
	client    kubernetes.Interface
	cidrs     networkinglisters.ServiceCIDRLister
	addresses networkinglisters.IPAddressLister
	synced    []cache.InformerSynced
	queue     controllers.Queue
	metrics   *controllers.Metrics
	// gracePeriod is DeletionGracePeriod; tests shorten it.
	gracePeriod time.Duration
}

// New makes the controller on shared ServiceCIDR and IPAddress informers.
func New(cidrs networkinginformers.ServiceCIDRInformer, addresses networkinginformers.IPAddressInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client:      client,
		cidrs:       cidrs.Lister(),
		addresses:   addresses.Lister(),
		synced:      []cache.InformerSynced{cidrs.Informer().HasSynced, addresses.Informer().HasSynced},
		queue:       controllers.NewQueue(Name, r),
		metrics:     r.Metrics,
		gracePeriod: DeletionGracePeriod,
	}
	// A ServiceCIDR's change is its own key; any change may also free, or stop covering, the
	// addresses that keep a deleted one, so those are looked at again (they are few).
	_, err := cidrs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueue(obj) },
		UpdateFunc: func(_, obj any) {
			c.enqueue(obj)
			c.enqueueDeleting()
		},
		DeleteFunc: func(any) { c.enqueueDeleting() },
	})
	if err != nil {
		return nil, err
	}
	_, err = addresses.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(any) { c.enqueueDeleting() },
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// SetDeletionGracePeriod replaces DeletionGracePeriod, for tests that delete ServiceCIDRs.
func (c *Controller) SetDeletionGracePeriod(d time.Duration) { c.gracePeriod = d }

// Run syncs ServiceCIDRs with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) enqueue(obj any) {
	if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) enqueueDeleting() {
	all, err := c.cidrs.List(labels.Everything())
	if err != nil {
		return
	}
	for _, cidr := range all {
		if cidr.DeletionTimestamp != nil {
			c.queue.Add(cidr.Name)
		}
	}
}

// sync gives the ServiceCIDR named key its finalizer and Ready=True, or, when it is being
// deleted, removes the finalizer once no address depends on it.
func (c *Controller) sync(ctx context.Context, key string) error {
	cidr, err := c.cidrs.Get(key)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if cidr.DeletionTimestamp != nil {
		if !slices.Contains(cidr.Finalizers, apis.ServiceCIDRFinalizer) {
			return nil
		}
		if c.holdsOrphanableAddress(cidr) {
			return c.setReady(ctx, cidr, metav1.ConditionFalse, networkingv1.ServiceCIDRReasonTerminating, terminatingMessage)
		}
		if wait := c.gracePeriod - time.Since(cidr.DeletionTimestamp.Time); wait > 0 {
			return controllers.RequeueAfter(wait, nil)
		}
		updated := cidr.DeepCopy()
		updated.Finalizers = slices.DeleteFunc(updated.Finalizers, func(f string) bool { return f == apis.ServiceCIDRFinalizer })
		_, err := c.client.NetworkingV1().ServiceCIDRs().Update(ctx, updated, metav1.UpdateOptions{})
		return ignoreNotFound(err)
	}
	if !slices.Contains(cidr.Finalizers, apis.ServiceCIDRFinalizer) {
		updated := cidr.DeepCopy()
		updated.Finalizers = append(updated.Finalizers, apis.ServiceCIDRFinalizer)
		if cidr, err = c.client.NetworkingV1().ServiceCIDRs().Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return ignoreNotFound(err)
		}
	}
	return c.setReady(ctx, cidr, metav1.ConditionTrue, "", readyMessage)
}

// setReady writes the Ready condition unless it already has that status and reason (the API
// server words the default ServiceCIDR's message its own way).
func (c *Controller) setReady(ctx context.Context, cidr *networkingv1.ServiceCIDR, status metav1.ConditionStatus, reason, message string) error {
	current := meta.FindStatusCondition(cidr.Status.Conditions, networkingv1.ServiceCIDRConditionReady)
	if current != nil && current.Status == status && current.Reason == reason {
		return nil
	}
	updated := cidr.DeepCopy()
	meta.SetStatusCondition(&updated.Status.Conditions, metav1.Condition{
		Type: networkingv1.ServiceCIDRConditionReady, Status: status, Reason: reason, Message: message,
	})
	// SetStatusCondition keeps the old reason and message when the status is unchanged
	ready := meta.FindStatusCondition(updated.Status.Conditions, networkingv1.ServiceCIDRConditionReady)
	ready.Reason, ready.Message = reason, message
	_, err := c.client.NetworkingV1().ServiceCIDRs().UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return ignoreNotFound(err)
}

// holdsOrphanableAddress reports whether deleting cidr would leave a cluster IP's IPAddress
// in no ServiceCIDR: a range no other ServiceCIDR contains holds an address that no other
// ServiceCIDR contains either.
func (c *Controller) holdsOrphanableAddress(cidr *networkingv1.ServiceCIDR) bool {
	all, err := c.cidrs.List(labels.Everything())
	if err != nil {
		return true
	}
	var others []netip.Prefix
	for _, o := range all {
		if o.Name == cidr.Name || o.DeletionTimestamp != nil {
			continue // one being deleted covers nothing for long
		}
		for _, s := range o.Spec.CIDRs {
			if p, err := netip.ParsePrefix(s); err == nil {
				others = append(others, p.Masked())
			}
		}
	}
	coveredBy := func(contains func(netip.Prefix) bool) bool { return slices.ContainsFunc(others, contains) }
	var uncovered []netip.Prefix
	for _, s := range cidr.Spec.CIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			continue
		}
		p = p.Masked()
		if !coveredBy(func(o netip.Prefix) bool { return o.Bits() <= p.Bits() && o.Contains(p.Addr()) }) {
			uncovered = append(uncovered, p)
		}
	}
	if len(uncovered) == 0 {
		return false
	}
	addresses, err := c.addresses.List(labels.SelectorFromSet(labels.Set{networkingv1.LabelManagedBy: ipAllocatorManager}))
	if err != nil {
		return true
	}
	for _, a := range addresses {
		ip, err := netip.ParseAddr(a.Name)
		if err != nil {
			continue
		}
		if slices.ContainsFunc(uncovered, func(p netip.Prefix) bool { return p.Contains(ip) }) &&
			!coveredBy(func(o netip.Prefix) bool { return o.Contains(ip) }) {
			return true
		}
	}
	return false
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
