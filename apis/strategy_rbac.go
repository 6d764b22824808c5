package apis

import (
	"context"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// rbacStrategy is upstream's strategy of the four rbac.authorization.k8s.io kinds: no status,
// everything a client sends is kept, a PUT may create (as `kubectl auth reconcile` relies on),
// and an update needs no resourceVersion. Escalation prevention is not the strategy's: it
// needs the requesting user and the authorizer, so the server checks it before storing.
type rbacStrategy[T runtime.Object] struct {
	validate       func(T) field.ErrorList
	validateUpdate func(obj, old T) field.ErrorList
}

var (
	// RoleStrategy is the strategy of Roles.
	RoleStrategy Strategy = rbacStrategy[*rbacv1.Role]{ValidateRole, ValidateRoleUpdate}
	// ClusterRoleStrategy is the strategy of ClusterRoles.
	ClusterRoleStrategy Strategy = rbacStrategy[*rbacv1.ClusterRole]{ValidateClusterRole, ValidateClusterRoleUpdate}
	// RoleBindingStrategy is the strategy of RoleBindings.
	RoleBindingStrategy Strategy = rbacStrategy[*rbacv1.RoleBinding]{ValidateRoleBinding, ValidateRoleBindingUpdate}
	// ClusterRoleBindingStrategy is the strategy of ClusterRoleBindings.
	ClusterRoleBindingStrategy Strategy = rbacStrategy[*rbacv1.ClusterRoleBinding]{ValidateClusterRoleBinding, ValidateClusterRoleBindingUpdate}
)

func (rbacStrategy[T]) PrepareForCreate(context.Context, runtime.Object) {}

func (s rbacStrategy[T]) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return s.validate(obj.(T))
}

func (rbacStrategy[T]) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s rbacStrategy[T]) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return s.validateUpdate(obj.(T), old.(T))
}

func (rbacStrategy[T]) AllowCreateOnUpdate() bool      { return true }
func (rbacStrategy[T]) AllowUnconditionalUpdate() bool { return true }

func roleBindingTable() *TablePrinter { return Columns(roleBindingColumns, roleBindingRow) }

func clusterRoleBindingTable() *TablePrinter {
	return Columns(clusterRoleBindingColumns, clusterRoleBindingRow)
}
