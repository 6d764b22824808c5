package apis

import (
	rbacv1 "k8s.io/api/rbac/v1"
)

// DefaultRoleBinding fills what upstream's rbac/v1 defaulting fills in a RoleBinding: the
// roleRef's API group, and the API group of User and Group subjects.
func DefaultRoleBinding(b *rbacv1.RoleBinding) {
	defaultRoleRef(&b.RoleRef)
	defaultSubjects(b.Subjects)
}

// DefaultClusterRoleBinding fills a ClusterRoleBinding as DefaultRoleBinding does.
func DefaultClusterRoleBinding(b *rbacv1.ClusterRoleBinding) {
	defaultRoleRef(&b.RoleRef)
	defaultSubjects(b.Subjects)
}

func defaultRoleRef(ref *rbacv1.RoleRef) {
	if ref.APIGroup == "" {
		ref.APIGroup = rbacv1.GroupName
	}
}

func defaultSubjects(subjects []rbacv1.Subject) {
	for i := range subjects {
		s := &subjects[i]
		if s.APIGroup == "" && (s.Kind == rbacv1.UserKind || s.Kind == rbacv1.GroupKind) {
			s.APIGroup = rbacv1.GroupName
		}
	}
}
