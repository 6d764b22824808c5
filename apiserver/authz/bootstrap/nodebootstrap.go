package bootstrap

import (
	certificatesv1 "k8s.io/api/certificates/v1"
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
		namedBinding(NodeProxyClientRole, NodeProxyClientRole, nodes),
		namedBinding(NodeProxyClientApproverRole, NodeProxyClientApproverRole, []rbacv1.Subject{serviceAccount(systemNamespace, "certificate-controller")}),
	}
}

// The roles of a skiff agent's proxy identities (not upstream's, which runs kube-proxy as
// a DaemonSet with a ServiceAccount; k3s hands every agent a system:kube-proxy certificate):
// a node may have a client certificate for system:kube-proxy or skiff's NetworkPolicy agent
// approved automatically
// (certificatesigningrequests/nodeproxyclient, csrapproving), and the approving controller may
// approve requests to the kube-apiserver-client signer, whose other requests it leaves alone.
const (
	NodeProxyClientRole         = "system:skiff:certificatesigningrequests:nodeproxyclient"
	NodeProxyClientApproverRole = "system:skiff:kube-apiserver-client-approver"
)

// NodeBootstrapClusterRoles are the ClusterRoles NodeBootstrapBindings name that upstream's
// default policy lacks.
func NodeBootstrapClusterRoles() []rbacv1.ClusterRole {
	return []rbacv1.ClusterRole{
		{ObjectMeta: metav1.ObjectMeta{Name: NodeProxyClientRole},
			Rules: rules(newRule("create").groups(certificatesGroup).resources("certificatesigningrequests/nodeproxyclient"))},
		{ObjectMeta: metav1.ObjectMeta{Name: NodeProxyClientApproverRole},
			Rules: rules(newRule("approve").groups(certificatesGroup).resources("signers").names(certificatesv1.KubeAPIServerClientSignerName))},
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
