package rbac

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apiserver/authn"
)

// BindingSnapshots is Listers that keeps the binding lists it returns until a binding
// changes, with an index of them by subject. Copying every ClusterRoleBinding and the
// namespace's RoleBindings out of the informers' indexers for each request was most of RBAC's
// cost; walking them all still was, in a server whose caches the rest of the request had
// evicted (bench/README.md): through the index a request looks only at the bindings that name
// its user, its groups or its service account. The lists it returns are shared by every caller
// and never changed.
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
	bySubject[*rbacv1.ClusterRoleBinding]
}

type roleBindingsSnapshot struct {
	gen   uint64
	items []*rbacv1.RoleBinding
	bySubject[*rbacv1.RoleBinding]
}

var (
	_ PolicySource   = &BindingSnapshots{}
	_ subjectIndexed = &BindingSnapshots{}
)

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

// ListClusterRoleBindings implements PolicySource.
func (s *BindingSnapshots) ListClusterRoleBindings() ([]*rbacv1.ClusterRoleBinding, error) {
	snap, err := s.clusterSnapshot()
	if err != nil {
		return nil, err
	}
	return snap.items, nil
}

// ListRoleBindings implements PolicySource.
func (s *BindingSnapshots) ListRoleBindings(namespace string) ([]*rbacv1.RoleBinding, error) {
	snap, err := s.namespaceSnapshot(namespace)
	if err != nil {
		return nil, err
	}
	return snap.items, nil
}

// ClusterRoleBindingsFor implements subjectIndexed.
func (s *BindingSnapshots) ClusterRoleBindingsFor(user authn.User) ([]*rbacv1.ClusterRoleBinding, error) {
	snap, err := s.clusterSnapshot()
	if err != nil {
		return nil, err
	}
	return snap.bySubject.of(user), nil
}

// RoleBindingsFor implements subjectIndexed.
func (s *BindingSnapshots) RoleBindingsFor(user authn.User, namespace string) ([]*rbacv1.RoleBinding, error) {
	snap, err := s.namespaceSnapshot(namespace)
	if err != nil {
		return nil, err
	}
	return snap.bySubject.of(user), nil
}

// clusterSnapshot is the current snapshot of the ClusterRoleBindings, made anew after a
// change. The generation is read before the list, so a change during the list leaves a
// snapshot that the next call replaces.
func (s *BindingSnapshots) clusterSnapshot() (*clusterBindingsSnapshot, error) {
	gen := s.clusterGen.Load()
	if snap := s.cluster.Load(); snap != nil && snap.gen == gen {
		return snap, nil
	}
	items, err := s.Listers.ListClusterRoleBindings()
	if err != nil {
		return nil, err
	}
	snap := &clusterBindingsSnapshot{gen: gen, items: items, bySubject: indexBySubject(items, "", clusterSubjects)}
	s.cluster.Store(snap)
	return snap, nil
}

// namespaceSnapshot is clusterSnapshot for the RoleBindings of namespace.
func (s *BindingSnapshots) namespaceSnapshot(namespace string) (*roleBindingsSnapshot, error) {
	gen := s.namespacedGen.Load()
	if v, ok := s.namespaced.Load(namespace); ok {
		if snap := v.(*roleBindingsSnapshot); snap.gen == gen {
			return snap, nil
		}
	}
	items, err := s.Listers.ListRoleBindings(namespace)
	if err != nil {
		return nil, err
	}
	snap := &roleBindingsSnapshot{gen: gen, items: items, bySubject: indexBySubject(items, namespace, roleBindingSubjects)}
	s.namespaced.Store(namespace, snap)
	return snap, nil
}

// subjectIndexed is a PolicySource that finds the bindings that may name a user without
// walking them all. What it returns must hold every binding, of those the source lists, with a
// subject that names the user (subjectIsUser), in the order the source lists them; it may
// hold others, which RBAC then passes over.
type subjectIndexed interface {
	ClusterRoleBindingsFor(user authn.User) ([]*rbacv1.ClusterRoleBinding, error)
	RoleBindingsFor(user authn.User, namespace string) ([]*rbacv1.RoleBinding, error)
}

// subjectKey is a subject as a user matches it: a User or Group name, or a ServiceAccount's
// namespace and name (its namespace filled in from a RoleBinding's).
type subjectKey struct {
	kind, namespace, name string
}

// bySubject indexes a list of bindings by the subjects they name.
type bySubject[B any] map[subjectKey]positions[B]

// positions are the bindings one subject key finds, with their places in the list, ascending.
type positions[B any] struct {
	at    []int
	items []B
}

// clusterSubjects and roleBindingSubjects give a binding's subjects, for indexBySubject.
func clusterSubjects(b *rbacv1.ClusterRoleBinding) []rbacv1.Subject { return b.Subjects }
func roleBindingSubjects(b *rbacv1.RoleBinding) []rbacv1.Subject    { return b.Subjects }

// indexBySubject indexes items (bindings in namespace, "" for ClusterRoleBindings) by the
// keys of their subjects. A subject no user can match (an unknown kind, a ServiceAccount
// without a namespace in a ClusterRoleBinding) is left out, as subjectIsUser passes it over.
func indexBySubject[B any](items []B, namespace string, subjects func(B) []rbacv1.Subject) bySubject[B] {
	index := bySubject[B]{}
	for i, b := range items {
		for _, s := range subjects(b) {
			key := subjectKey{kind: s.Kind, name: s.Name}
			switch s.Kind {
			case rbacv1.UserKind, rbacv1.GroupKind:
			case rbacv1.ServiceAccountKind:
				key.namespace = s.Namespace
				if key.namespace == "" {
					key.namespace = namespace
				}
				if key.namespace == "" {
					continue
				}
			default:
				continue
			}
			p := index[key]
			if n := len(p.at); n > 0 && p.at[n-1] == i {
				continue // a binding that names the same subject twice
			}
			p.at, p.items = append(p.at, i), append(p.items, b)
			index[key] = p
		}
	}
	return index
}

// of returns the bindings that name user, through its name, its groups or, for a service
// account's user name, the account, in their order in the list. A user found under one key
// only (the common case) costs no allocation.
func (x bySubject[B]) of(user authn.User) []B {
	var keys [8]subjectKey
	candidates := append(keys[:0], subjectKey{kind: rbacv1.UserKind, name: user.Name})
	for _, g := range user.Groups {
		candidates = append(candidates, subjectKey{kind: rbacv1.GroupKind, name: g})
	}
	if rest, ok := strings.CutPrefix(user.Name, serviceAccountUsernamePrefix); ok {
		// system:serviceaccount:NS:NAME; every ':' may end NS, as subjectIsUser compares
		// the whole string
		for i := range len(rest) {
			if rest[i] == ':' {
				candidates = append(candidates, subjectKey{kind: rbacv1.ServiceAccountKind, namespace: rest[:i], name: rest[i+1:]})
			}
		}
	}
	var hits [4]positions[B]
	found := hits[:0]
	for _, key := range candidates {
		if p, ok := x[key]; ok {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return nil
	case 1:
		return found[0].items
	}
	// merge in list order, each binding once
	var at []int
	for _, p := range found {
		at = append(at, p.at...)
	}
	slices.Sort(at)
	at = slices.Compact(at)
	out := make([]B, 0, len(at))
	for _, i := range at {
		for _, p := range found {
			if j, ok := slices.BinarySearch(p.at, i); ok {
				out = append(out, p.items[j])
				break
			}
		}
	}
	return out
}
