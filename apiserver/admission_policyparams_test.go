package apiserver_test

import (
	"context"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// A policy reads its params with the server's rights, so only a user who may read them may
// point a policy or a binding at them, as upstream's policy strategies check: "get" on every
// object of a paramKind, "get" on the object a paramRef names, "list" for a selector. Refusals
// are upstream's 422 and nothing is stored.
func TestPolicyParamsNeedTheWritersReadRights(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	admin := s.Client
	// the writer may manage policies and bindings, and read ConfigMaps in "default" only
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "policy-writer"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"admissionregistration.k8s.io"}, Verbs: []string{"*"},
			Resources: []string{"validatingadmissionpolicies", "validatingadmissionpolicybindings"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "policy-writer"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "policy-writer"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "writer"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "cm-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Verbs: []string{"get"}, Resources: []string{"configmaps"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "cm-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "cm-reader"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "writer"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	writer, _ := userClient(t, s, "writer")
	policies := writer.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	bindings := writer.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	policy := func(name string) *admissionregistrationv1.ValidatingAdmissionPolicy {
		return &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				ParamKind: &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
				MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
					}}}},
				Validations: []admissionregistrationv1.Validation{{Expression: "true"}},
			}}
	}
	binding := func(name string, ref admissionregistrationv1.ParamRef) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
		return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "with-params", ParamRef: &ref,
				ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}}}
	}
	deny := admissionregistrationv1.DenyAction
	refused := func(what string, err error, want string) {
		t.Helper()
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v\nwant a 422 saying %q", what, err, want)
		}
	}

	// every ConfigMap is more than the writer may read
	var err error
	eventually(t, "the writer's role applies", func() error {
		_, err = policies.Create(ctx, policy("with-params"), metav1.CreateOptions{})
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "cannot create resource") {
			return err
		}
		return nil
	})
	refused("a policy over every ConfigMap", err,
		`ValidatingAdmissionPolicy.admissionregistration.k8s.io "with-params" is invalid: spec.paramKind: Forbidden: user &{writer  [system:authenticated] map[]} must have "get" permission on all objects of the referenced paramKind (kind=ConfigMap, apiVersion=v1)`)
	if _, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, "with-params", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused policy: %v, want it not stored", err)
	}
	// the admin may; the writer binds it
	if _, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy("with-params"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = bindings.Create(ctx, binding("elsewhere", admissionregistrationv1.ParamRef{Name: "params", Namespace: "kube-system", ParameterNotFoundAction: &deny}), metav1.CreateOptions{})
	refused("a binding to a ConfigMap in kube-system", err,
		`spec.paramRef: Forbidden: user &{writer  [system:authenticated] map[]} does not have "get" permission on the object referenced by paramRef`)
	_, err = bindings.Create(ctx, binding("selected", admissionregistrationv1.ParamRef{Namespace: "default",
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}, ParameterNotFoundAction: &deny}), metav1.CreateOptions{})
	refused("a binding selecting ConfigMaps", err, `does not have "list" permission on the object referenced by paramRef`)
	if _, err := bindings.Create(ctx, binding("here", admissionregistrationv1.ParamRef{Name: "params", Namespace: "default", ParameterNotFoundAction: &deny}), metav1.CreateOptions{}); err != nil {
		t.Errorf("a binding to a ConfigMap the writer may read: %v", err)
	}
	// a binding to a policy that is not there needs the right on everything
	b := binding("orphan", admissionregistrationv1.ParamRef{Name: "params", Namespace: "default", ParameterNotFoundAction: &deny})
	b.Spec.PolicyName = "missing"
	_, err = bindings.Create(ctx, b, metav1.CreateOptions{})
	refused("a binding to a missing policy", err,
		`unable to get policy missing to determine minimum required permissions and user &{writer  [system:authenticated] map[]} does not have "get" permission for all groups, versions and resources`)
}
