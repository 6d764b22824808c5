package apis

import (
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	rbacv1beta1 "k8s.io/api/rbac/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Table columns of the rbac.authorization.k8s.io kinds, as upstream prints them. Roles and
// ClusterRoles have no printer upstream and print with the default columns (Name, Created At).
// Not registered yet: the kinds join the table with their declaration, e.g.
//
//	printRows(roleBindingColumns, roleBindingRow)
//	printRows(clusterRoleBindingColumns, clusterRoleBindingRow)

// Upstream describes the Role column with the v1beta1 field docs.
var (
	roleBindingColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Role", Type: "string", Description: rbacv1beta1.RoleBinding{}.SwaggerDoc()["roleRef"]},
		ageColumn,
		{Name: "Users", Type: "string", Priority: 1, Description: "Users in the roleBinding"},
		{Name: "Groups", Type: "string", Priority: 1, Description: "Groups in the roleBinding"},
		{Name: "ServiceAccounts", Type: "string", Priority: 1, Description: "ServiceAccounts in the roleBinding"},
	}
	clusterRoleBindingColumns = []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Role", Type: "string", Description: rbacv1beta1.ClusterRoleBinding{}.SwaggerDoc()["roleRef"]},
		ageColumn,
		{Name: "Users", Type: "string", Priority: 1, Description: "Users in the clusterRoleBinding"},
		{Name: "Groups", Type: "string", Priority: 1, Description: "Groups in the clusterRoleBinding"},
		{Name: "ServiceAccounts", Type: "string", Priority: 1, Description: "ServiceAccounts in the clusterRoleBinding"},
	}
)

// roleBindingRow prints a RoleBinding: its role as Kind/name, and its subjects by kind (the
// wide columns).
func roleBindingRow(b *rbacv1.RoleBinding) metav1.TableRow {
	return bindingRow(b.Name, b.RoleRef, b.Subjects, b.CreationTimestamp)
}

// clusterRoleBindingRow prints a ClusterRoleBinding as roleBindingRow does.
func clusterRoleBindingRow(b *rbacv1.ClusterRoleBinding) metav1.TableRow {
	return bindingRow(b.Name, b.RoleRef, b.Subjects, b.CreationTimestamp)
}

func bindingRow(name string, ref rbacv1.RoleRef, subjects []rbacv1.Subject, created metav1.Time) metav1.TableRow {
	users, groups, serviceAccounts := subjectStrings(subjects)
	return cells(name, ref.Kind+"/"+ref.Name, translateTimestampSince(created),
		strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(serviceAccounts, ", "))
}

// subjectStrings splits subjects by kind as upstream's printer does: user and group names, and
// service accounts as namespace/name. Other kinds are not printed.
func subjectStrings(subjects []rbacv1.Subject) (users, groups, serviceAccounts []string) {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			serviceAccounts = append(serviceAccounts, fmt.Sprintf("%s/%s", s.Namespace, s.Name))
		case rbacv1.UserKind:
			users = append(users, s.Name)
		case rbacv1.GroupKind:
			groups = append(groups, s.Name)
		}
	}
	return users, groups, serviceAccounts
}
