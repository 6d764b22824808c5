package admissionpolicy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	celtypes "github.com/google/cel-go/common/types"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	admissionauthorizer "k8s.io/apiserver/pkg/admission/plugin/authorizer"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// Upstream's limits on what a failure reports.
const (
	maxAuditAnnotationValueLength = 10 * 1024
	maxValidationFailures         = 50
	// ValidationFailureAnnotation is the audit annotation listing the failures of bindings
	// with the Audit action.
	ValidationFailureAnnotation = "validation.policy.admission.k8s.io/validation_failure"
)

// Active says whether any policy is bound, so that a write can skip preparing itself.
func (p *Policies) Active() bool { return len(p.currentValidating()) > 0 }

// failure is a validation that did not pass (or could not be evaluated under failurePolicy
// Fail), to be reported as the binding's validationActions say.
type failure struct {
	message string
	reason  metav1.StatusReason
	index   int
}

// denial is the first failure whose binding denies: the request's answer.
type denial struct {
	policy, binding string // binding is "" for a failure of the policy itself
	failure
}

// validationFailure is one entry of the validation_failure audit annotation, in upstream's
// JSON.
type validationFailure struct {
	Message           string                                     `json:"message"`
	Policy            string                                     `json:"policy"`
	Binding           string                                     `json:"binding"`
	ExpressionIndex   int                                        `json:"expressionIndex"`
	ValidationActions []admissionregistrationv1.ValidationAction `json:"validationActions"`
}

// Validate judges one write (create, update or delete) against every bound policy that
// matches it. It returns the denial as upstream words it, or nil; warnings and audit
// annotations go through Config.Warn and Config.Annotate.
func (p *Policies) Validate(ctx context.Context, a admission.Attributes) error {
	bound := p.currentValidating()
	r := &request{Attributes: a, cfg: &p.cfg}
	if len(bound) == 0 || r.exempt() {
		return nil
	}
	var (
		first     *denial
		audited   []validationFailure
		versioned = map[schema.GroupVersionKind]*admission.VersionedAttributes{}
		authz     authorizer.UnconditionalAuthorizer
	)
	if p.cfg.Authorizer != nil {
		// one request asks the same questions of each binding: answer each once
		authz = admissionauthorizer.NewCachingAuthorizer(p.cfg.Authorizer)
	}
	deny := func(d denial) {
		if first == nil {
			first = &d
		}
	}
	// configError applies the failure policy to a policy or binding that cannot be used
	configError := func(pol *compiledPolicy, binding string, err error) {
		if pol.failurePolicy() == admissionregistrationv1.Ignore {
			return
		}
		what := "binding"
		var pe *policyError
		if binding == "" || errors.As(err, &pe) {
			what = "policy"
		}
		deny(denial{policy: pol.name, binding: binding, failure: failure{message: fmt.Sprintf("failed to configure %s: %v", what, err)}})
	}
	for _, bp := range bound {
		pol := bp.policy
		heads := make([]bindingHead, len(bp.bindings))
		for i, b := range bp.bindings {
			heads[i] = bindingHead{name: b.Name, match: b.Spec.MatchResources, paramRef: b.Spec.ParamRef}
		}
		head := policyHead{name: pol.name, failurePolicy: pol.failurePolicy(), constraints: pol.spec.MatchConstraints,
			paramKind: pol.spec.ParamKind, err: pol.err}
		invocations, err := p.invocations(ctx, r, head, heads, func(binding string, err error) { configError(pol, binding, err) })
		if err != nil {
			return err
		}
		annotations := map[string][]string{}
		for _, inv := range invocations {
			b := bp.bindings[inv.binding]
			va := versioned[inv.as.Kind]
			if va == nil {
				if va, err = p.versionedAttributes(a, inv.as.Kind); err != nil {
					configError(pol, b.Name, fmt.Errorf("failed to convert object version: %w", err))
					continue
				}
				versioned[inv.as.Kind] = va
			}
			ns, err := r.namespace(ctx)
			if err != nil {
				return err
			}
			failures, values := p.evaluate(ctx, pol, va, inv.as.Resource, inv.param, ns, authz)
			for _, f := range failures {
				for _, action := range b.Spec.ValidationActions {
					switch action {
					case admissionregistrationv1.Deny:
						deny(denial{policy: pol.name, binding: b.Name, failure: f})
					case admissionregistrationv1.Warn:
						if p.cfg.Warn != nil {
							p.cfg.Warn(ctx, fmt.Sprintf("Validation failed for ValidatingAdmissionPolicy '%s' with binding '%s': %s", pol.name, b.Name, f.message))
						}
					case admissionregistrationv1.Audit:
						audited = append(audited, validationFailure{Message: f.message, Policy: pol.name, Binding: b.Name,
							ExpressionIndex: f.index, ValidationActions: b.Spec.ValidationActions})
					}
				}
			}
			for _, kv := range values {
				if !contains(annotations[kv[0]], kv[1]) {
					annotations[kv[0]] = append(annotations[kv[0]], kv[1])
				}
			}
		}
		p.annotate(ctx, pol.name, annotations)
	}
	if len(audited) > 0 && p.cfg.Annotate != nil {
		if len(audited) > maxValidationFailures {
			audited = audited[:maxValidationFailures]
		}
		if value, err := json.Marshal(audited); err == nil {
			p.cfg.Annotate(ctx, ValidationFailureAnnotation, string(value))
		}
	}
	if first == nil {
		return nil
	}
	return first.statusError(a)
}

// annotate publishes one policy's audit annotations as "policy/key"; several bindings'
// distinct values of one key join with commas, as upstream.
func (p *Policies) annotate(ctx context.Context, policy string, annotations map[string][]string) {
	if p.cfg.Annotate == nil {
		return
	}
	keys := make([]string, 0, len(annotations))
	for k := range annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.cfg.Annotate(ctx, policy+"/"+k, strings.Join(annotations[k], ", "))
	}
}

// statusError words the denial as upstream: a Forbidden error of the request's resource
// whose reason and code are the validation's (Invalid, 422, by default).
func (d *denial) statusError(a admission.Attributes) error {
	var message string
	if d.binding != "" {
		message = fmt.Sprintf("ValidatingAdmissionPolicy '%s' with binding '%s' denied request: %s", d.policy, d.binding, d.message)
	} else {
		message = fmt.Sprintf("ValidatingAdmissionPolicy '%s' denied request: %s", d.policy, d.message)
	}
	var err *apierrors.StatusError
	if !errors.As(admission.NewForbidden(a, errors.New(message)), &err) {
		return apierrors.NewForbidden(a.GetResource().GroupResource(), a.GetName(), errors.New(message))
	}
	reason := d.reason
	if reason == "" {
		reason = metav1.StatusReasonInvalid
	}
	err.ErrStatus.Reason = reason
	err.ErrStatus.Code = reasonCode(reason)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Message: message})
	return err
}

// reasonCode is the HTTP code of a validation's reason.
func reasonCode(r metav1.StatusReason) int32 {
	switch r {
	case metav1.StatusReasonForbidden:
		return 403
	case metav1.StatusReasonUnauthorized:
		return 401
	case metav1.StatusReasonRequestEntityTooLarge:
		return 413
	default:
		return 422
	}
}

// versionedAttributes are the request's objects in the version a policy matched, with their
// apiVersion and kind set, as CEL shows them.
func (p *Policies) versionedAttributes(a admission.Attributes, kind schema.GroupVersionKind) (*admission.VersionedAttributes, error) {
	convert := func(obj runtime.Object) (runtime.Object, error) {
		if obj == nil {
			return nil, nil
		}
		if _, isOptions := obj.(*metav1.DeleteOptions); isOptions {
			return nil, nil
		}
		if kind != a.GetKind() && p.cfg.Convert != nil {
			return p.cfg.Convert(obj, kind)
		}
		obj = obj.DeepCopyObject()
		obj.GetObjectKind().SetGroupVersionKind(kind)
		return obj, nil
	}
	obj, err := convert(a.GetObject())
	if err != nil {
		return nil, err
	}
	old, err := convert(a.GetOldObject())
	if err != nil {
		return nil, err
	}
	return &admission.VersionedAttributes{Attributes: a, VersionedKind: kind,
		VersionedObject: admission.NewLazyObject(obj), VersionedOldObject: admission.NewLazyObject(old)}, nil
}

// evaluate runs a policy with one param: its match conditions, then its validations (with
// their messages) and audit annotations. It returns the failures to report and the audit
// annotations' values as key, value pairs. Evaluation errors are failures under failurePolicy
// Fail and nothing under Ignore.
func (p *Policies) evaluate(ctx context.Context, pol *compiledPolicy, va *admission.VersionedAttributes, gvr schema.GroupVersionResource,
	param runtime.Object, ns *corev1.Namespace, authz authorizer.UnconditionalAuthorizer) ([]failure, [][2]string) {
	onError := func(msg string, index int) []failure {
		if pol.failurePolicy() == admissionregistrationv1.Ignore {
			return nil
		}
		return []failure{{message: msg, index: index}}
	}
	request := plugincel.CreateAdmissionRequest(va.Attributes, metav1.GroupVersionResource(gvr), metav1.GroupVersionKind(va.VersionedKind))
	namespace := plugincel.CreateNamespaceObject(ns)
	vars := plugincel.OptionalVariableBindings{VersionedParams: param, Authorizer: authz}
	if matches, err := matchConditions(ctx, pol.matchConditions, va, request, vars, namespace); err != nil {
		return onError(err.Error(), 0), nil
	} else if !matches {
		return nil, nil
	}
	results, remaining, err := pol.validations.ForInput(ctx, va, request, vars, namespace, celconfig.RuntimeCELCostBudget)
	if err != nil {
		return onError(err.Error(), 0), nil
	}
	var failures []failure
	for i, res := range results {
		v := pol.spec.Validations[i]
		switch {
		case res.Error != nil:
			failures = append(failures, onError(res.Error.Error(), i)...)
		case res.EvalResult != celtypes.True:
			reason := metav1.StatusReasonInvalid
			if v.Reason != nil {
				reason = *v.Reason
			}
			var msg string
			msg, remaining = p.message(ctx, pol, i, va, request, param, namespace, remaining)
			failures = append(failures, failure{message: msg, reason: reason, index: i})
		}
	}
	// audit annotations have a budget of their own, as upstream's
	annotationResults, _, err := pol.auditAnnotations.ForInput(ctx, va, request, vars, namespace, celconfig.RuntimeCELCostBudget)
	if err != nil {
		return append(failures, onError(err.Error(), 0)...), nil
	}
	var values [][2]string
	for i, res := range annotationResults {
		a := pol.spec.AuditAnnotations[i]
		if res.Error != nil {
			failures = append(failures, onError(res.Error.Error(), i)...)
			continue
		}
		switch res.EvalResult.Type() {
		case celtypes.StringType:
			value := strings.TrimSpace(res.EvalResult.Value().(string))
			if value == "" {
				continue
			}
			if len(value) > maxAuditAnnotationValueLength {
				value = value[:maxAuditAnnotationValueLength]
			}
			values = append(values, [2]string{a.Key, value})
		case celtypes.NullType:
		default:
			failures = append(failures, onError(fmt.Sprintf("valueExpression '%v' resulted in unsupported return type: %v. "+
				"Return type must be either string or null.", a.ValueExpression, res.EvalResult.Type()), i)...)
		}
	}
	return failures, values
}

// message is a failed validation's message: its messageExpression's result when that is a
// one-line string no longer than upstream allows, else its message, else the expression.
func (p *Policies) message(ctx context.Context, pol *compiledPolicy, i int, va *admission.VersionedAttributes, request *admissionv1.AdmissionRequest,
	param runtime.Object, namespace *corev1.Namespace, budget int64) (string, int64) {
	v := pol.spec.Validations[i]
	if eval := pol.messages[i]; eval != nil && budget > 0 {
		results, remaining, err := eval.ForInput(ctx, va, request, plugincel.OptionalVariableBindings{VersionedParams: param}, namespace, budget)
		if err == nil {
			budget = remaining
			if len(results) == 1 && results[0].Error == nil && results[0].EvalResult != nil {
				if s, ok := results[0].EvalResult.Value().(string); ok {
					s = strings.TrimSpace(s)
					if s != "" && len(s) <= celconfig.MaxEvaluatedMessageExpressionSizeBytes && !strings.Contains(s, "\n") {
						return s, budget
					}
				}
			}
		}
	}
	if m := strings.TrimSpace(v.Message); m != "" {
		return m, budget
	}
	return fmt.Sprintf("failed expression: %v", strings.TrimSpace(v.Expression)), budget
}

func joinErrors(errs []string) string {
	if len(errs) == 1 {
		return errs[0]
	}
	return "[" + strings.Join(errs, ", ") + "]"
}
