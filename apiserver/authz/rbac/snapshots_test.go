package rbac

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
)

func TestBindingSnapshotsFollowEveryChangeTheInformerDelivers(t *testing.T) {
	index := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
	roleBindings := cache.NewIndexer(cache.MetaNamespaceKeyFunc, index)
	clusterRoleBindings := cache.NewIndexer(cache.MetaNamespaceKeyFunc, index)
	s := NewBindingSnapshots(Listers{
		RoleBindings:        rbaclisters.NewRoleBindingLister(roleBindings),
		ClusterRoleBindings: rbaclisters.NewClusterRoleBindingLister(clusterRoleBindings),
	})
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "a"}}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "a"}}
	counts := func() (int, int) {
		t.Helper()
		rbs, err := s.ListRoleBindings("team")
		if err != nil {
			t.Fatal(err)
		}
		crbs, err := s.ListClusterRoleBindings()
		if err != nil {
			t.Fatal(err)
		}
		return len(rbs), len(crbs)
	}
	if r, c := counts(); r != 0 || c != 0 {
		t.Fatalf("empty policy lists %d and %d bindings", r, c)
	}
	// an informer updates its indexer, then tells its handlers
	roleBindings.Add(rb)
	s.RoleBindingHandler().OnAdd(rb, false)
	clusterRoleBindings.Add(crb)
	s.ClusterRoleBindingHandler().OnAdd(crb, false)
	if r, c := counts(); r != 1 || c != 1 {
		t.Fatalf("after adds: %d role bindings and %d cluster role bindings, want 1 and 1", r, c)
	}
	roleBindings.Delete(rb)
	s.RoleBindingHandler().OnDelete(rb)
	clusterRoleBindings.Delete(crb)
	s.ClusterRoleBindingHandler().OnDelete(crb)
	if r, c := counts(); r != 0 || c != 0 {
		t.Fatalf("after deletes: %d and %d bindings, want none", r, c)
	}
}

// The index by subject must find exactly what walking every binding finds: the same rules,
// the same unreadable roles and the same decisions, for users matched by name, by group and
// as service accounts, among subjects no user matches.
func TestBindingSnapshotsIndexFindsWhatWalkingEveryBindingFinds(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	namespaces := l("team-a", "team-b", "x")
	pick := func(from []string) string { return from[rng.IntN(len(from))] }
	names := l("alice", "bob", "ops", "system:authenticated", "default", "a:b", "b", "app")
	subject := func() rbacv1.Subject {
		switch rng.IntN(5) {
		case 0:
			return user(pick(names))
		case 1:
			return group(pick(names))
		case 2:
			return serviceAccount(pick(append(l(""), namespaces...)), pick(names))
		case 3:
			return rbacv1.Subject{Kind: "Robot", Name: pick(names)}
		}
		// a user named like a service account is a User subject, not the account
		return user("system:serviceaccount:" + pick(namespaces) + ":" + pick(names))
	}
	subjects := func() []rbacv1.Subject {
		out := make([]rbacv1.Subject, 1+rng.IntN(3))
		for i := range out {
			out[i] = subject()
		}
		return out
	}
	resources := l("pods", "secrets", "configmaps")
	verbs := l("get", "list", "create")
	static := &StaticPolicy{}
	index := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
	indexers := map[string]cache.Indexer{}
	for _, kind := range l("roles", "rolebindings", "clusterroles", "clusterrolebindings") {
		indexers[kind] = cache.NewIndexer(cache.MetaNamespaceKeyFunc, index)
	}
	for i, r := range resources {
		cr := clusterRole("cr-"+r, rule(l(verbs[i]), l(""), l(r)))
		static.ClusterRoles = append(static.ClusterRoles, cr)
		indexers["clusterroles"].Add(cr)
		for _, ns := range namespaces {
			ro := role(ns, "role-"+r, rule(l(verbs[(i+1)%len(verbs)]), l(""), l(r)))
			static.Roles = append(static.Roles, ro)
			indexers["roles"].Add(ro)
		}
	}
	roleNames := func(prefix string) []string {
		// a role that does not exist is an error RBAC reports, found or walked alike
		return append(l(prefix+"missing"), prefix+"pods", prefix+"secrets", prefix+"configmaps")
	}
	for i := range 60 {
		crb := clusterBinding(fmt.Sprintf("crb-%02d", i), pick(roleNames("cr-")), subjects()...)
		static.ClusterRoleBindings = append(static.ClusterRoleBindings, crb)
		indexers["clusterrolebindings"].Add(crb)
		var rb *rbacv1.RoleBinding
		if rng.IntN(2) == 0 {
			rb = binding(pick(namespaces), fmt.Sprintf("rb-%02d", i), "Role", pick(roleNames("role-")), subjects()...)
		} else {
			rb = binding(pick(namespaces), fmt.Sprintf("rb-%02d", i), "ClusterRole", pick(roleNames("cr-")), subjects()...)
		}
		static.RoleBindings = append(static.RoleBindings, rb)
		indexers["rolebindings"].Add(rb)
	}
	walked := New(static)
	indexed := New(NewBindingSnapshots(Listers{
		Roles: rbaclisters.NewRoleLister(indexers["roles"]), RoleBindings: rbaclisters.NewRoleBindingLister(indexers["rolebindings"]),
		ClusterRoles: rbaclisters.NewClusterRoleLister(indexers["clusterroles"]), ClusterRoleBindings: rbaclisters.NewClusterRoleBindingLister(indexers["clusterrolebindings"]),
	}))
	var users []authn.User
	for _, n := range names {
		users = append(users, authn.User{Name: n}, authn.User{Name: n, Groups: l(pick(names), pick(names))})
		for _, ns := range namespaces {
			users = append(users, authn.User{Name: "system:serviceaccount:" + ns + ":" + n, Groups: l("system:serviceaccounts")})
		}
	}
	sorted := func(rules []rbacv1.PolicyRule, err error) string {
		var out []string
		for _, r := range rules {
			out = append(out, r.String())
		}
		slices.Sort(out)
		var errs []string
		if agg, ok := err.(interface{ Errors() []error }); ok {
			for _, e := range agg.Errors() {
				errs = append(errs, e.Error())
			}
		}
		slices.Sort(errs)
		return strings.Join(out, "\n") + "\nerrors: " + strings.Join(errs, "\n")
	}
	allowed, checked := 0, 0
	for _, u := range users {
		for _, ns := range append(l(""), namespaces...) {
			if want, got := sorted(walked.PolicyRulesFor(u, ns)), sorted(indexed.PolicyRulesFor(u, ns)); got != want {
				t.Errorf("%+v in %q: the index finds\n%s\nwalking finds\n%s", u, ns, got, want)
			}
			for _, r := range resources {
				for _, v := range verbs {
					a := resourceRequest(u, v, "", r, "", ns, "")
					want, _, _ := walked.Authorize(context.Background(), a)
					got, reason, _ := indexed.Authorize(context.Background(), a)
					if got != want {
						t.Errorf("%s %s in %q by %+v: the index decides %v (%s), walking %v", v, r, ns, u, got, reason, want)
					}
					checked++
					if want == authz.DecisionAllow {
						allowed++
					}
				}
			}
		}
	}
	// the policy is random: make sure it allowed and refused a fair share
	if allowed < checked/20 || allowed > checked*19/20 {
		t.Fatalf("%d of %d requests allowed: the policy does not test much", allowed, checked)
	}
}
