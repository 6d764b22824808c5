package apiserver

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// customResourceDefinitions serves what CustomResourceDefinitions declare, as upstream's
// apiextensions controllers do inside its server: it accepts a definition's names unless
// another definition of the group uses them (NamesAccepted), serves its versions and marks it
// Established, serves it anew when it changes, and when it is deleted, deletes its objects
// before letting it go. One worker; definitions are few and their changes rare.
type customResourceDefinitions struct {
	s     *Server
	store *registry.Store
	queue workqueue.TypedRateLimitingInterface[string]
	// serving maps each definition to the resources served for it, and servedAs to what of
	// the definition they were built from (worker-owned)
	serving  map[string][]schema.GroupVersionResource
	servedAs map[string]servedDefinition
}

// servedDefinition is what of a definition its served resources depend on: a definition
// whose status alone changed is not served anew.
type servedDefinition struct {
	uid         string
	generation  int64
	names       string
	terminating bool
}

func servedAs(crd *apiextensionsv1.CustomResourceDefinition) servedDefinition {
	return servedDefinition{uid: string(crd.UID), generation: crd.Generation,
		names: fmt.Sprintf("%+v", crd.Status.AcceptedNames), terminating: crd.DeletionTimestamp != nil}
}

var crdResource = apiextensionsv1.SchemeGroupVersion

func (s *Server) runCustomResourceDefinitions(ctx context.Context) {
	c := &customResourceDefinitions{
		s: s, store: s.builtinStore(crdResource, "customresourcedefinitions"),
		queue:    workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		serving:  map[string][]schema.GroupVersionResource{},
		servedAs: map[string]servedDefinition{},
	}
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	go c.follow(ctx)
	for c.next(ctx) {
	}
}

// follow queues every definition at start and each one that changes, relisting whenever the
// watch ends.
func (c *customResourceDefinitions) follow(ctx context.Context) {
	for ctx.Err() == nil {
		list, err := c.store.List(ctx, "", registry.ListOptions{})
		if err != nil {
			slog.Warn("listing CustomResourceDefinitions", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		items, _ := meta.ExtractList(list)
		for _, it := range items {
			c.queue.Add(it.(*apiextensionsv1.CustomResourceDefinition).Name)
		}
		lm, _ := meta.ListAccessor(list)
		w, err := c.store.Watch(ctx, "", registry.ListOptions{ResourceVersion: lm.GetResourceVersion()})
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error || ev.Type == watch.Bookmark {
				continue
			}
			if m, err := meta.Accessor(ev.Object); err == nil {
				c.queue.Add(m.GetName())
			}
		}
		w.Stop()
	}
}

func (c *customResourceDefinitions) next(ctx context.Context) bool {
	name, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(name)
	requeue, err := c.sync(ctx, name)
	switch {
	case err != nil:
		slog.Warn("CustomResourceDefinition", "name", name, "err", err)
		c.queue.AddRateLimited(name)
	case requeue:
		c.queue.AddAfter(name, time.Second)
	default:
		c.queue.Forget(name)
	}
	return true
}

// sync makes the server serve what the named definition declares now; it asks to be called
// again while a deleted definition still has objects.
func (c *customResourceDefinitions) sync(ctx context.Context, name string) (bool, error) {
	obj, err := c.store.Get(ctx, "", name, &metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, c.stopServing(name)
	}
	if err != nil {
		return false, err
	}
	crd := obj.(*apiextensionsv1.CustomResourceDefinition)
	if crd.DeletionTimestamp != nil {
		return c.finalize(ctx, crd)
	}
	all, err := c.store.List(ctx, "", registry.ListOptions{})
	if err != nil {
		return false, err
	}
	items, _ := meta.ExtractList(all)
	var others []*apiextensionsv1.CustomResourceDefinition
	for _, it := range items {
		if o := it.(*apiextensionsv1.CustomResourceDefinition); o.Name != crd.Name && o.Spec.Group == crd.Spec.Group {
			others = append(others, o)
		}
	}
	names, accepted := acceptNames(crd, others)
	status := crd.Status.DeepCopy()
	status.AcceptedNames = names
	setCondition(status, accepted)
	// once established, a definition stays served under the names it has, as upstream: a
	// later conflict only keeps its new names from being accepted
	established := accepted.Status == apiextensionsv1.ConditionTrue || isEstablished(crd)
	if established {
		served := crd.DeepCopy()
		served.Status.AcceptedNames = names
		if err := c.serve(served); err != nil {
			return false, err
		}
		setCondition(status, apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.Established,
			Status: apiextensionsv1.ConditionTrue, Reason: "InitialNamesAccepted", Message: "the initial names have been accepted"})
	} else {
		setCondition(status, apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.Established,
			Status: apiextensionsv1.ConditionFalse, Reason: "NotAccepted", Message: "not all names are accepted"})
	}
	return false, c.writeStatus(ctx, crd, status)
}

// setCondition sets c in status, keeping the transition time when the status stays.
func setCondition(status *apiextensionsv1.CustomResourceDefinitionStatus, c apiextensionsv1.CustomResourceDefinitionCondition) {
	crd := &apiextensionsv1.CustomResourceDefinition{Status: *status}
	apis.SetCRDCondition(crd, c)
	*status = crd.Status
}

// writeStatus stores status when it differs from crd's.
func (c *customResourceDefinitions) writeStatus(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition, status *apiextensionsv1.CustomResourceDefinitionStatus) error {
	if apiequality.Semantic.DeepEqual(&crd.Status, status) {
		return nil
	}
	_, _, err := c.store.Update(ctx, "", crd.Name, apis.CRDStatusStrategy, func(_ context.Context, cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(c.store.GroupResource(), crd.Name)
		}
		latest := cur.(*apiextensionsv1.CustomResourceDefinition)
		if latest.Generation != crd.Generation {
			return nil, apierrors.NewConflict(c.store.GroupResource(), crd.Name, fmt.Errorf("changed meanwhile"))
		}
		latest.Status = *status
		return latest, nil
	}, false)
	if apierrors.IsConflict(err) {
		c.queue.Add(crd.Name)
		return nil
	}
	return err
}

// acceptNames is upstream's naming rule: each requested name is accepted when it is the one
// accepted before or no other definition of the group has accepted it. Plurals, singulars and
// short names share one namespace, kinds and list kinds another. A name that conflicts keeps
// the one accepted before, and NamesAccepted names the last conflict found, checked in the
// order plural, singular, short names, kind, list kind.
func acceptNames(crd *apiextensionsv1.CustomResourceDefinition, others []*apiextensionsv1.CustomResourceDefinition) (apiextensionsv1.CustomResourceDefinitionNames, apiextensionsv1.CustomResourceDefinitionCondition) {
	resources, kinds := sets.New[string](), sets.New[string]()
	for _, o := range others {
		n := o.Status.AcceptedNames
		resources.Insert(n.Plural, n.Singular)
		resources.Insert(n.ShortNames...)
		kinds.Insert(n.Kind, n.ListKind)
	}
	// a built-in kind's names are never a definition's: it cannot take over a served resource
	for _, r := range apis.Builtin.All() {
		if r.GroupVersion.Group == crd.Spec.Group {
			resources.Insert(r.Name, r.SingularName)
			resources.Insert(r.ShortNames...)
			kinds.Insert(r.Kind, r.ListKind())
		}
	}
	want, had := crd.Spec.Names, crd.Status.AcceptedNames
	out := *had.DeepCopy()
	var reason, message string
	inUse := func(requested, accepted string, used sets.Set[string]) bool {
		return requested != accepted && used.Has(requested)
	}
	take := func(requested, accepted string, used sets.Set[string], r string, into *string) {
		if inUse(requested, accepted, used) {
			reason, message = r, fmt.Sprintf("%q is already in use", requested)
			return
		}
		*into = requested
	}
	take(want.Plural, had.Plural, resources, "PluralConflict", &out.Plural)
	take(want.Singular, had.Singular, resources, "SingularConflict", &out.Singular)
	if !slices.Equal(want.ShortNames, had.ShortNames) {
		var taken []string
		for _, s := range want.ShortNames {
			if !slices.Contains(had.ShortNames, s) && inUse(s, "", resources) {
				taken = append(taken, fmt.Sprintf("%q is already in use", s))
			}
		}
		switch len(taken) {
		case 0:
			out.ShortNames = want.ShortNames
		case 1: // an aggregate of one error says it alone, of several lists them
			reason, message = "ShortNamesConflict", taken[0]
		default:
			reason, message = "ShortNamesConflict", "["+strings.Join(taken, ", ")+"]"
		}
	}
	take(want.Kind, had.Kind, kinds, "KindConflict", &out.Kind)
	take(want.ListKind, had.ListKind, kinds, "ListKindConflict", &out.ListKind)
	out.Categories = want.Categories
	if reason != "" {
		return out, apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.NamesAccepted,
			Status: apiextensionsv1.ConditionFalse, Reason: reason, Message: message}
	}
	return out, apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.NamesAccepted,
		Status: apiextensionsv1.ConditionTrue, Reason: "NoConflicts", Message: "no conflicts found"}
}

// serve makes the server serve crd's versions under its accepted names, in place of what it
// served for crd before.
func (c *customResourceDefinitions) serve(crd *apiextensionsv1.CustomResourceDefinition) error {
	if _, ok := c.serving[crd.Name]; ok && c.servedAs[crd.Name] == servedAs(crd) {
		return nil
	}
	resources, err := apis.CustomResources(crd)
	if err != nil {
		return err
	}
	if crd.DeletionTimestamp != nil {
		for _, r := range resources {
			r.RefuseCreate = "create not allowed while custom resource definition is terminating"
		}
	}
	previous := sets.New(c.serving[crd.Name]...)
	var gvrs []schema.GroupVersionResource
	for _, r := range resources {
		gvrs = append(gvrs, r.GroupVersionResource())
	}
	keep := sets.New(gvrs...)
	if err := c.s.serveResources(resources, func(r *apis.Resource) bool {
		gvr := r.GroupVersionResource()
		return previous.Has(gvr) && !keep.Has(gvr)
	}); err != nil {
		return err
	}
	if len(previous) == 0 {
		slog.Info("serving custom resources", "crd", crd.Name, "versions", len(resources))
	}
	c.serving[crd.Name] = gvrs
	c.servedAs[crd.Name] = servedAs(crd)
	return nil
}

// stopServing stops serving what was served for the named definition.
func (c *customResourceDefinitions) stopServing(name string) error {
	gvrs, ok := c.serving[name]
	if !ok {
		return nil
	}
	served := sets.New(gvrs...)
	if err := c.s.serveResources(nil, func(r *apis.Resource) bool { return served.Has(r.GroupVersionResource()) }); err != nil {
		return err
	}
	delete(c.serving, name)
	delete(c.servedAs, name)
	slog.Info("stopped serving custom resources", "crd", name)
	return nil
}

// finalize deletes every object of a deleted definition (their own finalizers honoured), then
// takes the cleanup finalizer off and deletes the definition for good.
func (c *customResourceDefinitions) finalize(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) (bool, error) {
	if !slices.Contains(crd.Finalizers, apis.CustomResourceCleanupFinalizer) {
		return false, nil
	}
	if len(crd.Status.AcceptedNames.Plural) > 0 {
		if err := c.serve(crd); err != nil {
			return false, err
		}
		h := c.storageHandler(crd)
		if h != nil {
			list, err := h.store.List(ctx, "", registry.ListOptions{})
			if err != nil {
				return false, err
			}
			items, _ := meta.ExtractList(list)
			for _, it := range items {
				m, _ := meta.Accessor(it)
				if m.GetDeletionTimestamp() != nil {
					continue
				}
				if _, _, err := h.store.Delete(ctx, m.GetNamespace(), m.GetName(), &metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					return false, err
				}
			}
			if left, err := h.store.List(ctx, "", registry.ListOptions{Limit: 1}); err != nil {
				return false, err
			} else if n, _ := meta.ExtractList(left); len(n) > 0 {
				return true, nil // finalizers of its objects hold them: look again
			}
		}
	}
	if err := c.stopServing(crd.Name); err != nil {
		return false, err
	}
	_, _, err := c.store.Update(ctx, "", crd.Name, apis.CRDStrategy, func(_ context.Context, cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(c.store.GroupResource(), crd.Name)
		}
		latest := cur.(*apiextensionsv1.CustomResourceDefinition)
		latest.Finalizers = slices.DeleteFunc(latest.Finalizers, func(f string) bool { return f == apis.CustomResourceCleanupFinalizer })
		return latest, nil
	}, false)
	if err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	if _, _, err := c.store.Delete(ctx, "", crd.Name, &metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	return false, nil
}

// storageHandler is the handler of crd's storage version, or of any version it serves.
func (c *customResourceDefinitions) storageHandler(crd *apiextensionsv1.CustomResourceDefinition) *resourceHandler {
	sv := c.s.current()
	var served *resourceHandler
	for _, gvr := range c.serving[crd.Name] {
		h := sv.handler(gvr.GroupVersion(), gvr.Resource)
		if h == nil {
			continue
		}
		if h.res.GroupVersion == h.res.StorageVersion {
			return h
		}
		served = h
	}
	return served
}

func isEstablished(crd *apiextensionsv1.CustomResourceDefinition) bool {
	c := apis.CRDCondition(crd, apiextensionsv1.Established)
	return c != nil && c.Status == apiextensionsv1.ConditionTrue
}

// sleepCtx waits d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
