package rbac

import (
	"context"
	"fmt"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
)

// BenchmarkAuthorizeAmong500Bindings is one allowed pod get by an ordinary user whose
// RoleBinding sits among 100 ClusterRoleBindings and 400 RoleBindings of other subjects
// (20 per namespace), on listers as the server builds them: what bench/'s authorization
// scenario costs each request, without the machine's noise.
func BenchmarkAuthorizeAmong500Bindings(b *testing.B) {
	index := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
	roles, roleBindings := cache.NewIndexer(cache.MetaNamespaceKeyFunc, index), cache.NewIndexer(cache.MetaNamespaceKeyFunc, index)
	clusterRoles, clusterRoleBindings := cache.NewIndexer(cache.MetaNamespaceKeyFunc, index), cache.NewIndexer(cache.MetaNamespaceKeyFunc, index)
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(clusterRoles.Add(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "view"},
		Rules: []rbacv1.PolicyRule{{Verbs: l("get", "list", "watch"), APIGroups: l(""), Resources: l("pods", "services", "configmaps")}}}))
	for ns := range 20 {
		namespace := fmt.Sprintf("team-%02d", ns)
		must(roles.Add(&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "team"},
			Rules: []rbacv1.PolicyRule{{Verbs: l("*"), APIGroups: l("apps"), Resources: l("deployments")}}}))
	}
	must(roles.Add(&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "team-19", Name: "pod-writer"},
		Rules: []rbacv1.PolicyRule{{Verbs: l("get", "create"), APIGroups: l(""), Resources: l("pods")}}}))
	for i := range 500 {
		subject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: fmt.Sprintf("user-%04d", i)}
		if i < 100 {
			must(clusterRoleBindings.Add(&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: subject.Name},
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"}, Subjects: []rbacv1.Subject{subject}}))
			continue
		}
		must(roleBindings.Add(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("team-%02d", i%20), Name: subject.Name},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "team"}, Subjects: []rbacv1.Subject{subject}}))
	}
	must(roleBindings.Add(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team-19", Name: "bench"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-writer"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "bench"}}}))
	listers := Listers{
		Roles: rbaclisters.NewRoleLister(roles), RoleBindings: rbaclisters.NewRoleBindingLister(roleBindings),
		ClusterRoles: rbaclisters.NewClusterRoleLister(clusterRoles), ClusterRoleBindings: rbaclisters.NewClusterRoleBindingLister(clusterRoleBindings),
	}
	attrs := resourceRequest(authn.User{Name: "bench", Groups: []string{"system:authenticated"}}, "get", "", "pods", "", "team-19", "p")
	for name, source := range map[string]PolicySource{"listers": listers, "snapshots": NewBindingSnapshots(listers)} {
		a := New(source)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d, reason, _ := a.Authorize(context.Background(), attrs); d != authz.DecisionAllow {
					b.Fatalf("decision %v: %s", d, reason)
				}
			}
		})
	}
}
