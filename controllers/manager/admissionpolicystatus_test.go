package manager

import (
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// The policy status controller runs as its upstream ServiceAccount: its role, with what every
// user may read (discovery, OpenAPI), must let it type-check a policy and write the status.
func TestThePolicyStatusControllerRunsAsItsServiceAccount(t *testing.T) {
	s := apiservertest.Start(t)
	startManager(t, s, Options{Controllers: []string{"validatingadmissionpolicy-status"}, UseServiceAccountCredentials: true, Port: -1})
	policies := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	if _, err := policies.Create(context.Background(), &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "confused"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "object.spec.replicas > '1'"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the type-checking warning", func(ctx context.Context) bool {
		p, err := policies.Get(ctx, "confused", metav1.GetOptions{})
		return err == nil && p.Status.ObservedGeneration == 1 && p.Status.TypeChecking != nil &&
			len(p.Status.TypeChecking.ExpressionWarnings) == 1 && p.Status.TypeChecking.ExpressionWarnings[0].FieldRef == "spec.validations[0].expression"
	})
}
