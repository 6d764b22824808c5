package apiserver

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
)

// Discovery documents are computed from the served set each time it changes (served.go).

func storageVersionHash(gv schema.GroupVersion, kind string) string {
	sum := sha256.Sum256([]byte(gv.Group + "/" + gv.Version + "/" + kind))
	return base64.StdEncoding.EncodeToString(sum[:8])
}

// resourceList is the legacy discovery document of one group version.
func resourceList(set *apis.Set, gv schema.GroupVersion) *metav1.APIResourceList {
	list := &metav1.APIResourceList{GroupVersion: gv.String()}
	list.Kind, list.APIVersion = "APIResourceList", "v1"
	for _, r := range set.In(gv) {
		ar := metav1.APIResource{
			Name: r.Name, SingularName: r.SingularName, Namespaced: r.Namespaced, Kind: r.Kind,
			Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories,
		}
		if !r.Review && !r.FromKubelets {
			ar.StorageVersionHash = storageVersionHash(r.StorageVersion, r.Kind)
		}
		list.APIResources = append(list.APIResources, ar)
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
func servedGroups(set *apis.Set) []metav1.APIGroup {
	var groups []metav1.APIGroup
	index := map[string]int{}
	for _, gv := range set.GroupVersions() {
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

// wantsAggregated returns the aggregated discovery version (v2 or v2beta1) the client asked
// for, or "" when its Accept prefers the legacy documents. client-go and kubectl prefer
// aggregated discovery: every group and resource in one document.
func wantsAggregated(r *http.Request) string {
	for _, clause := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil || mt != "application/json" {
			continue
		}
		if params["g"] == "apidiscovery.k8s.io" && params["as"] == "APIGroupDiscoveryList" &&
			(params["v"] == "v2" || params["v"] == "v2beta1") {
			return params["v"]
		}
		if params["as"] == "" {
			return "" // plain JSON came first
		}
	}
	return ""
}

// aggregated builds the v2 discovery document of the legacy group (legacy=true) or of the
// named groups.
func aggregated(set *apis.Set, legacy bool) *apidiscoveryv2.APIGroupDiscoveryList {
	out := &apidiscoveryv2.APIGroupDiscoveryList{}
	out.Kind, out.APIVersion = "APIGroupDiscoveryList", "apidiscovery.k8s.io/v2"
	byGroup := map[string]int{}
	for _, gv := range set.GroupVersions() {
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
		for _, r := range set.In(gv) {
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

// aggregatedDocument is an aggregated discovery document encoded once, with its ETag.
type aggregatedDocument struct {
	body []byte
	etag string
}

// encodeAggregated encodes doc as the given apidiscovery version (v2beta1 has v2's shape).
func encodeAggregated(doc *apidiscoveryv2.APIGroupDiscoveryList, version string) aggregatedDocument {
	doc = doc.DeepCopy()
	doc.APIVersion = "apidiscovery.k8s.io/" + version
	body, err := json.Marshal(doc)
	if err != nil {
		panic(err) // plain structs: cannot fail
	}
	sum := sha256.Sum256(body)
	return aggregatedDocument{body: body, etag: `"` + hex.EncodeToString(sum[:]) + `"`}
}

// writeAggregated answers with an aggregated document, or 304 when the client holds it.
func writeAggregated(w http.ResponseWriter, r *http.Request, docs map[string]aggregatedDocument, version string) {
	doc := docs[version]
	w.Header().Set("ETag", doc.etag)
	w.Header().Set("Vary", "Accept")
	if r.Header.Get("If-None-Match") == doc.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json;g=apidiscovery.k8s.io;v="+version+";as=APIGroupDiscoveryList")
	w.WriteHeader(http.StatusOK)
	w.Write(doc.body)
}

// serveDiscovery answers /api, /apis and their group and version documents. It reports false
// when the path is not a discovery path.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request, ri *requestInfo) bool {
	parts := splitPath(r.URL.Path)
	sv := s.current()
	switch {
	case len(parts) == 1 && parts[0] == "api":
		if v := wantsAggregated(r); v != "" {
			writeAggregated(w, r, sv.legacy, v)
			return true
		}
		versions := &metav1.APIVersions{Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: s.advertise}}}
		versions.Kind = "APIVersions"
		writeObject(w, r, http.StatusOK, schema.GroupVersion{Version: "v1"}, versions)
		return true
	case len(parts) == 1 && parts[0] == "apis":
		if v := wantsAggregated(r); v != "" {
			writeAggregated(w, r, sv.named, v)
			return true
		}
		list := &metav1.APIGroupList{Groups: sv.groups}
		list.Kind = "APIGroupList"
		writeObject(w, r, http.StatusOK, schema.GroupVersion{Version: "v1"}, list)
		return true
	case len(parts) == 2 && parts[0] == "apis":
		for _, g := range sv.groups {
			if g.Name == parts[1] {
				writeObject(w, r, http.StatusOK, schema.GroupVersion{Version: "v1"}, &g)
				return true
			}
		}
	case len(parts) == 2 && parts[0] == "api" && parts[1] == "v1",
		len(parts) == 3 && parts[0] == "apis":
		gv := ri.groupVersion()
		if len(sv.set.In(gv)) > 0 {
			writeObject(w, r, http.StatusOK, schema.GroupVersion{Version: "v1"}, resourceList(sv.set, gv))
			return true
		}
	}
	return false
}
