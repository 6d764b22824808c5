package apiserver

import (
	"context"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/apiserver/authn"
)

// validateWrite is every registry store's last say on a create (old nil) or update, as
// upstream's validating stage: escalation prevention on roles and bindings (upstream does it
// in its RBAC storage, whatever admission plugins are on), the read rights a policy's params
// need (upstream's policy strategies) and NodeRestriction.
func (s *Server) validateWrite(ctx context.Context, obj, old runtime.Object) error {
	if err := s.authorizeRBACWrite(ctx, obj, old); err != nil {
		return err
	}
	if err := s.authorizeCSRWrite(ctx, obj, old); err != nil {
		return err
	}
	if err := s.authorizePolicyParamsWrite(ctx, obj, old); err != nil {
		return err
	}
	if err := s.admission.admitClaimResize(ctx, obj, old); err != nil {
		return err
	}
	return s.admission.admitNodeWrite(ctx, obj, old)
}

// authorizeRBACWrite refuses a role that grants, or a binding that binds, more than the writer
// holds, unless the writer has escalate or bind; writes the server makes without a user (its
// own bootstrap) pass.
func (s *Server) authorizeRBACWrite(ctx context.Context, obj, old runtime.Object) error {
	user, ok := authn.UserFrom(ctx)
	if !ok {
		return nil
	}
	check := s.authz.escalation
	switch o := obj.(type) {
	case *rbacv1.Role:
		oldRole, _ := old.(*rbacv1.Role)
		return check.AuthorizeRoleWrite(ctx, *user, o, oldRole)
	case *rbacv1.ClusterRole:
		oldRole, _ := old.(*rbacv1.ClusterRole)
		return check.AuthorizeClusterRoleWrite(ctx, *user, o, oldRole)
	case *rbacv1.RoleBinding:
		oldBinding, _ := old.(*rbacv1.RoleBinding)
		return check.AuthorizeRoleBindingWrite(ctx, *user, o, oldBinding)
	case *rbacv1.ClusterRoleBinding:
		oldBinding, _ := old.(*rbacv1.ClusterRoleBinding)
		return check.AuthorizeClusterRoleBindingWrite(ctx, *user, o, oldBinding)
	}
	return nil
}
