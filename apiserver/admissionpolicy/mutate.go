package admissionpolicy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	celtypes "github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/traits"
	"google.golang.org/protobuf/types/known/structpb"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/admission"
	admissionauthorizer "k8s.io/apiserver/pkg/admission/plugin/authorizer"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/mutation"
	"k8s.io/apiserver/pkg/cel/mutation/dynamic"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	smdschema "sigs.k8s.io/structured-merge-diff/v6/schema"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
	"sigs.k8s.io/structured-merge-diff/v6/value"

	"github.com/skiff-dev/skiff/apis"
)

// compiledMutatingPolicy is one generation of a MutatingAdmissionPolicy, its expressions
// compiled.
type compiledMutatingPolicy struct {
	name       string
	uid        types.UID
	generation int64
	spec       *admissionregistrationv1.MutatingAdmissionPolicySpec
	err        error

	// compiler holds the policy's variables: each invocation evaluates them afresh in a
	// context of its own
	compiler        *plugincel.CompositedCompiler
	matchConditions plugincel.ConditionEvaluator // nil when none
	mutations       []plugincel.MutatingEvaluator
}

func (c *compiledMutatingPolicy) policyName() string       { return c.name }
func (c *compiledMutatingPolicy) held() (types.UID, int64) { return c.uid, c.generation }

func (c *compiledMutatingPolicy) failurePolicy() admissionregistrationv1.FailurePolicyType {
	if c.spec.FailurePolicy == nil {
		return admissionregistrationv1.Fail
	}
	return *c.spec.FailurePolicy
}

// compileMutatingPolicy compiles a policy's variables, match conditions and mutations in the
// stored-expressions environment.
func compileMutatingPolicy(mp *admissionregistrationv1.MutatingAdmissionPolicy) *compiledMutatingPolicy {
	c := &compiledMutatingPolicy{name: mp.Name, uid: mp.UID, generation: mp.Generation, spec: &mp.Spec}
	compiler, err := apis.NewPolicyCompiler()
	if err != nil {
		c.err = err
		return c
	}
	c.compiler = compiler
	hasParams := mp.Spec.ParamKind != nil
	decls := plugincel.OptionalVariableDeclarations{HasParams: hasParams, HasAuthorizer: true}
	mode := environment.StoredExpressions
	for _, v := range mp.Spec.Variables {
		compiler.CompileAndStoreVariable(&apis.PolicyExpression{Name: v.Name, Expression: v.Expression, Types: apis.VariableExpression}, decls, mode)
	}
	if len(mp.Spec.MatchConditions) > 0 {
		exprs := make([]plugincel.ExpressionAccessor, len(mp.Spec.MatchConditions))
		for i, mc := range mp.Spec.MatchConditions {
			exprs[i] = &apis.PolicyExpression{Name: mc.Name, Expression: mc.Expression, Types: apis.BoolExpression}
		}
		c.matchConditions = compiler.CompileCondition(exprs, decls, mode)
	}
	for _, m := range mp.Spec.Mutations {
		var e *apis.PolicyExpression
		switch {
		case m.PatchType == admissionregistrationv1.PatchTypeApplyConfiguration && m.ApplyConfiguration != nil:
			e = &apis.PolicyExpression{Expression: m.ApplyConfiguration.Expression, Types: apis.ApplyConfigurationExpression}
		case m.PatchType == admissionregistrationv1.PatchTypeJSONPatch && m.JSONPatch != nil:
			e = &apis.PolicyExpression{Expression: m.JSONPatch.Expression, Types: apis.JSONPatchExpression}
		default:
			c.err = fmt.Errorf("unsupported patch type %q", m.PatchType)
			return c
		}
		c.mutations = append(c.mutations, compiler.CompileMutatingEvaluator(e, apis.MutationDeclarations(hasParams), mode))
	}
	return c
}

// Reinvocation is what one request's mutating admission keeps between its first pass and
// its one reinvocation, as upstream's reinvocation context: which policies with
// reinvocationPolicy IfNeeded ran and must run again because the object changed after them.
// The zero value is a request's first pass.
type Reinvocation struct {
	passes     int
	should     bool
	lastOutput runtime.Object
	invoked    sets.Set[invocationKey] // IfNeeded invocations run since the last change
	reinvoke   sets.Set[invocationKey]
}

// invocationKey names one invocation across passes.
type invocationKey struct {
	policy, binding string
	param           types.NamespacedName
}

// Changed records that something after the policies (a webhook) changed the object, so the
// chain must run again.
func (r *Reinvocation) Changed() { r.should = true }

// ShouldReinvoke says whether the first pass changed the object, so that the policies (and
// what else reinvokes) must run once more.
func (r *Reinvocation) ShouldReinvoke() bool { return r.should && r.passes == 1 }

// requireReinvoking makes every IfNeeded invocation run so far due again.
func (r *Reinvocation) requireReinvoking() {
	if r.reinvoke == nil {
		r.reinvoke = sets.New[invocationKey]()
	}
	r.reinvoke = r.reinvoke.Union(r.invoked)
	r.invoked = sets.New[invocationKey]()
}

// withObject shows admission another object than the one the attributes were made with.
type withObject struct {
	admission.Attributes
	obj runtime.Object
}

func (w withObject) GetObject() runtime.Object { return w.obj }

// mutationError is a failure of one policy's binding, subject to the policy's failurePolicy.
type mutationError struct {
	policy, binding string
	err             error
	reason          metav1.StatusReason
}

func (e mutationError) Error() string {
	if e.binding != "" {
		return fmt.Sprintf("policy '%s' with binding '%s' denied request: %s", e.policy, e.binding, e.err.Error())
	}
	return fmt.Sprintf("policy %q denied request: %s", e.policy, e.err.Error())
}

// MutatingActive says whether any mutating policy is bound.
func (p *Policies) MutatingActive() bool { return len(p.currentMutating()) > 0 }

// Mutate applies the mutating policies that match a create or update to its object (in the
// request's kind) and returns the object they leave. re carries what the request's first
// pass learnt to its reinvocation: on the second call only the IfNeeded policies whose
// output changed since they ran run again. A failure under failurePolicy Fail refuses the
// request as upstream words it.
func (p *Policies) Mutate(ctx context.Context, a admission.Attributes, re *Reinvocation) (runtime.Object, error) {
	obj := a.GetObject()
	reinvoking := re.passes > 0
	re.passes++
	bound := p.currentMutating()
	r := &request{Attributes: a, cfg: &p.cfg}
	if len(bound) == 0 || obj == nil || r.exempt() || (a.GetOperation() != admission.Create && a.GetOperation() != admission.Update) {
		return obj, nil
	}
	if reinvoking {
		if !re.should {
			return obj, nil
		}
		if !apiequality.Semantic.DeepEqual(re.lastOutput, obj) {
			re.requireReinvoking() // something after the policies changed the object
		}
	}
	defer func() { re.lastOutput = obj.DeepCopyObject() }()
	var authz authorizer.UnconditionalAuthorizer
	if p.cfg.Authorizer != nil {
		authz = admissionauthorizer.NewCachingAuthorizer(p.cfg.Authorizer)
	}
	var errs []mutationError
	for _, bp := range bound {
		pol := bp.policy
		heads := make([]bindingHead, len(bp.bindings))
		for i, b := range bp.bindings {
			heads[i] = bindingHead{name: b.Name, match: b.Spec.MatchResources, paramRef: b.Spec.ParamRef}
		}
		head := policyHead{name: pol.name, failurePolicy: pol.failurePolicy(), constraints: pol.spec.MatchConstraints,
			paramKind: pol.spec.ParamKind, err: pol.err}
		fail := func(binding string, err error, reason metav1.StatusReason) {
			if pol.failurePolicy() == admissionregistrationv1.Ignore {
				return
			}
			if reason == "" {
				what := "binding"
				var pe *policyError
				if binding == "" || errors.As(err, &pe) {
					what = "policy"
				}
				err = fmt.Errorf("failed to configure %s: %w", what, err)
			}
			errs = append(errs, mutationError{policy: pol.name, binding: binding, err: err, reason: reason})
		}
		invocations, err := p.invocations(ctx, r, head, heads, func(binding string, err error) { fail(binding, err, "") })
		if err != nil {
			return nil, err
		}
		for _, inv := range invocations {
			b := bp.bindings[inv.binding]
			key := invocationKey{policy: pol.name, binding: b.Name}
			if inv.param != nil {
				if m, err := meta.Accessor(inv.param); err == nil {
					key.param = types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}
				}
			}
			if reinvoking && !re.reinvoke.Has(key) {
				continue
			}
			ns, err := r.namespace(ctx)
			if err != nil {
				return nil, err
			}
			out, err := p.invoke(ctx, pol, withObject{a, obj}, inv, ns, authz, func(err error) { fail(b.Name, err, metav1.StatusReasonInvalid) })
			if err != nil {
				return nil, err
			}
			if !apiequality.Semantic.DeepEqual(out, obj) {
				obj = out
				re.requireReinvoking()
				re.should = true
			}
			if pol.spec.ReinvocationPolicy == admissionregistrationv1.IfNeededReinvocationPolicy {
				if re.invoked == nil {
					re.invoked = sets.New[invocationKey]()
				}
				re.invoked.Insert(key)
			}
		}
	}
	if len(errs) == 0 {
		return obj, nil
	}
	return nil, refusal(a, errs)
}

// refusal is upstream's answer to failed mutations: a Forbidden of the request's resource
// whose message (and reason, Invalid for an expression's failure) is the first's, each
// failure a cause.
func refusal(a admission.Attributes, errs []mutationError) error {
	var status *apierrors.StatusError
	if !errors.As(admission.NewForbidden(a, errors.New("admission request denied by policy")), &status) {
		return apierrors.NewInternalError(errors.New("failed to create status error"))
	}
	status.ErrStatus.Message = errs[0].Error()
	if errs[0].reason != "" {
		status.ErrStatus.Reason = errs[0].reason
	}
	for _, e := range errs {
		status.ErrStatus.Details.Causes = append(status.ErrStatus.Details.Causes, metav1.StatusCause{Message: e.Error()})
	}
	return status
}

// invoke runs one invocation: its match conditions, then each mutation in order on the
// object as the previous one left it. Failures of expressions go to fail and leave the
// object as it was before that mutation; the error returned ends the request.
func (p *Policies) invoke(ctx context.Context, pol *compiledMutatingPolicy, a withObject, inv invocation, ns *corev1.Namespace,
	authz authorizer.UnconditionalAuthorizer, fail func(error)) (runtime.Object, error) {
	requestKind := a.GetKind()
	va, err := p.versionedAttributes(a, inv.as.Kind)
	if err != nil {
		fail(fmt.Errorf("failed to convert object version: %w", err))
		return a.obj, nil
	}
	request := plugincel.CreateAdmissionRequest(a, metav1.GroupVersionResource(inv.as.Resource), metav1.GroupVersionKind(inv.as.Kind))
	namespace := plugincel.CreateNamespaceObject(ns)
	vars := plugincel.OptionalVariableBindings{VersionedParams: inv.param, Authorizer: authz}
	if matches, err := matchConditions(ctx, pol.matchConditions, va, request, vars, namespace); err != nil {
		fail(err)
		return a.obj, nil
	} else if !matches {
		return a.obj, nil
	}
	// variables are evaluated once per invocation, as upstream's
	cctx := pol.compiler.CreateContext(ctx)
	changed := false
	for i, m := range pol.mutations {
		current := va.VersionedObject.Object()
		var out runtime.Object
		if errs := m.CompilationErrors(); len(errs) > 0 {
			err = errors.Join(errs...)
		} else if pol.spec.Mutations[i].PatchType == admissionregistrationv1.PatchTypeApplyConfiguration {
			out, err = p.applyConfiguration(cctx, m, va, request, vars, namespace, current)
		} else {
			out, err = p.jsonPatch(cctx, m, va, request, vars, namespace, current)
		}
		if err != nil {
			var status apierrors.APIStatus
			if errors.As(err, &status) {
				return nil, err
			}
			fail(err)
			continue
		}
		out.GetObjectKind().SetGroupVersionKind(inv.as.Kind)
		// later mutations and expressions see the mutated object
		va = &admission.VersionedAttributes{Attributes: va.Attributes, VersionedKind: va.VersionedKind,
			VersionedObject: admission.NewLazyObject(out), VersionedOldObject: va.VersionedOldObject}
		changed = true
	}
	if !changed {
		return a.obj, nil
	}
	out := va.VersionedObject.Object()
	if inv.as.Kind != requestKind && p.cfg.Convert != nil {
		if out, err = p.cfg.Convert(out, requestKind); err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("failed to convert object: %w", err))
		}
	}
	out.GetObjectKind().SetGroupVersionKind(a.obj.GetObjectKind().GroupVersionKind())
	return out, nil
}

// applyConfiguration evaluates an ApplyConfiguration mutation and merges the Object it
// returns into obj by the kind's structured-merge-diff schema, as server-side apply merges,
// without taking ownership of any field.
func (p *Policies) applyConfiguration(ctx context.Context, m plugincel.MutatingEvaluator, va *admission.VersionedAttributes,
	request *admissionv1.AdmissionRequest, vars plugincel.OptionalVariableBindings, ns *corev1.Namespace, obj runtime.Object) (runtime.Object, error) {
	eval, _, err := m.ForInput(ctx, va, request, vars, ns, celconfig.RuntimeCELCostBudget)
	if err != nil {
		return nil, err
	}
	if eval.Error != nil {
		return nil, eval.Error
	}
	objVal, ok := eval.EvalResult.(*dynamic.ObjectVal)
	if !ok {
		return nil, fmt.Errorf("unsupported return type from ApplyConfiguration expression: %v", eval.EvalResult.Type())
	}
	// Object initializers are checked only by name: Object.spec{x: Object.spec.wrong{}} is
	// caught here
	if err := objVal.CheckTypeNamesMatchFieldPathNames(); err != nil {
		return nil, fmt.Errorf("type mismatch: %w", err)
	}
	content, ok := objVal.Value().(map[string]any)
	if !ok {
		return nil, fmt.Errorf("invalid return type: %T", eval.EvalResult)
	}
	kind := va.VersionedKind
	patch := &unstructured.Unstructured{Object: content}
	patch.SetGroupVersionKind(kind)
	var converter managedfields.TypeConverter
	if p.cfg.TypeConverter != nil {
		converter = p.cfg.TypeConverter(kind)
	}
	if converter == nil {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("Resource kind %s not found. There can be a delay between when CustomResourceDefinitions are created and when they are available.", kind))
	}
	patchTyped, err := converter.ObjectToTyped(patch)
	if err != nil {
		return nil, fmt.Errorf("error applying patch: failed to convert patch object to typed object: %w", err)
	}
	if atomics := findAtomics(nil, patchTyped.Schema(), patchTyped.TypeRef(), patchTyped.AsValue()); len(atomics) > 0 {
		return nil, fmt.Errorf("error applying patch: invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: %v", strings.Join(atomics, ", "))
	}
	liveTyped, err := converter.ObjectToTyped(obj, typed.AllowDuplicates)
	if err != nil {
		return nil, fmt.Errorf("error applying patch: failed to convert original object to typed object: %w", err)
	}
	merged, err := liveTyped.Merge(patchTyped)
	if err != nil {
		return nil, fmt.Errorf("error applying patch: failed to merge patch: %w", err)
	}
	out, err := converter.TypedToObject(merged)
	if err != nil {
		return nil, fmt.Errorf("error applying patch: failed to convert typed object to object: %w", err)
	}
	return p.fromUnstructured(out, kind)
}

// findAtomics lists the paths of the atomic lists, maps and structs an apply configuration
// sets: merging would drop whatever of them it does not name, so upstream refuses them.
func findAtomics(path []fieldpath.PathElement, s *smdschema.Schema, tr smdschema.TypeRef, v value.Value) []string {
	a, ok := s.Resolve(tr)
	if !ok {
		return nil
	}
	var atomics []string
	if v.IsMap() && a.Map != nil {
		if a.Map.ElementRelationship == smdschema.Atomic {
			atomics = append(atomics, pathString(path))
		}
		v.AsMap().Iterate(func(key string, val value.Value) bool {
			if sf, ok := a.Map.FindField(key); ok {
				atomics = append(atomics, findAtomics(append(path, fieldpath.PathElement{FieldName: &key}), s, sf.Type, val)...)
			}
			return true
		})
	}
	if v.IsList() && a.List != nil {
		if a.List.ElementRelationship == smdschema.Atomic {
			atomics = append(atomics, pathString(path))
		}
		list := v.AsList()
		for i := 0; i < list.Length(); i++ {
			atomics = append(atomics, findAtomics(append(path, fieldpath.PathElement{Index: &i}), s, a.List.ElementType, list.At(i))...)
		}
	}
	return atomics
}

func pathString(path []fieldpath.PathElement) string {
	var sb strings.Builder
	for _, pe := range path {
		sb.WriteString(pe.String())
	}
	return sb.String()
}

// jsonPatch evaluates a JSONPatch mutation and applies the operations it returns to obj. A
// failed test operation leaves the object as it was.
func (p *Policies) jsonPatch(ctx context.Context, m plugincel.MutatingEvaluator, va *admission.VersionedAttributes,
	request *admissionv1.AdmissionRequest, vars plugincel.OptionalVariableBindings, ns *corev1.Namespace, obj runtime.Object) (runtime.Object, error) {
	eval, _, err := m.ForInput(ctx, va, request, vars, ns, celconfig.RuntimeCELCostBudget)
	if err != nil {
		return nil, err
	}
	if eval.Error != nil {
		return nil, eval.Error
	}
	list, ok := eval.EvalResult.(traits.Lister)
	if !ok {
		return nil, fmt.Errorf("type mismatch: JSONPatchType.expression should evaluate to array")
	}
	var patch jsonpatch.Patch
	for it := list.Iterator(); it.HasNext() == celtypes.True; {
		native, err := it.Next().ConvertToNative(reflect.TypeOf(&mutation.JSONPatchVal{}))
		if err != nil {
			return nil, fmt.Errorf("type mismatch: JSONPatchType.expression should evaluate to array of JSONPatch: %w", err)
		}
		op, ok := native.(*mutation.JSONPatchVal)
		if !ok {
			return nil, fmt.Errorf("type mismatch: JSONPatchType.expression should evaluate to array of JSONPatch, got element of %T", native)
		}
		operation := jsonpatch.Operation{"op": raw(strconv.Quote(op.Op)), "path": raw(strconv.Quote(op.Path))}
		if op.From != "" {
			operation["from"] = raw(strconv.Quote(op.From))
		}
		if op.Val != nil {
			if objVal, ok := op.Val.(*dynamic.ObjectVal); ok {
				if err := objVal.CheckTypeNamesMatchFieldPathNames(); err != nil {
					return nil, fmt.Errorf("type mismatch: %w", err)
				}
			}
			// CEL values marshal to JSON through protobuf's Value
			v, err := op.Val.ConvertToNative(reflect.TypeOf(&structpb.Value{}))
			if err != nil {
				return nil, fmt.Errorf("JSONPath valueExpression evaluated to a type that could not marshal to JSON: %w", err)
			}
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("JSONPath valueExpression evaluated to a type that could not marshal to JSON: %w", err)
			}
			operation["value"] = raw(string(b))
		}
		patch = append(patch, operation)
	}
	doc, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("failed to create JSON patch: %w", err)
	}
	patched, err := patch.Apply(doc)
	if errors.Is(err, jsonpatch.ErrTestFailed) {
		return obj, nil
	}
	if err != nil {
		return nil, fmt.Errorf("JSON Patch: %w", err)
	}
	out := &unstructured.Unstructured{}
	if err := out.UnmarshalJSON(patched); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return p.fromUnstructured(out, va.VersionedKind)
}

func raw(s string) *json.RawMessage {
	m := json.RawMessage(s)
	return &m
}

// fromUnstructured turns a mutation's result into the kind's object with its defaults.
func (p *Policies) fromUnstructured(obj runtime.Object, kind schema.GroupVersionKind) (runtime.Object, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	u.SetGroupVersionKind(kind)
	if p.cfg.FromUnstructured == nil {
		return u, nil
	}
	out, err := p.cfg.FromUnstructured(u, kind)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return out, nil
}
