package bootstrap

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ClientsetClients are Clients over a client-go clientset: the server's loopback client at
// start, or a fake one in tests.
func ClientsetClients(cs kubernetes.Interface) Clients {
	rbac := cs.RbacV1()
	return Clients{
		Roles: funcs[*rbacv1.Role]{
			get: func(ctx context.Context, ns, name string) (*rbacv1.Role, error) {
				return rbac.Roles(ns).Get(ctx, name, metav1.GetOptions{})
			},
			create: func(ctx context.Context, o *rbacv1.Role) (*rbacv1.Role, error) {
				return rbac.Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
			},
			update: func(ctx context.Context, o *rbacv1.Role) (*rbacv1.Role, error) {
				return rbac.Roles(o.Namespace).Update(ctx, o, metav1.UpdateOptions{})
			},
			delete: func(ctx context.Context, ns, name string) error {
				return rbac.Roles(ns).Delete(ctx, name, metav1.DeleteOptions{})
			},
		},
		RoleBindings: funcs[*rbacv1.RoleBinding]{
			get: func(ctx context.Context, ns, name string) (*rbacv1.RoleBinding, error) {
				return rbac.RoleBindings(ns).Get(ctx, name, metav1.GetOptions{})
			},
			create: func(ctx context.Context, o *rbacv1.RoleBinding) (*rbacv1.RoleBinding, error) {
				return rbac.RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
			},
			update: func(ctx context.Context, o *rbacv1.RoleBinding) (*rbacv1.RoleBinding, error) {
				return rbac.RoleBindings(o.Namespace).Update(ctx, o, metav1.UpdateOptions{})
			},
			delete: func(ctx context.Context, ns, name string) error {
				return rbac.RoleBindings(ns).Delete(ctx, name, metav1.DeleteOptions{})
			},
		},
		ClusterRoles: funcs[*rbacv1.ClusterRole]{
			get: func(ctx context.Context, _, name string) (*rbacv1.ClusterRole, error) {
				return rbac.ClusterRoles().Get(ctx, name, metav1.GetOptions{})
			},
			create: func(ctx context.Context, o *rbacv1.ClusterRole) (*rbacv1.ClusterRole, error) {
				return rbac.ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
			},
			update: func(ctx context.Context, o *rbacv1.ClusterRole) (*rbacv1.ClusterRole, error) {
				return rbac.ClusterRoles().Update(ctx, o, metav1.UpdateOptions{})
			},
			delete: func(ctx context.Context, _, name string) error {
				return rbac.ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{})
			},
		},
		ClusterRoleBindings: funcs[*rbacv1.ClusterRoleBinding]{
			get: func(ctx context.Context, _, name string) (*rbacv1.ClusterRoleBinding, error) {
				return rbac.ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
			},
			create: func(ctx context.Context, o *rbacv1.ClusterRoleBinding) (*rbacv1.ClusterRoleBinding, error) {
				return rbac.ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
			},
			update: func(ctx context.Context, o *rbacv1.ClusterRoleBinding) (*rbacv1.ClusterRoleBinding, error) {
				return rbac.ClusterRoleBindings().Update(ctx, o, metav1.UpdateOptions{})
			},
			delete: func(ctx context.Context, _, name string) error {
				return rbac.ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{})
			},
		},
		EnsureNamespace: func(ctx context.Context, name string) error {
			_, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return err
			}
			_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		},
	}
}

// funcs is a Client made of functions.
type funcs[T any] struct {
	get    func(ctx context.Context, namespace, name string) (T, error)
	create func(ctx context.Context, obj T) (T, error)
	update func(ctx context.Context, obj T) (T, error)
	delete func(ctx context.Context, namespace, name string) error
}

var _ Client[*rbacv1.Role] = funcs[*rbacv1.Role]{}

func (f funcs[T]) Get(ctx context.Context, namespace, name string) (T, error) {
	return f.get(ctx, namespace, name)
}
func (f funcs[T]) Create(ctx context.Context, obj T) (T, error) { return f.create(ctx, obj) }
func (f funcs[T]) Update(ctx context.Context, obj T) (T, error) { return f.update(ctx, obj) }
func (f funcs[T]) Delete(ctx context.Context, namespace, name string) error {
	return f.delete(ctx, namespace, name)
}
