// Package node is the Node authorization mode: a kubelet, user system:node:NAME in group
// system:nodes, may read only the Secrets, ConfigMaps, PersistentVolumeClaims (and their bound
// PersistentVolumes) and resource claims referenced by pods bound to NAME and the
// VolumeAttachments for NAME; request tokens only for those pods' service accounts; read only
// its own Node and Lease; and list pods only with the field selector spec.nodeName=NAME.
// Everything else a kubelet needs comes from the static node rules (upstream's system:node
// ClusterRole), which upstream binds to nobody: this mode is how kubelets get them.
//
// The mode keeps a graph of what each node's pods reference, fed by the caller with pods,
// claims and attachments as they change; it never reads storage. It has no opinion on
// requests from non-nodes, and never denies: a refused kubelet request falls through to the
// next mode.
package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
	"github.com/skiff-dev/skiff/apiserver/authz/rbac"
)

const (
	// NodesGroup is the group every kubelet's user is in.
	NodesGroup = "system:nodes"
	// NodeUserNamePrefix starts every kubelet's user name, system:node:NAME.
	NodeUserNamePrefix = "system:node:"
)

// Authorizer is the Node mode.
type Authorizer struct {
	nodeRules []rbacv1.PolicyRule

	mu sync.RWMutex
	// pods records, per bound pod, what it gave its node, so an update or delete can take it
	// back.
	pods map[namespacedName]podRecord
	// refs counts, per node, the pods that reference each object.
	refs map[string]map[objectRef]int
	// claimVolumes is the PersistentVolume each bound claim holds, and volumeClaims the claims
	// holding each volume.
	claimVolumes map[namespacedName]string
	volumeClaims map[string]map[namespacedName]bool
	// attachmentNodes is the node of each VolumeAttachment.
	attachmentNodes map[string]string
}

var _ authz.Authorizer = (*Authorizer)(nil)

// New returns the Node mode with nodeRules, what a kubelet may do beyond the objects the mode
// subdivides (bootstrap.NodeRules(), upstream's system:node rules).
func New(nodeRules []rbacv1.PolicyRule) *Authorizer {
	return &Authorizer{
		nodeRules:       nodeRules,
		pods:            map[namespacedName]podRecord{},
		refs:            map[string]map[objectRef]int{},
		claimVolumes:    map[namespacedName]string{},
		volumeClaims:    map[string]map[namespacedName]bool{},
		attachmentNodes: map[string]string{},
	}
}

// SetPod records a pod as it now is: a pod bound to a node gives that node its references; an
// unbound pod gives nothing. Call it for every added and updated pod.
func (r *Authorizer) SetPod(pod *corev1.Pod) {
	key := namespacedName{pod.Namespace, pod.Name}
	var rec podRecord
	if pod.Spec.NodeName != "" {
		rec = podRecord{node: pod.Spec.NodeName, refs: podRefs(pod)}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgetPodLocked(key)
	if rec.node == "" {
		return
	}
	r.pods[key] = rec
	counts := r.refs[rec.node]
	if counts == nil {
		counts = map[objectRef]int{}
		r.refs[rec.node] = counts
	}
	for _, ref := range rec.refs {
		counts[ref]++
	}
}

// DeletePod forgets the pod namespace/name.
func (r *Authorizer) DeletePod(namespace, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgetPodLocked(namespacedName{namespace, name})
}

func (r *Authorizer) forgetPodLocked(key namespacedName) {
	rec, ok := r.pods[key]
	if !ok {
		return
	}
	delete(r.pods, key)
	counts := r.refs[rec.node]
	for _, ref := range rec.refs {
		if counts[ref]--; counts[ref] <= 0 {
			delete(counts, ref)
		}
	}
	if len(counts) == 0 {
		delete(r.refs, rec.node)
	}
}

// SetPersistentVolumeClaim records the volume a claim is bound to, so that a node whose pods use
// the claim may get that PersistentVolume. Call it for every added and updated claim.
func (r *Authorizer) SetPersistentVolumeClaim(pvc *corev1.PersistentVolumeClaim) {
	key := namespacedName{pvc.Namespace, pvc.Name}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgetClaimLocked(key)
	if pv := pvc.Spec.VolumeName; pv != "" {
		r.claimVolumes[key] = pv
		if r.volumeClaims[pv] == nil {
			r.volumeClaims[pv] = map[namespacedName]bool{}
		}
		r.volumeClaims[pv][key] = true
	}
}

// DeletePersistentVolumeClaim forgets the claim namespace/name.
func (r *Authorizer) DeletePersistentVolumeClaim(namespace, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgetClaimLocked(namespacedName{namespace, name})
}

func (r *Authorizer) forgetClaimLocked(key namespacedName) {
	pv, ok := r.claimVolumes[key]
	if !ok {
		return
	}
	delete(r.claimVolumes, key)
	delete(r.volumeClaims[pv], key)
	if len(r.volumeClaims[pv]) == 0 {
		delete(r.volumeClaims, pv)
	}
}

// SetVolumeAttachment records the node a VolumeAttachment is for, which may then get it.
func (r *Authorizer) SetVolumeAttachment(va *storagev1.VolumeAttachment) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attachmentNodes[va.Name] = va.Spec.NodeName
}

// DeleteVolumeAttachment forgets the VolumeAttachment name.
func (r *Authorizer) DeleteVolumeAttachment(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.attachmentNodes, name)
}

// EventHandler feeds the mode from pod, PersistentVolumeClaim and VolumeAttachment informers:
// add it to each.
func (r *Authorizer) EventHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.setObject(obj) },
		UpdateFunc: func(_, obj any) { r.setObject(obj) },
		DeleteFunc: func(obj any) { r.deleteObject(obj) },
	}
}

func (r *Authorizer) setObject(obj any) {
	switch o := obj.(type) {
	case *corev1.Pod:
		r.SetPod(o)
	case *corev1.PersistentVolumeClaim:
		r.SetPersistentVolumeClaim(o)
	case *storagev1.VolumeAttachment:
		r.SetVolumeAttachment(o)
	}
}

func (r *Authorizer) deleteObject(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		r.DeletePod(o.Namespace, o.Name)
	case *corev1.PersistentVolumeClaim:
		r.DeletePersistentVolumeClaim(o.Namespace, o.Name)
	case *storagev1.VolumeAttachment:
		r.DeleteVolumeAttachment(o.Name)
	}
}

// nodeName returns the node a user is the kubelet of, and whether the user is a node at all.
func nodeName(u authn.User) (string, bool) {
	if !strings.HasPrefix(u.Name, NodeUserNamePrefix) {
		return "", false
	}
	for _, g := range u.Groups {
		if g == NodesGroup {
			return strings.TrimPrefix(u.Name, NodeUserNamePrefix), true
		}
	}
	return "", false
}

// RulesFor cannot enumerate a node's rights (they depend on its pods), so for a node it says
// so, as upstream; for anyone else it lists nothing.
func (r *Authorizer) RulesFor(_ context.Context, user authn.User, _ string) (authz.Rules, error) {
	if _, isNode := nodeName(user); isNode {
		return authz.Rules{Incomplete: true}, errors.New("node authorizer does not support user rule resolution")
	}
	return authz.Rules{}, nil
}

// Authorize decides a kubelet's request; reasons are upstream's.
func (r *Authorizer) Authorize(_ context.Context, a authz.Attributes) (authz.Decision, string, error) {
	node, isNode := nodeName(a.User)
	if !isNode {
		return authz.DecisionNoOpinion, "", nil
	}
	if node == "" {
		return authz.DecisionNoOpinion, fmt.Sprintf("unknown node for user %q", a.User.Name), nil
	}
	if a.ResourceRequest {
		switch a.APIGroup + "/" + a.Resource {
		case "/secrets":
			return r.authorizeReadNamespaced(node, secretKind, a)
		case "/configmaps":
			return r.authorizeReadNamespaced(node, configMapKind, a)
		case "/persistentvolumeclaims":
			if a.Subresource == "status" {
				return r.authorizeStatusUpdate(node, pvcKind, a)
			}
			return r.authorizeGet(node, pvcKind, a)
		case "/persistentvolumes":
			return r.authorizeGet(node, pvKind, a)
		case "storage.k8s.io/volumeattachments":
			return r.authorizeGet(node, volumeAttachmentKind, a)
		case "resource.k8s.io/resourceclaims":
			return r.authorizeGet(node, resourceClaimKind, a)
		case "/serviceaccounts":
			return r.authorizeCreateToken(node, a)
		case "coordination.k8s.io/leases":
			return authorizeOwnObject(node, a, "can only get, create, update, patch, or delete a node lease", func() (string, bool) {
				if a.Namespace != corev1.NamespaceNodeLease {
					return fmt.Sprintf("can only access leases in the %q system namespace", corev1.NamespaceNodeLease), false
				}
				return "can only access node lease with the same name as the requesting node", true
			})
		case "storage.k8s.io/csinodes":
			return authorizeOwnObject(node, a, "can only get, create, update, patch, or delete a CSINode", func() (string, bool) {
				if a.Subresource != "" {
					return "cannot authorize CSINode subresources", false
				}
				return "can only access CSINode with the same name as the requesting node", true
			})
		case "/nodes":
			return authorizeNode(node, a)
		case "/pods":
			return r.authorizePod(node, a)
		}
	}
	if rbac.RulesAllow(a, r.nodeRules...) {
		return authz.DecisionAllow, "", nil
	}
	return authz.DecisionNoOpinion, "", nil
}

// authorizeOwnObject allows get, create, update, patch and delete of the object named after the
// node (create by any name: the NodeRestriction admission checks the name then). check returns
// the refusal for a wrong name and whether the request is otherwise in scope.
func authorizeOwnObject(node string, a authz.Attributes, verbReason string, check func() (string, bool)) (authz.Decision, string, error) {
	switch a.Verb {
	case "get", "create", "update", "patch", "delete":
	default:
		return authz.DecisionNoOpinion, verbReason, nil
	}
	nameReason, inScope := check()
	if !inScope {
		return authz.DecisionNoOpinion, nameReason, nil
	}
	if a.Verb != "create" && a.Name != node {
		return authz.DecisionNoOpinion, nameReason, nil
	}
	return authz.DecisionAllow, "", nil
}

func (r *Authorizer) authorizeReadNamespaced(node string, k kind, a authz.Attributes) (authz.Decision, string, error) {
	switch a.Verb {
	case "get", "list", "watch":
	default:
		return authz.DecisionNoOpinion, "can only read resources of this type", nil
	}
	if a.Subresource != "" {
		return authz.DecisionNoOpinion, "cannot read subresource", nil
	}
	if a.Namespace == "" {
		return authz.DecisionNoOpinion, "can only read namespaced object of this type", nil
	}
	return r.authorizeRelated(node, k, a)
}

func (r *Authorizer) authorizeGet(node string, k kind, a authz.Attributes) (authz.Decision, string, error) {
	if a.Verb != "get" {
		return authz.DecisionNoOpinion, "can only get individual resources of this type", nil
	}
	if a.Subresource != "" {
		return authz.DecisionNoOpinion, "cannot get subresource", nil
	}
	return r.authorizeRelated(node, k, a)
}

func (r *Authorizer) authorizeStatusUpdate(node string, k kind, a authz.Attributes) (authz.Decision, string, error) {
	if a.Verb != "update" && a.Verb != "patch" {
		return authz.DecisionNoOpinion, "can only get/update/patch this type", nil
	}
	return r.authorizeRelated(node, k, a)
}

func (r *Authorizer) authorizeCreateToken(node string, a authz.Attributes) (authz.Decision, string, error) {
	if a.Verb == "get" && a.Subresource == "" && a.Name != "" {
		// upstream: a kubelet reads the service accounts of its pods (their UIDs go into
		// PodCertificateRequests and credential provider tokens)
		return r.authorizeRelated(node, serviceAccountKind, a)
	}
	if a.Verb != "create" || a.Name == "" {
		return authz.DecisionNoOpinion, "can only create tokens for individual service accounts", nil
	}
	if a.Subresource != "token" {
		return authz.DecisionNoOpinion, "can only create token subresource of serviceaccount", nil
	}
	return r.authorizeRelated(node, serviceAccountKind, a)
}

// authorizeNode lets a kubelet read only its own Node (by name, before it exists too), and
// write Nodes and their status (NodeRestriction limits that to its own).
func authorizeNode(node string, a authz.Attributes) (authz.Decision, string, error) {
	switch a.Subresource {
	case "":
		switch a.Verb {
		case "create", "update", "patch":
			return authz.DecisionAllow, "", nil
		case "get", "list", "watch":
			switch a.Name {
			case node:
				return authz.DecisionAllow, "", nil
			case "":
				return authz.DecisionNoOpinion, fmt.Sprintf("node '%s' cannot read all nodes, only its own Node object", node), nil
			default:
				return authz.DecisionNoOpinion, fmt.Sprintf("node '%s' cannot read '%s', only its own Node object", node, a.Name), nil
			}
		}
	case "status":
		if a.Verb == "update" || a.Verb == "patch" {
			return authz.DecisionAllow, "", nil
		}
	}
	return authz.DecisionNoOpinion, "", nil
}

// authorizePod lets a kubelet get its pods, list and watch them by spec.nodeName, create and
// delete (mirror) pods, write pod status and evict (NodeRestriction limits those to its own).
func (r *Authorizer) authorizePod(node string, a authz.Attributes) (authz.Decision, string, error) {
	switch a.Subresource {
	case "":
		switch a.Verb {
		case "get":
			return r.authorizeGet(node, podKind, a)
		case "list", "watch":
			for _, req := range a.FieldSelector {
				if req.Field == "spec.nodeName" && (req.Operator == selection.Equals || req.Operator == selection.DoubleEquals) && req.Value == node {
					return authz.DecisionAllow, "", nil
				}
			}
			if a.Name != "" {
				return r.authorizeRelated(node, podKind, a)
			}
			return authz.DecisionNoOpinion, "can only list/watch pods with spec.nodeName field selector", nil
		case "create", "delete":
			return authz.DecisionAllow, "", nil
		}
	case "status":
		if a.Verb == "update" || a.Verb == "patch" {
			return authz.DecisionAllow, "", nil
		}
	case "eviction":
		if a.Verb == "create" {
			return authz.DecisionAllow, "", nil
		}
	}
	return authz.DecisionNoOpinion, "", nil
}

// authorizeRelated allows the request when the named object is referenced by a pod bound to
// node.
func (r *Authorizer) authorizeRelated(node string, k kind, a authz.Attributes) (authz.Decision, string, error) {
	if a.Name == "" {
		return authz.DecisionNoOpinion, "No Object name found", nil
	}
	if !r.related(node, objectRef{kind: k, namespace: a.Namespace, name: a.Name}) {
		return authz.DecisionNoOpinion, fmt.Sprintf("no relationship found between node '%s' and this object", node), nil
	}
	return authz.DecisionAllow, "", nil
}

func (r *Authorizer) related(node string, ref objectRef) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	counts := r.refs[node]
	switch ref.kind {
	case volumeAttachmentKind:
		return r.attachmentNodes[ref.name] == node
	case pvKind:
	default:
		return counts[ref] > 0
	}
	for claim := range r.volumeClaims[ref.name] {
		if counts[objectRef{kind: pvcKind, namespace: claim.namespace, name: claim.name}] > 0 {
			return true
		}
	}
	return false
}
