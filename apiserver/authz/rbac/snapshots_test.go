package rbac

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"
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
