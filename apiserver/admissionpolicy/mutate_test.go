package admissionpolicy

import (
	"context"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apis"
)

// mutatingConfig serves apps/v1 deployments with client-go's schemas, as the server does.
func mutatingConfig() Config {
	converter := applyconfigurations.NewTypeConverter(apis.Scheme)
	return Config{
		Namespace: func(_ context.Context, name string) (*corev1.Namespace, error) {
			return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil
		},
		TypeConverter: func(schema.GroupVersionKind) managedfields.TypeConverter { return converter },
		FromUnstructured: func(u *unstructured.Unstructured, kind schema.GroupVersionKind) (runtime.Object, error) {
			out := &appsv1.Deployment{}
			return out, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out)
		},
	}
}

// mutatingPolicy binds one policy on deployments with the given mutations.
func mutatingPolicy(t *testing.T, ps *Policies, name string, reinvocation admissionregistrationv1.ReinvocationPolicyType, mutations ...admissionregistrationv1.Mutation) {
	t.Helper()
	p := &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: "1", Generation: 1},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				}}},
			},
			Mutations:          mutations,
			ReinvocationPolicy: reinvocation,
		},
	}
	apis.DefaultMutatingAdmissionPolicy(p)
	if errs := apis.ValidateMutatingAdmissionPolicy(p); len(errs) > 0 {
		t.Fatalf("policy invalid: %v", errs)
	}
	ps.SetMutatingPolicy(p)
	ps.SetMutatingBinding(&admissionregistrationv1.MutatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name + "-binding"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: name}})
}

func apply(expr string) admissionregistrationv1.Mutation {
	return admissionregistrationv1.Mutation{PatchType: admissionregistrationv1.PatchTypeApplyConfiguration,
		ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: expr}}
}

func jsonPatch(expr string) admissionregistrationv1.Mutation {
	return admissionregistrationv1.Mutation{PatchType: admissionregistrationv1.PatchTypeJSONPatch,
		JSONPatch: &admissionregistrationv1.JSONPatch{Expression: expr}}
}

func deploymentCreate(d *appsv1.Deployment) admission.Attributes {
	return admission.NewAttributesRecord(d, nil, appsv1.SchemeGroupVersion.WithKind("Deployment"), "default", d.Name, deploymentsV1, "",
		admission.Create, &metav1.CreateOptions{}, false, &user.DefaultInfo{Name: "alice"})
}

func newDeployment() *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "default", Labels: map[string]string{"app": "d"}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}
}

func TestApplyConfigurationMergesIntoTheObject(t *testing.T) {
	ps := New(mutatingConfig())
	mutatingPolicy(t, ps, "p", admissionregistrationv1.NeverReinvocationPolicy,
		apply(`Object{metadata: Object.metadata{annotations: {"mutated-by": "policy"}}, spec: Object.spec{replicas: 1337}}`),
		apply(`Object{spec: Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{containers: [Object.spec.template.spec.containers{name: "sidecar", image: "pause"}]}}}}`))
	out, err := ps.Mutate(context.Background(), deploymentCreate(newDeployment()), &Reinvocation{})
	if err != nil {
		t.Fatal(err)
	}
	d := out.(*appsv1.Deployment)
	if d.Annotations["mutated-by"] != "policy" || *d.Spec.Replicas != 1337 || d.Labels["app"] != "d" {
		t.Errorf("not merged: %+v", d.ObjectMeta)
	}
	// containers merge by name: the sidecar joins the one there
	if n := len(d.Spec.Template.Spec.Containers); n != 2 {
		t.Errorf("containers: %+v", d.Spec.Template.Spec.Containers)
	}
}

func TestApplyConfigurationMayNotSetAnAtomicList(t *testing.T) {
	ps := New(mutatingConfig())
	mutatingPolicy(t, ps, "p", admissionregistrationv1.NeverReinvocationPolicy,
		apply(`Object{spec: Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{containers: [Object.spec.template.spec.containers{name: "c", args: ["x"]}]}}}}`))
	_, err := ps.Mutate(context.Background(), deploymentCreate(newDeployment()), &Reinvocation{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "may not mutate atomic arrays, maps or structs: .spec.template.spec.containers[0].args") {
		t.Errorf("err = %v", err)
	}
	if status := err.(apierrors.APIStatus).Status(); status.Code != 403 ||
		!strings.HasPrefix(status.Message, "policy 'p' with binding 'p-binding' denied request: error applying patch: invalid ApplyConfiguration") {
		t.Errorf("status = %d %q", status.Code, status.Message)
	}
}

func TestJSONPatchAppliesItsOperations(t *testing.T) {
	ps := New(mutatingConfig())
	mutatingPolicy(t, ps, "p", admissionregistrationv1.NeverReinvocationPolicy, jsonPatch(`[
		JSONPatch{op: "add", path: "/metadata/labels/" + jsonpatch.escapeKey("example.com/team"), value: "blue"},
		JSONPatch{op: "replace", path: "/spec/replicas", value: object.spec.replicas + 2}
	]`))
	out, err := ps.Mutate(context.Background(), deploymentCreate(newDeployment()), &Reinvocation{})
	if err != nil {
		t.Fatal(err)
	}
	d := out.(*appsv1.Deployment)
	if d.Labels["example.com/team"] != "blue" || *d.Spec.Replicas != 3 {
		t.Errorf("not patched: %v %d", d.Labels, *d.Spec.Replicas)
	}
}

func TestAFailingMutationUnderIgnoreLeavesTheObject(t *testing.T) {
	ps := New(mutatingConfig())
	mutatingPolicy(t, ps, "p", admissionregistrationv1.NeverReinvocationPolicy, jsonPatch(`[JSONPatch{op: "remove", path: "/spec/nothing"}]`))
	ps.mutating.policies["p"].spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	d := newDeployment()
	out, err := ps.Mutate(context.Background(), deploymentCreate(d), &Reinvocation{})
	if err != nil || out != runtime.Object(d) {
		t.Errorf("out = %v, err = %v", out, err)
	}
	ps.mutating.policies["p"].spec.FailurePolicy = ptr.To(admissionregistrationv1.Fail)
	if _, err := ps.Mutate(context.Background(), deploymentCreate(d), &Reinvocation{}); err == nil || !strings.Contains(err.Error(), "JSON Patch:") {
		t.Errorf("err = %v", err)
	}
}

func TestIfNeededPoliciesRunAgainWhenALaterStepChangedTheObject(t *testing.T) {
	ps := New(mutatingConfig())
	// a counts the replicas it has seen into an annotation; b (after it by name) doubles them
	mutatingPolicy(t, ps, "a", admissionregistrationv1.IfNeededReinvocationPolicy,
		apply(`Object{metadata: Object.metadata{annotations: {"seen": string(object.spec.replicas)}}}`))
	mutatingPolicy(t, ps, "b", admissionregistrationv1.NeverReinvocationPolicy,
		apply(`Object{spec: Object.spec{replicas: object.spec.replicas * 2}}`))
	re := &Reinvocation{}
	out, err := ps.Mutate(context.Background(), deploymentCreate(newDeployment()), re)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(*appsv1.Deployment).Annotations["seen"]; got != "1" || !re.ShouldReinvoke() {
		t.Fatalf("first pass: seen %q, reinvoke %v", got, re.ShouldReinvoke())
	}
	out, err = ps.Mutate(context.Background(), deploymentCreate(out.(*appsv1.Deployment)), re)
	if err != nil {
		t.Fatal(err)
	}
	d := out.(*appsv1.Deployment)
	// a ran again and saw b's change; b, Never, did not double again
	if d.Annotations["seen"] != "2" || *d.Spec.Replicas != 2 {
		t.Errorf("reinvocation: seen %q, replicas %d", d.Annotations["seen"], *d.Spec.Replicas)
	}
}

func TestMutatingPoliciesLeaveOtherRequestsAlone(t *testing.T) {
	ps := New(mutatingConfig())
	mutatingPolicy(t, ps, "p", admissionregistrationv1.NeverReinvocationPolicy, apply(`Object{spec: Object.spec{replicas: 9}}`))
	d := newDeployment()
	update := admission.NewAttributesRecord(d, d, appsv1.SchemeGroupVersion.WithKind("Deployment"), "default", "d", deploymentsV1, "",
		admission.Update, &metav1.UpdateOptions{}, false, &user.DefaultInfo{Name: "alice"})
	if out, err := ps.Mutate(context.Background(), update, &Reinvocation{}); err != nil || *out.(*appsv1.Deployment).Spec.Replicas != 1 {
		t.Errorf("an update the rules do not name was mutated: %v", err)
	}
}
