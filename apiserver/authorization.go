package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
	"github.com/skiff-dev/skiff/apiserver/authz/bootstrap"
	"github.com/skiff-dev/skiff/apiserver/authz/node"
	"github.com/skiff-dev/skiff/apiserver/authz/rbac"
	"github.com/skiff-dev/skiff/registry"
)

// DefaultAuthorizationModes are the modes a server runs when Config.AuthorizationModes is
// empty: the Node authorizer, then RBAC, as kubeadm's clusters run.
var DefaultAuthorizationModes = []string{authz.ModeNode, authz.ModeRBAC}

// authorization is the server's authorization stage: the modes in --authorization-mode order
// after system:masters, the RBAC mode's escalation checks, and the informers that feed the
// RBAC and Node modes from the server's own watch caches.
type authorization struct {
	chain authz.Union
	// rbac is the RBAC mode, present even when the chain does not use it, since escalation
	// checks resolve the rules a user holds through it, as upstream's RBAC storage does.
	rbac       *rbac.Authorizer
	escalation rbac.EscalationCheck
	// informers feed the modes; they start with the server and must sync before it serves.
	informers []cache.SharedIndexInformer
}

// newAuthorization builds the chain of modes, reading roles and bindings, pods and claims
// from the server's registry stores.
func (s *Server) newAuthorization(modes []string) (*authorization, error) {
	if err := authz.ValidateModes(modes); err != nil {
		return nil, err
	}
	a := &authorization{}
	roles := s.storeInformer(rbacv1.SchemeGroupVersion, "roles", &rbacv1.Role{})
	roleBindings := s.storeInformer(rbacv1.SchemeGroupVersion, "rolebindings", &rbacv1.RoleBinding{})
	clusterRoles := s.storeInformer(rbacv1.SchemeGroupVersion, "clusterroles", &rbacv1.ClusterRole{})
	clusterRoleBindings := s.storeInformer(rbacv1.SchemeGroupVersion, "clusterrolebindings", &rbacv1.ClusterRoleBinding{})
	a.informers = append(a.informers, roles, roleBindings, clusterRoles, clusterRoleBindings)
	policy := rbac.NewBindingSnapshots(rbac.Listers{
		Roles:               rbaclisters.NewRoleLister(roles.GetIndexer()),
		RoleBindings:        rbaclisters.NewRoleBindingLister(roleBindings.GetIndexer()),
		ClusterRoles:        rbaclisters.NewClusterRoleLister(clusterRoles.GetIndexer()),
		ClusterRoleBindings: rbaclisters.NewClusterRoleBindingLister(clusterRoleBindings.GetIndexer()),
	})
	if _, err := roleBindings.AddEventHandler(policy.RoleBindingHandler()); err != nil {
		return nil, err
	}
	if _, err := clusterRoleBindings.AddEventHandler(policy.ClusterRoleBindingHandler()); err != nil {
		return nil, err
	}
	a.rbac = rbac.New(policy)
	// upstream always lets system:masters through first, so that a broken policy never locks
	// out the admin or the server's own loopback client
	a.chain = authz.Union{authz.PrivilegedGroups{authn.SystemPrivilegedGroup}}
	for _, m := range modes {
		switch m {
		case authz.ModeNode:
			// the graph of what each node may read: its pods, their claims and the volumes
			// bound to those, and its volume attachments
			nodeMode := node.New(bootstrap.NodeRules())
			for _, inf := range []cache.SharedIndexInformer{
				s.storeInformer(corev1.SchemeGroupVersion, "pods", &corev1.Pod{}),
				s.storeInformer(corev1.SchemeGroupVersion, "persistentvolumeclaims", &corev1.PersistentVolumeClaim{}),
				s.storeInformer(storagev1.SchemeGroupVersion, "volumeattachments", &storagev1.VolumeAttachment{}),
			} {
				if _, err := inf.AddEventHandler(nodeMode.EventHandler()); err != nil {
					return nil, err
				}
				a.informers = append(a.informers, inf)
			}
			a.chain = append(a.chain, nodeMode)
		case authz.ModeRBAC:
			a.chain = append(a.chain, a.rbac)
		case authz.ModeAlwaysAllow:
			a.chain = append(a.chain, authz.AlwaysAllow{})
		case authz.ModeAlwaysDeny:
			a.chain = append(a.chain, authz.AlwaysDeny{})
		default: // ABAC, Webhook
			return nil, fmt.Errorf("authorization-mode %q is not supported by skiff; use %s, %s, %s or %s",
				m, authz.ModeNode, authz.ModeRBAC, authz.ModeAlwaysAllow, authz.ModeAlwaysDeny)
		}
	}
	a.escalation = rbac.EscalationCheck{Authorizer: a.chain, RBAC: a.rbac}
	return a, nil
}

// run starts the informers and waits until they have synced, or ctx is done.
func (a *authorization) run(ctx context.Context) error {
	synced := make([]cache.InformerSynced, 0, len(a.informers))
	for _, inf := range a.informers {
		go inf.RunWithContext(ctx)
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("authorization: caches of roles, bindings and pods did not sync: %w", ctx.Err())
	}
	return nil
}

// authorizationAttributes are what the authorizers know of a request: who (nobody, in no
// group, when the request carries no user), what, and on list and watch the field selector.
func authorizationAttributes(user *authn.User, ri *requestInfo, query func(string) string) authz.Attributes {
	if user == nil {
		user = &authn.User{}
	}
	a := authz.Attributes{
		User: *user, Verb: ri.Verb, ResourceRequest: ri.IsResourceRequest,
		APIGroup: ri.APIGroup, APIVersion: ri.APIVersion, Resource: ri.Resource, Subresource: ri.Subresource,
		Namespace: ri.Namespace, Name: ri.Name, Path: ri.Path,
	}
	if ri.IsResourceRequest && (ri.Verb == "list" || ri.Verb == "watch") {
		if raw := query("fieldSelector"); raw != "" {
			if sel, err := fields.ParseSelector(raw); err == nil {
				a.FieldSelector = sel.Requirements()
				// a list or watch of one object by name is authorized as that name, as
				// upstream's request info reads it, so that a role limited to resourceNames
				// lets its holder watch just that object (extension servers watch their
				// extension-apiserver-authentication ConfigMap this way)
				if name, ok := sel.RequiresExactMatch("metadata.name"); ok && a.Name == "" && len(path.IsValidPathSegmentName(name)) == 0 {
					a.Name = name
				}
			}
		}
	}
	return a
}

// storeInformer is an informer of a built-in resource fed straight from its registry store
// (the watch cache), never over the network. Its watch hands it the cache's own objects
// (registry.ListOptions.ReadOnly), so that its store costs no copy of them: its users only
// read what it holds (the node authorizer's graph, RBAC, webhooks, priority and fairness), and
// copy an object before changing it.
func (s *Server) storeInformer(gv schema.GroupVersion, resource string, example runtime.Object) cache.SharedIndexInformer {
	store := s.builtinStore(gv, resource)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return store.List(ctx, "", registry.ListOptions{ResourceVersion: opts.ResourceVersion, ResourceVersionMatch: opts.ResourceVersionMatch,
				Limit: opts.Limit, Continue: opts.Continue})
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return store.Watch(ctx, "", registry.ListOptions{ResourceVersion: opts.ResourceVersion, ResourceVersionMatch: opts.ResourceVersionMatch,
				AllowWatchBookmarks: opts.AllowWatchBookmarks, SendInitialEvents: opts.SendInitialEvents, ReadOnly: true})
		},
	}
	return cache.NewSharedIndexInformer(lw, example, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// ensureDefaultPolicy reconciles the default policy until it succeeds or ctx is done, as upstream's
// rbac/bootstrap-roles post-start hook retries.
func (s *Server) ensureDefaultPolicy(ctx context.Context) error {
	client, err := kubernetes.NewForConfig(s.loopbackConfig())
	if err != nil {
		return err
	}
	clients := bootstrap.ClientsetClients(client)
	for attempt := 0; ; attempt++ {
		err := errors.Join(bootstrap.EnsurePolicy(ctx, clients), ensureComponentPolicy(ctx, clients))
		if err == nil {
			return nil
		}
		slog.Warn("reconciling the default RBAC policy failed; retrying", "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
