package admissionpolicystatus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/restmapper"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/admissionpolicystatus"
)

func deploymentPolicy(name string, paramKind *admissionregistrationv1.ParamKind, validations ...admissionregistrationv1.Validation) *admissionregistrationv1.ValidatingAdmissionPolicy {
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind: paramKind,
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				}}},
			},
			Validations: validations,
		},
	}
}

func TestPolicyStatusCarriesTypeCheckingWarningsOfItsGeneration(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory := informers.NewSharedInformerFactory(s.Client, 0)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(s.Client.Discovery()))
	c, err := admissionpolicystatus.New(factory.Admissionregistration().V1().ValidatingAdmissionPolicies(), s.Client,
		admissionpolicystatus.NewTypeChecker(s.Client, mapper), controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { c.Run(ctx, 1); close(done) }()
	defer func() { cancel(); <-done; factory.Shutdown() }()

	policies := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	if _, err := policies.Create(ctx, deploymentPolicy("typo", &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
		admissionregistrationv1.Validation{Expression: "object.spec.replicas > 1"},
		admissionregistrationv1.Validation{Expression: "object.spec.replicass > 1", MessageExpression: "'replicas: ' + object.spec.replicas"},
	), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := policies.Create(ctx, deploymentPolicy("clean", nil, admissionregistrationv1.Validation{Expression: "object.spec.replicas > 1"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// a policy without issues gets an empty typeChecking: upstream's sign that checking is done
	if status := waitForObservedGeneration(t, policies, "clean", 1); status.TypeChecking == nil || len(status.TypeChecking.ExpressionWarnings) != 0 {
		t.Errorf("clean policy status %+v", status)
	}
	status := waitForObservedGeneration(t, policies, "typo", 1)
	if status.TypeChecking == nil || len(status.TypeChecking.ExpressionWarnings) != 2 {
		t.Fatalf("status %+v", status)
	}
	w := status.TypeChecking.ExpressionWarnings
	if w[0].FieldRef != "spec.validations[1].expression" || !strings.Contains(w[0].Warning, "apps/v1, Kind=Deployment: ERROR: <input>:1:12: undefined field 'replicass'") {
		t.Errorf("expression warning %+v", w[0])
	}
	if w[1].FieldRef != "spec.validations[1].messageExpression" || !strings.Contains(w[1].Warning, "found no matching overload for '_+_' applied to '(string, int)'") {
		t.Errorf("messageExpression warning %+v", w[1])
	}

	// a new generation is checked again: fixed, it has no warnings
	p, err := policies.Get(ctx, "typo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.Validations = p.Spec.Validations[:1]
	if _, err := policies.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	status = waitForObservedGeneration(t, policies, "typo", 2)
	// server-side apply drops the emptied typeChecking, as structured-merge-diff does upstream
	if status.TypeChecking != nil && len(status.TypeChecking.ExpressionWarnings) != 0 {
		t.Errorf("fixed policy status %+v", status)
	}
}

func waitForObservedGeneration(t *testing.T, policies interface {
	Get(context.Context, string, metav1.GetOptions) (*admissionregistrationv1.ValidatingAdmissionPolicy, error)
}, name string, generation int64) admissionregistrationv1.ValidatingAdmissionPolicyStatus {
	t.Helper()
	var status admissionregistrationv1.ValidatingAdmissionPolicyStatus
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := policies.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		status = p.Status
		return p.Status.ObservedGeneration == generation, nil
	}); err != nil {
		t.Fatalf("observedGeneration never %d: %+v", generation, status)
	}
	return status
}
