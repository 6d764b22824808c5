// Package endpointslicemirroring is upstream's EndpointSlice mirroring controller: for every
// v1 Endpoints object that someone other than the Endpoints controller writes, for a Service
// without a selector, it keeps EndpointSlices holding the same addresses, so that the proxy,
// DNS and every other reader of slices sees custom endpoints too.
//
// A mirrored slice carries the Endpoints' labels and annotations (but the trigger time and
// kubectl's applied configuration), the service name and this controller as its manager, and
// is owned by the Endpoints object. There is one slice per address type and port set, holding
// at most 1000 addresses of each subset (ready ones first); the rest are skipped with a
// TooManyAddressesToMirror event, as upstream.
//
// It never mirrors Endpoints labelled endpointslice.kubernetes.io/skip-mirror=true (skiff's
// endpointslice controller so labels the Endpoints it writes and makes their slices itself)
// nor leader-election records, and never touches a slice another manager owns.
package endpointslicemirroring

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in logs and metrics.
	Name = "endpointslicemirroring"
	// ManagedBy is the endpointslice.kubernetes.io/managed-by value of mirrored slices, as
	// upstream's.
	ManagedBy = "endpointslicemirroring-controller.k8s.io"
	// MaxEndpointsPerSubset is how many addresses of one Endpoints subset are mirrored
	// (upstream's default --mirroring-max-endpoints-per-subset).
	MaxEndpointsPerSubset = 1000
	// component names the controller in Events, as upstream.
	component = "endpointslicemirroring-controller"
	// leaderAnnotation marks an Endpoints object used as a leader-election lock; such objects
	// are not endpoints and are never mirrored.
	leaderAnnotation = "control-plane.alpha.kubernetes.io/leader"

	// Event reasons, upstream's.
	reasonInvalidIPAddress         = "InvalidIPAddress"
	reasonTooManyAddressesToMirror = "TooManyAddressesToMirror"
)

// Controller keeps the mirrored EndpointSlices of every custom Endpoints object.
type Controller struct {
	client          kubernetes.Interface
	serviceLister   corelisters.ServiceLister
	endpointsLister corelisters.EndpointsLister
	sliceLister     discoverylisters.EndpointSliceLister
	synced          []cache.InformerSynced
	queue           controllers.Queue
	metrics         *controllers.Metrics
	recorder        record.EventRecorder
	written         *controllers.WriteTracker[*discoveryv1.EndpointSlice]
	// maxPerSubset bounds the addresses mirrored per subset; MaxEndpointsPerSubset but in tests.
	maxPerSubset int
}

// New makes the controller on shared informers of Services, Endpoints and EndpointSlices. Call
// it before the informers start.
func New(services coreinformers.ServiceInformer, endpoints coreinformers.EndpointsInformer,
	epSlices discoveryinformers.EndpointSliceInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client:          client,
		serviceLister:   services.Lister(),
		endpointsLister: endpoints.Lister(),
		sliceLister:     epSlices.Lister(),
		synced: []cache.InformerSynced{services.Informer().HasSynced, endpoints.Informer().HasSynced,
			epSlices.Informer().HasSynced},
		queue:        controllers.NewQueue(Name, r),
		metrics:      r.Metrics,
		recorder:     r.EventRecorder(component),
		written:      controllers.NewWriteTracker[*discoveryv1.EndpointSlice]("EndpointSlice"),
		maxPerSubset: MaxEndpointsPerSubset,
	}
	handlers := []struct {
		informer cache.SharedIndexInformer
		h        cache.ResourceEventHandler
	}{
		{services.Informer(), cache.ResourceEventHandlerFuncs{
			// only a Service without a selector has custom endpoints; one that gains or loses
			// its selector gains or loses its mirrored slices
			AddFunc: func(obj any) {
				if svc, ok := obj.(*corev1.Service); ok && svc.Spec.Selector == nil {
					c.enqueue(obj)
				}
			},
			UpdateFunc: func(old, cur any) {
				o, ok1 := old.(*corev1.Service)
				n, ok2 := cur.(*corev1.Service)
				if ok1 && ok2 && (o.Spec.Selector == nil) != (n.Spec.Selector == nil) {
					c.enqueue(cur)
				}
			},
			DeleteFunc: c.enqueue,
		}},
		{endpoints.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				if shouldMirror(endpointsOf(obj)) {
					c.enqueue(obj)
				}
			},
			UpdateFunc: func(old, cur any) {
				// one that stops being mirrored (skip-mirror added) loses its slices
				if shouldMirror(endpointsOf(old)) || shouldMirror(endpointsOf(cur)) {
					c.enqueue(cur)
				}
			},
			DeleteFunc: c.enqueue,
		}},
		{epSlices.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc: c.sliceChanged,
			UpdateFunc: func(old, cur any) {
				// a slice relabelled away from this controller, or to another service, is
				// looked at under both names
				c.sliceChanged(old)
				c.sliceChanged(cur)
			},
			DeleteFunc: func(obj any) {
				c.sliceDeleted(obj)
				c.sliceChanged(obj)
			},
		}},
	}
	for _, h := range handlers {
		if _, err := h.informer.AddEventHandler(h.h); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Run syncs Endpoints with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) enqueue(obj any) {
	if key, err := controllers.KeyOf(obj); err == nil {
		c.queue.Add(key)
	}
}

func endpointsOf(obj any) *corev1.Endpoints {
	ep, _ := obj.(*corev1.Endpoints)
	return ep
}

func (c *Controller) sliceChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelManagedBy] != ManagedBy {
		return
	}
	if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
		c.queue.Add(s.Namespace + "/" + name)
	}
}

// sliceDeleted forgets a write to a slice now gone: the cache will never show it.
func (c *Controller) sliceDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if s, ok := obj.(*discoveryv1.EndpointSlice); ok && s.Labels[discoveryv1.LabelManagedBy] == ManagedBy {
		c.written.Gone(s.Namespace+"/"+s.Labels[discoveryv1.LabelServiceName], s.Name)
	}
}

// shouldMirror says whether an Endpoints object is one to mirror, if its Service has no
// selector: not one the endpointslice controller keeps (skip-mirror) nor a leader lock.
func shouldMirror(ep *corev1.Endpoints) bool {
	if ep == nil || ep.Labels[discoveryv1.LabelSkipMirror] == "true" {
		return false
	}
	_, lock := ep.Annotations[leaderAnnotation]
	return !lock
}

// sync makes the mirrored slices of the Endpoints key names match it, or removes them when
// the Endpoints or its Service is gone, or the Service has a selector.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key we made
	}
	existing, err := c.sliceLister.EndpointSlices(namespace).List(labels.SelectorFromSet(labels.Set{
		discoveryv1.LabelServiceName: name,
		discoveryv1.LabelManagedBy:   ManagedBy,
	}))
	if err != nil {
		return err
	}
	if err := c.written.Check(key, existing); err != nil {
		return err
	}

	ep, err := c.endpointsLister.Endpoints(namespace).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	mirror := err == nil && shouldMirror(ep)
	if mirror {
		svc, err := c.serviceLister.Services(namespace).Get(name)
		switch {
		case apierrors.IsNotFound(err):
			mirror = false
		case err != nil:
			return err
		default:
			mirror = svc.Spec.Selector == nil
		}
	}
	if !mirror {
		var errs []error
		for _, s := range existing {
			errs = append(errs, c.deleteSlice(ctx, key, s))
		}
		return errors.Join(errs...)
	}
	return c.reconcile(ctx, key, ep, existing)
}

// reconcile writes the fewest slice changes that make existing hold what ep mirrors to: per
// address type and port set, the oldest existing slice is kept (updated if it differs) and
// any other deleted; a slice that would be created while one of the same address type is to
// be deleted is written over that one instead.
func (c *Controller) reconcile(ctx context.Context, key string, ep *corev1.Endpoints, existing []*discoveryv1.EndpointSlice) error {
	want := desiredSlices(ep, c.maxPerSubset)
	if want.invalid > 0 {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, reasonInvalidIPAddress,
			"Skipped %d invalid IP addresses when mirroring to EndpointSlices", want.invalid)
	}
	if want.overCapacity > 0 {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, reasonTooManyAddressesToMirror,
			"A max of %d addresses can be mirrored to EndpointSlices per Endpoints subset. %d addresses were skipped",
			c.maxPerSubset, want.overCapacity)
	}
	lbls, annotations, owners := sliceLabels(ep), sliceAnnotations(ep), sliceOwners(ep)

	existing = slices.Clone(existing)
	sort.Slice(existing, func(i, j int) bool {
		if !existing[i].CreationTimestamp.Equal(&existing[j].CreationTimestamp) {
			return existing[i].CreationTimestamp.Before(&existing[j].CreationTimestamp)
		}
		return existing[i].Name < existing[j].Name
	})
	kept := map[sliceKey]*discoveryv1.EndpointSlice{}
	var toDelete []*discoveryv1.EndpointSlice
	for _, s := range existing {
		k := keyOf(s.AddressType, s.Ports)
		if _, ok := want.slices[k]; !ok || kept[k] != nil {
			toDelete = append(toDelete, s)
			continue
		}
		kept[k] = s
	}

	type write struct {
		over *discoveryv1.EndpointSlice // the slice to update, nil to create
		want *desiredSlice
	}
	var writes []write
	var toCreate []*desiredSlice
	for _, k := range slices.SortedFunc(maps.Keys(want.slices), func(a, b sliceKey) int {
		return cmpKeys(a, b)
	}) {
		d := want.slices[k]
		cur := kept[k]
		switch {
		case cur == nil:
			toCreate = append(toCreate, d)
		case !sameSlice(cur, d, lbls, annotations, owners):
			writes = append(writes, write{over: cur, want: d})
		}
	}
	// recycle slices about to be deleted for the ones about to be created
	for _, d := range toCreate {
		i := slices.IndexFunc(toDelete, func(s *discoveryv1.EndpointSlice) bool { return s.AddressType == d.addressType })
		if i < 0 {
			writes = append(writes, write{want: d})
			continue
		}
		writes = append(writes, write{over: toDelete[i], want: d})
		toDelete = slices.Delete(toDelete, i, i+1)
	}

	var errs []error
	for _, w := range writes {
		s := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: ep.Namespace, Labels: lbls, Annotations: annotations,
				OwnerReferences: owners},
			AddressType: w.want.addressType,
			Ports:       w.want.ports,
			Endpoints:   w.want.endpoints,
		}
		if w.over != nil {
			s.Name, s.ResourceVersion = w.over.Name, w.over.ResourceVersion
			errs = append(errs, c.updateSlice(ctx, key, s))
			continue
		}
		if ep.DeletionTimestamp != nil {
			continue // no new slices for Endpoints on their way out
		}
		s.GenerateName = slicePrefix(ep.Name)
		errs = append(errs, c.createSlice(ctx, key, s))
	}
	for _, s := range toDelete {
		errs = append(errs, c.deleteSlice(ctx, key, s))
	}
	return errors.Join(errs...)
}

func cmpKeys(a, b sliceKey) int {
	if a.addressType != b.addressType {
		if a.addressType < b.addressType {
			return -1
		}
		return 1
	}
	switch {
	case a.ports < b.ports:
		return -1
	case a.ports > b.ports:
		return 1
	}
	return 0
}

// slicePrefix is the generateName of a mirrored slice: the Endpoints' name and a dash, unless
// that would be too long for a name.
func slicePrefix(name string) string {
	if len(name)+1 > 63-5 {
		return name
	}
	return name + "-"
}

// sameSlice says whether s already holds d with the given metadata; endpoint order does not
// matter.
func sameSlice(s *discoveryv1.EndpointSlice, d *desiredSlice, lbls, annotations map[string]string, owners []metav1.OwnerReference) bool {
	if !maps.Equal(s.Labels, lbls) || !maps.Equal(s.Annotations, annotations) ||
		!apiequality.Semantic.DeepEqual(s.OwnerReferences, owners) {
		return false
	}
	have := slices.Clone(s.Endpoints)
	for _, e := range have {
		if len(e.Addresses) == 0 {
			return false
		}
	}
	sortEndpoints(have)
	if len(have) != len(d.endpoints) {
		return false
	}
	for i := range have {
		if !apiequality.Semantic.DeepEqual(have[i], d.endpoints[i]) {
			return false
		}
	}
	return true
}

func (c *Controller) createSlice(ctx context.Context, key string, s *discoveryv1.EndpointSlice) error {
	created, err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
	if err != nil {
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil // the namespace is going, the Endpoints with it
		}
		return fmt.Errorf("failed to create EndpointSlice for Endpoints %s: %w", key, err)
	}
	c.written.Wrote(key, created)
	return nil
}

func (c *Controller) updateSlice(ctx context.Context, key string, s *discoveryv1.EndpointSlice) error {
	updated, err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("failed to update %s EndpointSlice for Endpoints %s: %w", s.Name, key, err)
	}
	c.written.Wrote(key, updated)
	return nil
}

func (c *Controller) deleteSlice(ctx context.Context, key string, s *discoveryv1.EndpointSlice) error {
	err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &s.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("failed to delete %s EndpointSlice for Endpoints %s: %w", s.Name, key, err)
	}
	c.written.Deleted(key, s.Name)
	return nil
}
