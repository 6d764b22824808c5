package rbac

import (
	"context"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
)

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		name        string
		owner       []rbacv1.PolicyRule
		servant     []rbacv1.PolicyRule
		wantCovered bool
		wantMissing []string
	}{
		{"star covers all", []rbacv1.PolicyRule{rule(l("*"), l("*"), l("*"))}, []rbacv1.PolicyRule{rule(l("get", "delete"), l("", "apps"), l("pods", "deployments/scale"))}, true, nil},
		{"missing verbs are listed one piece each",
			[]rbacv1.PolicyRule{rule(l("get"), l(""), l("pods"))},
			[]rbacv1.PolicyRule{rule(l("get", "list"), l(""), l("pods", "secrets"))},
			false, []string{
				`{APIGroups:[""], Resources:["pods"], Verbs:["list"]}`,
				`{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`,
				`{APIGroups:[""], Resources:["secrets"], Verbs:["list"]}`,
			}},
		{"*/subresource covers that subresource", []rbacv1.PolicyRule{rule(l("get"), l("*"), l("*/scale"))}, []rbacv1.PolicyRule{rule(l("get"), l("apps"), l("deployments/scale"))}, true, nil},
		{"a named rule does not cover all names", []rbacv1.PolicyRule{{Verbs: l("get"), APIGroups: l(""), Resources: l("secrets"), ResourceNames: l("a")}}, []rbacv1.PolicyRule{rule(l("get"), l(""), l("secrets"))}, false,
			[]string{`{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`}},
		{"an unnamed rule covers a name", []rbacv1.PolicyRule{rule(l("get"), l(""), l("secrets"))}, []rbacv1.PolicyRule{{Verbs: l("get"), APIGroups: l(""), Resources: l("secrets"), ResourceNames: l("a")}}, true, nil},
		{"url prefix covers longer urls", []rbacv1.PolicyRule{{Verbs: l("get"), NonResourceURLs: l("/apis/*")}}, []rbacv1.PolicyRule{{Verbs: l("get"), NonResourceURLs: l("/apis/apps", "/healthz")}}, false,
			[]string{`{NonResourceURLs:["/healthz"], Verbs:["get"]}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			covered, missing := Covers(tc.owner, tc.servant)
			if covered != tc.wantCovered || len(missing) != len(tc.wantMissing) {
				t.Fatalf("Covers = %v %v", covered, missing)
			}
			for i := range missing {
				if got := CompactString(missing[i]); got != tc.wantMissing[i] {
					t.Errorf("missing[%d] = %s, want %s", i, got, tc.wantMissing[i])
				}
			}
		})
	}
}

// escalationPolicy: alice may read pods and write roles in "team"; bob may also escalate and
// bind there; carol may bind the ClusterRole "view" in "team" only.
func escalationPolicy() (EscalationCheck, *policy) {
	p := &policy{
		ClusterRoles: []*rbacv1.ClusterRole{
			clusterRole("pod-reader", rule(l("get", "list"), l(""), l("pods"))),
			clusterRole("role-writer", rule(l("create", "update"), l(rbacv1.GroupName), l("roles", "rolebindings", "clusterroles", "clusterrolebindings"))),
			clusterRole("escalator", rule(l("escalate", "bind"), l(rbacv1.GroupName), l("roles", "clusterroles"))),
			{ObjectMeta: metav1.ObjectMeta{Name: "view-binder"}, Rules: []rbacv1.PolicyRule{{Verbs: l("bind"), APIGroups: l(rbacv1.GroupName), Resources: l("clusterroles"), ResourceNames: l("view")}}},
			clusterRole("view", rule(l("get", "list", "watch"), l(""), l("pods", "configmaps"))),
			clusterRole("admin", rule(l("*"), l("*"), l("*"))),
		},
		RoleBindings: []*rbacv1.RoleBinding{
			binding("team", "alice-pods", "ClusterRole", "pod-reader", user("alice")),
			binding("team", "alice-roles", "ClusterRole", "role-writer", user("alice"), user("bob")),
			binding("team", "bob", "ClusterRole", "escalator", user("bob")),
			binding("team", "carol", "ClusterRole", "view-binder", user("carol")),
		},
	}
	r := New(p)
	return EscalationCheck{Authorizer: authz.Union{authz.PrivilegedGroups{authn.SystemPrivilegedGroup}, r}, RBAC: r}, p
}

func TestRoleWithHeldRulesIsAllowed(t *testing.T) {
	c, _ := escalationPolicy()
	alice := authn.User{Name: "alice", Groups: []string{authn.AllAuthenticated}}
	if err := c.AuthorizeRoleWrite(context.Background(), alice, role("team", "r", rule(l("get"), l(""), l("pods"))), nil); err != nil {
		t.Errorf("role with held rules: %v", err)
	}
}

func TestRoleWithUnheldRulesIsForbiddenInUpstreamsWords(t *testing.T) {
	c, _ := escalationPolicy()
	alice := authn.User{Name: "alice", Groups: []string{authn.AllAuthenticated}}
	err := c.AuthorizeRoleWrite(context.Background(), alice, role("team", "r", rule(l("get", "delete"), l(""), l("pods", "secrets"))), nil)
	want := `roles.rbac.authorization.k8s.io "r" is forbidden: user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}
{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete"]}`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	// the rules held in "team" do not count in another namespace
	err = c.AuthorizeRoleWrite(context.Background(), alice, role("elsewhere", "r", rule(l("get"), l(""), l("pods"))), nil)
	if !apierrors.IsForbidden(err) {
		t.Errorf("elsewhere: %v", err)
	}
}

func TestEscalateVerbOrSystemMastersAllowsAnyRole(t *testing.T) {
	c, _ := escalationPolicy()
	big := role("team", "r", rule(l("*"), l("*"), l("*")))
	if err := c.AuthorizeRoleWrite(context.Background(), authn.User{Name: "bob"}, big, nil); err != nil {
		t.Errorf("bob with escalate: %v", err)
	}
	if err := c.AuthorizeRoleWrite(context.Background(), authn.User{Name: "root", Groups: []string{authn.SystemPrivilegedGroup}}, big, nil); err != nil {
		t.Errorf("system:masters: %v", err)
	}
}

func TestUpdateChangingOnlyOwnerReferencesIsAllowed(t *testing.T) {
	c, _ := escalationPolicy()
	old := role("team", "r", rule(l("*"), l("*"), l("*")))
	cur := old.DeepCopy()
	cur.OwnerReferences = []metav1.OwnerReference{{Name: "gone"}}
	if err := c.AuthorizeRoleWrite(context.Background(), authn.User{Name: "gc"}, cur, old); err != nil {
		t.Errorf("gc-only update: %v", err)
	}
	cur.Labels = map[string]string{"a": "b"}
	if err := c.AuthorizeRoleWrite(context.Background(), authn.User{Name: "gc"}, cur, old); !apierrors.IsForbidden(err) {
		t.Errorf("label update by a user without the rules: %v", err)
	}
}

func TestAggregationRuleNeedsFullAuthority(t *testing.T) {
	c, p := escalationPolicy()
	p.ClusterRoleBindings = append(p.ClusterRoleBindings, clusterBinding("alice-roles", "role-writer", user("alice")))
	aggregated := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "agg"}, AggregationRule: &rbacv1.AggregationRule{
		ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"a": "b"}}},
	}}
	err := c.AuthorizeClusterRoleWrite(context.Background(), authn.User{Name: "alice"}, aggregated, nil)
	if !apierrors.IsForbidden(err) || err.Error() != `clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have cluster-admin privileges to use the aggregationRule` {
		t.Errorf("err = %v", err)
	}
	p.ClusterRoleBindings = append(p.ClusterRoleBindings, clusterBinding("alice-admin", "admin", user("alice")))
	if err := c.AuthorizeClusterRoleWrite(context.Background(), authn.User{Name: "alice"}, aggregated, nil); err != nil {
		t.Errorf("with * on *: %v", err)
	}
}

func TestBindingNeedsTheRolesRulesOrBind(t *testing.T) {
	c, _ := escalationPolicy()
	ctx := context.Background()
	toView := binding("team", "v", "ClusterRole", "view", user("dave"))
	err := c.AuthorizeRoleBindingWrite(ctx, authn.User{Name: "alice", Groups: []string{authn.AllAuthenticated}}, toView, nil)
	want := `rolebindings.rbac.authorization.k8s.io "v" is forbidden: user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
{APIGroups:[""], Resources:["configmaps"], Verbs:["get" "list" "watch"]}
{APIGroups:[""], Resources:["pods"], Verbs:["watch"]}`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("alice binding view:\ngot  %v\nwant %s", err, want)
	}
	toPodReader := binding("team", "p", "ClusterRole", "pod-reader", user("dave"))
	if err := c.AuthorizeRoleBindingWrite(ctx, authn.User{Name: "alice"}, toPodReader, nil); err != nil {
		t.Errorf("alice binding a role she holds: %v", err)
	}
	if err := c.AuthorizeRoleBindingWrite(ctx, authn.User{Name: "carol"}, toView, nil); err != nil {
		t.Errorf("carol with bind on view: %v", err)
	}
	if err := c.AuthorizeRoleBindingWrite(ctx, authn.User{Name: "carol"}, toPodReader, nil); !apierrors.IsForbidden(err) {
		t.Errorf("carol binding another role: %v", err)
	}
	clusterWide := clusterBinding("v", "view", user("dave"))
	if err := c.AuthorizeClusterRoleBindingWrite(ctx, authn.User{Name: "carol"}, clusterWide, nil); !apierrors.IsForbidden(err) {
		t.Errorf("carol's bind in team does not reach cluster-wide: %v", err)
	}
}

func TestBindingToAMissingRoleIsForbiddenWithTheLookupError(t *testing.T) {
	c, _ := escalationPolicy()
	err := c.AuthorizeRoleBindingWrite(context.Background(), authn.User{Name: "alice"}, binding("team", "x", "Role", "nope", user("dave")), nil)
	if !apierrors.IsForbidden(err) || err.Error() != `rolebindings.rbac.authorization.k8s.io "x" is forbidden: role.rbac.authorization.k8s.io "nope" not found` {
		t.Errorf("err = %v", err)
	}
}

func TestRemovingAnAggregationRuleNeedsFullAuthority(t *testing.T) {
	c, p := escalationPolicy()
	p.ClusterRoleBindings = append(p.ClusterRoleBindings, clusterBinding("alice-roles", "role-writer", user("alice")))
	old := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "agg"}, AggregationRule: &rbacv1.AggregationRule{
		ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"a": "b"}}},
	}}
	cur := old.DeepCopy()
	cur.AggregationRule = nil
	if err := c.AuthorizeClusterRoleWrite(context.Background(), authn.User{Name: "alice"}, cur, old); !apierrors.IsForbidden(err) {
		t.Errorf("err = %v", err)
	}
	// a label change that keeps the rule needs nothing more than the (empty) rules
	cur = old.DeepCopy()
	cur.Labels = map[string]string{"x": "y"}
	if err := c.AuthorizeClusterRoleWrite(context.Background(), authn.User{Name: "alice"}, cur, old); err != nil {
		t.Errorf("label change: %v", err)
	}
}
