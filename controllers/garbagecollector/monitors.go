package garbagecollector

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
)

// InformerSource gives the collector a shared informer of any served resource. Its objects need
// only be metav1.Objects: typed, metadata-only or unstructured.
type InformerSource interface {
	// ForResource returns the informer of gvr, creating it if needed.
	ForResource(gvr schema.GroupVersionResource) (cache.SharedIndexInformer, error)
	// Start starts the informers created since the last Start.
	Start(stop <-chan struct{})
}

// sharedInformers prefers the typed informers other controllers share (one watch of pods for
// the ReplicaSet controller and the collector) and falls back to metadata-only informers, or to
// dynamic ones reduced to metadata when the API server cannot serve metadata-only lists.
type sharedInformers struct {
	typed informers.SharedInformerFactory
	// one of these two
	metadata metadatainformer.SharedInformerFactory
	dynamic  dynamicinformer.DynamicSharedInformerFactory

	mu          sync.Mutex
	transformed map[schema.GroupVersionResource]bool
}

var _ InformerSource = &sharedInformers{}

// NewMetadataInformerSource serves typed informers where typed exists and metadata-only ones
// for the rest, as upstream's controller manager does.
func NewMetadataInformerSource(typed informers.SharedInformerFactory, md metadatainformer.SharedInformerFactory) InformerSource {
	return &sharedInformers{typed: typed, metadata: md}
}

// NewDynamicInformerSource serves typed informers where typed exists and dynamic ones, whose
// cache keeps only metadata, for the rest: for API servers that ignore as=PartialObjectMetadata.
func NewDynamicInformerSource(typed informers.SharedInformerFactory, dyn dynamicinformer.DynamicSharedInformerFactory) InformerSource {
	return &sharedInformers{typed: typed, dynamic: dyn, transformed: map[schema.GroupVersionResource]bool{}}
}

func (s *sharedInformers) ForResource(gvr schema.GroupVersionResource) (cache.SharedIndexInformer, error) {
	if s.typed != nil {
		if inf, err := s.typed.ForResource(gvr); err == nil {
			return inf.Informer(), nil
		}
	}
	if s.metadata != nil {
		return s.metadata.ForResource(gvr).Informer(), nil
	}
	inf := s.dynamic.ForResource(gvr).Informer()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.transformed[gvr] {
		// keep only metadata in the cache: the collector reads nothing else
		if err := inf.SetTransform(toPartialObjectMetadata); err == nil {
			s.transformed[gvr] = true
		}
	}
	return inf, nil
}

func toPartialObjectMetadata(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: u.GetAPIVersion(), Kind: u.GetKind()}}
	m.Name, m.Namespace, m.UID = u.GetName(), u.GetNamespace(), u.GetUID()
	m.ResourceVersion, m.Generation = u.GetResourceVersion(), u.GetGeneration()
	m.Labels, m.Annotations = u.GetLabels(), u.GetAnnotations()
	m.OwnerReferences, m.Finalizers = u.GetOwnerReferences(), u.GetFinalizers()
	m.DeletionTimestamp, m.DeletionGracePeriodSeconds = u.GetDeletionTimestamp(), u.GetDeletionGracePeriodSeconds()
	m.CreationTimestamp = u.GetCreationTimestamp()
	return m, nil
}

func (s *sharedInformers) Start(stop <-chan struct{}) {
	if s.typed != nil {
		s.typed.Start(stop)
	}
	if s.metadata != nil {
		s.metadata.Start(stop)
	}
	if s.dynamic != nil {
		s.dynamic.Start(stop)
	}
}

// ServesMetadata reports whether the API server answers metadata-only watches, by watching
// namespaces from resourceVersion 0 through the metadata client and decoding the first event.
// Anything else than a metadata-only object within timeout is a no.
func ServesMetadata(ctx context.Context, client metadata.Interface, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	namespaces := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	if _, err := client.Resource(namespaces).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		return false
	}
	w, err := client.Resource(namespaces).Watch(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return false
	}
	defer w.Stop()
	select {
	case e, ok := <-w.ResultChan():
		if !ok || e.Type == watch.Error {
			return false
		}
		_, isMeta := e.Object.(*metav1.PartialObjectMetadata)
		return isMeta
	case <-ctx.Done():
		return false
	}
}

// ignoredResources are never monitored, as upstream: events have no owners worth collecting and
// are many.
var ignoredResources = map[schema.GroupResource]bool{
	{Group: "", Resource: "events"}:              true,
	{Group: "events.k8s.io", Resource: "events"}: true,
}

// monitoredResource is a resource the collector watches, with the kind its objects have.
type monitoredResource struct {
	gvr schema.GroupVersionResource
	gvk schema.GroupVersionKind
}

// deletableResources are the served resources (preferred versions) that can be listed, watched
// and deleted, which is what the collector needs. Partial discovery failures still return what
// was found, with the error.
func deletableResources(d discovery.ServerResourcesInterface) ([]monitoredResource, error) {
	lists, err := d.ServerPreferredResources()
	var out []monitoredResource
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			if len(r.Verbs) == 0 || !hasVerbs(r.Verbs, "delete", "list", "watch") {
				continue
			}
			if containsSlash(r.Name) { // subresources
				continue
			}
			gvr := gv.WithResource(r.Name)
			if ignoredResources[gvr.GroupResource()] {
				continue
			}
			group, version := gv.Group, gv.Version
			if r.Group != "" {
				group = r.Group
			}
			if r.Version != "" {
				version = r.Version
			}
			out = append(out, monitoredResource{gvr: gvr, gvk: schema.GroupVersionKind{Group: group, Version: version, Kind: r.Kind}})
		}
	}
	if len(out) > 0 && discovery.IsGroupDiscoveryFailedError(err) {
		return out, err
	}
	return out, err
}

func hasVerbs(have metav1.Verbs, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// monitors watch resources and feed the graph.
type monitors struct {
	informers InformerSource
	graph     *graph

	mu      sync.Mutex
	watched map[schema.GroupVersionResource]cache.ResourceEventHandlerRegistration
}

// sync starts monitoring every resource of resources not watched yet (a resource that goes away
// keeps its informer; it just stops seeing changes).
func (m *monitors) sync(resources []monitoredResource, stop <-chan struct{}) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	added := 0
	var errs []error
	for _, r := range resources {
		if _, ok := m.watched[r.gvr]; ok {
			continue
		}
		inf, err := m.informers.ForResource(r.gvr)
		if err != nil {
			errs = append(errs, fmt.Errorf("informer of %v: %w", r.gvr, err))
			continue
		}
		reg, err := inf.AddEventHandler(m.handler(r.gvk))
		if err != nil {
			errs = append(errs, fmt.Errorf("watch %v: %w", r.gvr, err))
			continue
		}
		m.watched[r.gvr] = reg
		added++
	}
	if added > 0 {
		slog.Debug("garbage collector monitors resources", "added", added, "total", len(m.watched))
		m.informers.Start(stop)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

// synced reports whether every monitor has delivered its initial list to the graph.
func (m *monitors) synced() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.watched) == 0 {
		return false
	}
	for _, reg := range m.watched {
		if !reg.HasSynced() {
			return false
		}
	}
	return true
}

func (m *monitors) handler(gvk schema.GroupVersionKind) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if o, err := accessor(obj); err == nil {
				m.graph.changes.Add(&graphEvent{eventType: addEvent, obj: o, gvk: gvk})
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, err := accessor(newObj)
			if err != nil {
				return
			}
			old, _ := accessor(oldObj)
			m.graph.changes.Add(&graphEvent{eventType: updateEvent, obj: o, oldObj: old, gvk: gvk})
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if o, err := accessor(obj); err == nil {
				m.graph.changes.Add(&graphEvent{eventType: deleteEvent, obj: o, gvk: gvk})
			}
		},
	}
}
