// Package garbagecollector is the garbage collector, as upstream's: it keeps a graph of every
// object's ownerReferences across every served resource (from informers, metadata-only where the
// API server offers it) and deletes dependents whose owners are all gone (background deletion),
// deletes the dependents of an owner being deleted in the foreground before removing its
// foregroundDeletion finalizer, and strips the ownerReferences of an owner being deleted with the
// orphan finalizer before removing that finalizer. It acts only through the API, with UID
// preconditions, and must never delete an object that still has an owner.
package garbagecollector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "garbagecollector"
	// Component names the controller in the Events it records.
	Component = "garbage-collector-controller"
)

// Queue is a queue of node UIDs.
type Queue = controllers.Queue

// ResyncPeriod is how often the collector looks for resources served since it started.
const ResyncPeriod = 30 * time.Second

// Controller is the garbage collector.
type Controller struct {
	client    dynamic.Interface
	discovery discovery.DiscoveryInterface
	mapper    *restmapper.DeferredDiscoveryRESTMapper
	graph     *graph
	monitors  *monitors
	recorder  record.EventRecorder
	metrics   *controllers.Metrics
}

// New makes a garbage collector that watches every deletable served resource through
// informers (see NewMetadataInformerSource) and acts through client. discoveryClient should
// cache (memory.NewMemCacheClient): the collector maps owner kinds to resources with it.
func New(informers InformerSource, client dynamic.Interface, discoveryClient discovery.CachedDiscoveryInterface, r controllers.Reporting) *Controller {
	g := newGraph(
		controllers.NewQueue("garbage_collector_attempt_to_delete", r),
		controllers.NewQueue("garbage_collector_attempt_to_orphan", r),
	)
	c := &Controller{
		client:    client,
		discovery: discoveryClient,
		mapper:    restmapper.NewDeferredDiscoveryRESTMapper(discoveryClient),
		graph:     g,
		monitors:  &monitors{informers: informers, graph: g, watched: map[schema.GroupVersionResource]cache.ResourceEventHandlerRegistration{}},
		recorder:  r.EventRecorder(Component),
		metrics:   r.Metrics,
	}
	g.invalidNamespaceOwnerRef = c.reportInvalidNamespaceOwnerRef
	return c
}

// Run monitors every deletable resource, waits for the graph to hold them all, and then
// collects with workers goroutines until ctx is done, looking for new resources every
// ResyncPeriod.
func (c *Controller) Run(ctx context.Context, workers int) {
	slog.Info("starting controller", "controller", Name)
	defer slog.Info("stopped controller", "controller", Name)
	defer c.graph.changes.ShutDown()
	go c.graph.processGraphChanges()

	// the first discovery must find something to monitor
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		return c.resyncMonitors(ctx), nil
	})
	if err != nil {
		c.graph.attemptToDelete.ShutDown()
		c.graph.attemptToOrphan.ShutDown()
		return
	}
	if !cache.WaitForNamedCacheSync("garbage collector", ctx.Done(), c.monitors.synced) {
		c.graph.attemptToDelete.ShutDown()
		c.graph.attemptToOrphan.ShutDown()
		return
	}
	go wait.UntilWithContext(ctx, func(ctx context.Context) { c.resyncMonitors(ctx) }, ResyncPeriod)

	done := make(chan struct{})
	go func() {
		defer close(done)
		controllers.Workers{Name: Name + "_orphan", Queue: c.graph.attemptToOrphan, Sync: c.syncOrphan, Metrics: c.metrics}.Run(ctx, workers)
	}()
	controllers.Workers{Name: Name, Queue: c.graph.attemptToDelete, Sync: c.sync, Metrics: c.metrics}.Run(ctx, workers)
	<-done
}

// resyncMonitors discovers the deletable resources and monitors the new ones; it reports
// whether anything is monitored.
func (c *Controller) resyncMonitors(ctx context.Context) bool {
	if cd, ok := c.discovery.(discovery.CachedDiscoveryInterface); ok {
		cd.Invalidate()
	}
	resources, err := deletableResources(c.discovery)
	if err != nil {
		slog.Debug("garbage collector discovery incomplete", "err", err)
	}
	if len(resources) > 0 {
		if err := c.monitors.sync(resources, ctx.Done()); err != nil {
			slog.Warn("garbage collector cannot monitor some resources", "err", err)
		}
		c.mapper.Reset()
	}
	return c.monitors.synced() || len(resources) > 0
}

// Synced reports whether the graph holds every monitored resource's objects.
func (c *Controller) Synced() bool { return c.monitors.synced() }

var (
	// errVirtualDeleted: the node's object does not exist; the graph drops it.
	errVirtualDeleted = errors.New("enqueued virtual delete event")
	// errNamespacedOwnerOfClusterScoped: a cluster-scoped object names a namespaced owner,
	// which cannot be resolved; retrying does not help.
	errNamespacedOwnerOfClusterScoped = errors.New("cluster-scoped objects cannot refer to namespaced owners")
	errNotObserved                    = errors.New("waiting for an informer to observe the object")
)

// sync is upstream's attemptToDeleteItem for the node with UID key: delete the object if all
// its owners are gone (or waiting for it), drop references to owners that are gone, or finish a
// foreground deletion whose blocking dependents are gone.
func (c *Controller) sync(ctx context.Context, key string) error {
	n, ok := c.graph.snapshot(types.UID(key))
	if !ok {
		return nil
	}
	err := c.attemptToDeleteItem(ctx, n)
	switch {
	case errors.Is(err, errVirtualDeleted), errors.Is(err, errNamespacedOwnerOfClusterScoped):
		return nil
	case err != nil:
		return err
	}
	if now, ok := c.graph.snapshot(types.UID(key)); ok && now.virtual {
		// exists but no informer has shown it yet: look again until one does
		return errNotObserved
	}
	return nil
}

func (c *Controller) attemptToDeleteItem(ctx context.Context, item nodeSnapshot) error {
	// being deleted is a one-way trip: wait for it to finish, then its dependents are handled
	if item.beingDeleted && !item.deletingDependents {
		return nil
	}
	latest, err := c.getObject(ctx, item.identity)
	if apierrors.IsNotFound(err) {
		c.graph.enqueueVirtualDelete(item.identity)
		return errVirtualDeleted
	}
	if err != nil {
		return err
	}
	if latest.GetUID() != item.identity.UID {
		c.graph.enqueueVirtualDelete(item.identity)
		return errVirtualDeleted
	}
	if item.deletingDependents {
		return c.processDeletingDependents(ctx, item)
	}
	refs := latest.GetOwnerReferences()
	if len(refs) == 0 {
		return nil
	}
	solid, dangling, waiting, err := c.classifyReferences(ctx, item, refs)
	if err != nil {
		if errors.Is(err, errNamespacedOwnerOfClusterScoped) {
			c.recorder.Eventf(eventObject(latest, item.identity), "Warning", "OwnerRefInvalidNamespace",
				"ownerRef %s does not exist in namespace %q", refsString(refs), item.identity.Namespace)
		}
		return err
	}
	switch {
	case len(solid) != 0:
		if len(dangling) == 0 && len(waiting) == 0 {
			return nil
		}
		// references to absent owners go, and so do those to owners waiting for us: they would
		// wait forever otherwise
		var uids []types.UID
		for _, r := range append(dangling, waiting...) {
			uids = append(uids, r.UID)
		}
		return c.patch(ctx, item.identity, controllers.DeleteOwnerRefPatch(item.identity.UID, uids...))
	case len(waiting) != 0 && len(item.dependents) != 0:
		if item.dependentsDeletingDependents {
			// a cycle may be forming: stop blocking our owners, then go in the foreground
			if err := c.unblockOwnerReferences(ctx, item.identity, latest); err != nil {
				return err
			}
		}
		policy := metav1.DeletePropagationForeground
		return c.deleteObject(ctx, item.identity, &policy)
	default:
		// no owner holds it: honour a propagation already asked for on it
		policy := metav1.DeletePropagationBackground
		switch {
		case slices.Contains(latest.GetFinalizers(), metav1.FinalizerOrphanDependents):
			policy = metav1.DeletePropagationOrphan
		case slices.Contains(latest.GetFinalizers(), metav1.FinalizerDeleteDependents):
			policy = metav1.DeletePropagationForeground
		}
		slog.Debug("garbage collector deletes", "item", item.identity.String(), "propagation", policy)
		return c.deleteObject(ctx, item.identity, &policy)
	}
}

// processDeletingDependents finishes a foreground deletion once no dependent blocks it, and
// otherwise makes sure each blocking dependent is being collected.
func (c *Controller) processDeletingDependents(ctx context.Context, item nodeSnapshot) error {
	if len(item.blockingDependents) == 0 {
		return c.removeFinalizer(ctx, item.identity, metav1.FinalizerDeleteDependents)
	}
	for _, dep := range item.blockingDependents {
		if !dep.deletingDependents {
			c.graph.attemptToDelete.Add(string(dep.uid))
		}
	}
	return nil
}

// classifyReferences sorts an object's owner references into owners that exist (solid), owners
// that do not (dangling) and owners being deleted in the foreground (waiting).
func (c *Controller) classifyReferences(ctx context.Context, item nodeSnapshot, refs []metav1.OwnerReference) (solid, dangling, waiting []metav1.OwnerReference, err error) {
	for _, ref := range refs {
		isDangling, owner, err := c.isDangling(ctx, ref, item)
		if err != nil {
			return nil, nil, nil, err
		}
		if isDangling {
			dangling = append(dangling, ref)
			continue
		}
		if owner.GetDeletionTimestamp() != nil && slices.Contains(owner.GetFinalizers(), metav1.FinalizerDeleteDependents) {
			waiting = append(waiting, ref)
		} else {
			solid = append(solid, ref)
		}
	}
	return solid, dangling, waiting, nil
}

// isDangling asks the API server whether the owner a reference names exists with that UID.
func (c *Controller) isDangling(ctx context.Context, ref metav1.OwnerReference, item nodeSnapshot) (bool, metav1.Object, error) {
	key := objectReference{OwnerReference: coordinates(ref)}
	if c.graph.absentOwners.has(key) {
		return true, nil, nil
	}
	key.Namespace = item.identity.Namespace
	if c.graph.absentOwners.has(key) {
		return true, nil, nil
	}
	resource, namespaced, err := c.apiResource(ref.APIVersion, ref.Kind)
	if err != nil {
		return false, nil, err
	}
	if !namespaced {
		key.Namespace = ""
	}
	if item.identity.Namespace == "" && namespaced {
		return false, nil, errNamespacedOwnerOfClusterScoped
	}
	ns := ""
	if namespaced {
		ns = item.identity.Namespace
	}
	owner, err := c.client.Resource(resource).Namespace(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		c.graph.absentOwners.add(key)
		return true, nil, nil
	case err != nil:
		return false, nil, err
	}
	if owner.GetUID() != ref.UID {
		c.graph.absentOwners.add(key)
		return true, nil, nil
	}
	return false, owner, nil
}

// apiResource maps an owner's apiVersion and kind to its resource and scope.
func (c *Controller) apiResource(apiVersion, kind string) (schema.GroupVersionResource, bool, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return schema.GroupVersionResource{}, false, err
	}
	mapping, err := c.mapper.RESTMapping(gv.WithKind(kind).GroupKind(), gv.Version)
	if err != nil {
		c.mapper.Reset() // perhaps served since we last looked
		return schema.GroupVersionResource{}, false, fmt.Errorf("unable to get REST mapping for %s/%s: %w", apiVersion, kind, err)
	}
	return mapping.Resource, mapping.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

// resourceOf maps an object's identity to its resource client.
func (c *Controller) resourceOf(ref objectReference) (dynamic.ResourceInterface, error) {
	resource, namespaced, err := c.apiResource(ref.APIVersion, ref.Kind)
	if err != nil {
		return nil, err
	}
	if namespaced {
		return c.client.Resource(resource).Namespace(ref.Namespace), nil
	}
	return c.client.Resource(resource), nil
}

func (c *Controller) getObject(ctx context.Context, ref objectReference) (metav1.Object, error) {
	r, err := c.resourceOf(ref)
	if err != nil {
		return nil, err
	}
	return r.Get(ctx, ref.Name, metav1.GetOptions{})
}

func (c *Controller) patch(ctx context.Context, ref objectReference, data []byte) error {
	r, err := c.resourceOf(ref)
	if err != nil {
		return err
	}
	_, err = r.Patch(ctx, ref.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// deleteObject deletes the object the identity names, and no other object of that name.
func (c *Controller) deleteObject(ctx context.Context, ref objectReference, policy *metav1.DeletionPropagation) error {
	r, err := c.resourceOf(ref)
	if err != nil {
		return err
	}
	uid := ref.UID
	err = r.Delete(ctx, ref.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: policy})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		// gone already, or replaced by another object of that name: the graph will say
		return nil
	}
	return err
}

// removeFinalizer removes one finalizer from an object, retrying conflicts.
func (c *Controller) removeFinalizer(ctx context.Context, ref objectReference, finalizer string) error {
	r, err := c.resourceOf(ref)
	if err != nil {
		return err
	}
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		obj, err := r.Get(ctx, ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot finalize owner %s, because cannot get it: %w", ref, err)
		}
		if obj.GetUID() != ref.UID {
			return nil
		}
		fs := obj.GetFinalizers()
		if !slices.Contains(fs, finalizer) {
			return nil
		}
		kept := slices.DeleteFunc(slices.Clone(fs), func(f string) bool { return f == finalizer })
		obj.SetFinalizers(kept)
		_, err = r.Update(ctx, obj, metav1.UpdateOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// unblockOwnerReferences sets blockOwnerDeletion false on every reference of the object that
// blocks its owner.
func (c *Controller) unblockOwnerReferences(ctx context.Context, ref objectReference, latest metav1.Object) error {
	var refs []map[string]any
	for _, o := range latest.GetOwnerReferences() {
		if o.BlockOwnerDeletion != nil && *o.BlockOwnerDeletion {
			refs = append(refs, map[string]any{"uid": o.UID, "blockOwnerDeletion": false})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	data, err := jsonMarshal(map[string]any{"metadata": map[string]any{"ownerReferences": refs, "uid": ref.UID}})
	if err != nil {
		return err
	}
	return c.patch(ctx, ref, data)
}

// syncOrphan is upstream's attemptToOrphan for the owner with UID key: remove its references
// from every dependent, then its orphan finalizer.
func (c *Controller) syncOrphan(ctx context.Context, key string) error {
	owner, ok := c.graph.snapshot(types.UID(key))
	if !ok {
		return nil
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 16) // patches in flight
	)
	for _, dep := range owner.dependents {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			// a dependent that no longer names the owner is left as it is by the patch
			if err := c.patch(ctx, dep, controllers.DeleteOwnerRefPatch(dep.UID, owner.identity.UID)); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("orphaning %s failed, %w", dep, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return c.removeFinalizer(ctx, owner.identity, metav1.FinalizerOrphanDependents)
}

func (c *Controller) reportInvalidNamespaceOwnerRef(dependent objectReference, ownerUID types.UID) {
	c.recorder.Eventf(eventObject(nil, dependent), "Warning", "OwnerRefInvalidNamespace",
		"ownerRef [uid %s] does not exist in namespace %q", ownerUID, dependent.Namespace)
}
