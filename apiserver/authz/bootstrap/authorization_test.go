package bootstrap

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
	"github.com/skiff-dev/skiff/apiserver/authz/node"
	"github.com/skiff-dev/skiff/apiserver/authz/rbac"
	"github.com/skiff-dev/skiff/controllers/clusterroleaggregation"
)

// defaultChain is the server's authorization as upstream configures it with
// --authorization-mode=Node,RBAC over the default policy: system:masters first, then the Node
// mode, then RBAC. In namespace "team" bob edits, carol views and dave administers, through
// the aggregated edit, view and admin roles; pod "web" runs on node n1 with secret "db".
func defaultChain(t *testing.T) authz.Authorizer {
	t.Helper()
	p := DefaultPolicy()
	// what the aggregation controller does: view feeds edit, edit feeds admin
	for range 3 {
		for _, r := range p.ClusterRoles {
			rules, err := clusterroleaggregation.AggregatedRules(r, func(s labels.Selector) ([]*rbacv1.ClusterRole, error) {
				var out []*rbacv1.ClusterRole
				for _, c := range p.ClusterRoles {
					if s.Matches(labels.Set(c.Labels)) {
						out = append(out, c)
					}
				}
				return out, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.AggregationRule != nil {
				r.Rules = rules
			}
		}
	}
	for user, role := range map[string]string{"bob": "edit", "carol": "view", "dave": "admin"} {
		p.RoleBindings = append(p.RoleBindings, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: user}},
		})
	}
	nodes := node.New(NodeRules())
	nodes.SetPod(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: corev1.PodSpec{NodeName: "n1", ServiceAccountName: "web", Volumes: []corev1.Volume{
			{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db"}}},
		}},
	})
	return authz.Union{authz.PrivilegedGroups{authn.SystemPrivilegedGroup}, nodes, rbac.New(p)}
}

func authenticated(name string, groups ...string) authn.User {
	return authn.User{Name: name, Groups: append(groups, authn.AllAuthenticated)}
}

func serviceAccountUser(ns, name string) authn.User {
	return authenticated("system:serviceaccount:"+ns+":"+name, "system:serviceaccounts", "system:serviceaccounts:"+ns)
}

var (
	anonymous    = authn.User{Name: authn.Anonymous, Groups: []string{authn.AllUnauthenticated}}
	alice        = authenticated("alice")
	admin        = authenticated("admin", authn.SystemPrivilegedGroup)
	scheduler    = authenticated("system:kube-scheduler")
	ctrlManager  = authenticated("system:kube-controller-manager")
	proxy        = authenticated("system:kube-proxy")
	kubelet1     = authenticated("system:node:n1", "system:nodes")
	kubelet2     = authenticated("system:node:n2", "system:nodes")
	monitor      = authenticated("prometheus", "system:monitoring")
	rsController = serviceAccountUser("kube-system", "replicaset-controller")
	gcController = serviceAccountUser("kube-system", "generic-garbage-collector")
	nsController = serviceAccountUser("kube-system", "namespace-controller")
	teamDefault  = serviceAccountUser("team", "default")
	bob          = authenticated("bob")
	carol        = authenticated("carol")
	dave         = authenticated("dave")
)

type access struct {
	user                                       authn.User
	verb, group, resource, sub, ns, name, path string
	allowed                                    bool
}

func res(u authn.User, verb, group, resource, sub, ns, name string, allowed bool) access {
	return access{user: u, verb: verb, group: group, resource: resource, sub: sub, ns: ns, name: name, allowed: allowed}
}

func url(u authn.User, verb, path string, allowed bool) access {
	return access{user: u, verb: verb, path: path, allowed: allowed}
}

func TestDefaultPolicyAuthorizationMatrix(t *testing.T) {
	chain := defaultChain(t)
	for _, c := range []access{
		// anonymous: only the public information
		url(anonymous, "get", "/healthz", true),
		url(anonymous, "get", "/readyz", true),
		url(anonymous, "get", "/version", true),
		url(anonymous, "get", "/api", false),
		url(anonymous, "get", "/metrics", false),
		res(anonymous, "create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", "", false),
		res(anonymous, "list", "", "pods", "", "default", "", false),
		// any authenticated user: discovery and questions about itself
		url(alice, "get", "/api", true),
		url(alice, "get", "/apis/apps/v1", true),
		url(alice, "get", "/openapi/v3", true),
		url(alice, "get", "/metrics", false),
		url(alice, "get", "/.well-known/openid-configuration", false),
		res(alice, "create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", "", true),
		res(alice, "create", "authorization.k8s.io", "selfsubjectrulesreviews", "", "", "", true),
		res(alice, "create", "authentication.k8s.io", "selfsubjectreviews", "", "", "", true),
		res(alice, "create", "authorization.k8s.io", "subjectaccessreviews", "", "", "", false),
		res(alice, "list", "", "pods", "", "default", "", false),
		res(alice, "get", "", "secrets", "", "team", "db", false),
		// system:monitoring
		url(monitor, "get", "/metrics", true),
		url(monitor, "get", "/livez/etcd", true),
		url(monitor, "post", "/metrics", false),
		// system:masters may do anything
		res(admin, "delete", "", "nodes", "", "", "n1", true),
		res(admin, "escalate", rbacv1.GroupName, "clusterroles", "", "", "x", true),
		url(admin, "post", "/anything", true),
		// the scheduler
		res(scheduler, "create", "", "pods", "binding", "team", "p", true),
		res(scheduler, "create", "", "bindings", "", "team", "", true),
		res(scheduler, "patch", "", "pods", "status", "team", "p", true),
		res(scheduler, "watch", "", "nodes", "", "", "", true),
		res(scheduler, "update", "coordination.k8s.io", "leases", "", "kube-system", "kube-scheduler", true),
		res(scheduler, "update", "", "persistentvolumes", "", "", "pv", true),
		res(scheduler, "list", "storage.k8s.io", "csinodes", "", "", "", true),
		res(scheduler, "get", "", "configmaps", "", "kube-system", "extension-apiserver-authentication", true),
		res(scheduler, "get", "", "configmaps", "", "kube-system", "other", false),
		res(scheduler, "delete", "", "nodes", "", "", "n1", false),
		res(scheduler, "get", "", "secrets", "", "team", "db", false),
		// the controller manager's own identity
		res(ctrlManager, "list", "", "secrets", "", "", "", true),
		res(ctrlManager, "watch", "apps", "deployments", "", "", "", true),
		res(ctrlManager, "create", "", "serviceaccounts", "token", "kube-system", "replicaset-controller", true),
		res(ctrlManager, "update", "coordination.k8s.io", "leases", "", "kube-system", "kube-controller-manager", true),
		res(ctrlManager, "delete", "", "pods", "", "team", "p", false),
		// the proxy
		res(proxy, "list", "discovery.k8s.io", "endpointslices", "", "", "", true),
		res(proxy, "watch", "", "services", "", "", "", true),
		res(proxy, "get", "", "nodes", "", "", "n1", true),
		res(proxy, "create", "events.k8s.io", "events", "", "default", "", true),
		res(proxy, "delete", "", "services", "", "default", "s", false),
		// kubelets: their pods' objects, their own node and lease
		res(kubelet1, "get", "", "secrets", "", "shop", "db", true),
		res(kubelet1, "create", "", "serviceaccounts", "token", "shop", "web", true),
		res(kubelet2, "get", "", "secrets", "", "shop", "db", false),
		res(kubelet1, "get", "", "secrets", "", "other", "db", false),
		res(kubelet1, "list", "", "secrets", "", "", "", false),
		res(kubelet1, "list", "", "services", "", "", "", true),
		res(kubelet1, "create", "", "nodes", "", "", "", true),
		res(kubelet1, "get", "", "nodes", "", "", "n1", true),
		res(kubelet1, "list", "", "nodes", "", "", "", false),
		res(kubelet1, "update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n1", true),
		res(kubelet1, "update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n2", false),
		res(kubelet1, "create", "certificates.k8s.io", "certificatesigningrequests", "", "", "", true),
		res(kubelet1, "create", "", "events", "", "shop", "", true),
		res(kubelet1, "get", "", "endpoints", "", "shop", "e", true),
		res(kubelet1, "delete", "apps", "deployments", "", "shop", "d", false),
		// controllers, each as its service account
		res(rsController, "update", "apps", "replicasets", "status", "team", "rs", true),
		res(rsController, "create", "", "pods", "", "team", "", true),
		res(rsController, "delete", "", "pods", "", "team", "p", true),
		res(rsController, "list", "apps", "replicasets", "", "", "", true),
		res(rsController, "get", "", "secrets", "", "team", "db", false),
		res(rsController, "update", "apps", "deployments", "", "team", "d", false),
		res(gcController, "delete", "apps", "deployments", "", "team", "d", true),
		res(gcController, "patch", "example.com", "widgets", "", "team", "w", true),
		res(gcController, "create", "", "pods", "", "team", "", false),
		res(nsController, "deletecollection", "", "configmaps", "", "team", "", true),
		res(nsController, "update", "", "namespaces", "finalize", "", "team", true),
		res(nsController, "create", "", "configmaps", "", "team", "", false),
		// any service account: the issuer's discovery, nothing in its namespace
		url(teamDefault, "get", "/.well-known/openid-configuration", true),
		url(teamDefault, "get", "/openid/v1/jwks", true),
		res(teamDefault, "list", "", "pods", "", "team", "", false),
		// edit in team
		res(bob, "create", "apps", "deployments", "", "team", "", true),
		res(bob, "get", "", "secrets", "", "team", "db", true),
		res(bob, "create", "", "pods", "exec", "team", "p", true),
		res(bob, "impersonate", "", "serviceaccounts", "", "team", "default", true),
		res(bob, "update", "coordination.k8s.io", "leases", "", "team", "l", true),
		res(bob, "list", "", "pods", "", "other", "", false),
		res(bob, "create", rbacv1.GroupName, "roles", "", "team", "", false),
		res(bob, "update", "", "resourcequotas", "", "team", "q", false),
		res(bob, "list", "", "pods", "", "", "", false),
		// view in team
		res(carol, "list", "", "pods", "", "team", "", true),
		res(carol, "get", "", "pods", "log", "team", "p", true),
		res(carol, "watch", "apps", "deployments", "", "team", "", true),
		res(carol, "get", "", "namespaces", "", "team", "team", true),
		res(carol, "get", "", "secrets", "", "team", "db", false),
		res(carol, "create", "", "pods", "", "team", "", false),
		res(carol, "get", "", "pods", "exec", "team", "p", false),
		// admin in team
		res(dave, "create", rbacv1.GroupName, "roles", "", "team", "", true),
		res(dave, "create", rbacv1.GroupName, "rolebindings", "", "team", "", true),
		res(dave, "create", "authorization.k8s.io", "localsubjectaccessreviews", "", "team", "", true),
		res(dave, "delete", "", "secrets", "", "team", "db", true),
		res(dave, "update", "", "resourcequotas", "", "team", "q", false),
		res(dave, "delete", "", "namespaces", "", "", "team", false),
	} {
		name := fmt.Sprintf("%s %s %s/%s/%s %s/%s%s", c.user.Name, c.verb, c.group, c.resource, c.sub, c.ns, c.name, c.path)
		a := authz.Attributes{User: c.user, Verb: c.verb, ResourceRequest: c.path == "", APIGroup: c.group, APIVersion: "v1",
			Resource: c.resource, Subresource: c.sub, Namespace: c.ns, Name: c.name, Path: c.path}
		d, reason, err := chain.Authorize(context.Background(), a)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if got := d == authz.DecisionAllow; got != c.allowed {
			t.Errorf("%s: allowed = %v, want %v (%s)", name, got, c.allowed, reason)
		}
	}
}
