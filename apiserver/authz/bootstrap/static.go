package bootstrap

import (
	"github.com/skiff-dev/skiff/apiserver/authz/rbac"
)

// DefaultPolicy is the default policy as a PolicySource held in memory, so that RBAC can
// authorize with upstream's defaults (anonymous, discovery, the components' and controllers'
// identities) before roles and bindings are stored. Aggregated roles (admin, edit, view) have
// no rules here: no default binding refers to them.
func DefaultPolicy() *rbac.StaticPolicy {
	p := &rbac.StaticPolicy{}
	for _, r := range append(ClusterRoles(), ControllerRoles()...) {
		p.ClusterRoles = append(p.ClusterRoles, &r)
	}
	for _, b := range append(ClusterRoleBindings(), ControllerRoleBindings()...) {
		p.ClusterRoleBindings = append(p.ClusterRoleBindings, &b)
	}
	for _, roles := range NamespaceRoles() {
		for _, r := range roles {
			p.Roles = append(p.Roles, &r)
		}
	}
	for _, bindings := range NamespaceRoleBindings() {
		for _, b := range bindings {
			p.RoleBindings = append(p.RoleBindings, &b)
		}
	}
	return p
}
