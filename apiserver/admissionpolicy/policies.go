// Package admissionpolicy enforces admissionregistration.k8s.io/v1 ValidatingAdmissionPolicies
// and their bindings: for each write it finds the policies and bindings that match it
// (matchConstraints, a binding's matchResources, matchConditions), resolves each binding's
// params, evaluates the policy's CEL validations and audit annotations, and turns failures
// into what the binding's validationActions ask for: a denial in upstream's words, a warning,
// an audit annotation.
//
// Policies are compiled once per generation, as they arrive from the server's watch, and kept
// in memory; a request never reads or compiles a policy. CEL compilation, cost limits and
// evaluation are k8s.io/apiserver's CEL library; matching, binding resolution and error
// reporting are this package's.
//
// It never writes anything and never speaks HTTP: the server feeds it policies and bindings
// (SetPolicy, SetBinding, ...), hands it each write as admission attributes, and gives it
// read access to namespaces and params through Config.
package admissionpolicy

import (
	"context"
	"sort"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// Config is what the policies read from the server.
type Config struct {
	// Namespace reads a namespace, for namespaceSelector and the namespaceObject variable.
	Namespace func(ctx context.Context, name string) (*corev1.Namespace, error)
	// Params finds the served resource of a paramKind; ok is false when nothing serves it.
	Params func(gvk schema.GroupVersionKind) (src ParamSource, ok bool)
	// Equivalents lists the resources serving the same objects as gvr in other versions
	// (with their kinds), for matchPolicy Equivalent; nil when none.
	Equivalents func(gvr schema.GroupVersionResource) []Resource
	// Convert returns obj (of the request's kind) in the version of kind, for a policy that
	// matched an equivalent resource; obj must not be changed.
	Convert func(obj runtime.Object, kind schema.GroupVersionKind) (runtime.Object, error)
	// Authorizer answers the authorizer variable's checks.
	Authorizer authorizer.UnconditionalAuthorizer
	// Warn adds a warning to the request's answer.
	Warn func(ctx context.Context, text string)
	// Annotate adds an annotation to the request's audit event.
	Annotate func(ctx context.Context, key, value string)
}

// Resource is a served resource and the kind of its objects.
type Resource struct {
	Resource schema.GroupVersionResource
	Kind     schema.GroupVersionKind
}

// ParamSource reads the objects of a paramKind.
type ParamSource interface {
	// Namespaced says whether the kind's objects live in namespaces.
	Namespaced() bool
	// Get returns the named object; a NotFound API error when there is none.
	Get(ctx context.Context, namespace, name string) (runtime.Object, error)
	// List returns the objects in namespace ("" for all or cluster-scoped) with matching labels.
	List(ctx context.Context, namespace string, selector labels.Selector) ([]runtime.Object, error)
}

// Policies are the policies and bindings in force. Its methods are safe for concurrent use.
type Policies struct {
	cfg Config

	mu       sync.RWMutex
	policies map[string]*compiledPolicy // by name
	bindings map[string]*admissionregistrationv1.ValidatingAdmissionPolicyBinding
	// order is the policies with their bindings, sorted by name, rebuilt on each change so
	// that a request reads it without sorting
	order []boundPolicy
}

// boundPolicy is a policy with the bindings that name it.
type boundPolicy struct {
	policy   *compiledPolicy
	bindings []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
}

// New returns an empty set of policies reading what it needs through cfg.
func New(cfg Config) *Policies {
	return &Policies{cfg: cfg, policies: map[string]*compiledPolicy{},
		bindings: map[string]*admissionregistrationv1.ValidatingAdmissionPolicyBinding{}}
}

// SetPolicy adds or replaces a policy. It is compiled unless the same generation of the same
// object is already held.
func (p *Policies) SetPolicy(vap *admissionregistrationv1.ValidatingAdmissionPolicy) {
	p.mu.RLock()
	held := p.policies[vap.Name]
	p.mu.RUnlock()
	if held != nil && held.uid == vap.UID && held.generation == vap.Generation {
		return
	}
	compiled := compilePolicy(vap.DeepCopy())
	p.mu.Lock()
	defer p.mu.Unlock()
	p.policies[vap.Name] = compiled
	p.reorder()
}

// RemovePolicy forgets the named policy.
func (p *Policies) RemovePolicy(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.policies, name)
	p.reorder()
}

// SetBinding adds or replaces a binding.
func (p *Policies) SetBinding(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bindings[b.Name] = b.DeepCopy()
	p.reorder()
}

// RemoveBinding forgets the named binding.
func (p *Policies) RemoveBinding(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.bindings, name)
	p.reorder()
}

// Held reports the uid and generation of the held policy of that name, for the server's
// follower to know what it has already fed.
func (p *Policies) Held(name string) (types.UID, int64, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	c, ok := p.policies[name]
	if !ok {
		return "", 0, false
	}
	return c.uid, c.generation, true
}

// reorder rebuilds order; p.mu is held.
func (p *Policies) reorder() {
	byPolicy := map[string][]*admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
	for _, b := range p.bindings {
		byPolicy[b.Spec.PolicyName] = append(byPolicy[b.Spec.PolicyName], b)
	}
	order := make([]boundPolicy, 0, len(p.policies))
	for name, c := range p.policies {
		bs := byPolicy[name]
		if len(bs) == 0 {
			continue // a policy does nothing until a binding names it
		}
		sort.Slice(bs, func(i, j int) bool { return bs[i].Name < bs[j].Name })
		order = append(order, boundPolicy{policy: c, bindings: bs})
	}
	sort.Slice(order, func(i, j int) bool { return order[i].policy.name < order[j].policy.name })
	p.order = order
}

func (p *Policies) current() []boundPolicy {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.order
}

// Retain forgets the policies (kind ValidatingAdmissionPolicy) or bindings (kind
// ValidatingAdmissionPolicyBinding) not named in keep: what a fresh list of them no longer
// holds.
func (p *Policies) Retain(kind string, keep []string) {
	names := make(map[string]bool, len(keep))
	for _, n := range keep {
		names[n] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch kind {
	case "ValidatingAdmissionPolicy":
		for n := range p.policies {
			if !names[n] {
				delete(p.policies, n)
			}
		}
	case "ValidatingAdmissionPolicyBinding":
		for n := range p.bindings {
			if !names[n] {
				delete(p.bindings, n)
			}
		}
	}
	p.reorder()
}
