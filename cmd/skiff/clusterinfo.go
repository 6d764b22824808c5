package main

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/join"
)

// clusterInfoReader is kubeadm's name for the Role (and RoleBinding) that lets
// system:anonymous read cluster-info, which a joining node reads before it trusts anyone.
const clusterInfoReader = "kubeadm:bootstrap-signer-clusterinfo"

// ensureClusterInfo publishes the cluster-info ConfigMap in kube-public, as kubeadm's
// bootstrap-token phase: a kubeconfig naming the API server at server and the cluster CA, for
// the bootstrap signer to sign with every join token, and the Role and RoleBinding that let
// anyone read it. A cluster-info naming another server or CA is brought up to date (the
// signer signs it again).
func ensureClusterInfo(ctx context.Context, cfg *rest.Config, server string, caPEM []byte) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	kubeconfig, err := join.ClusterInfoKubeconfig(server, caPEM)
	if err != nil {
		return err
	}
	cms := client.CoreV1().ConfigMaps(metav1.NamespacePublic)
	cm, err := cms.Get(ctx, "cluster-info", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cluster-info", Namespace: metav1.NamespacePublic},
			Data: map[string]string{"kubeconfig": string(kubeconfig)}}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("cluster-info: %w", err)
		}
	case err != nil:
		return fmt.Errorf("cluster-info: %w", err)
	case cm.Data["kubeconfig"] != string(kubeconfig):
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data["kubeconfig"] = string(kubeconfig)
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("cluster-info: %w", err)
		}
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: clusterInfoReader, Namespace: metav1.NamespacePublic},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"cluster-info"}}},
	}
	if _, err := client.RbacV1().Roles(metav1.NamespacePublic).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("Role %s: %w", clusterInfoReader, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: clusterInfoReader, Namespace: metav1.NamespacePublic},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: clusterInfoReader},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "system:anonymous"}},
	}
	if _, err := client.RbacV1().RoleBindings(metav1.NamespacePublic).Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("RoleBinding %s: %w", clusterInfoReader, err)
	}
	return nil
}
