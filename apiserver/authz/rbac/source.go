package rbac

import (
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
)

// PolicySource is where the RBAC authorizer reads roles and bindings. The server backs it with
// its watch caches; tests with fakes. Objects it returns are shared: callers never change them.
type PolicySource interface {
	// GetRole returns the Role namespace/name, or an error; a missing role is a NotFound
	// status error (`role.rbac.authorization.k8s.io "x" not found`), which RBAC puts in its
	// reason.
	GetRole(namespace, name string) (*rbacv1.Role, error)
	// GetClusterRole returns the ClusterRole name, or an error as GetRole's.
	GetClusterRole(name string) (*rbacv1.ClusterRole, error)
	// ListRoleBindings returns every RoleBinding in namespace, in any order.
	ListRoleBindings(namespace string) ([]*rbacv1.RoleBinding, error)
	// ListClusterRoleBindings returns every ClusterRoleBinding, in any order.
	ListClusterRoleBindings() ([]*rbacv1.ClusterRoleBinding, error)
}

// Listers is a PolicySource on client-go listers, for a server or a test that has informers of
// the four kinds.
type Listers struct {
	Roles               rbaclisters.RoleLister
	RoleBindings        rbaclisters.RoleBindingLister
	ClusterRoles        rbaclisters.ClusterRoleLister
	ClusterRoleBindings rbaclisters.ClusterRoleBindingLister
}

var _ PolicySource = Listers{}

func (l Listers) GetRole(namespace, name string) (*rbacv1.Role, error) {
	return l.Roles.Roles(namespace).Get(name)
}

func (l Listers) GetClusterRole(name string) (*rbacv1.ClusterRole, error) {
	return l.ClusterRoles.Get(name)
}

func (l Listers) ListRoleBindings(namespace string) ([]*rbacv1.RoleBinding, error) {
	return l.RoleBindings.RoleBindings(namespace).List(labels.Everything())
}

func (l Listers) ListClusterRoleBindings() ([]*rbacv1.ClusterRoleBinding, error) {
	return l.ClusterRoleBindings.List(labels.Everything())
}

// StaticPolicy is a PolicySource over fixed objects: the default policy before the RBAC kinds
// are stored, or a test's. It is not safe to change once in use.
type StaticPolicy struct {
	Roles               []*rbacv1.Role
	ClusterRoles        []*rbacv1.ClusterRole
	RoleBindings        []*rbacv1.RoleBinding
	ClusterRoleBindings []*rbacv1.ClusterRoleBinding
}

var _ PolicySource = &StaticPolicy{}

func (p *StaticPolicy) GetRole(namespace, name string) (*rbacv1.Role, error) {
	for _, r := range p.Roles {
		if r.Namespace == namespace && r.Name == name {
			return r, nil
		}
	}
	return nil, apierrors.NewNotFound(rbacv1.Resource("role"), name)
}

func (p *StaticPolicy) GetClusterRole(name string) (*rbacv1.ClusterRole, error) {
	for _, r := range p.ClusterRoles {
		if r.Name == name {
			return r, nil
		}
	}
	return nil, apierrors.NewNotFound(rbacv1.Resource("clusterrole"), name)
}

func (p *StaticPolicy) ListRoleBindings(namespace string) ([]*rbacv1.RoleBinding, error) {
	var out []*rbacv1.RoleBinding
	for _, b := range p.RoleBindings {
		if b.Namespace == namespace {
			out = append(out, b)
		}
	}
	return out, nil
}

func (p *StaticPolicy) ListClusterRoleBindings() ([]*rbacv1.ClusterRoleBinding, error) {
	return p.ClusterRoleBindings, nil
}
