package ingress

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// path is one path of a rule, routed to the Service named after it.
type path struct {
	typ  networkingv1.PathType
	path string
}

func (p path) service() string { return fmt.Sprintf("%s %s", p.typ, p.path) }

// ingressWithPaths is an Ingress created at minute created with one rule for host holding paths.
func ingressWithPaths(name string, created int, host string, paths ...path) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name,
		CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, created, 0, 0, time.UTC))}}
	rule := networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{}}}
	for _, p := range paths {
		rule.HTTP.Paths = append(rule.HTTP.Paths, networkingv1.HTTPIngressPath{Path: p.path, PathType: ptr.To(p.typ),
			Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: p.service(),
				Port: networkingv1.ServiceBackendPort{Number: 80}}}})
	}
	ing.Spec.Rules = []networkingv1.IngressRule{rule}
	return ing
}

const (
	exact  = networkingv1.PathTypeExact
	prefix = networkingv1.PathTypePrefix
	impl   = networkingv1.PathTypeImplementationSpecific
)

// TestPathMatchingFollowsTheIngressDocsExamples checks every row of the examples table of
// the Ingress concept page ("Examples" under "Path types"), and ImplementationSpecific being
// Prefix here.
func TestPathMatchingFollowsTheIngressDocsExamples(t *testing.T) {
	for _, tc := range []struct {
		paths []path
		// request is the URL path asked for; want the path that answers, "" for none
		request string
		want    path
	}{
		{[]path{{prefix, "/"}}, "/", path{prefix, "/"}},
		{[]path{{prefix, "/"}}, "/anything/at/all", path{prefix, "/"}},
		{[]path{{exact, "/foo"}}, "/foo", path{exact, "/foo"}},
		{[]path{{exact, "/foo"}}, "/bar", path{}},
		{[]path{{exact, "/foo"}}, "/foo/", path{}},
		{[]path{{exact, "/foo/"}}, "/foo", path{}},
		{[]path{{prefix, "/foo"}}, "/foo", path{prefix, "/foo"}},
		{[]path{{prefix, "/foo"}}, "/foo/", path{prefix, "/foo"}},
		{[]path{{prefix, "/foo/"}}, "/foo", path{prefix, "/foo/"}},
		{[]path{{prefix, "/foo/"}}, "/foo/", path{prefix, "/foo/"}},
		{[]path{{prefix, "/aaa/bb"}}, "/aaa/bbb", path{}},
		{[]path{{prefix, "/aaa/bbb"}}, "/aaa/bbb", path{prefix, "/aaa/bbb"}},
		{[]path{{prefix, "/aaa/bbb/"}}, "/aaa/bbb", path{prefix, "/aaa/bbb/"}},   // ignores trailing slash
		{[]path{{prefix, "/aaa/bbb"}}, "/aaa/bbb/", path{prefix, "/aaa/bbb"}},    // matches trailing slash
		{[]path{{prefix, "/aaa/bbb"}}, "/aaa/bbb/ccc", path{prefix, "/aaa/bbb"}}, // matches subpath
		{[]path{{prefix, "/aaa/bbb"}}, "/aaa/bbbxyz", path{}},                    // not a string prefix
		{[]path{{prefix, "/"}, {prefix, "/aaa"}}, "/aaa/ccc", path{prefix, "/aaa"}},
		{[]path{{prefix, "/"}, {prefix, "/aaa"}, {prefix, "/aaa/bbb"}}, "/aaa/bbb", path{prefix, "/aaa/bbb"}},
		{[]path{{prefix, "/"}, {prefix, "/aaa"}, {prefix, "/aaa/bbb"}}, "/ccc", path{prefix, "/"}},
		{[]path{{prefix, "/aaa"}}, "/ccc", path{}}, // the default backend's
		{[]path{{prefix, "/foo"}, {exact, "/foo"}}, "/foo", path{exact, "/foo"}},
		{[]path{{exact, "/foo"}, {prefix, "/foo"}}, "/foo/bar", path{prefix, "/foo"}},
		// case-sensitive
		{[]path{{prefix, "/foo"}}, "/FOO", path{}},
		// ImplementationSpecific is Prefix, element-wise
		{[]path{{impl, "/app"}}, "/app/x", path{impl, "/app"}},
		{[]path{{impl, "/app"}}, "/apple", path{}},
		// the longest match wins whatever the order written
		{[]path{{prefix, "/aaa/bbb"}, {prefix, "/aaa"}, {prefix, "/"}}, "/aaa/x", path{prefix, "/aaa"}},
	} {
		t.Run(fmt.Sprintf("%v %s", tc.paths, tc.request), func(t *testing.T) {
			table := NewTable([]*networkingv1.Ingress{ingressWithPaths("web", 0, "foo.bar.com", tc.paths...)})
			got := table.Route("foo.bar.com", tc.request)
			switch {
			case tc.want == path{} && got != nil:
				t.Errorf("want no match, got %s", got.Key())
			case tc.want != path{} && got == nil:
				t.Errorf("want %s, got no match", tc.want.service())
			case got != nil && got.Backend.Service != tc.want.service():
				t.Errorf("want %s, got %s", tc.want.service(), got.Backend.Service)
			}
		})
	}
}

// TestHostMatchingFollowsTheIngressDocs checks the hostname wildcard table of the Ingress
// concept page, exact hosts, and rules with no host matching every host.
func TestHostMatchingFollowsTheIngressDocs(t *testing.T) {
	root := path{prefix, "/"}
	for _, tc := range []struct {
		host, request string
		match         bool
	}{
		{"*.foo.com", "bar.foo.com", true},
		{"*.foo.com", "baz.bar.foo.com", false}, // the wildcard covers one DNS label only
		{"*.foo.com", "foo.com", false},
		{"foo.bar.com", "foo.bar.com", true},
		{"foo.bar.com", "bar.foo.com", false},
		{"foo.bar.com", "FOO.bar.com", true},      // DNS names are case-insensitive
		{"foo.bar.com", "foo.bar.com:8443", true}, // a Host header's port is not the host
		{"foo.bar.com", "foo.bar.com.", true},     // nor is a fully qualified name's dot
		{"", "anything.example", true},
		{"", "10.0.0.1", true},
	} {
		t.Run(tc.host+" "+tc.request, func(t *testing.T) {
			table := NewTable([]*networkingv1.Ingress{ingressWithPaths("web", 0, tc.host, root)})
			if got := table.Route(tc.request, "/"); (got != nil) != tc.match {
				t.Errorf("host %q asked as %q: want match %v, got %v", tc.host, tc.request, tc.match, got != nil)
			}
		})
	}
}

func TestMoreSpecificHostsWinAndUnmatchedPathsFallThrough(t *testing.T) {
	table := NewTable([]*networkingv1.Ingress{
		ingressWithPaths("exact", 0, "app.example.com", path{prefix, "/api"}),
		ingressWithPaths("wildcard", 0, "*.example.com", path{prefix, "/"}),
		ingressWithPaths("any", 0, "", path{prefix, "/"}, path{prefix, "/static"}),
	})
	for _, tc := range []struct{ host, path, wantIngress string }{
		{"app.example.com", "/api/v1", "default/exact"},
		{"app.example.com", "/other", "default/wildcard"}, // the exact host has no such path
		{"web.example.com", "/static", "default/wildcard"},
		{"other.test", "/static/a.css", "default/any"},
		{"other.test", "/", "default/any"},
	} {
		got := table.Route(tc.host, tc.path)
		if got == nil || got.Ingress != tc.wantIngress {
			t.Errorf("%s%s: want the route of %s, got %+v", tc.host, tc.path, tc.wantIngress, got)
		}
	}
}

func TestTheOldestIngressWinsAHostPathAndTheDefaultBackend(t *testing.T) {
	older := ingressWithPaths("older", 1, "a.example", path{prefix, "/"})
	older.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "older-default",
		Port: networkingv1.ServiceBackendPort{Name: "http"}}}
	newer := ingressWithPaths("newer", 2, "a.example", path{prefix, "/"}, path{exact, "/only-newer"})
	newer.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "newer-default",
		Port: networkingv1.ServiceBackendPort{Number: 80}}}
	table := NewTable([]*networkingv1.Ingress{newer, older})

	if got := table.Route("a.example", "/x"); got == nil || got.Ingress != "default/older" {
		t.Errorf("a.example/x: want the older Ingress's route, got %+v", got)
	}
	if got := table.Route("a.example", "/only-newer"); got == nil || got.Ingress != "default/newer" {
		t.Errorf("a.example/only-newer: want the newer Ingress's own path, got %+v", got)
	}
	got := table.Route("nothing.example", "/")
	if got == nil || got.Backend.Service != "older-default" || got.Backend.Port.Name != "http" {
		t.Fatalf("an unmatched host: want the older default backend, got %+v", got)
	}
	if got.Key() != "* (default backend)" || got.Backend.String() != "default/older-default:http" {
		t.Errorf("the default backend reads as %q → %q", got.Key(), got.Backend.String())
	}
}

func TestAResourceBackendIsRoutedAsSuch(t *testing.T) {
	ing := ingressWithPaths("res", 0, "", path{prefix, "/"})
	ing.Spec.Rules[0].HTTP.Paths[0].Backend = networkingv1.IngressBackend{Resource: &corev1TypedRef}
	got := NewTable([]*networkingv1.Ingress{ing}).Route("x", "/")
	if got == nil || got.Backend.Resource != "StorageBucket/static" {
		t.Errorf("want the resource backend StorageBucket/static, got %+v", got)
	}
}

var corev1TypedRef = corev1.TypedLocalObjectReference{APIGroup: ptr.To("k8s.example.com"), Kind: "StorageBucket", Name: "static"}
