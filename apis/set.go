package apis

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
)

// Set is the resources served at one moment, in discovery order. A Set never changes: the set
// of served resources changes by building a new one (With, Without) and swapping it in, so
// that readers take a consistent snapshot without locks.
type Set struct {
	list  []*Resource
	byGVR map[schema.GroupVersionResource]*Resource
	byGVK map[schema.GroupVersionKind]*Resource
	gvs   []schema.GroupVersion
	byGV  map[schema.GroupVersion][]*Resource
}

// NewSet indexes resources. Two resources with the same group, version and name are a
// programming error.
func NewSet(resources []*Resource) *Set {
	s := &Set{
		list:  resources,
		byGVR: make(map[schema.GroupVersionResource]*Resource, len(resources)),
		byGVK: make(map[schema.GroupVersionKind]*Resource, len(resources)),
		byGV:  map[schema.GroupVersion][]*Resource{},
	}
	for _, r := range resources {
		if _, dup := s.byGVR[r.GroupVersionResource()]; dup {
			panic(fmt.Sprintf("two resources %s", r.GroupVersionResource()))
		}
		s.byGVR[r.GroupVersionResource()] = r
		if _, seen := s.byGVK[r.GroupVersionKind()]; !seen {
			s.byGVK[r.GroupVersionKind()] = r
		}
		if _, seen := s.byGV[r.GroupVersion]; !seen {
			s.gvs = append(s.gvs, r.GroupVersion)
		}
		s.byGV[r.GroupVersion] = append(s.byGV[r.GroupVersion], r)
	}
	// within a group, versions go by upstream's priority (v2, v1, v1beta1, ...): the first is
	// the group's preferred version in discovery; groups keep their first appearance's order
	groupOrder := map[string]int{}
	for _, gv := range s.gvs {
		if _, ok := groupOrder[gv.Group]; !ok {
			groupOrder[gv.Group] = len(groupOrder)
		}
	}
	sort.SliceStable(s.gvs, func(i, j int) bool {
		a, b := s.gvs[i], s.gvs[j]
		if a.Group != b.Group {
			return groupOrder[a.Group] < groupOrder[b.Group]
		}
		return version.CompareKubeAwareVersionStrings(a.Version, b.Version) > 0
	})
	return s
}

// With returns a set holding s's resources and rs, which replace any of s's with the same
// group, version and name.
func (s *Set) With(rs ...*Resource) *Set {
	replaced := map[schema.GroupVersionResource]*Resource{}
	for _, r := range rs {
		replaced[r.GroupVersionResource()] = r
	}
	out := make([]*Resource, 0, len(s.list)+len(rs))
	for _, r := range s.list {
		if n, ok := replaced[r.GroupVersionResource()]; ok {
			out = append(out, n)
			delete(replaced, r.GroupVersionResource())
			continue
		}
		out = append(out, r)
	}
	for _, r := range rs {
		if _, ok := replaced[r.GroupVersionResource()]; ok {
			out = append(out, r)
		}
	}
	return NewSet(out)
}

// Without returns a set holding s's resources but those for which drop is true.
func (s *Set) Without(drop func(*Resource) bool) *Set {
	out := make([]*Resource, 0, len(s.list))
	for _, r := range s.list {
		if !drop(r) {
			out = append(out, r)
		}
	}
	return NewSet(out)
}

// All returns every resource in discovery order; callers must not change the slice.
func (s *Set) All() []*Resource { return s.list }

// GroupVersions returns the served group versions in discovery order, the legacy core group
// first.
func (s *Set) GroupVersions() []schema.GroupVersion { return s.gvs }

// In returns the resources served in a group version.
func (s *Set) In(gv schema.GroupVersion) []*Resource { return s.byGV[gv] }

// Lookup finds a resource by group version and plural name, or nil.
func (s *Set) Lookup(gv schema.GroupVersion, name string) *Resource {
	return s.byGVR[gv.WithResource(name)]
}

// ForKind finds the resource whose objects have the given kind, or nil.
func (s *Set) ForKind(gvk schema.GroupVersionKind) *Resource { return s.byGVK[gvk] }
