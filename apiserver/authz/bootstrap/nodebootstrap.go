package bootstrap

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeBootstrapBindings are the ClusterRoleBindings kubeadm makes for TLS bootstrap, by its
// names: bootstrap tokens (system:bootstrappers) may create CertificateSigningRequests and have
// kubelet client requests approved automatically, and nodes (system:nodes) have the renewals
// of their own client certificates approved automatically. They are not upstream's default
// policy (kube-apiserver makes none of them): the cluster's installer makes them, in skiff
// `skiff up`.
func NodeBootstrapBindings() []rbacv1.ClusterRoleBinding {
	bootstrappers := groups("system:bootstrappers")
	nodes := groups("system:nodes")
	return []rbacv1.ClusterRoleBinding{
		namedBinding("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", bootstrappers),
		namedBinding("kubeadm:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", bootstrappers),
		namedBinding("kubeadm:node-autoapprove-certificate-rotation", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", nodes),
	}
}

// namedBinding binds the ClusterRole role under another name, without the bootstrap labels
// (the server's reconciliation does not own these).
func namedBinding(name, role string, subjects []rbacv1.Subject) rbacv1.ClusterRoleBinding {
	return rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "ClusterRole", Name: role},
		Subjects:   subjects,
	}
}
