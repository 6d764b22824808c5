package apis

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateRoleRules(t *testing.T) {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "system:reader", Namespace: "team"}, Rules: []rbacv1.PolicyRule{
		{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}},
	}}
	checkFieldErrors(t, ValidateRole(role))

	role.Rules = []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}},
		{Verbs: []string{"get"}},
		{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}, Resources: []string{"pods"}},
	}
	checkFieldErrors(t, ValidateRole(role),
		`rules[0].verbs: Required value: verbs must contain at least one value`,
		`rules[1].apiGroups: Required value: resource rules must supply at least one api group`,
		`rules[1].resources: Required value: resource rules must supply at least one resource`,
		`rules[2].nonResourceURLs: Invalid value: ["/healthz"]: namespaced rules cannot apply to non-resource URLs`,
		`rules[2].nonResourceURLs: Invalid value: ["/healthz"]: rules cannot apply to both regular resources and non-resource URLs`,
	)
}

func TestRBACNamesArePathSegments(t *testing.T) {
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "a/b"}}
	checkFieldErrors(t, ValidateClusterRole(role), `metadata.name: Invalid value: "a/b": may not contain '/'`)
	role.Name = "system:controller:x"
	checkFieldErrors(t, ValidateClusterRole(role))
}

func TestValidateClusterRoleAggregationRule(t *testing.T) {
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "agg"}, AggregationRule: &rbacv1.AggregationRule{}}
	checkFieldErrors(t, ValidateClusterRole(role),
		`aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil`)
	role.AggregationRule.ClusterRoleSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rbac.example.com/aggregate-to-agg": "true"}}}
	checkFieldErrors(t, ValidateClusterRole(role))
	role.Rules = []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics"}}}
	checkFieldErrors(t, ValidateClusterRole(role))
}

func TestValidateRoleBinding(t *testing.T) {
	b := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "team"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{
			{Kind: "User", APIGroup: rbacv1.GroupName, Name: "alice"},
			{Kind: "ServiceAccount", Name: "builder"}, // the binding's namespace
		},
	}
	checkFieldErrors(t, ValidateRoleBinding(b))

	b.RoleRef = rbacv1.RoleRef{APIGroup: "example.com", Kind: "Policy"}
	b.Subjects = []rbacv1.Subject{
		{Kind: "User", Name: "alice"},
		{Kind: "ServiceAccount", APIGroup: rbacv1.GroupName, Name: "Builder"},
		{Kind: "Robot", Name: "r2"},
		{Kind: "Group", APIGroup: rbacv1.GroupName},
	}
	checkFieldErrors(t, ValidateRoleBinding(b),
		`roleRef.apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io"`,
		`roleRef.kind: Unsupported value: "Policy": supported values: "Role", "ClusterRole"`,
		`roleRef.name: Required value`,
		`subjects[0].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io"`,
		`subjects[1].name: Invalid value: "Builder": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
		`subjects[1].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: ""`,
		`subjects[2].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"`,
		`subjects[3].name: Required value`,
	)
}

func TestClusterRoleBindingNeedsAClusterRoleAndServiceAccountNamespaces(t *testing.T) {
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "b"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "r"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "builder"}},
	}
	checkFieldErrors(t, ValidateClusterRoleBinding(b),
		`roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"`,
		`subjects[0].namespace: Required value`,
	)
}

func TestRoleRefCannotChange(t *testing.T) {
	old := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "team", ResourceVersion: "1"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
	}
	b := old.DeepCopy()
	b.Subjects = []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "alice"}}
	checkFieldErrors(t, ValidateRoleBindingUpdate(b, old))
	b.RoleRef.Name = "edit"
	checkFieldErrors(t, ValidateRoleBindingUpdate(b, old),
		`roleRef: Invalid value: {"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"edit"}: cannot change roleRef`)

	oldCRB := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "c", ResourceVersion: "1"}, RoleRef: old.RoleRef}
	crb := oldCRB.DeepCopy()
	crb.RoleRef.Name = "admin"
	checkFieldErrors(t, ValidateClusterRoleBindingUpdate(crb, oldCRB),
		`roleRef: Invalid value: {"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"admin"}: cannot change roleRef`)
}

func TestUpdateReportsObjectErrorsTwiceAsUpstream(t *testing.T) {
	old := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "team", ResourceVersion: "1"}}
	role := old.DeepCopy()
	role.Rules = []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}}}
	checkFieldErrors(t, ValidateRoleUpdate(role, old),
		`rules[0].verbs: Required value: verbs must contain at least one value`,
		`rules[0].verbs: Required value: verbs must contain at least one value`)
}

func TestDefaultBindingFillsAPIGroups(t *testing.T) {
	b := &rbacv1.RoleBinding{
		RoleRef:  rbacv1.RoleRef{Kind: "Role", Name: "r"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "a"}, {Kind: "Group", Name: "g"}, {Kind: "ServiceAccount", Name: "s"}},
	}
	DefaultRoleBinding(b)
	if b.RoleRef.APIGroup != rbacv1.GroupName || b.Subjects[0].APIGroup != rbacv1.GroupName || b.Subjects[1].APIGroup != rbacv1.GroupName || b.Subjects[2].APIGroup != "" {
		t.Errorf("defaulted: %+v", b)
	}
}
