package admissionpolicy

import (
	"context"
	"errors"

	celtypes "github.com/google/cel-go/common/types"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
)

// What validating and mutating policies share: deciding which of a policy's bindings a
// request invokes it through, with which params, and its match conditions.

// policyHead is what matching reads of a policy of either kind.
type policyHead struct {
	name          string
	failurePolicy admissionregistrationv1.FailurePolicyType
	constraints   *admissionregistrationv1.MatchResources
	paramKind     *admissionregistrationv1.ParamKind
	err           error // the policy could not be compiled
}

// bindingHead is what matching reads of a binding of either kind.
type bindingHead struct {
	name     string
	match    *admissionregistrationv1.MatchResources
	paramRef *admissionregistrationv1.ParamRef
}

// invocation is one evaluation a request asks of a policy: through bindings[binding], as
// resource as, with param (nil when the policy takes none).
type invocation struct {
	binding int
	as      Resource
	param   runtime.Object
}

// invocations decides whether pol applies to the request and through which of its bindings
// with which params, in the bindings' order. A policy or binding that cannot be used is
// reported to configError (binding "" for the policy's own failures) and skipped; the error
// returned is a missing namespace, which ends the request, as upstream's.
func (p *Policies) invocations(ctx context.Context, r *request, pol policyHead, bindings []bindingHead,
	configError func(binding string, err error)) ([]invocation, error) {
	if pol.err != nil {
		configError("", pol.err)
		return nil, nil
	}
	if pol.constraints == nil {
		configError("", errNoMatchConstraints)
		return nil, nil
	}
	matched, as, err := r.matchResources(ctx, pol.constraints)
	if apierrors.IsNotFound(err) {
		return nil, err
	}
	if err != nil {
		configError("", err)
		return nil, nil
	}
	if !matched {
		return nil, nil
	}
	if pk := pol.paramKind; pk != nil {
		// a paramKind nothing serves fails the policy, whichever binding would use it
		if _, ok := p.cfg.Params(paramKindGVK(pk)); !ok {
			configError("", paramKindError(pk))
			return nil, nil
		}
	}
	var out []invocation
	for i, b := range bindings {
		if ok, _, err := r.matchResources(ctx, b.match); err != nil {
			configError(b.name, err)
			continue
		} else if !ok {
			continue
		}
		params, err := p.params(ctx, pol.paramKind, b.paramRef, r.namespaceName())
		if err != nil {
			configError(b.name, err)
			continue
		}
		// no params (parameterNotFoundAction Allow) is no invocation
		for _, param := range params {
			out = append(out, invocation{binding: i, as: as, param: param})
		}
	}
	return out, nil
}

// matchConditions evaluates a policy's match conditions (nil: none): false when one is
// false, whatever errors others had; an error when none is false and some failed.
func matchConditions(ctx context.Context, conditions plugincel.ConditionEvaluator, va *admission.VersionedAttributes,
	request *admissionv1.AdmissionRequest, vars plugincel.OptionalVariableBindings, namespace *corev1.Namespace) (bool, error) {
	if conditions == nil {
		return true, nil
	}
	results, _, err := conditions.ForInput(ctx, va, request, vars, namespace, celconfig.RuntimeCELCostBudgetMatchConditions)
	if err != nil {
		return false, err
	}
	var errs []string
	for _, res := range results {
		if res.Error != nil {
			errs = append(errs, res.Error.Error())
		} else if res.EvalResult == celtypes.False {
			return false, nil
		}
	}
	if len(errs) > 0 {
		return false, errors.New(joinErrors(errs))
	}
	return true, nil
}
