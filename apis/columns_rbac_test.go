package apis

import (
	"reflect"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRoleBindingRowPrintsRoleAndSubjectsAsUpstream(t *testing.T) {
	b := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "readers", Namespace: "team"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{
			{Kind: "User", Name: "alice"}, {Kind: "Group", Name: "devs"}, {Kind: "User", Name: "bob"},
			{Kind: "ServiceAccount", Namespace: "team", Name: "builder"},
		},
	}
	got := roleBindingRow(b).Cells
	want := []any{"readers", "ClusterRole/view", "<unknown>", "alice, bob", "devs", "team/builder"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cells = %q, want %q", got, want)
	}
	if len(roleBindingColumns) != len(want) {
		t.Errorf("%d columns for %d cells", len(roleBindingColumns), len(want))
	}
}

func TestClusterRoleBindingRowWithoutSubjects(t *testing.T) {
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "system:node"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node"},
	}
	got := clusterRoleBindingRow(b).Cells
	want := []any{"system:node", "ClusterRole/system:node", "<unknown>", "", "", ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cells = %q, want %q", got, want)
	}
	if c := clusterRoleBindingColumns[1]; c.Name != "Role" || c.Description != "roleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error." {
		t.Errorf("Role column = %+v", c)
	}
	if c := clusterRoleBindingColumns[5]; c.Priority != 1 || c.Description != "ServiceAccounts in the clusterRoleBinding" {
		t.Errorf("ServiceAccounts column = %+v", c)
	}
}
