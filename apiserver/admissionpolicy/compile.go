package admissionpolicy

import (
	"errors"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/types"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/cel/environment"

	"github.com/skiff-dev/skiff/apis"
)

// compiledPolicy is one generation of a policy, its expressions compiled.
type compiledPolicy struct {
	name       string
	uid        types.UID
	generation int64
	spec       *admissionregistrationv1.ValidatingAdmissionPolicySpec
	// err is a compilation failure of the whole policy (its environment); single expressions
	// that fail to compile fail when evaluated, under the failure policy
	err error

	matchConditions plugincel.ConditionEvaluator // nil when none
	validations     plugincel.ConditionEvaluator
	// messages holds each validation's messageExpression; nil entries have none
	messages         []plugincel.ConditionEvaluator
	auditAnnotations plugincel.ConditionEvaluator
}

func (c *compiledPolicy) policyName() string       { return c.name }
func (c *compiledPolicy) held() (types.UID, int64) { return c.uid, c.generation }

// compilePolicy compiles a policy's variables, match conditions, validations, message
// expressions and audit annotations. Stored policies compile in the stored-expressions
// environment, as upstream runs them.
func compilePolicy(vap *admissionregistrationv1.ValidatingAdmissionPolicy) *compiledPolicy {
	c := &compiledPolicy{name: vap.Name, uid: vap.UID, generation: vap.Generation, spec: &vap.Spec}
	compiler, err := apis.NewPolicyCompiler()
	if err != nil {
		c.err = err
		return c
	}
	hasParams := vap.Spec.ParamKind != nil
	withAuthorizer := plugincel.OptionalVariableDeclarations{HasParams: hasParams, HasAuthorizer: true}
	mode := environment.StoredExpressions
	for _, v := range vap.Spec.Variables {
		compiler.CompileAndStoreVariable(&apis.PolicyExpression{Name: v.Name, Expression: v.Expression, Types: apis.VariableExpression}, withAuthorizer, mode)
	}
	if len(vap.Spec.MatchConditions) > 0 {
		exprs := make([]plugincel.ExpressionAccessor, len(vap.Spec.MatchConditions))
		for i, mc := range vap.Spec.MatchConditions {
			exprs[i] = &apis.PolicyExpression{Name: mc.Name, Expression: mc.Expression, Types: apis.BoolExpression}
		}
		c.matchConditions = compiler.CompileCondition(exprs, withAuthorizer, mode)
	}
	validations := make([]plugincel.ExpressionAccessor, len(vap.Spec.Validations))
	c.messages = make([]plugincel.ConditionEvaluator, len(vap.Spec.Validations))
	for i, v := range vap.Spec.Validations {
		validations[i] = &apis.PolicyExpression{Expression: v.Expression, Types: apis.BoolExpression}
		if v.MessageExpression != "" {
			// message expressions cannot ask the authorizer
			c.messages[i] = compiler.CompileCondition([]plugincel.ExpressionAccessor{
				&apis.PolicyExpression{Expression: v.MessageExpression, Types: apis.StringExpression},
			}, plugincel.OptionalVariableDeclarations{HasParams: hasParams}, mode)
		}
	}
	c.validations = compiler.CompileCondition(validations, withAuthorizer, mode)
	annotations := make([]plugincel.ExpressionAccessor, len(vap.Spec.AuditAnnotations))
	for i, a := range vap.Spec.AuditAnnotations {
		annotations[i] = &apis.PolicyExpression{Expression: a.ValueExpression, Types: apis.AuditAnnotationExpression}
	}
	c.auditAnnotations = compiler.CompileCondition(annotations, withAuthorizer, mode)
	return c
}

// failurePolicy is the policy's, Fail when unset.
func (c *compiledPolicy) failurePolicy() admissionregistrationv1.FailurePolicyType {
	if c.spec.FailurePolicy == nil {
		return admissionregistrationv1.Fail
	}
	return *c.spec.FailurePolicy
}

// errNoMatchConstraints is upstream's answer to a policy without match constraints (which
// validation refuses, so only a policy stored by something else has none).
var errNoMatchConstraints = errors.New("policy contained no match constraints, a required field")

// paramKindError is the configuration error of a policy whose paramKind nothing serves.
func paramKindError(pk *admissionregistrationv1.ParamKind) error {
	return fmt.Errorf("failed to find resource referenced by paramKind: '%v'", paramKindGVK(pk))
}
