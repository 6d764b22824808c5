package apiserver

import (
	"cmp"
	"slices"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Discovery of remote APIServices: the group versions of available remote APIServices join
// the /apis group list and the aggregated documents, with the resources of the extension
// server's last discovery document (read by the availability check, so refreshed every
// resyncAPIServices). A remote group version replaces one the server serves itself. Groups
// new to the server follow its own, by groupPriorityMinimum (highest first) and then name, as
// upstream orders them; a group's versions by versionPriority.

// byPriority orders remote APIServices as discovery lists them.
func byPriority(remote []*remoteAPIService) []*remoteAPIService {
	out := slices.Clone(remote)
	slices.SortFunc(out, func(a, b *remoteAPIService) int {
		sa, sb := a.apiService.Spec, b.apiService.Spec
		if c := cmp.Compare(sb.GroupPriorityMinimum, sa.GroupPriorityMinimum); c != 0 {
			return c
		}
		if c := strings.Compare(sa.Group, sb.Group); c != 0 {
			return c
		}
		if c := cmp.Compare(sb.VersionPriority, sa.VersionPriority); c != 0 {
			return c
		}
		return strings.Compare(sa.Version, sb.Version)
	})
	return out
}

func remoteGroupVersion(rs *remoteAPIService) schema.GroupVersion {
	return schema.GroupVersion{Group: rs.apiService.Spec.Group, Version: rs.apiService.Spec.Version}
}

// withRemoteGroups returns the /apis group list with the remote group versions in it.
func withRemoteGroups(groups []metav1.APIGroup, remote []*remoteAPIService) []metav1.APIGroup {
	if len(remote) == 0 {
		return groups
	}
	replaced := map[string]bool{}
	for _, rs := range remote {
		replaced[remoteGroupVersion(rs).String()] = true
	}
	var out []metav1.APIGroup
	for _, g := range groups {
		g.Versions = slices.DeleteFunc(slices.Clone(g.Versions), func(v metav1.GroupVersionForDiscovery) bool { return replaced[v.GroupVersion] })
		if len(g.Versions) == 0 {
			continue
		}
		if replaced[g.PreferredVersion.GroupVersion] {
			g.PreferredVersion = g.Versions[0]
		}
		out = append(out, g)
	}
	for _, rs := range byPriority(remote) {
		gv := remoteGroupVersion(rs)
		v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
		i := slices.IndexFunc(out, func(g metav1.APIGroup) bool { return g.Name == gv.Group })
		if i < 0 {
			g := metav1.APIGroup{Name: gv.Group, PreferredVersion: v}
			g.Kind, g.APIVersion = "APIGroup", "v1"
			out = append(out, g)
			i = len(out) - 1
		}
		out[i].Versions = append(out[i].Versions, v)
	}
	return out
}

// withRemoteAggregated returns the aggregated document of the named groups with the remote
// group versions in it.
func withRemoteAggregated(doc *apidiscoveryv2.APIGroupDiscoveryList, remote []*remoteAPIService) *apidiscoveryv2.APIGroupDiscoveryList {
	if len(remote) == 0 {
		return doc
	}
	replaced := map[schema.GroupVersion]bool{}
	for _, rs := range remote {
		replaced[remoteGroupVersion(rs)] = true
	}
	out := doc.DeepCopy()
	out.Items = out.Items[:0]
	for _, g := range doc.DeepCopy().Items {
		g.Versions = slices.DeleteFunc(g.Versions, func(v apidiscoveryv2.APIVersionDiscovery) bool {
			return replaced[schema.GroupVersion{Group: g.Name, Version: v.Version}]
		})
		if len(g.Versions) > 0 {
			out.Items = append(out.Items, g)
		}
	}
	for _, rs := range byPriority(remote) {
		gv := remoteGroupVersion(rs)
		i := slices.IndexFunc(out.Items, func(g apidiscoveryv2.APIGroupDiscovery) bool { return g.Name == gv.Group })
		if i < 0 {
			g := apidiscoveryv2.APIGroupDiscovery{}
			g.Name = gv.Group
			out.Items = append(out.Items, g)
			i = len(out.Items) - 1
		}
		out.Items[i].Versions = append(out.Items[i].Versions, aggregatedVersion(gv, rs.discovery))
	}
	return out
}

// aggregatedVersion turns a legacy discovery document into an aggregated one: resources
// named "parent/sub" are the parent's subresources.
func aggregatedVersion(gv schema.GroupVersion, list *metav1.APIResourceList) apidiscoveryv2.APIVersionDiscovery {
	version := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
	index := map[string]int{}
	kindOf := func(r metav1.APIResource) *metav1.GroupVersionKind {
		g, v := gv.Group, gv.Version
		if r.Group != "" || r.Version != "" {
			g, v = r.Group, r.Version
		}
		return &metav1.GroupVersionKind{Group: g, Version: v, Kind: r.Kind}
	}
	for _, r := range list.APIResources {
		if strings.Contains(r.Name, "/") {
			continue
		}
		scope := apidiscoveryv2.ScopeCluster
		if r.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		index[r.Name] = len(version.Resources)
		version.Resources = append(version.Resources, apidiscoveryv2.APIResourceDiscovery{
			Resource: r.Name, SingularResource: r.SingularName, Scope: scope, ResponseKind: kindOf(r),
			Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories,
		})
	}
	for _, r := range list.APIResources {
		parent, sub, ok := strings.Cut(r.Name, "/")
		if !ok {
			continue
		}
		i, found := index[parent]
		if !found {
			continue
		}
		version.Resources[i].Subresources = append(version.Resources[i].Subresources, apidiscoveryv2.APISubresourceDiscovery{
			Subresource: sub, ResponseKind: kindOf(r), Verbs: r.Verbs,
		})
	}
	return version
}

// rebuildDiscovery swaps in a snapshot whose discovery documents include the remote
// APIServices as they are now.
func (s *Server) rebuildDiscovery() {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	old := s.current()
	s.state.current.Store(newServed(old.set, old.handlers, s.aggregation.remoteDiscovery()))
	s.openAPI.invalidate()
}
