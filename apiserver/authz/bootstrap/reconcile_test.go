package bootstrap

import (
	"context"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/apiserver/authz/rbac"
)

func TestEnsurePolicyCreatesEverythingOnAnEmptyCluster(t *testing.T) {
	cs := fake.NewClientset()
	ctx := context.Background()
	if err := EnsurePolicy(ctx, ClientsetClients(cs)); err != nil {
		t.Fatal(err)
	}
	crs, _ := cs.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	if want := len(ClusterRoles()) + len(ControllerRoles()); len(crs.Items) != want {
		t.Errorf("%d ClusterRoles, want %d", len(crs.Items), want)
	}
	crbs, _ := cs.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if want := len(ClusterRoleBindings()) + len(ControllerRoleBindings()); len(crbs.Items) != want {
		t.Errorf("%d ClusterRoleBindings, want %d", len(crbs.Items), want)
	}
	if _, err := cs.RbacV1().Roles("kube-public").Get(ctx, "system:controller:bootstrap-signer", metav1.GetOptions{}); err != nil {
		t.Errorf("kube-public role: %v", err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "kube-public", metav1.GetOptions{}); err != nil {
		t.Errorf("kube-public was not made: %v", err)
	}
	// a second run writes nothing
	cs.ClearActions()
	if err := EnsurePolicy(ctx, ClientsetClients(cs)); err != nil {
		t.Fatal(err)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("second run wrote: %v", a)
		}
	}
}

func findClusterRole(name string) *rbacv1.ClusterRole {
	for _, r := range ClusterRoles() {
		if r.Name == name {
			return &r
		}
	}
	return nil
}

func TestReconcileAddsMissingRulesAndKeepsUserAdditions(t *testing.T) {
	expected := findClusterRole("system:basic-user")
	existing := expected.DeepCopy()
	existing.Rules = []rbacv1.PolicyRule{
		expected.Rules[0],
		{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}, // added by a user
	}
	existing.Labels["team"] = "platform"
	cs := fake.NewClientset(existing)
	ctx := context.Background()
	res, err := ReconcileClusterRole(ctx, ClientsetClients(cs).ClusterRoles, expected, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Operation != OperationUpdate || len(res.MissingRules) != 1 || len(res.ExtraRules) != 1 {
		t.Errorf("result = %+v", res)
	}
	got, _ := cs.RbacV1().ClusterRoles().Get(ctx, expected.Name, metav1.GetOptions{})
	if covered, _ := rbac.Covers(got.Rules, expected.Rules); !covered {
		t.Errorf("rules after reconcile lack the expected: %v", got.Rules)
	}
	if covered, _ := rbac.Covers(got.Rules, existing.Rules[1:]); !covered || got.Labels["team"] != "platform" {
		t.Errorf("user's rule or label lost: %v %v", got.Rules, got.Labels)
	}

	// with RemoveExtra the rules become exactly the expected ones
	if _, err := ReconcileClusterRole(ctx, ClientsetClients(cs).ClusterRoles, expected, Options{RemoveExtra: true}); err != nil {
		t.Fatal(err)
	}
	got, _ = cs.RbacV1().ClusterRoles().Get(ctx, expected.Name, metav1.GetOptions{})
	if !equality.Semantic.DeepEqual(got.Rules, expected.Rules) {
		t.Errorf("rules = %v, want %v", got.Rules, expected.Rules)
	}
}

func TestAutoupdateFalseProtectsARole(t *testing.T) {
	expected := findClusterRole("system:basic-user")
	existing := expected.DeepCopy()
	existing.Rules = nil
	existing.Annotations[rbacv1.AutoUpdateAnnotationKey] = "false"
	cs := fake.NewClientset(existing)
	res, err := ReconcileClusterRole(context.Background(), ClientsetClients(cs).ClusterRoles, expected, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// missing rules are listed a verb and resource each
	if !res.Protected || res.Operation != OperationUpdate || len(res.MissingRules) != 3 {
		t.Errorf("result = %+v", res)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("wrote a protected role: %v", a)
		}
	}
}

func TestAggregatedRoleKeepsItsAggregatedRules(t *testing.T) {
	expected := findClusterRole("admin")
	existing := expected.DeepCopy()
	existing.Rules = []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}
	cs := fake.NewClientset(existing)
	res, err := ReconcileClusterRole(context.Background(), ClientsetClients(cs).ClusterRoles, expected, Options{RemoveExtra: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Operation != OperationNone {
		t.Errorf("result = %+v", res)
	}
}

func TestReconcileRestoresAMissingAggregationSelector(t *testing.T) {
	expected := findClusterRole("view")
	existing := expected.DeepCopy()
	existing.AggregationRule = nil
	cs := fake.NewClientset(existing)
	res, err := ReconcileClusterRole(context.Background(), ClientsetClients(cs).ClusterRoles, expected, Options{})
	if err != nil || res.Operation != OperationUpdate || len(res.MissingAggregationSelectors) != 1 {
		t.Fatalf("result = %+v, %v", res, err)
	}
	got, _ := cs.RbacV1().ClusterRoles().Get(context.Background(), "view", metav1.GetOptions{})
	if got.AggregationRule == nil || got.AggregationRule.ClusterRoleSelectors[0].MatchLabels[aggregateToView] != "true" {
		t.Errorf("aggregationRule = %+v", got.AggregationRule)
	}
}

func TestReconcileAddsMissingSubjectsAndRecreatesOnRoleRefChange(t *testing.T) {
	var expected rbacv1.ClusterRoleBinding
	for _, b := range ClusterRoleBindings() {
		if b.Name == "system:public-info-viewer" {
			expected = b
		}
	}
	existing := expected.DeepCopy()
	existing.Subjects = []rbacv1.Subject{expected.Subjects[0], {Kind: "User", APIGroup: rbacv1.GroupName, Name: "extra"}}
	cs := fake.NewClientset(existing)
	ctx := context.Background()
	c := ClientsetClients(cs).ClusterRoleBindings
	res, err := ReconcileClusterRoleBinding(ctx, c, &expected, Options{})
	if err != nil || res.Operation != OperationUpdate || len(res.MissingSubjects) != 1 || len(res.ExtraSubjects) != 1 {
		t.Fatalf("result = %+v, %v", res, err)
	}
	got, _ := cs.RbacV1().ClusterRoleBindings().Get(ctx, expected.Name, metav1.GetOptions{})
	if len(got.Subjects) != 3 {
		t.Errorf("subjects = %v", got.Subjects)
	}

	got.RoleRef.Name = "something-else"
	if _, err := cs.RbacV1().ClusterRoleBindings().Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err = ReconcileClusterRoleBinding(ctx, c, &expected, Options{})
	if err != nil || res.Operation != OperationRecreate {
		t.Fatalf("result = %+v, %v", res, err)
	}
	got, _ = cs.RbacV1().ClusterRoleBindings().Get(ctx, expected.Name, metav1.GetOptions{})
	if got.RoleRef != expected.RoleRef || len(got.Subjects) != len(expected.Subjects) {
		t.Errorf("after recreate: %+v %v", got.RoleRef, got.Subjects)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	cs := fake.NewClientset()
	b := NamespaceRoleBindings()["kube-system"][0]
	res, err := ReconcileRoleBinding(context.Background(), ClientsetClients(cs).RoleBindings, nil, &b, Options{DryRun: true})
	if err != nil || res.Operation != OperationCreate {
		t.Fatalf("result = %+v, %v", res, err)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("dry run wrote: %v", a)
		}
	}
}
