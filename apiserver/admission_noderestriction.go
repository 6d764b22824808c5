package apiserver

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz/node"
)

// NodeRestriction is upstream's admission plugin of that name: a kubelet (system:node:NAME in
// system:nodes) may write only its own Node (not its taints, nor labels outside the kubelet's
// own), its own Lease in kube-node-lease, the status of pods bound to it, mirror pods bound to
// it that reference nothing else, deletes of pods bound to it, and tokens bound to its pods.
// The Node authorizer lets kubelets make these requests at all; this plugin, which sees the
// objects, narrows them to the kubelet's own. Refusals are upstream's words.

// requestingNode is the node whose kubelet sent the request in ctx, if one did.
func requestingNode(ctx context.Context) (string, bool) {
	user, ok := authn.UserFrom(ctx)
	if !ok || !strings.HasPrefix(user.Name, node.NodeUserNamePrefix) || !slices.Contains(user.Groups, node.NodesGroup) {
		return "", false
	}
	return strings.TrimPrefix(user.Name, node.NodeUserNamePrefix), true
}

// nodeForbidden is upstream's admission refusal: 403 on the request's resource and name.
func nodeForbidden(ctx context.Context, name string, err error) error {
	gr := schema.GroupResource{}
	if ri := requestInfoFrom(ctx); ri != nil {
		gr = schema.GroupResource{Group: ri.APIGroup, Resource: ri.Resource}
		if name == "" {
			name = ri.Name
		}
	}
	return apierrors.NewForbidden(gr, name, err)
}

// admitNodeWrite runs NodeRestriction on a create (old nil) or update a kubelet makes.
func (a admission) admitNodeWrite(ctx context.Context, obj, old runtime.Object) error {
	nodeName, isNode := requestingNode(ctx)
	if !isNode || !a.enabled("NodeRestriction") {
		return nil
	}
	ri := requestInfoFrom(ctx)
	sub := ""
	if ri != nil {
		sub = ri.Subresource
	}
	switch o := obj.(type) {
	case *corev1.Node:
		return admitOwnNode(ctx, nodeName, o, old)
	case *coordinationv1.Lease:
		if o.Namespace != corev1.NamespaceNodeLease {
			return nodeForbidden(ctx, o.Name, fmt.Errorf("can only access leases in the %q system namespace", corev1.NamespaceNodeLease))
		}
		if o.Name != nodeName {
			return nodeForbidden(ctx, o.Name, fmt.Errorf("can only access node lease with the same name as the requesting node"))
		}
	case *corev1.Pod:
		if old == nil {
			return admitMirrorPod(ctx, nodeName, o)
		}
		oldPod := old.(*corev1.Pod)
		if sub != "status" {
			return nodeForbidden(ctx, o.Name, fmt.Errorf("unexpected operation %q, node %q can only create and delete mirror pods", "UPDATE", nodeName))
		}
		if oldPod.Spec.NodeName != nodeName {
			return nodeForbidden(ctx, o.Name, fmt.Errorf("node %q can only update pod status for pods with spec.nodeName set to itself", nodeName))
		}
		if !labels.Equals(oldPod.Labels, o.Labels) {
			return nodeForbidden(ctx, o.Name, fmt.Errorf("node %q cannot update labels through pod status", nodeName))
		}
	}
	return nil
}

// admitOwnNode lets a kubelet create and update only its own Node, never its taints nor
// labels outside those kubelets set.
func admitOwnNode(ctx context.Context, nodeName string, n *corev1.Node, old runtime.Object) error {
	if old == nil {
		if n.Spec.ConfigSource != nil {
			return nodeForbidden(ctx, n.Name, fmt.Errorf("node %q is not allowed to create pods with a non-nil configSource", nodeName))
		}
		if forbidden := forbiddenNodeLabels(modifiedLabels(n.Labels, nil), false); len(forbidden) > 0 {
			return nodeForbidden(ctx, n.Name, fmt.Errorf("node %q is not allowed to set the following labels: %s", nodeName, strings.Join(forbidden, ", ")))
		}
	}
	if n.Name != nodeName {
		return nodeForbidden(ctx, n.Name, fmt.Errorf("node %q is not allowed to modify node %q", nodeName, n.Name))
	}
	if old == nil {
		return nil
	}
	oldNode := old.(*corev1.Node)
	if n.Spec.ConfigSource != nil && !apiequality.Semantic.DeepEqual(n.Spec.ConfigSource, oldNode.Spec.ConfigSource) {
		return nodeForbidden(ctx, n.Name, fmt.Errorf("node %q is not allowed to update configSource to a new non-nil configSource", nodeName))
	}
	if !apiequality.Semantic.DeepEqual(n.Spec.Taints, oldNode.Spec.Taints) {
		return nodeForbidden(ctx, n.Name, fmt.Errorf("node %q is not allowed to modify taints", nodeName))
	}
	if forbidden := forbiddenNodeLabels(modifiedLabels(n.Labels, oldNode.Labels), true); len(forbidden) > 0 {
		return nodeForbidden(ctx, n.Name, fmt.Errorf("is not allowed to modify labels: %s", strings.Join(forbidden, ", ")))
	}
	return nil
}

// admitMirrorPod lets a kubelet create only mirror pods bound to itself, owned by nothing but
// its Node, and referencing no service account, secret, config map or claim.
func admitMirrorPod(ctx context.Context, nodeName string, pod *corev1.Pod) error {
	deny := func(format string, args ...any) error {
		return nodeForbidden(ctx, pod.Name, fmt.Errorf(format, args...))
	}
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; !mirror {
		return deny("pod does not have %q annotation, node %q can only create mirror pods", corev1.MirrorPodAnnotationKey, nodeName)
	}
	if pod.Spec.NodeName != nodeName {
		return deny("node %q can only create pods with spec.nodeName set to itself", nodeName)
	}
	if len(pod.OwnerReferences) > 1 {
		return deny("node %q can only create pods with a single owner reference set to itself", nodeName)
	}
	if len(pod.OwnerReferences) == 1 {
		owner := pod.OwnerReferences[0]
		if owner.APIVersion != "v1" || owner.Kind != "Node" || owner.Name != nodeName {
			return deny("node %q can only create pods with an owner reference set to itself", nodeName)
		}
		if owner.Controller == nil || !*owner.Controller {
			return deny("node %q can only create pods with a controller owner reference set to itself", nodeName)
		}
		if owner.BlockOwnerDeletion != nil && *owner.BlockOwnerDeletion {
			return deny("node %q must not set blockOwnerDeletion on an owner reference", nodeName)
		}
	}
	if pod.Spec.ServiceAccountName != "" {
		return deny("node %q can not create pods that reference a service account", nodeName)
	}
	refs := podReferences(pod)
	switch {
	case refs.secrets:
		return deny("node %q can not create pods that reference secrets", nodeName)
	case refs.configMaps:
		return deny("node %q can not create pods that reference configmaps", nodeName)
	case refs.claims:
		return deny("node %q can not create pods that reference persistentvolumeclaims", nodeName)
	}
	return nil
}

// podReferenceKinds says which kinds of objects a pod spec names.
type podReferenceKinds struct{ secrets, configMaps, claims bool }

func podReferences(pod *corev1.Pod) podReferenceKinds {
	var r podReferenceKinds
	r.secrets = len(pod.Spec.ImagePullSecrets) > 0
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.Secret != nil:
			r.secrets = true
		case v.ConfigMap != nil:
			r.configMaps = true
		case v.PersistentVolumeClaim != nil:
			r.claims = true
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				r.secrets = r.secrets || src.Secret != nil
				r.configMaps = r.configMaps || src.ConfigMap != nil
			}
		}
	}
	containers := slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers)
	for _, c := range containers {
		for _, e := range c.EnvFrom {
			r.secrets = r.secrets || e.SecretRef != nil
			r.configMaps = r.configMaps || e.ConfigMapRef != nil
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil {
				r.secrets = r.secrets || e.ValueFrom.SecretKeyRef != nil
				r.configMaps = r.configMaps || e.ValueFrom.ConfigMapKeyRef != nil
			}
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		for _, e := range c.EnvFrom {
			r.secrets = r.secrets || e.SecretRef != nil
			r.configMaps = r.configMaps || e.ConfigMapRef != nil
		}
	}
	return r
}

// admitNodeDelete lets a kubelet delete only pods bound to it, and only its own Node and
// Lease.
func (a admission) admitNodeDelete(ctx context.Context, gr schema.GroupResource, ns, name string) error {
	nodeName, isNode := requestingNode(ctx)
	if !isNode || !a.enabled("NodeRestriction") {
		return nil
	}
	switch gr {
	case schema.GroupResource{Resource: "pods"}:
		if a.pods == nil {
			return nil
		}
		obj, err := a.pods.Get(ctx, ns, name, &metav1.GetOptions{})
		if err != nil {
			return err
		}
		if obj.(*corev1.Pod).Spec.NodeName != nodeName {
			return nodeForbidden(ctx, name, fmt.Errorf("node %q can only delete pods with spec.nodeName set to itself", nodeName))
		}
	case schema.GroupResource{Resource: "nodes"}:
		if name != nodeName {
			return nodeForbidden(ctx, name, fmt.Errorf("node %q is not allowed to modify node %q", nodeName, name))
		}
	case schema.GroupResource{Group: coordinationv1.GroupName, Resource: "leases"}:
		if ns != corev1.NamespaceNodeLease {
			return nodeForbidden(ctx, name, fmt.Errorf("can only access leases in the %q system namespace", corev1.NamespaceNodeLease))
		}
		if name != nodeName {
			return nodeForbidden(ctx, name, fmt.Errorf("can only access node lease with the same name as the requesting node"))
		}
	}
	return nil
}

// admitNodeTokenRequest lets a kubelet request only tokens bound to a pod on its node.
func (a admission) admitNodeTokenRequest(ctx context.Context, ns string, tr *authenticationv1.TokenRequest) error {
	nodeName, isNode := requestingNode(ctx)
	if !isNode || !a.enabled("NodeRestriction") {
		return nil
	}
	ref := tr.Spec.BoundObjectRef
	if ref == nil || ref.APIVersion != "v1" || ref.Kind != "Pod" || ref.Name == "" {
		return nodeForbidden(ctx, "", fmt.Errorf("node requested token not bound to a pod"))
	}
	if ref.UID == "" {
		return nodeForbidden(ctx, "", fmt.Errorf("node requested token with a pod binding without a uid"))
	}
	if a.pods == nil {
		return nil
	}
	obj, err := a.pods.Get(ctx, ns, ref.Name, &metav1.GetOptions{})
	if err != nil {
		return err
	}
	pod := obj.(*corev1.Pod)
	if ref.UID != pod.UID {
		return nodeForbidden(ctx, "", fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", ref.UID, pod.UID))
	}
	if pod.Spec.NodeName != nodeName {
		return nodeForbidden(ctx, "", fmt.Errorf("node requested token bound to a pod scheduled on a different node"))
	}
	return nil
}

// modifiedLabels are the keys whose values differ between two label sets.
func modifiedLabels(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || v != w {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// kubeletLabels are the kubernetes.io labels a kubelet may set on its own Node, and
// kubeletLabelDomains the label domains it owns, as upstream's k8s.io/kubelet lists them.
var (
	kubeletLabels = []string{
		corev1.LabelHostname, corev1.LabelTopologyZone, corev1.LabelTopologyRegion,
		corev1.LabelFailureDomainBetaZone, corev1.LabelFailureDomainBetaRegion,
		corev1.LabelInstanceType, corev1.LabelInstanceTypeStable, corev1.LabelOSStable, corev1.LabelArchStable,
		"beta.kubernetes.io/os", "beta.kubernetes.io/arch",
	}
	kubeletLabelDomains = []string{corev1.LabelNamespaceSuffixKubelet, corev1.LabelNamespaceSuffixNode}
)

// forbiddenNodeLabels are the labels of modified a kubelet may not set: node-restriction
// ones always, and on update unknown kubernetes.io and k8s.io ones.
func forbiddenNodeLabels(modified []string, update bool) []string {
	var out []string
	for _, key := range modified {
		domain, _, found := strings.Cut(key, "/")
		if !found {
			domain = ""
		}
		if inDomain(domain, corev1.LabelNamespaceNodeRestriction) {
			out = append(out, key)
			continue
		}
		if update && (inDomain(domain, "kubernetes.io") || inDomain(domain, "k8s.io")) && !isKubeletLabel(key, domain) {
			out = append(out, key)
		}
	}
	return out
}

func isKubeletLabel(key, domain string) bool {
	if slices.Contains(kubeletLabels, key) {
		return true
	}
	for _, d := range kubeletLabelDomains {
		if inDomain(domain, d) {
			return true
		}
	}
	return false
}

// inDomain says whether a label's domain is d or under it.
func inDomain(domain, d string) bool {
	return domain == d || strings.HasSuffix(domain, "."+d)
}
