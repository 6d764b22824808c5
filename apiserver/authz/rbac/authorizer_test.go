package rbac

import (
	"context"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
)

func resourceRequest(u authn.User, verb, group, resource, subresource, ns, name string) authz.Attributes {
	return authz.Attributes{User: u, Verb: verb, ResourceRequest: true, APIGroup: group, APIVersion: "v1", Resource: resource, Subresource: subresource, Namespace: ns, Name: name}
}

func TestRuleMatching(t *testing.T) {
	alice := authn.User{Name: "alice"}
	for _, tc := range []struct {
		name string
		rule rbacv1.PolicyRule
		a    authz.Attributes
		want bool
	}{
		{"exact", rule(l("get"), l(""), l("pods")), resourceRequest(alice, "get", "", "pods", "", "ns", "p"), true},
		{"other verb", rule(l("get"), l(""), l("pods")), resourceRequest(alice, "list", "", "pods", "", "ns", ""), false},
		{"other group", rule(l("get"), l("apps"), l("pods")), resourceRequest(alice, "get", "", "pods", "", "ns", "p"), false},
		{"star verb group resource", rule(l("*"), l("*"), l("*")), resourceRequest(alice, "delete", "apps", "deployments", "scale", "ns", "d"), true},
		{"resource does not cover its subresource", rule(l("get"), l(""), l("pods")), resourceRequest(alice, "get", "", "pods", "log", "ns", "p"), false},
		{"resource/subresource", rule(l("get"), l(""), l("pods/log")), resourceRequest(alice, "get", "", "pods", "log", "ns", "p"), true},
		{"resource/subresource is not the resource", rule(l("get"), l(""), l("pods/log")), resourceRequest(alice, "get", "", "pods", "", "ns", "p"), false},
		{"*/subresource", rule(l("get"), l("*"), l("*/scale")), resourceRequest(alice, "get", "apps", "deployments", "scale", "ns", "d"), true},
		{"*/subresource is not another subresource", rule(l("get"), l("*"), l("*/scale")), resourceRequest(alice, "get", "apps", "deployments", "status", "ns", "d"), false},
		{"resource name", rbacv1.PolicyRule{Verbs: l("get"), APIGroups: l(""), Resources: l("configmaps"), ResourceNames: l("a")}, resourceRequest(alice, "get", "", "configmaps", "", "ns", "a"), true},
		{"other resource name", rbacv1.PolicyRule{Verbs: l("get"), APIGroups: l(""), Resources: l("configmaps"), ResourceNames: l("a")}, resourceRequest(alice, "get", "", "configmaps", "", "ns", "b"), false},
		{"resource names never allow a list", rbacv1.PolicyRule{Verbs: l("list"), APIGroups: l(""), Resources: l("configmaps"), ResourceNames: l("a")}, resourceRequest(alice, "list", "", "configmaps", "", "ns", ""), false},
		{"url exact", rbacv1.PolicyRule{Verbs: l("get"), NonResourceURLs: l("/healthz")}, authz.Attributes{User: alice, Verb: "get", Path: "/healthz"}, true},
		{"url prefix", rbacv1.PolicyRule{Verbs: l("get"), NonResourceURLs: l("/apis/*")}, authz.Attributes{User: alice, Verb: "get", Path: "/apis/apps/v1"}, true},
		{"url prefix is not the bare path", rbacv1.PolicyRule{Verbs: l("get"), NonResourceURLs: l("/apis/*")}, authz.Attributes{User: alice, Verb: "get", Path: "/apis"}, false},
		{"url star", rbacv1.PolicyRule{Verbs: l("*"), NonResourceURLs: l("*")}, authz.Attributes{User: alice, Verb: "post", Path: "/anything"}, true},
		{"resource rule does not allow a path", rule(l("*"), l("*"), l("*")), authz.Attributes{User: alice, Verb: "get", Path: "/healthz"}, false},
		{"url rule does not allow a resource", rbacv1.PolicyRule{Verbs: l("*"), NonResourceURLs: l("*")}, resourceRequest(alice, "get", "", "pods", "", "ns", "p"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RuleAllows(tc.a, &tc.rule); got != tc.want {
				t.Errorf("RuleAllows = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAllowedRequestsNameTheBindingAsUpstream(t *testing.T) {
	p := &policy{
		ClusterRoles: []*rbacv1.ClusterRole{clusterRole("view", rule(l("get", "list"), l(""), l("pods")))},
		Roles:        []*rbacv1.Role{role("team", "cm-reader", rule(l("get"), l(""), l("configmaps")))},
		ClusterRoleBindings: []*rbacv1.ClusterRoleBinding{
			clusterBinding("viewers", "view", group("viewers"), user("alice")),
		},
		RoleBindings: []*rbacv1.RoleBinding{
			binding("team", "readers", "Role", "cm-reader", serviceAccount("", "builder")),
			binding("team", "view-here", "ClusterRole", "view", serviceAccount("other", "robot")),
		},
	}
	r := New(p)
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		a          authz.Attributes
		wantReason string
	}{
		{"user subject", resourceRequest(authn.User{Name: "alice"}, "list", "", "pods", "", "", ""),
			`RBAC: allowed by ClusterRoleBinding "viewers" of ClusterRole "view" to User "alice"`},
		{"group subject comes first in the binding", resourceRequest(authn.User{Name: "alice", Groups: []string{"viewers"}}, "get", "", "pods", "", "x", "p"),
			`RBAC: allowed by ClusterRoleBinding "viewers" of ClusterRole "view" to Group "viewers"`},
		{"service account in the binding's namespace", resourceRequest(authn.User{Name: "system:serviceaccount:team:builder"}, "get", "", "configmaps", "", "team", "c"),
			`RBAC: allowed by RoleBinding "readers/team" of Role "cm-reader" to ServiceAccount "builder/team"`},
		{"service account of another namespace bound here", resourceRequest(authn.User{Name: "system:serviceaccount:other:robot"}, "get", "", "pods", "", "team", "p"),
			`RBAC: allowed by RoleBinding "view-here/team" of ClusterRole "view" to ServiceAccount "robot/other"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, reason, err := r.Authorize(ctx, tc.a)
			if d != authz.DecisionAllow || reason != tc.wantReason || err != nil {
				t.Errorf("got %v %q %v, want Allow %q", d, reason, err, tc.wantReason)
			}
		})
	}
}

func TestRBACHasNoOpinionOutsideItsBindings(t *testing.T) {
	p := &policy{
		Roles: []*rbacv1.Role{role("team", "cm-reader", rule(l("get"), l(""), l("configmaps")))},
		RoleBindings: []*rbacv1.RoleBinding{
			binding("team", "readers", "Role", "cm-reader", serviceAccount("", "builder"), group("system:serviceaccounts:team")),
		},
	}
	r := New(p)
	ctx := context.Background()
	for name, a := range map[string]authz.Attributes{
		"same verb in another namespace":      resourceRequest(authn.User{Name: "system:serviceaccount:team:builder"}, "get", "", "configmaps", "", "elsewhere", "c"),
		"other verb":                          resourceRequest(authn.User{Name: "system:serviceaccount:team:builder"}, "delete", "", "configmaps", "", "team", "c"),
		"namesake service account elsewhere":  resourceRequest(authn.User{Name: "system:serviceaccount:elsewhere:builder"}, "get", "", "configmaps", "", "team", "c"),
		"user named like the service account": resourceRequest(authn.User{Name: "builder"}, "get", "", "configmaps", "", "team", "c"),
		"cluster scope":                       resourceRequest(authn.User{Name: "system:serviceaccount:team:builder"}, "list", "", "configmaps", "", "", ""),
	} {
		if d, reason, err := r.Authorize(ctx, a); d != authz.DecisionNoOpinion || reason != "" || err != nil {
			t.Errorf("%s: got %v %q %v, want NoOpinion", name, d, reason, err)
		}
	}
	// the namespace's service-account group binds every service account there
	a := resourceRequest(authn.User{Name: "system:serviceaccount:team:other", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:team"}}, "get", "", "configmaps", "", "team", "c")
	if d, _, _ := r.Authorize(ctx, a); d != authz.DecisionAllow {
		t.Errorf("system:serviceaccounts:team member: %v", d)
	}
}

func TestMissingRoleIsGivenAsTheReason(t *testing.T) {
	p := &policy{ClusterRoleBindings: []*rbacv1.ClusterRoleBinding{clusterBinding("b", "gone", user("alice"))}}
	d, reason, err := New(p).Authorize(context.Background(), resourceRequest(authn.User{Name: "alice"}, "get", "", "pods", "", "ns", "p"))
	if d != authz.DecisionNoOpinion || err != nil || reason != `RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found` {
		t.Errorf("got %v %q %v", d, reason, err)
	}
}

func TestRulesForListsClusterAndNamespaceRules(t *testing.T) {
	p := &policy{
		ClusterRoles: []*rbacv1.ClusterRole{clusterRole("discovery", rbacv1.PolicyRule{Verbs: l("get"), NonResourceURLs: l("/api", "/api/*")})},
		Roles:        []*rbacv1.Role{role("team", "r", rule(l("get"), l(""), l("pods")))},
		ClusterRoleBindings: []*rbacv1.ClusterRoleBinding{
			clusterBinding("discovery", "discovery", group(authn.AllAuthenticated)),
			clusterBinding("broken", "missing", group(authn.AllAuthenticated)),
		},
		RoleBindings: []*rbacv1.RoleBinding{binding("team", "r", "Role", "r", user("alice"))},
	}
	rules, err := New(p).RulesFor(context.Background(), authn.User{Name: "alice", Groups: []string{authn.AllAuthenticated}}, "team")
	if err == nil || err.Error() != `clusterrole.rbac.authorization.k8s.io "missing" not found` {
		t.Errorf("err = %v", err)
	}
	if len(rules.NonResource) != 1 || rules.NonResource[0].NonResourceURLs[1] != "/api/*" || len(rules.Resource) != 1 || rules.Resource[0].Resources[0] != "pods" || rules.Incomplete {
		t.Errorf("rules = %+v", rules)
	}
	rules, _ = New(p).RulesFor(context.Background(), authn.User{Name: "alice", Groups: []string{authn.AllAuthenticated}}, "elsewhere")
	if len(rules.Resource) != 0 {
		t.Errorf("another namespace: %+v", rules.Resource)
	}
}

func TestUnsupportedRoleRefKind(t *testing.T) {
	_, err := New(&policy{}).RoleRefRules(rbacv1.RoleRef{Kind: "Foo", Name: "x"}, "ns")
	if err == nil || err.Error() != `unsupported role reference kind: "Foo"` {
		t.Errorf("err = %v", err)
	}
}
