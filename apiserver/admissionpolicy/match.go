package admissionpolicy

import (
	"context"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
)

// request is one admission request with what matching learns of it on the way.
type request struct {
	admission.Attributes
	cfg *Config
	// the namespace of a namespaced request, read once when first needed
	nsRead bool
	ns     *corev1.Namespace
	nsErr  error
}

// exempt says whether the request writes admission configuration itself, which no policy
// may judge, so that a bad policy can always be removed, as upstream.
func (r *request) exempt() bool {
	gvk := r.GetKind()
	if gvk.Group != admissionregistrationv1.GroupName {
		return false
	}
	switch gvk.Kind {
	case "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy",
		"ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding":
		return true
	}
	return false
}

var namespacesResource = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// isNamespace says whether the request is for a Namespace object itself.
func (r *request) isNamespace() bool {
	return r.GetResource() == namespacesResource && r.GetSubresource() == ""
}

// namespaceName is the namespace the request's object lives in: none for a namespace itself.
func (r *request) namespaceName() string {
	if r.GetKind() == (schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}) {
		return ""
	}
	return r.GetNamespace()
}

// namespace reads the request's namespace once.
func (r *request) namespace(ctx context.Context) (*corev1.Namespace, error) {
	if !r.nsRead {
		r.nsRead = true
		if name := r.namespaceName(); name != "" && r.cfg.Namespace != nil {
			r.ns, r.nsErr = r.cfg.Namespace(ctx, name)
		}
	}
	return r.ns, r.nsErr
}

// namespaceLabels are what a namespaceSelector is matched against: the object's own labels
// when a namespace is created or updated (the stored one is older), the stored namespace's
// otherwise.
func (r *request) namespaceLabels(ctx context.Context) (labels.Set, error) {
	if r.GetResource().Resource == "namespaces" && r.GetSubresource() == "" &&
		(r.GetOperation() == admission.Create || r.GetOperation() == admission.Update) {
		m, err := meta.Accessor(r.GetObject())
		if err != nil {
			return nil, err
		}
		return m.GetLabels(), nil
	}
	if r.GetResource().Resource == "namespaces" {
		ns, err := r.cfg.Namespace(ctx, r.GetName())
		if err != nil {
			return nil, err
		}
		return ns.Labels, nil
	}
	ns, err := r.namespace(ctx)
	if err != nil || ns == nil {
		return nil, err
	}
	return ns.Labels, nil
}

// matchResources decides whether the request matches m, and as which resource and kind:
// the request's own, or with matchPolicy Equivalent one of its other versions. An empty
// rule list matches every request (a binding's matchResources only narrows its policy).
func (r *request) matchResources(ctx context.Context, m *admissionregistrationv1.MatchResources) (bool, Resource, error) {
	own := Resource{Resource: r.GetResource(), Kind: r.GetKind()}
	if m == nil {
		return true, own, nil
	}
	if ok, err := r.matchNamespaceSelector(ctx, m.NamespaceSelector); !ok || err != nil {
		return false, Resource{}, err
	}
	if ok, err := r.matchObjectSelector(m.ObjectSelector); !ok || err != nil {
		return false, Resource{}, err
	}
	equivalent := m.MatchPolicy != nil && *m.MatchPolicy == admissionregistrationv1.Equivalent
	if r.matchesRules(m.ExcludeResourceRules, own, equivalent) != nil {
		return false, Resource{}, nil
	}
	if len(m.ResourceRules) == 0 {
		return true, own, nil
	}
	if as := r.matchesRules(m.ResourceRules, own, equivalent); as != nil {
		return true, *as, nil
	}
	return false, Resource{}, nil
}

// matchesRules returns the resource the request matches any of the rules as: its own, or an
// equivalent one; nil for none.
func (r *request) matchesRules(rules []admissionregistrationv1.NamedRuleWithOperations, own Resource, equivalent bool) *Resource {
	for i := range rules {
		if r.matchesRule(&rules[i], own.Resource) {
			return &own
		}
	}
	if !equivalent || r.cfg.Equivalents == nil {
		return nil
	}
	for _, eq := range r.cfg.Equivalents(own.Resource) {
		for i := range rules {
			if r.matchesRule(&rules[i], eq.Resource) {
				return &eq
			}
		}
	}
	return nil
}

// matchesRule matches one rule against the request as if it were for gvr.
func (r *request) matchesRule(rule *admissionregistrationv1.NamedRuleWithOperations, gvr schema.GroupVersionResource) bool {
	if len(rule.ResourceNames) > 0 && !contains(rule.ResourceNames, r.GetName()) {
		return false
	}
	op := false
	for _, o := range rule.Operations {
		if o == admissionregistrationv1.OperationAll || string(o) == string(r.GetOperation()) {
			op = true
			break
		}
	}
	if !op || !exactOrWildcard(rule.APIGroups, gvr.Group) || !exactOrWildcard(rule.APIVersions, gvr.Version) {
		return false
	}
	if rule.Scope != nil {
		// a namespace object is cluster-scoped, though its requests carry its name as namespace
		clusterScoped := r.GetResource() == namespacesResource || r.GetNamespace() == metav1.NamespaceNone
		switch *rule.Scope {
		case admissionregistrationv1.NamespacedScope:
			if clusterScoped {
				return false
			}
		case admissionregistrationv1.ClusterScope:
			if !clusterScoped {
				return false
			}
		}
	}
	for _, rs := range rule.Resources {
		res, sub, _ := strings.Cut(rs, "/")
		if (res == "*" || res == gvr.Resource) && (sub == "*" || sub == r.GetSubresource()) {
			return true
		}
	}
	return false
}

func (r *request) matchNamespaceSelector(ctx context.Context, ls *metav1.LabelSelector) (bool, error) {
	if r.GetNamespace() == "" && r.GetResource().Resource != "namespaces" {
		return true, nil // cluster-scoped objects are never excluded by namespace
	}
	sel, err := selector(ls)
	if err != nil || sel.Empty() {
		return err == nil, err
	}
	set, err := r.namespaceLabels(ctx)
	if err != nil {
		return false, err
	}
	return sel.Matches(set), nil
}

// matchObjectSelector matches the new or the old object's labels.
func (r *request) matchObjectSelector(ls *metav1.LabelSelector) (bool, error) {
	sel, err := selector(ls)
	if err != nil || sel.Empty() {
		return err == nil, err
	}
	return objectMatches(r.GetObject(), sel) || objectMatches(r.GetOldObject(), sel), nil
}

func objectMatches(obj runtime.Object, sel labels.Selector) bool {
	if obj == nil {
		return false
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(m.GetLabels()))
}

func selector(ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(ls)
}

func exactOrWildcard(items []string, s string) bool {
	for _, it := range items {
		if it == "*" || it == s {
			return true
		}
	}
	return false
}

func contains(items []string, s string) bool {
	for _, it := range items {
		if it == s {
			return true
		}
	}
	return false
}
