// Package admissionpolicy enforces admissionregistration.k8s.io/v1 admission policies and
// their bindings, validating and mutating: for each write it finds the policies and bindings
// that match it (matchConstraints, a binding's matchResources, matchConditions) and resolves
// each binding's params, the same way for both kinds. ValidatingAdmissionPolicies' CEL
// validations and audit annotations turn into what the binding's validationActions ask for
// (a denial in upstream's words, a warning, an audit annotation); MutatingAdmissionPolicies'
// mutations change the object, an Object{...} merged with server-side apply's rules or a list
// of JSONPatch{...} operations.
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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
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
	// TypeConverter gives a kind's structured-merge-diff schema, which ApplyConfiguration
	// mutations merge by; nil when the kind has none (yet).
	TypeConverter func(gvk schema.GroupVersionKind) managedfields.TypeConverter
	// FromUnstructured turns a mutated object back into its kind's Go type (unchanged for
	// custom resources) with the kind's defaults applied.
	FromUnstructured func(u *unstructured.Unstructured, kind schema.GroupVersionKind) (runtime.Object, error)
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

	mu         sync.RWMutex
	validating policySet[*compiledPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding]
	mutating   policySet[*compiledMutatingPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding]
}

// heldPolicy is a compiled policy of either kind.
type heldPolicy interface {
	policyName() string
	held() (types.UID, int64)
}

// policyBinding is a binding of either kind.
type policyBinding interface {
	*admissionregistrationv1.ValidatingAdmissionPolicyBinding | *admissionregistrationv1.MutatingAdmissionPolicyBinding
	GetName() string
}

// policySet holds the policies of one kind and their bindings.
type policySet[P heldPolicy, B policyBinding] struct {
	policyOf func(B) string // the name of the policy a binding binds
	policies map[string]P   // by name
	bindings map[string]B
	// order is the policies with their bindings, sorted by name, rebuilt on each change so
	// that a request reads it without sorting
	order []bound[P, B]
}

// bound is a policy with the bindings that name it.
type bound[P heldPolicy, B policyBinding] struct {
	policy   P
	bindings []B
}

func newPolicySet[P heldPolicy, B policyBinding](policyOf func(B) string) policySet[P, B] {
	return policySet[P, B]{policyOf: policyOf, policies: map[string]P{}, bindings: map[string]B{}}
}

// reorder rebuilds order; the Policies' lock is held.
func (s *policySet[P, B]) reorder() {
	byPolicy := map[string][]B{}
	for _, b := range s.bindings {
		byPolicy[s.policyOf(b)] = append(byPolicy[s.policyOf(b)], b)
	}
	order := make([]bound[P, B], 0, len(s.policies))
	for name, c := range s.policies {
		bs := byPolicy[name]
		if len(bs) == 0 {
			continue // a policy does nothing until a binding names it
		}
		sort.Slice(bs, func(i, j int) bool { return bs[i].GetName() < bs[j].GetName() })
		order = append(order, bound[P, B]{policy: c, bindings: bs})
	}
	sort.Slice(order, func(i, j int) bool { return order[i].policy.policyName() < order[j].policy.policyName() })
	s.order = order
}

// isHeld says whether the same generation of the same policy is held already.
func (s *policySet[P, B]) isHeld(name string, uid types.UID, generation int64) bool {
	held, ok := s.policies[name]
	if !ok {
		return false
	}
	u, g := held.held()
	return u == uid && g == generation
}

// retain forgets the policies (or bindings) not named in keep.
func retain[V any](m map[string]V, keep map[string]bool) {
	for n := range m {
		if !keep[n] {
			delete(m, n)
		}
	}
}

// New returns an empty set of policies reading what it needs through cfg.
func New(cfg Config) *Policies {
	return &Policies{cfg: cfg,
		validating: newPolicySet[*compiledPolicy](func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) string { return b.Spec.PolicyName }),
		mutating:   newPolicySet[*compiledMutatingPolicy](func(b *admissionregistrationv1.MutatingAdmissionPolicyBinding) string { return b.Spec.PolicyName }),
	}
}

// SetPolicy adds or replaces a validating policy. It is compiled unless the same generation
// of the same object is already held.
func (p *Policies) SetPolicy(vap *admissionregistrationv1.ValidatingAdmissionPolicy) {
	p.mu.RLock()
	held := p.validating.isHeld(vap.Name, vap.UID, vap.Generation)
	p.mu.RUnlock()
	if held {
		return
	}
	compiled := compilePolicy(vap.DeepCopy())
	p.mu.Lock()
	defer p.mu.Unlock()
	p.validating.policies[vap.Name] = compiled
	p.validating.reorder()
}

// RemovePolicy forgets the named validating policy.
func (p *Policies) RemovePolicy(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.validating.policies, name)
	p.validating.reorder()
}

// SetBinding adds or replaces a validating policy's binding.
func (p *Policies) SetBinding(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.validating.bindings[b.Name] = b.DeepCopy()
	p.validating.reorder()
}

// RemoveBinding forgets the named validating policy's binding.
func (p *Policies) RemoveBinding(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.validating.bindings, name)
	p.validating.reorder()
}

// SetMutatingPolicy adds or replaces a mutating policy, compiled unless the same generation
// of the same object is already held.
func (p *Policies) SetMutatingPolicy(mp *admissionregistrationv1.MutatingAdmissionPolicy) {
	p.mu.RLock()
	held := p.mutating.isHeld(mp.Name, mp.UID, mp.Generation)
	p.mu.RUnlock()
	if held {
		return
	}
	compiled := compileMutatingPolicy(mp.DeepCopy())
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mutating.policies[mp.Name] = compiled
	p.mutating.reorder()
}

// RemoveMutatingPolicy forgets the named mutating policy.
func (p *Policies) RemoveMutatingPolicy(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.mutating.policies, name)
	p.mutating.reorder()
}

// SetMutatingBinding adds or replaces a mutating policy's binding.
func (p *Policies) SetMutatingBinding(b *admissionregistrationv1.MutatingAdmissionPolicyBinding) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mutating.bindings[b.Name] = b.DeepCopy()
	p.mutating.reorder()
}

// RemoveMutatingBinding forgets the named mutating policy's binding.
func (p *Policies) RemoveMutatingBinding(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.mutating.bindings, name)
	p.mutating.reorder()
}

func (p *Policies) currentValidating() []bound[*compiledPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding] {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.validating.order
}

func (p *Policies) currentMutating() []bound[*compiledMutatingPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding] {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.mutating.order
}

// Retain forgets the policies or bindings of kind (ValidatingAdmissionPolicy,
// ValidatingAdmissionPolicyBinding, MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding)
// not named in keep: what a fresh list of them no longer holds.
func (p *Policies) Retain(kind string, keep []string) {
	names := make(map[string]bool, len(keep))
	for _, n := range keep {
		names[n] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch kind {
	case "ValidatingAdmissionPolicy":
		retain(p.validating.policies, names)
	case "ValidatingAdmissionPolicyBinding":
		retain(p.validating.bindings, names)
	case "MutatingAdmissionPolicy":
		retain(p.mutating.policies, names)
	case "MutatingAdmissionPolicyBinding":
		retain(p.mutating.bindings, names)
	}
	p.validating.reorder()
	p.mutating.reorder()
}
