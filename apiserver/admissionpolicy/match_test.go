package admissionpolicy

import (
	"context"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apis"
)

var (
	deploymentsV1      = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	deploymentsV1beta2 = schema.GroupVersionResource{Group: "apps", Version: "v1beta2", Resource: "deployments"}
)

// policies holds one policy (defaulted, as the server stores it) bound with Deny everywhere.
func policies(t *testing.T, cfg Config, mutate func(*admissionregistrationv1.ValidatingAdmissionPolicy)) *Policies {
	t.Helper()
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "1", Generation: 1},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1beta2"}, Resources: []string{"deployments"}},
				}}},
			},
			Validations: []admissionregistrationv1.Validation{{Expression: "object.spec.replicas < 3", MessageExpression: "string(object.apiVersion)"}},
		},
	}
	if mutate != nil {
		mutate(p)
	}
	apis.DefaultValidatingAdmissionPolicy(p)
	if errs := apis.ValidateValidatingAdmissionPolicy(p); len(errs) > 0 {
		t.Fatalf("policy invalid: %v", errs)
	}
	ps := New(cfg)
	ps.SetPolicy(p)
	ps.SetBinding(&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "b"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "p", ValidationActions: []admissionregistrationv1.ValidationAction{"Deny"}}})
	return ps
}

// equivalentDeployments serves deployments in apps/v1 and (pretend) apps/v1beta2, converting
// by setting the apiVersion, which is all a Deployment of this test needs.
func equivalentDeployments() Config {
	return Config{
		Namespace: func(_ context.Context, name string) (*corev1.Namespace, error) {
			return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"env": "test"}}}, nil
		},
		Equivalents: func(gvr schema.GroupVersionResource) []Resource {
			if gvr == deploymentsV1 {
				return []Resource{{Resource: deploymentsV1beta2, Kind: deploymentsV1beta2.GroupVersion().WithKind("Deployment")}}
			}
			return nil
		},
		Convert: func(obj runtime.Object, kind schema.GroupVersionKind) (runtime.Object, error) {
			obj = obj.DeepCopyObject()
			obj.GetObjectKind().SetGroupVersionKind(kind)
			return obj, nil
		},
	}
}

func createDeployment(replicas int32, labels map[string]string) admission.Attributes {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", Labels: labels}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas)}}
	return admission.NewAttributesRecord(d, nil, appsv1.SchemeGroupVersion.WithKind("Deployment"), "ns", "d", deploymentsV1, "",
		admission.Create, nil, false, &user.DefaultInfo{Name: "u"})
}

func TestEquivalentMatchPolicyJudgesTheObjectInTheMatchedVersion(t *testing.T) {
	ps := policies(t, equivalentDeployments(), nil)
	err := ps.Validate(context.Background(), createDeployment(5, nil))
	if err == nil || !strings.HasSuffix(err.Error(), "denied request: apps/v1beta2") {
		t.Errorf("Equivalent: %v", err)
	}
	exact := policies(t, equivalentDeployments(), func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
		p.Spec.MatchConstraints.MatchPolicy = ptr.To(admissionregistrationv1.Exact)
	})
	if err := exact.Validate(context.Background(), createDeployment(5, nil)); err != nil {
		t.Errorf("Exact matched another version: %v", err)
	}
}

func TestExcludedResourcesScopesAndSelectorsLeaveARequestAlone(t *testing.T) {
	for name, mutate := range map[string]func(*admissionregistrationv1.ValidatingAdmissionPolicy){
		"excluded": func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.MatchConstraints.ExcludeResourceRules = []admissionregistrationv1.NamedRuleWithOperations{{
				ResourceNames: []string{"d"},
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"*"}, APIVersions: []string{"*"}, Resources: []string{"*"}},
				}}}
		},
		"cluster scope only": func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.MatchConstraints.ResourceRules[0].Scope = ptr.To(admissionregistrationv1.ClusterScope)
		},
		"a subresource only": func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.MatchConstraints.ResourceRules[0].Resources = []string{"deployments/status"}
		},
		"another namespace": func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.MatchConstraints.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}
		},
		"other objects": func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.MatchConstraints.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
		},
		"a false match condition": func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "never", Expression: "request.userInfo.username == 'someone-else'"}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			ps := policies(t, equivalentDeployments(), mutate)
			if err := ps.Validate(context.Background(), createDeployment(5, map[string]string{"app": "d"})); err != nil {
				t.Errorf("judged: %v", err)
			}
		})
	}
	// and the same policy without the narrowing denies
	if err := policies(t, equivalentDeployments(), nil).Validate(context.Background(), createDeployment(5, map[string]string{"app": "d"})); err == nil {
		t.Errorf("the unnarrowed policy allowed the request")
	}
}

func TestAPolicyIsCompiledOncePerGeneration(t *testing.T) {
	ps := policies(t, equivalentDeployments(), nil)
	first := ps.validating.policies["p"]
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "1", Generation: 1}, Spec: *first.spec}
	ps.SetPolicy(p)
	if ps.validating.policies["p"] != first {
		t.Errorf("the same generation was compiled again")
	}
	p.Generation = 2
	ps.SetPolicy(p)
	if ps.validating.policies["p"] == first {
		t.Errorf("a new generation was not compiled")
	}
}
