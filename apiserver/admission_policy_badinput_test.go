package apiserver_test

import (
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestBadAdmissionPoliciesAreRefusedWithUpstreamsWordsAndNothingStored(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	policies := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	bindings := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()

	for _, tc := range []struct {
		name   string
		mutate func(p *admissionregistrationv1.ValidatingAdmissionPolicy)
		want   string
	}{{
		name: "a validation that does not compile",
		mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.Validations[0].Expression = "object.data.size( <"
		},
		want: `ValidatingAdmissionPolicy.admissionregistration.k8s.io "bad" is invalid: spec.validations[0].expression: Invalid value: "object.data.size( <": compilation failed: ERROR: <input>:1:19: Syntax error: mismatched input '<' expecting {'[', '{', '(', ')', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}
 | object.data.size( <
 | ..................^
ERROR: <input>:1:20: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}
 | object.data.size( <
 | ...................^`,
	}, {
		name: "a validation that is not a bool",
		mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.Validations[0].Expression = "object.metadata.name"
		},
		want: `ValidatingAdmissionPolicy.admissionregistration.k8s.io "bad" is invalid: spec.validations[0].expression: Invalid value: "object.metadata.name": must evaluate to bool but got dyn`,
	}, {
		name: "params without a paramKind",
		mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.Validations[0].Expression = "params.x == 1"
		},
		want: `ValidatingAdmissionPolicy.admissionregistration.k8s.io "bad" is invalid: spec.validations[0].expression: Invalid value: "params.x == 1": compilation failed: ERROR: <input>:1:1: undeclared reference to 'params' (in container '')
 | params.x == 1
 | ^`,
	}, {
		name: "no validations, no rules, a bad failurePolicy",
		mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.Validations = nil
			p.Spec.MatchConstraints.ResourceRules = nil
			p.Spec.FailurePolicy = ptr.To(admissionregistrationv1.FailurePolicyType("Sometimes"))
		},
		want: `ValidatingAdmissionPolicy.admissionregistration.k8s.io "bad" is invalid: [spec.failurePolicy: Unsupported value: "Sometimes": supported values: "Fail", "Ignore", spec.matchConstraints.resourceRules: Required value, spec.validations: Required value: validations or auditAnnotations must contain at least one item, spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item]`,
	}, {
		name: "a variable that is not an identifier and a bad messageExpression",
		mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.Variables = []admissionregistrationv1.Variable{{Name: "a-b", Expression: "1"}}
			p.Spec.Validations[0].MessageExpression = "1 + 1"
		},
		want: `ValidatingAdmissionPolicy.admissionregistration.k8s.io "bad" is invalid: [spec.variables[0].name: Invalid value: "a-b": must be a valid CEL identifier, spec.validations[0].messageExpression: Invalid value: "1 + 1": must evaluate to string but got int]`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := configMapPolicy("bad", admissionregistrationv1.Validation{Expression: "true"})
			tc.mutate(p)
			_, err := policies.Create(ctx, p, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) || err.Error() != tc.want {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
			if _, err := policies.Get(ctx, "bad", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("bad policy stored: %v", err)
			}
		})
	}

	for _, tc := range []struct {
		name   string
		mutate func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding)
		want   string
	}{{
		name: "Deny and Warn together",
		mutate: func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
			b.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{"Deny", "Warn"}
		},
		want: `ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io "bad" is invalid: spec.validationActions: Invalid value: ["Deny","Warn"]: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)`,
	}, {
		name:   "no actions",
		mutate: func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) { b.Spec.ValidationActions = nil },
		want:   `ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io "bad" is invalid: spec.validationActions: Required value: at least one validation action is required`,
	}, {
		name: "a paramRef with a name and a selector, and a duplicated action",
		mutate: func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
			b.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{"Audit", "Audit"}
			b.Spec.ParamRef = &admissionregistrationv1.ParamRef{Name: "x", Selector: &metav1.LabelSelector{}}
		},
		want: `ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io "bad" is invalid: [spec.paramRef.name: Forbidden: name and selector are mutually exclusive, spec.paramRef.selector: Forbidden: name and selector are mutually exclusive, spec.validationActions[1]: Duplicate value: "Audit"]`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			b := policyBinding("bad", "some-policy", admissionregistrationv1.Deny)
			tc.mutate(b)
			_, err := bindings.Create(ctx, b, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) || err.Error() != tc.want {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
			if _, err := bindings.Get(ctx, "bad", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("bad binding stored: %v", err)
			}
		})
	}
}
