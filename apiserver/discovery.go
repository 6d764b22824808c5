package apiserver

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
)

// Discovery documents are computed from the apis table once, at start.

func storageVersionHash(gv schema.GroupVersion, kind string) string {
	sum := sha256.Sum256([]byte(gv.Group + "/" + gv.Version + "/" + kind))
	return base64.StdEncoding.EncodeToString(sum[:8])
}

// resourceList is the legacy discovery document of one group version.
func resourceList(gv schema.GroupVersion) *metav1.APIResourceList {
	list := &metav1.APIResourceList{GroupVersion: gv.String()}
	list.Kind, list.APIVersion = "APIResourceList", "v1"
	for _, r := range apis.ResourcesIn(gv) {
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: r.Name, SingularName: r.SingularName, Namespaced: r.Namespaced, Kind: r.Kind,
			Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories,
			StorageVersionHash: storageVersionHash(r.StorageVersion, r.Kind),
		})
		for _, s := range r.Subresources {
			ar := metav1.APIResource{
				Name: r.Name + "/" + s.Name, Namespaced: r.Namespaced, Kind: s.Kind, Verbs: s.Verbs,
			}
			if !s.GroupVersion.Empty() {
				ar.Group, ar.Version = s.GroupVersion.Group, s.GroupVersion.Version
			}
			list.APIResources = append(list.APIResources, ar)
		}
	}
	return list
}

// servedGroups returns, per named group, its versions in table order (the first preferred).
func servedGroups() []metav1.APIGroup {
	var groups []metav1.APIGroup
	index := map[string]int{}
	for _, gv := range apis.GroupVersions() {
		if gv.Group == "" {
			continue
		}
		v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
		i, ok := index[gv.Group]
		if !ok {
			index[gv.Group] = len(groups)
			groups = append(groups, metav1.APIGroup{Name: gv.Group, PreferredVersion: v})
			i = len(groups) - 1
		}
		groups[i].Versions = append(groups[i].Versions, v)
	}
	for i := range groups {
		groups[i].Kind, groups[i].APIVersion = "APIGroup", "v1"
	}
	return groups
}

// wantsAggregated reports whether the client asked for aggregated discovery (v2), which
// client-go and kubectl prefer: all groups and resources in one document.
func wantsAggregated(r *http.Request) bool {
	for _, clause := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil || mt != "application/json" {
			continue
		}
		if params["g"] == "apidiscovery.k8s.io" && params["v"] == "v2" && params["as"] == "APIGroupDiscoveryList" {
			return true
		}
		if params["as"] == "" {
			return false // plain JSON came first
		}
	}
	return false
}

// aggregated builds the v2 discovery document of the legacy group (legacy=true) or of the
// named groups.
func aggregated(legacy bool) *apidiscoveryv2.APIGroupDiscoveryList {
	out := &apidiscoveryv2.APIGroupDiscoveryList{}
	out.Kind, out.APIVersion = "APIGroupDiscoveryList", "apidiscovery.k8s.io/v2"
	byGroup := map[string]int{}
	for _, gv := range apis.GroupVersions() {
		if (gv.Group == "") != legacy {
			continue
		}
		i, ok := byGroup[gv.Group]
		if !ok {
			byGroup[gv.Group] = len(out.Items)
			g := apidiscoveryv2.APIGroupDiscovery{}
			g.Name = gv.Group
			out.Items = append(out.Items, g)
			i = len(out.Items) - 1
		}
		version := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
		for _, r := range apis.ResourcesIn(gv) {
			scope := apidiscoveryv2.ScopeCluster
			if r.Namespaced {
				scope = apidiscoveryv2.ScopeNamespace
			}
			rd := apidiscoveryv2.APIResourceDiscovery{
				Resource: r.Name, SingularResource: r.SingularName, Scope: scope,
				ResponseKind: &metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: r.Kind},
				Verbs:        r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories,
			}
			for _, s := range r.Subresources {
				sgv := gv
				if !s.GroupVersion.Empty() {
					sgv = s.GroupVersion
				}
				rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
					Subresource:  s.Name,
					ResponseKind: &metav1.GroupVersionKind{Group: sgv.Group, Version: sgv.Version, Kind: s.Kind},
					Verbs:        s.Verbs,
				})
			}
			version.Resources = append(version.Resources, rd)
		}
		out.Items[i].Versions = append(out.Items[i].Versions, version)
	}
	return out
}

const aggregatedContentType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

func writeAggregated(w http.ResponseWriter, doc *apidiscoveryv2.APIGroupDiscoveryList) {
	body, err := json.Marshal(doc)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(body)
	w.Header().Set("Content-Type", aggregatedContentType)
	w.Header().Set("ETag", `"`+base64.RawURLEncoding.EncodeToString(sum[:16])+`"`)
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// serveDiscovery answers /api, /apis and their group and version documents. It reports false
// when the path is not a discovery path.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request, ri *requestInfo) bool {
	parts := splitPath(r.URL.Path)
	switch {
	case len(parts) == 1 && parts[0] == "api":
		if wantsAggregated(r) {
			writeAggregated(w, s.discoveryLegacy)
			return true
		}
		versions := &metav1.APIVersions{Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: s.advertise}}}
		versions.Kind = "APIVersions"
		writeObject(w, r, http.StatusOK, schema.GroupVersion{Version: "v1"}, versions)
		return true
	case len(parts) == 1 && parts[0] == "apis":
		if wantsAggregated(r) {
			writeAggregated(w, s.discoveryGroups)
			return true
		}
		list := &metav1.APIGroupList{Groups: servedGroups()}
		list.Kind = "APIGroupList"
		writeObject(w, r, http.StatusOK, schema.GroupVersion{Version: "v1"}, list)
		return true
	case len(parts) == 2 && parts[0] == "apis":
		for _, g := range servedGroups() {
			if g.Name == parts[1] {
				writeObject(w, r, http.StatusOK, schema.GroupVersion{Version: "v1"}, &g)
				return true
			}
		}
	case len(parts) == 2 && parts[0] == "api" && parts[1] == "v1",
		len(parts) == 3 && parts[0] == "apis":
		gv := ri.groupVersion()
		if len(apis.ResourcesIn(gv)) > 0 {
			writeObject(w, r, http.StatusOK, schema.GroupVersion{Version: "v1"}, resourceList(gv))
			return true
		}
	}
	return false
}
