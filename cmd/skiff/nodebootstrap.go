package main

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver/authz/bootstrap"
)

// ensureNodeBootstrapBindings makes kubeadm's TLS bootstrap bindings where missing, so that a
// kubelet with a bootstrap token gets its client certificate approved, and nodes their
// renewals and their kube-proxy's certificate (skiff agent). A binding an operator changed or removed on purpose is made again only when
// missing.
func ensureNodeBootstrapBindings(ctx context.Context, cfg *rest.Config) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, r := range bootstrap.NodeBootstrapClusterRoles() {
		_, err := client.RbacV1().ClusterRoles().Create(ctx, &r, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("ClusterRole %s: %w", r.Name, err)
		}
	}
	for _, b := range bootstrap.NodeBootstrapBindings() {
		_, err := client.RbacV1().ClusterRoleBindings().Create(ctx, &b, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("ClusterRoleBinding %s: %w", b.Name, err)
		}
	}
	return nil
}
