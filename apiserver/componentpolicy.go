package apiserver

import (
	"context"
	"errors"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/authz/bootstrap"
)

// skiff's own parts run with upstream's identities and roles where upstream has them (the
// scheduler, the controller manager, the proxy, kubelets). What they need beyond those, and the
// cluster DNS server, which upstream runs as a pod with a service account, get the roles
// below, reconciled with the default policy at start and marked as skiff's.

// DNSUser is the user `skiff dns` runs as.
const DNSUser = "system:skiff:dns"

// LocalPathProvisionerUser is the user skiff up's local-path provisioner runs as: it makes the
// default StorageClass, and volumes for the claims of its node.
const LocalPathProvisionerUser = "system:skiff:local-path-provisioner"

// NetworkPolicyAgentUser is the user skiff's NetworkPolicy agent runs as: it reads every Pod,
// Namespace and NetworkPolicy to program its node's nftables, and writes nothing.
const NetworkPolicyAgentUser = "system:skiff:network-policy-agent"

// IngressControllerUser is the user skiff's ingress controller runs as: it reads Ingresses,
// the Services, EndpointSlices and TLS Secrets they name and its Node, makes its
// IngressClass and writes ingresses/status.
const IngressControllerUser = "system:skiff:ingress-controller"

const skiffPolicyLabel = "skiff.dev/bootstrapping"

func skiffMeta(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{skiffPolicyLabel: "component-defaults"},
		Annotations: map[string]string{rbacv1.AutoUpdateAnnotationKey: "true"}}
}

// componentClusterRoles are what skiff's parts need cluster-wide beyond upstream's roles.
func componentClusterRoles() []rbacv1.ClusterRole {
	read := []string{"get", "list", "watch"}
	return []rbacv1.ClusterRole{
		{
			// skiff's scheduler reads PriorityClasses to order its queue
			ObjectMeta: skiffMeta("system:skiff:kube-scheduler", ""),
			Rules:      []rbacv1.PolicyRule{{Verbs: read, APIGroups: []string{"scheduling.k8s.io"}, Resources: []string{"priorityclasses"}}},
		},
		{
			// the DNS server answers from Services and EndpointSlices
			ObjectMeta: skiffMeta(DNSUser, ""),
			Rules: []rbacv1.PolicyRule{
				{Verbs: []string{"list", "watch"}, APIGroups: []string{""}, Resources: []string{"services", "endpoints"}},
				{Verbs: []string{"list", "watch"}, APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}},
				{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"namespaces"}},
			},
		},
		{
			// the NetworkPolicy agent judges its node's pods by every pod's labels and address
			ObjectMeta: skiffMeta(NetworkPolicyAgentUser, ""),
			Rules: []rbacv1.PolicyRule{
				{Verbs: []string{"list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods", "namespaces"}},
				{Verbs: []string{"list", "watch"}, APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}},
			},
		},
		{
			// the ingress controller routes by Ingresses to endpoints, with Secrets' certificates
			ObjectMeta: skiffMeta(IngressControllerUser, ""),
			Rules: []rbacv1.PolicyRule{
				{Verbs: read, APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}},
				{Verbs: []string{"update", "patch"}, APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses/status"}},
				{Verbs: []string{"get", "list", "watch", "create"}, APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingressclasses"}},
				{Verbs: []string{"list", "watch"}, APIGroups: []string{""}, Resources: []string{"services", "secrets", "nodes"}},
				{Verbs: []string{"list", "watch"}, APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}},
			},
		},
		{
			// the local-path provisioner makes the default StorageClass, and volumes for claims
			ObjectMeta: skiffMeta(LocalPathProvisionerUser, ""),
			Rules: []rbacv1.PolicyRule{
				{Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}, APIGroups: []string{""}, Resources: []string{"persistentvolumes"}},
				{Verbs: read, APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}},
				{Verbs: []string{"get", "list", "watch", "create"}, APIGroups: []string{"storage.k8s.io"}, Resources: []string{"storageclasses"}},
				{Verbs: []string{"create", "patch", "update"}, APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}},
			},
		},
	}
}

func componentClusterRoleBindings() []rbacv1.ClusterRoleBinding {
	bind := func(name, user string) rbacv1.ClusterRoleBinding {
		return rbacv1.ClusterRoleBinding{ObjectMeta: skiffMeta(name, ""),
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
	}
	// skiff's endpointslice controller keeps Endpoints too, upstream's endpoint controller's
	// job, and so also holds that controller's role
	endpoints := rbacv1.ClusterRoleBinding{ObjectMeta: skiffMeta("system:skiff:endpointslice-controller:endpoints", ""),
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: bootstrap.ControllerRolePrefix + "endpoint-controller"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "kube-system", Name: "endpointslice-controller"}}}
	return []rbacv1.ClusterRoleBinding{
		bind("system:skiff:kube-scheduler", "system:kube-scheduler"),
		bind(DNSUser, DNSUser),
		bind(LocalPathProvisionerUser, LocalPathProvisionerUser),
		bind(NetworkPolicyAgentUser, NetworkPolicyAgentUser),
		bind(IngressControllerUser, IngressControllerUser),
		endpoints,
	}
}

// componentRoles are what the DNS servers write: the kube-dns Service, its EndpointSlices and
// Endpoints in kube-system, and the Leases that say which servers live.
func componentRoles() []rbacv1.Role {
	return []rbacv1.Role{{
		ObjectMeta: skiffMeta(DNSUser, "kube-system"),
		Rules: []rbacv1.PolicyRule{
			{Verbs: []string{"get", "create", "update"}, APIGroups: []string{""}, Resources: []string{"services", "endpoints"}},
			{Verbs: []string{"get", "create", "update", "delete"}, APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}},
			{Verbs: []string{"get", "create", "update", "delete"}, APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}},
		},
	}}
}

func componentRoleBindings() []rbacv1.RoleBinding {
	return []rbacv1.RoleBinding{{
		ObjectMeta: skiffMeta(DNSUser, "kube-system"),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: DNSUser},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: DNSUser}},
	}}
}

// ensureComponentPolicy reconciles skiff's component roles and bindings as the default
// policy's are: what is missing is added, what users added is kept.
func ensureComponentPolicy(ctx context.Context, c bootstrap.Clients) error {
	var errs []error
	for _, r := range componentClusterRoles() {
		_, err := bootstrap.ReconcileClusterRole(ctx, c.ClusterRoles, &r, bootstrap.Options{})
		errs = append(errs, err)
	}
	for _, b := range componentClusterRoleBindings() {
		_, err := bootstrap.ReconcileClusterRoleBinding(ctx, c.ClusterRoleBindings, &b, bootstrap.Options{})
		errs = append(errs, err)
	}
	for _, r := range componentRoles() {
		_, err := bootstrap.ReconcileRole(ctx, c.Roles, c.EnsureNamespace, &r, bootstrap.Options{})
		errs = append(errs, err)
	}
	for _, b := range componentRoleBindings() {
		_, err := bootstrap.ReconcileRoleBinding(ctx, c.RoleBindings, c.EnsureNamespace, &b, bootstrap.Options{})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
