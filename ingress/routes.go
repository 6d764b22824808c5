package ingress

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/utils/ptr"
)

// Backend is where a matched request goes: a Service port, or a resource backend, which this
// controller cannot serve and answers 503.
type Backend struct {
	// Namespace is the Ingress's, and so the Service's.
	Namespace string
	// Service and Port name the Service port; Port has a name or a number.
	Service string
	Port    networkingv1.ServiceBackendPort
	// Resource is set for a resource backend (kind/name), served 503.
	Resource string
}

// String is the backend as logs show it: ns/svc:port, or ns/resource Kind/name.
func (b Backend) String() string {
	if b.Resource != "" {
		return b.Namespace + "/" + b.Resource + " (resource)"
	}
	port := b.Port.Name
	if port == "" {
		port = itoa(b.Port.Number)
	}
	return b.Namespace + "/" + b.Service + ":" + port
}

func backendOf(namespace string, b *networkingv1.IngressBackend) Backend {
	out := Backend{Namespace: namespace}
	switch {
	case b.Service != nil:
		out.Service, out.Port = b.Service.Name, b.Service.Port
	case b.Resource != nil:
		out.Resource = b.Resource.Kind + "/" + b.Resource.Name
	}
	return out
}

// Route is one match of the table: an Ingress rule's host and path, or an Ingress's default
// backend (Path empty).
type Route struct {
	// Ingress is namespace/name of the Ingress the route comes from.
	Ingress string
	// Host is the rule's host: exact, "*.suffix", or "" for every host.
	Host     string
	Path     string
	PathType networkingv1.PathType
	Backend  Backend
}

// Key names the route in logs and metrics: host and path as written.
func (r *Route) Key() string {
	host := r.Host
	if host == "" {
		host = "*"
	}
	if r.Path == "" {
		return host + " (default backend)"
	}
	return host + r.Path + " (" + string(r.PathType) + ")"
}

// Table is the routing table of every Ingress this controller serves, as the Ingress API
// defines matching:
//
//   - a rule's host is exact ("foo.bar.com"), a wildcard ("*.foo.com" matches exactly one more
//     DNS label: "bar.foo.com", not "foo.com" nor "baz.bar.foo.com"), or empty (every host);
//   - an Exact path matches the URL path as written, case-sensitively; a Prefix path matches
//     element by element, split on "/", ignoring a trailing "/" (so "/foo" matches "/foo",
//     "/foo/" and "/foo/bar", never "/foobar"); ImplementationSpecific is Prefix here;
//   - the longest matching path wins, and Exact beats Prefix at equal length.
//
// Hosts are tried from the most specific: the exact host's paths, then the wildcard's, then
// the rules without a host. A request whose host matches but none of whose paths do falls
// through to the less specific ones (as Gateway API's precedence does), and finally to the
// default backend: that of the oldest Ingress having one (as Traefik's, a catch-all for
// every host). Where two Ingresses route one host and path alike, the oldest wins, as
// ingress-nginx resolves it.
//
// A Table never changes once made: a new one replaces it.
type Table struct {
	exact    map[string][]*Route // by host
	wildcard map[string][]*Route // by suffix after "*."
	anyHost  []*Route
	fallback *Route
	routes   []*Route
}

// NewTable makes the table of ings, which must all be served by this controller.
func NewTable(ings []*networkingv1.Ingress) *Table {
	ings = slices.Clone(ings)
	slices.SortFunc(ings, olderFirst)
	t := &Table{exact: map[string][]*Route{}, wildcard: map[string][]*Route{}}
	seen := map[string]bool{}
	for _, ing := range ings {
		key := ing.Namespace + "/" + ing.Name
		if b := ing.Spec.DefaultBackend; b != nil && t.fallback == nil {
			t.fallback = &Route{Ingress: key, Backend: backendOf(ing.Namespace, b)}
			t.routes = append(t.routes, t.fallback)
		}
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			host := strings.ToLower(rule.Host)
			for _, p := range rule.HTTP.Paths {
				r := &Route{Ingress: key, Host: host, Path: p.Path,
					PathType: ptr.Deref(p.PathType, networkingv1.PathTypeImplementationSpecific),
					Backend:  backendOf(ing.Namespace, &p.Backend)}
				if r.Path == "" {
					r.Path = "/" // allowed for ImplementationSpecific: every path
				}
				// the oldest Ingress keeps a host and path that two route
				id := host + " " + r.Path + " " + string(r.PathType)
				if seen[id] {
					continue
				}
				seen[id] = true
				t.routes = append(t.routes, r)
				switch {
				case host == "":
					t.anyHost = append(t.anyHost, r)
				case strings.HasPrefix(host, "*."):
					t.wildcard[host[2:]] = append(t.wildcard[host[2:]], r)
				default:
					t.exact[host] = append(t.exact[host], r)
				}
			}
		}
	}
	sortPaths(t.anyHost)
	for _, rs := range t.exact {
		sortPaths(rs)
	}
	for _, rs := range t.wildcard {
		sortPaths(rs)
	}
	return t
}

// olderFirst orders Ingresses by creation, then by namespace and name.
func olderFirst(a, b *networkingv1.Ingress) int {
	if c := a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// sortPaths puts the routes of one host in the order they are tried: longest path first,
// Exact before Prefix at equal length.
func sortPaths(rs []*Route) {
	slices.SortStableFunc(rs, func(a, b *Route) int {
		if c := cmp.Compare(matchLength(b), matchLength(a)); c != 0 {
			return c
		}
		return cmp.Compare(exactRank(a), exactRank(b))
	})
}

func exactRank(r *Route) int {
	if r.PathType == networkingv1.PathTypeExact {
		return 0
	}
	return 1
}

// matchLength is how long a path is for precedence: a Prefix's trailing "/" matches
// nothing more, so it does not count.
func matchLength(r *Route) int {
	if r.PathType == networkingv1.PathTypeExact {
		return len(r.Path)
	}
	return len(strings.TrimRight(r.Path, "/"))
}

// matches says whether the route's path matches the request's URL path.
func (r *Route) matches(path string) bool {
	if r.PathType == networkingv1.PathTypeExact {
		return path == r.Path
	}
	prefix := strings.TrimRight(r.Path, "/")
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

// Route finds where a request for host (a Host header or SNI name, with or without a port)
// and URL path goes; nil when nowhere.
func (t *Table) Route(host, path string) *Route {
	host = normalizeHost(host)
	if path == "" {
		path = "/"
	}
	first := func(rs []*Route) *Route {
		for _, r := range rs {
			if r.matches(path) {
				return r
			}
		}
		return nil
	}
	if r := first(t.exact[host]); r != nil {
		return r
	}
	if _, suffix, ok := strings.Cut(host, "."); ok {
		if r := first(t.wildcard[suffix]); r != nil {
			return r
		}
	}
	if r := first(t.anyHost); r != nil {
		return r
	}
	return t.fallback
}

// Routes are every route of the table, default backends included, in no particular order.
func (t *Table) Routes() []*Route { return t.routes }

// normalizeHost is a Host header's name: without its port or a final dot, in lower case.
func normalizeHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
