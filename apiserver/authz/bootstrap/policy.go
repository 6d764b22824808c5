// Package bootstrap declares upstream's default RBAC policy: the ClusterRoles and
// ClusterRoleBindings every cluster starts with (cluster-admin, admin/edit/view and their
// aggregation, system:basic-user, system:discovery, system:public-info-viewer, the roles of
// the scheduler, the controller manager, kubelets and the proxy), one system:controller:*
// role and binding per controller, and the Roles and RoleBindings of kube-system and
// kube-public. It also reconciles a cluster's policy with that declaration, as upstream's API
// server does at start and `kubectl auth reconcile` does.
//
// The content is upstream's, rule for rule, as its published testdata lists it (the system:node
// and system:kube-scheduler rules of resource.k8s.io, which DRA adds, are not declared yet):
// clients, charts and the conformance suite expect these exact names and permissions. The package never authorizes anything; it only declares
// and writes policy through the client it is given.
package bootstrap

import (
	"slices"
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// BootstrappingLabel marks every object of the default policy.
	BootstrappingLabel = "kubernetes.io/bootstrapping"
	// BootstrappingLabelValue is BootstrappingLabel's value.
	BootstrappingLabelValue = "rbac-defaults"

	aggregateToAdmin = "rbac.authorization.k8s.io/aggregate-to-admin"
	aggregateToEdit  = "rbac.authorization.k8s.io/aggregate-to-edit"
	aggregateToView  = "rbac.authorization.k8s.io/aggregate-to-view"

	legacyGroup         = ""
	appsGroup           = "apps"
	authenticationGroup = "authentication.k8s.io"
	authorizationGroup  = "authorization.k8s.io"
	autoscalingGroup    = "autoscaling"
	batchGroup          = "batch"
	certificatesGroup   = "certificates.k8s.io"
	coordinationGroup   = "coordination.k8s.io"
	discoveryGroup      = "discovery.k8s.io"
	eventsGroup         = "events.k8s.io"
	extensionsGroup     = "extensions"
	networkingGroup     = "networking.k8s.io"
	policyGroup         = "policy"
	rbacGroup           = rbacv1.GroupName
	resourceGroup       = "resource.k8s.io"
	storageGroup        = "storage.k8s.io"
	admissionGroup      = "admissionregistration.k8s.io"

	systemNamespace = metav1.NamespaceSystem
	publicNamespace = metav1.NamespacePublic
)

// The verb sets upstream's policy is written with.
var (
	read       = []string{"get", "list", "watch"}
	write      = []string{"create", "update", "patch", "delete", "deletecollection"}
	readWrite  = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	readUpdate = []string{"get", "list", "watch", "update", "patch"}
)

// ruleBuilder writes a rule the way upstream's policy does: every list sorted, so that the
// stored objects read exactly as upstream's.
type ruleBuilder struct{ r rbacv1.PolicyRule }

func newRule(verbs ...string) *ruleBuilder {
	return &ruleBuilder{rbacv1.PolicyRule{Verbs: verbs}}
}

func (b *ruleBuilder) groups(g ...string) *ruleBuilder    { b.r.APIGroups = g; return b }
func (b *ruleBuilder) resources(r ...string) *ruleBuilder { b.r.Resources = r; return b }
func (b *ruleBuilder) names(n ...string) *ruleBuilder     { b.r.ResourceNames = n; return b }
func (b *ruleBuilder) urls(u ...string) *ruleBuilder      { b.r.NonResourceURLs = u; return b }

func (b *ruleBuilder) rule() rbacv1.PolicyRule {
	sorted := func(s []string) []string {
		if s == nil {
			return nil
		}
		s = slices.Clone(s)
		sort.Strings(s)
		return s
	}
	return rbacv1.PolicyRule{
		Verbs:           sorted(b.r.Verbs),
		APIGroups:       sorted(b.r.APIGroups),
		Resources:       sorted(b.r.Resources),
		ResourceNames:   sorted(b.r.ResourceNames),
		NonResourceURLs: sorted(b.r.NonResourceURLs),
	}
}

func rules(b ...*ruleBuilder) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, len(b))
	for i := range b {
		out[i] = b[i].rule()
	}
	return out
}

// eventsRule lets a component record events through either events API.
func eventsRule() *ruleBuilder {
	return newRule("create", "update", "patch").groups(legacyGroup, eventsGroup).resources("events")
}

// defaultMetadata is what every object of the default policy carries: the bootstrapping label
// and the autoupdate annotation that lets reconciliation keep it current.
func defaultMetadata(name, namespace string, labels map[string]string) metav1.ObjectMeta {
	l := map[string]string{BootstrappingLabel: BootstrappingLabelValue}
	for k, v := range labels {
		l[k] = v
	}
	return metav1.ObjectMeta{
		Name:        name,
		Namespace:   namespace,
		Labels:      l,
		Annotations: map[string]string{rbacv1.AutoUpdateAnnotationKey: "true"},
	}
}

func clusterRole(name string, labels map[string]string, r ...*ruleBuilder) rbacv1.ClusterRole {
	return rbacv1.ClusterRole{ObjectMeta: defaultMetadata(name, "", labels), Rules: rules(r...)}
}

func aggregatedClusterRole(name string, labels map[string]string, selectLabel string) rbacv1.ClusterRole {
	return rbacv1.ClusterRole{
		ObjectMeta: defaultMetadata(name, "", labels),
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
			{MatchLabels: map[string]string{selectLabel: "true"}},
		}},
	}
}

func users(names ...string) []rbacv1.Subject {
	out := make([]rbacv1.Subject, len(names))
	for i, n := range names {
		out[i] = rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacGroup, Name: n}
	}
	return out
}

func groups(names ...string) []rbacv1.Subject {
	out := make([]rbacv1.Subject, len(names))
	for i, n := range names {
		out[i] = rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacGroup, Name: n}
	}
	return out
}

func serviceAccount(namespace, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}
}

func clusterRoleBinding(role string, subjects []rbacv1.Subject) rbacv1.ClusterRoleBinding {
	return rbacv1.ClusterRoleBinding{
		ObjectMeta: defaultMetadata(role, "", nil),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "ClusterRole", Name: role},
		Subjects:   subjects,
	}
}

// NodeRules are what a kubelet may do: upstream's system:node ClusterRole, which the Node
// authorizer applies (subdividing secrets, configmaps, claims, volumes, tokens, nodes, pods
// and leases by the node's own pods) and which no binding grants by default.
func NodeRules() []rbacv1.PolicyRule {
	return rules(
		// access reviews are non-mutating creates
		newRule("create").groups(authenticationGroup).resources("tokenreviews"),
		newRule("create").groups(authorizationGroup).resources("subjectaccessreviews", "localsubjectaccessreviews"),
		// the service environment variables
		newRule(read...).groups(legacyGroup).resources("services"),
		// registration and status; NodeRestriction keeps a node to its own
		newRule("create", "get", "list", "watch").groups(legacyGroup).resources("nodes"),
		newRule("update", "patch").groups(legacyGroup).resources("nodes/status"),
		newRule("update", "patch").groups(legacyGroup).resources("nodes"),
		newRule("create", "update", "patch").groups(legacyGroup).resources("events"),
		newRule(read...).groups(legacyGroup).resources("pods"),
		// mirror pods, pod status and evictions; NodeRestriction keeps them to its own pods
		newRule("create", "delete").groups(legacyGroup).resources("pods"),
		newRule("update", "patch").groups(legacyGroup).resources("pods/status"),
		newRule("create").groups(legacyGroup).resources("pods/eviction"),
		// the Node authorizer narrows these to objects its pods reference
		newRule("get", "list", "watch").groups(legacyGroup).resources("secrets", "configmaps"),
		newRule("get").groups(legacyGroup).resources("persistentvolumeclaims", "persistentvolumes"),
		newRule("get").groups(legacyGroup).resources("endpoints"),
		// client certificate rotation
		newRule("create", "get", "list", "watch").groups(certificatesGroup).resources("certificatesigningrequests"),
		newRule("get", "create", "update", "patch", "delete").groups(coordinationGroup).resources("leases"),
		newRule("get").groups(storageGroup).resources("volumeattachments"),
		newRule("create").groups(legacyGroup).resources("serviceaccounts/token"),
		newRule("get", "update", "patch").groups(legacyGroup).resources("persistentvolumeclaims/status"),
		newRule("get", "watch", "list").groups(storageGroup).resources("csidrivers"),
		newRule("get", "create", "update", "patch", "delete").groups(storageGroup).resources("csinodes"),
		newRule("get", "list", "watch").groups("node.k8s.io").resources("runtimeclasses"),
		// clusterTrustBundle projected volume sources
		newRule("get", "list", "watch").groups(certificatesGroup).resources("clustertrustbundles"),
		// the Node authorizer narrows this to its pods' service accounts
		newRule("get").groups(legacyGroup).resources("serviceaccounts"),
		// podCertificate projected volume sources
		newRule("get", "list", "watch", "create").groups(certificatesGroup).resources("podcertificaterequests"),
	)
}

// ClusterRoles are upstream's default ClusterRoles other than the controllers', by name.
func ClusterRoles() []rbacv1.ClusterRole {
	signerApprover := func(signer string) rbacv1.ClusterRole {
		return clusterRole("system:certificates.k8s.io:"+signer+"-approver", nil,
			newRule("approve").groups(certificatesGroup).resources("signers").names("kubernetes.io/"+signer))
	}
	return []rbacv1.ClusterRole{
		// namespace admin: edit plus the power to grant permissions
		aggregatedClusterRole("admin", nil, aggregateToAdmin),
		// a root role that can do absolutely anything
		clusterRole("cluster-admin", nil,
			newRule("*").groups("*").resources("*"),
			newRule("*").urls("*")),
		// namespace editor: every user-level action, but no roles, quotas or status
		aggregatedClusterRole("edit", map[string]string{aggregateToAdmin: "true"}, aggregateToEdit),
		clusterRole("system:aggregate-to-admin", map[string]string{aggregateToAdmin: "true"},
			newRule("create").groups(authorizationGroup).resources("localsubjectaccessreviews"),
			newRule(readWrite...).groups(rbacGroup).resources("roles", "rolebindings")),
		clusterRole("system:aggregate-to-edit", map[string]string{aggregateToEdit: "true"},
			// read on escalating resources
			newRule(read...).groups(legacyGroup).resources("pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"),
			newRule("impersonate").groups(legacyGroup).resources("serviceaccounts"),
			newRule(write...).groups(legacyGroup).resources("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"),
			newRule("create").groups(legacyGroup).resources("pods/eviction"),
			newRule(write...).groups(legacyGroup).resources("replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
				"services", "services/proxy", "persistentvolumeclaims", "configmaps", "secrets", "events"),
			newRule("create").groups(legacyGroup).resources("serviceaccounts/token"),
			newRule(write...).groups(appsGroup).resources("statefulsets", "statefulsets/scale", "daemonsets",
				"deployments", "deployments/scale", "deployments/rollback", "replicasets", "replicasets/scale"),
			newRule(write...).groups(autoscalingGroup).resources("horizontalpodautoscalers"),
			newRule(write...).groups(batchGroup).resources("jobs", "cronjobs"),
			newRule(write...).groups(extensionsGroup).resources("daemonsets", "deployments", "deployments/scale", "deployments/rollback",
				"ingresses", "replicasets", "replicasets/scale", "replicationcontrollers/scale", "networkpolicies"),
			newRule(write...).groups(policyGroup).resources("poddisruptionbudgets"),
			newRule(write...).groups(networkingGroup).resources("networkpolicies", "ingresses"),
			newRule(readWrite...).groups(coordinationGroup).resources("leases"),
			newRule(write...).groups(resourceGroup).resources("resourceclaims", "resourceclaimtemplates")),
		clusterRole("system:aggregate-to-view", map[string]string{aggregateToView: "true"},
			newRule(read...).groups(legacyGroup).resources("pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
				"services", "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"),
			newRule(read...).groups(legacyGroup).resources("limitranges", "resourcequotas", "bindings", "events",
				"pods/status", "resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log"),
			// namespaces read at namespace scope: this namespace, a sign of which ones a user may use
			newRule(read...).groups(legacyGroup).resources("namespaces"),
			newRule(read...).groups(discoveryGroup).resources("endpointslices"),
			newRule(read...).groups(appsGroup).resources("controllerrevisions",
				"statefulsets", "statefulsets/status", "statefulsets/scale",
				"daemonsets", "daemonsets/status",
				"deployments", "deployments/status", "deployments/scale",
				"replicasets", "replicasets/status", "replicasets/scale"),
			newRule(read...).groups(autoscalingGroup).resources("horizontalpodautoscalers", "horizontalpodautoscalers/status"),
			newRule(read...).groups(batchGroup).resources("jobs", "cronjobs", "cronjobs/status", "jobs/status"),
			newRule(read...).groups(extensionsGroup).resources("daemonsets", "daemonsets/status", "deployments", "deployments/scale",
				"deployments/status", "ingresses", "ingresses/status", "replicasets", "replicasets/scale", "replicasets/status",
				"replicationcontrollers/scale", "networkpolicies"),
			newRule(read...).groups(policyGroup).resources("poddisruptionbudgets", "poddisruptionbudgets/status"),
			newRule(read...).groups(networkingGroup).resources("ingresses", "ingresses/status", "networkpolicies"),
			newRule(read...).groups(resourceGroup).resources("resourceclaims", "resourceclaims/status", "resourceclaimtemplates")),
		clusterRole("system:auth-delegator", nil,
			newRule("create").groups(authenticationGroup).resources("tokenreviews"),
			newRule("create").groups(authorizationGroup).resources("subjectaccessreviews")),
		// what every user may learn about themselves
		clusterRole("system:basic-user", nil,
			newRule("create").groups(authorizationGroup).resources("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
			newRule("create").groups(authenticationGroup).resources("selfsubjectreviews")),
		clusterRole("system:certificates.k8s.io:certificatesigningrequests:nodeclient", nil,
			newRule("create").groups(certificatesGroup).resources("certificatesigningrequests/nodeclient")),
		clusterRole("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", nil,
			newRule("create").groups(certificatesGroup).resources("certificatesigningrequests/selfnodeclient")),
		signerApprover("kube-apiserver-client"),
		signerApprover("kube-apiserver-client-kubelet"),
		signerApprover("kubelet-serving"),
		signerApprover("legacy-unknown"),
		// just enough to tell whether the server is ready and discover its APIs
		clusterRole("system:discovery", nil,
			newRule("get").urls("/livez", "/readyz", "/healthz", "/version", "/version/",
				"/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*")),
		clusterRole("system:heapster", nil,
			newRule(read...).groups(legacyGroup).resources("events", "pods", "nodes", "namespaces"),
			newRule(read...).groups(extensionsGroup).resources("deployments")),
		clusterRole("system:kube-aggregator", nil,
			newRule(read...).groups(legacyGroup).resources("services", "endpoints")),
		clusterRole("system:kube-controller-manager", nil,
			eventsRule(),
			// leader election
			newRule("create").groups(coordinationGroup).resources("leases"),
			newRule("get", "update").groups(coordinationGroup).resources("leases").names("kube-controller-manager"),
			// the service-account token controller makes accounts and tokens
			newRule("create").groups(legacyGroup).resources("secrets", "serviceaccounts"),
			newRule("delete").groups(legacyGroup).resources("secrets"),
			newRule("get").groups(legacyGroup).resources("namespaces", "secrets", "serviceaccounts", "configmaps"),
			newRule("update").groups(legacyGroup).resources("secrets", "serviceaccounts"),
			// delegated authentication and authorization
			newRule("create").groups(authenticationGroup).resources("tokenreviews"),
			newRule("create").groups(authorizationGroup).resources("subjectaccessreviews"),
			// the shared informers
			newRule("list", "watch").groups("*").resources("*"),
			// one credential per controller (--use-service-account-credentials)
			newRule("create").groups(legacyGroup).resources("serviceaccounts/token")),
		clusterRole("system:kube-dns", nil,
			newRule("list", "watch").groups(legacyGroup).resources("endpoints", "services")),
		clusterRole("system:kube-scheduler", nil,
			eventsRule(),
			// leader election
			newRule("create").groups(coordinationGroup).resources("leases"),
			newRule("get", "update").groups(coordinationGroup).resources("leases").names("kube-scheduler"),
			newRule(read...).groups(legacyGroup).resources("nodes"),
			newRule("get", "list", "watch", "delete").groups(legacyGroup).resources("pods"),
			newRule("create").groups(legacyGroup).resources("pods/binding", "bindings"),
			newRule("patch", "update").groups(legacyGroup).resources("pods/status"),
			// spreading
			newRule(read...).groups(legacyGroup).resources("replicationcontrollers", "services"),
			newRule(read...).groups(appsGroup, extensionsGroup).resources("replicasets"),
			newRule(read...).groups(appsGroup).resources("statefulsets"),
			// preemption
			newRule(read...).groups(policyGroup).resources("poddisruptionbudgets"),
			// volume binding
			newRule(read...).groups(legacyGroup).resources("persistentvolumeclaims", "persistentvolumes"),
			// delegated authentication and authorization
			newRule("create").groups(authenticationGroup).resources("tokenreviews"),
			newRule("create").groups(authorizationGroup).resources("subjectaccessreviews"),
			// volume limits
			newRule(read...).groups(storageGroup).resources("csinodes"),
			// namespace selectors of pod affinity
			newRule(read...).groups(legacyGroup).resources("namespaces"),
			newRule(read...).groups(storageGroup).resources("csidrivers"),
			newRule(read...).groups(storageGroup).resources("csistoragecapacities")),
		clusterRole("system:kubelet-api-admin", nil,
			newRule(read...).groups(legacyGroup).resources("nodes"),
			newRule("proxy").groups(legacyGroup).resources("nodes"),
			newRule("*").groups(legacyGroup).resources("nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log")),
		clusterRole("system:monitoring", nil,
			newRule("get").urls("/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*", "/healthz/*")),
		{ObjectMeta: defaultMetadata("system:node", "", nil), Rules: NodeRules()},
		clusterRole("system:node-bootstrapper", nil,
			newRule("create", "get", "list", "watch").groups(certificatesGroup).resources("certificatesigningrequests")),
		clusterRole("system:node-problem-detector", nil,
			newRule("get").groups(legacyGroup).resources("nodes"),
			newRule("patch").groups(legacyGroup).resources("nodes/status"),
			eventsRule()),
		clusterRole("system:node-proxier", nil,
			newRule("list", "watch").groups(legacyGroup).resources("services", "endpoints"),
			newRule("get", "list", "watch").groups(legacyGroup).resources("nodes"),
			eventsRule(),
			newRule("list", "watch").groups(discoveryGroup).resources("endpointslices")),
		clusterRole("system:persistent-volume-provisioner", nil,
			newRule("get", "list", "watch", "create", "delete").groups(legacyGroup).resources("persistentvolumes"),
			// update claims with provisioning errors
			newRule("get", "list", "watch", "update").groups(legacyGroup).resources("persistentvolumeclaims"),
			newRule(read...).groups(storageGroup).resources("storageclasses"),
			newRule("watch").groups(legacyGroup).resources("events"),
			eventsRule()),
		// what anyone, even unauthenticated, may read
		clusterRole("system:public-info-viewer", nil,
			newRule("get").urls("/livez", "/readyz", "/healthz", "/version", "/version/")),
		clusterRole("system:service-account-issuer-discovery", nil,
			newRule("get").urls("/.well-known/openid-configuration", "/openid/v1/jwks")),
		clusterRole("system:volume-scheduler", nil,
			newRule(readUpdate...).groups(legacyGroup).resources("persistentvolumes"),
			newRule(read...).groups(storageGroup).resources("storageclasses"),
			newRule(readUpdate...).groups(legacyGroup).resources("persistentvolumeclaims")),
		// namespace viewer: reads everything but secrets and roles
		aggregatedClusterRole("view", map[string]string{aggregateToEdit: "true"}, aggregateToView),
	}
}

// ClusterRoleBindings are upstream's default ClusterRoleBindings other than the controllers'.
// system:node binds nobody: kubelets get its rules through the Node authorizer.
func ClusterRoleBindings() []rbacv1.ClusterRoleBinding {
	return []rbacv1.ClusterRoleBinding{
		clusterRoleBinding("cluster-admin", groups("system:masters")),
		clusterRoleBinding("system:basic-user", groups("system:authenticated")),
		clusterRoleBinding("system:discovery", groups("system:authenticated")),
		clusterRoleBinding("system:kube-controller-manager", users("system:kube-controller-manager")),
		clusterRoleBinding("system:kube-dns", []rbacv1.Subject{serviceAccount(systemNamespace, "kube-dns")}),
		clusterRoleBinding("system:kube-scheduler", users("system:kube-scheduler")),
		clusterRoleBinding("system:monitoring", groups("system:monitoring")),
		clusterRoleBinding("system:node", nil),
		clusterRoleBinding("system:node-proxier", users("system:kube-proxy")),
		clusterRoleBinding("system:public-info-viewer", groups("system:authenticated", "system:unauthenticated")),
		clusterRoleBinding("system:service-account-issuer-discovery", groups("system:serviceaccounts")),
		clusterRoleBinding("system:volume-scheduler", users("system:kube-scheduler")),
	}
}

// NamespaceRoles are the default Roles, by namespace.
func NamespaceRoles() map[string][]rbacv1.Role {
	role := func(ns, name string, r ...*ruleBuilder) rbacv1.Role {
		return rbacv1.Role{ObjectMeta: defaultMetadata(name, ns, nil), Rules: rules(r...)}
	}
	leaderLocking := func(name string) rbacv1.Role {
		return role(systemNamespace, name,
			newRule("watch", "list", "get", "create", "update").groups(coordinationGroup).resources("leases"),
			newRule("watch", "list", "get", "create", "update").groups(coordinationGroup).resources("leasecandidates"))
	}
	return map[string][]rbacv1.Role{
		publicNamespace: {
			role(publicNamespace, "system:controller:bootstrap-signer",
				newRule(read...).groups(legacyGroup).resources("configmaps"),
				newRule("update").groups(legacyGroup).resources("configmaps").names("cluster-info"),
				eventsRule()),
		},
		systemNamespace: {
			// lets extension API servers read the client CA they authenticate requests with
			role(systemNamespace, "extension-apiserver-authentication-reader",
				newRule(read...).groups(legacyGroup).resources("configmaps").names("extension-apiserver-authentication")),
			leaderLocking("system::leader-locking-kube-controller-manager"),
			leaderLocking("system::leader-locking-kube-scheduler"),
			role(systemNamespace, "system:controller:bootstrap-signer",
				newRule(read...).groups(legacyGroup).resources("secrets")),
			role(systemNamespace, "system:controller:cloud-provider",
				newRule("create", "get", "list", "watch").groups(legacyGroup).resources("configmaps")),
			role(systemNamespace, "system:controller:token-cleaner",
				newRule("delete", "get", "list", "watch").groups(legacyGroup).resources("secrets"),
				eventsRule()),
		},
	}
}

// NamespaceRoleBindings are the default RoleBindings, by namespace.
func NamespaceRoleBindings() map[string][]rbacv1.RoleBinding {
	binding := func(ns, name, role string, subjects ...rbacv1.Subject) rbacv1.RoleBinding {
		return rbacv1.RoleBinding{
			ObjectMeta: defaultMetadata(name, ns, nil),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "Role", Name: role},
			Subjects:   subjects,
		}
	}
	controller := func(ns, name string) rbacv1.RoleBinding {
		return binding(ns, "system:controller:"+name, "system:controller:"+name, serviceAccount(systemNamespace, name))
	}
	return map[string][]rbacv1.RoleBinding{
		publicNamespace: {controller(publicNamespace, "bootstrap-signer")},
		systemNamespace: {
			binding(systemNamespace, "system::extension-apiserver-authentication-reader", "extension-apiserver-authentication-reader",
				users("system:kube-controller-manager", "system:kube-scheduler")...),
			binding(systemNamespace, "system::leader-locking-kube-controller-manager", "system::leader-locking-kube-controller-manager",
				append(users("system:kube-controller-manager"), serviceAccount(systemNamespace, "kube-controller-manager"), serviceAccount(systemNamespace, "leader-election-controller"))...),
			binding(systemNamespace, "system::leader-locking-kube-scheduler", "system::leader-locking-kube-scheduler",
				append(users("system:kube-scheduler"), serviceAccount(systemNamespace, "kube-scheduler"))...),
			controller(systemNamespace, "bootstrap-signer"),
			controller(systemNamespace, "cloud-provider"),
			controller(systemNamespace, "token-cleaner"),
		},
	}
}
