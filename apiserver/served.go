package apiserver

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
	"github.com/skiff-dev/skiff/registry/storage"
	"github.com/skiff-dev/skiff/registry/storage/cacher"
	"github.com/skiff-dev/skiff/registry/storage/encryption"
	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

// served is what the server serves at one moment: the resource set, a handler per stored
// resource, and the discovery documents made from them. It never changes once built: a change
// of the served resources (a CustomResourceDefinition established or deleted) builds a new one
// and swaps it in, so a request reads one consistent snapshot without locks.
type served struct {
	set      *apis.Set
	handlers map[schema.GroupVersion]map[string]*resourceHandler
	// groups are the named groups' discovery documents; legacy and named are the aggregated
	// documents (v2 and v2beta1) of the core group and of the named groups
	groups        []metav1.APIGroup
	legacy, named map[string]aggregatedDocument
}

// handler is the handler of a stored resource, or nil.
func (sv *served) handler(gv schema.GroupVersion, resource string) *resourceHandler {
	return sv.handlers[gv][resource]
}

// sharedStorage is the watch cache of one etcd key prefix, shared by the resources stored
// there (v1 and events.k8s.io/v1 events), stopped when the last of them goes.
type sharedStorage struct {
	*cacher.Cacher
	stop  context.CancelFunc
	users int
}

var _ storage.SharedLister = &sharedStorage{}

type atomicServed = atomic.Pointer[served]

// servedState is the server's part that changes at run time.
type servedState struct {
	mu       sync.Mutex // serializes changes; readers load current
	current  atomicServed
	storages map[string]*sharedStorage // by etcd key segment, guarded by mu
	base     storage.Interface         // etcd, instrumented
	// etcd is base's store; resources encrypted at rest get stores of their own on its
	// client, with encryption's transformer (encryption.go)
	etcd       *etcd3.Store
	encryption *encryption.Config
}

// current is the snapshot of what the server serves now.
func (s *Server) current() *served { return s.state.current.Load() }

// serveResources makes the server serve add (replacing any it serves with the same group,
// version and name) and stop serving those for which drop is true: it builds their storage
// and handlers, then swaps in new discovery documents and invalidates the OpenAPI documents.
// Storage that no served resource uses any more is stopped.
func (s *Server) serveResources(add []*apis.Resource, drop func(*apis.Resource) bool) error {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	old := s.current()
	set := old.set
	if drop != nil {
		set = set.Without(drop)
	}
	set = set.With(add...)
	handlers := make(map[schema.GroupVersion]map[string]*resourceHandler, len(old.handlers))
	// handlers of resources that stay are kept as they are
	kept := map[*apis.Resource]bool{}
	for _, r := range set.All() {
		kept[r] = true
	}
	for gv, byName := range old.handlers {
		for name, h := range byName {
			if kept[h.res] {
				if handlers[gv] == nil {
					handlers[gv] = map[string]*resourceHandler{}
				}
				handlers[gv][name] = h
			}
		}
	}
	var built []*resourceHandler
	for _, res := range add {
		if res.Review || res.FromKubelets {
			continue // never stored: see reviews.go and resourcemetrics.go
		}
		h, err := s.newResourceHandler(res, set)
		if err != nil {
			for _, b := range built {
				s.releaseStorage(b.res)
			}
			return err
		}
		built = append(built, h)
		if handlers[res.GroupVersion] == nil {
			handlers[res.GroupVersion] = map[string]*resourceHandler{}
		}
		handlers[res.GroupVersion][res.Name] = h
	}
	next := newServed(set, handlers, s.aggregation.remoteDiscovery())
	s.state.current.Store(next)
	s.aggregation.noteServedChanged()
	// what is no longer served lets go of its storage
	for gv, byName := range old.handlers {
		for name, h := range byName {
			if handlers[gv][name] != h {
				s.releaseStorage(h.res)
			}
		}
	}
	s.openAPI.invalidate()
	return nil
}

// newServed builds a snapshot and its discovery documents, which list the group versions of
// the remote APIServices given too (aggregation_discovery.go).
func newServed(set *apis.Set, handlers map[schema.GroupVersion]map[string]*resourceHandler, remote []*remoteAPIService) *served {
	named := withRemoteAggregated(aggregated(set, false), remote)
	return &served{
		set: set, handlers: handlers, groups: withRemoteGroups(servedGroups(set), remote),
		legacy: map[string]aggregatedDocument{
			"v2": encodeAggregated(aggregated(set, true), "v2"), "v2beta1": encodeAggregated(aggregated(set, true), "v2beta1")},
		named: map[string]aggregatedDocument{
			"v2": encodeAggregated(named, "v2"), "v2beta1": encodeAggregated(named, "v2beta1")},
	}
}

// newResourceHandler builds the storage (shared by key), registry store and handler of res.
func (s *Server) newResourceHandler(res *apis.Resource, set *apis.Set) (*resourceHandler, error) {
	st, err := s.acquireStorage(res, set)
	if err != nil {
		return nil, err
	}
	store, err := registry.NewStore(res, st)
	if err != nil {
		s.releaseStorage(res)
		return nil, err
	}
	if res.ServiceAddresses {
		store.Allocator = s.allocator
	}
	store.Admit = s.validateWrite
	// validating admission after validation, as upstream: policies, then webhooks
	store.Mutate, store.Admit = s.mutateWithWebhooks(res), s.validateWithWebhooks(res, s.withAdmissionPolicies(res, store.Admit))
	store.ConvertCustomResource, store.AdmitDelete = s.conversionWebhook(res), s.deleteWithWebhooks(res)
	h := &resourceHandler{res: res, store: store, maxBodyBytes: s.cfg.MaxRequestBodyBytes,
		subresources: map[string]subresource{}, fieldManagers: map[string]*managedfields.FieldManager{},
		admit: s.admission}
	h.policies = s.policies
	for _, sub := range []string{"", "status"} {
		if sub != "" && res.Subresource(sub) == nil {
			continue
		}
		fm, err := newFieldManager(res, sub)
		if err != nil {
			s.releaseStorage(res)
			return nil, fmt.Errorf("field manager for %s: %w", res.Name, err)
		}
		h.fieldManagers[sub] = fm
	}
	for _, sub := range res.Subresources {
		switch {
		case sub.Strategy != nil:
			// writes the parent object (status, finalize); upstream serves finalize for
			// update only
			h.subresources[sub.Name] = parentWrite{strategy: sub.Strategy, getAllowed: sub.Name != "finalize"}
		case sub.Name == "scale" && res.Scale != nil:
			h.subresources["scale"] = workloadScale{}
		case sub.Name == "binding":
			h.subresources["binding"] = podBinding{s: s}
		case sub.Name == "eviction":
			h.subresources["eviction"] = podEviction{s: s}
		case sub.Name == "token":
			h.subresources["token"] = serviceAccountToken{s: s}
		}
	}
	return h, nil
}

// acquireStorage returns the watch cache of res's etcd prefix, starting it for the first
// resource stored there.
func (s *Server) acquireStorage(res *apis.Resource, set *apis.Set) (storage.Interface, error) {
	if st, ok := s.state.storages[res.StorageKey]; ok {
		st.users++
		return st, nil
	}
	storageRes := res
	if res.StorageVersion != res.GroupVersion {
		if r := set.ForKind(res.StorageVersion.WithKind(res.Kind)); r != nil {
			storageRes = r
		}
	}
	opts := []cacher.Option{cacher.WithHistorySize(s.cfg.WatchCacheSize)}
	if f := storageRes.IndexedField; f != "" {
		opts = append(opts, cacher.WithIndexedField(f, func(obj runtime.Object) string {
			return storageRes.SelectableFields(obj)[f]
		}))
	}
	base, encrypted := s.encryptedStorage(storageRes)
	opts = append(opts, encrypted...)
	ctx, stop := context.WithCancel(s.ctx)
	c, err := cacher.New(ctx, base, s.cfg.Etcd, "/registry/"+res.StorageKey+"/", storageRes.New, storageRes.NewList, opts...)
	if err != nil {
		stop()
		return nil, fmt.Errorf("watch cache for %s: %w", res.Name, err)
	}
	st := &sharedStorage{Cacher: c, stop: func() { stop(); c.Stop() }, users: 1}
	s.state.storages[res.StorageKey] = st
	return st, nil
}

// releaseStorage lets go of res's watch cache, stopping it when nothing else uses it.
func (s *Server) releaseStorage(res *apis.Resource) {
	st, ok := s.state.storages[res.StorageKey]
	if !ok {
		return
	}
	if st.users--; st.users == 0 {
		st.stop()
		delete(s.state.storages, res.StorageKey)
		slog.Info("watch cache stopped", "prefix", "/registry/"+res.StorageKey+"/")
	}
}
