package rbac

import (
	"sync"
	"sync/atomic"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/tools/cache"
)

// BindingSnapshots is Listers that keeps the binding lists it returns until a binding
// changes. Every request RBAC authorizes walks every ClusterRoleBinding and the RoleBindings
// of its namespace; copying those lists out of the informers' indexers for each request was
// most of RBAC's cost (bench/README.md). The lists it returns are shared by every caller and
// never changed.
type BindingSnapshots struct {
	Listers
	// clusterGen and namespacedGen count changes of the bindings, bumped by Invalidator's
	// handlers after the indexers hold each change.
	clusterGen, namespacedGen atomic.Uint64
	cluster                   atomic.Pointer[clusterBindingsSnapshot]
	namespaced                sync.Map // namespace -> *roleBindingsSnapshot
}

type clusterBindingsSnapshot struct {
	gen   uint64
	items []*rbacv1.ClusterRoleBinding
}

type roleBindingsSnapshot struct {
	gen   uint64
	items []*rbacv1.RoleBinding
}

var _ PolicySource = &BindingSnapshots{}

// NewBindingSnapshots returns a BindingSnapshots over l; the caller adds its handlers to
// the RoleBinding and ClusterRoleBinding informers behind l.
func NewBindingSnapshots(l Listers) *BindingSnapshots { return &BindingSnapshots{Listers: l} }

// RoleBindingHandler and ClusterRoleBindingHandler make the snapshots of their kind stale
// on every change the informer delivers.
func (s *BindingSnapshots) RoleBindingHandler() cache.ResourceEventHandler {
	return bumpOnChange(&s.namespacedGen)
}

func (s *BindingSnapshots) ClusterRoleBindingHandler() cache.ResourceEventHandler {
	return bumpOnChange(&s.clusterGen)
}

func bumpOnChange(gen *atomic.Uint64) cache.ResourceEventHandler {
	bump := func() { gen.Add(1) }
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { bump() },
		UpdateFunc: func(any, any) { bump() },
		DeleteFunc: func(any) { bump() },
	}
}

// ListClusterRoleBindings implements PolicySource. The generation is read before the list,
// so a change during the list leaves a snapshot that the next call replaces.
func (s *BindingSnapshots) ListClusterRoleBindings() ([]*rbacv1.ClusterRoleBinding, error) {
	gen := s.clusterGen.Load()
	if snap := s.cluster.Load(); snap != nil && snap.gen == gen {
		return snap.items, nil
	}
	items, err := s.Listers.ListClusterRoleBindings()
	if err != nil {
		return nil, err
	}
	s.cluster.Store(&clusterBindingsSnapshot{gen: gen, items: items})
	return items, nil
}

// ListRoleBindings implements PolicySource, as ListClusterRoleBindings.
func (s *BindingSnapshots) ListRoleBindings(namespace string) ([]*rbacv1.RoleBinding, error) {
	gen := s.namespacedGen.Load()
	if v, ok := s.namespaced.Load(namespace); ok {
		if snap := v.(*roleBindingsSnapshot); snap.gen == gen {
			return snap.items, nil
		}
	}
	items, err := s.Listers.ListRoleBindings(namespace)
	if err != nil {
		return nil, err
	}
	s.namespaced.Store(namespace, &roleBindingsSnapshot{gen: gen, items: items})
	return items, nil
}
