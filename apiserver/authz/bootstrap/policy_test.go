package bootstrap

import (
	"encoding/json"
	"os"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// declared indexes every object of the default policy by kind and namespace/name.
func declared() map[string]any {
	out := map[string]any{}
	for _, r := range append(ClusterRoles(), ControllerRoles()...) {
		out["ClusterRole/"+r.Name] = r
	}
	for _, b := range append(ClusterRoleBindings(), ControllerRoleBindings()...) {
		out["ClusterRoleBinding/"+b.Name] = b
	}
	for _, roles := range NamespaceRoles() {
		for _, r := range roles {
			out["Role/"+r.Namespace+"/"+r.Name] = r
		}
	}
	for _, bindings := range NamespaceRoleBindings() {
		for _, b := range bindings {
			out["RoleBinding/"+b.Namespace+"/"+b.Name] = b
		}
	}
	return out
}

func TestDeclarationMatchesUpstreamsPublishedPolicy(t *testing.T) {
	data, err := os.ReadFile("testdata/upstream-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := yaml.Unmarshal(data, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 20 {
		t.Fatalf("read %d upstream objects, want 20", len(list.Items))
	}
	ours := declared()
	for _, raw := range list.Items {
		var meta struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Fatal(err)
		}
		key := meta.Kind + "/" + meta.Metadata.Name
		if meta.Metadata.Namespace != "" {
			key = meta.Kind + "/" + meta.Metadata.Namespace + "/" + meta.Metadata.Name
		}
		var upstream any
		switch meta.Kind {
		case "ClusterRole":
			var o rbacv1.ClusterRole
			err = json.Unmarshal(raw, &o)
			o.TypeMeta = metav1.TypeMeta{}
			upstream = o
		case "ClusterRoleBinding":
			var o rbacv1.ClusterRoleBinding
			err = json.Unmarshal(raw, &o)
			o.TypeMeta = metav1.TypeMeta{}
			upstream = o
		case "Role":
			var o rbacv1.Role
			err = json.Unmarshal(raw, &o)
			o.TypeMeta = metav1.TypeMeta{}
			upstream = o
		case "RoleBinding":
			var o rbacv1.RoleBinding
			err = json.Unmarshal(raw, &o)
			o.TypeMeta = metav1.TypeMeta{}
			upstream = o
		}
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		got, ok := ours[key]
		if !ok {
			t.Errorf("%s is not declared", key)
			continue
		}
		if !equality.Semantic.DeepEqual(got, upstream) {
			g, _ := yaml.Marshal(got)
			u, _ := yaml.Marshal(upstream)
			t.Errorf("%s differs from upstream's\nours:\n%s\nupstream:\n%s", key, g, u)
		}
	}
}

func TestEveryBindingRefersToADeclaredRole(t *testing.T) {
	ours := declared()
	for _, b := range append(ClusterRoleBindings(), ControllerRoleBindings()...) {
		if _, ok := ours["ClusterRole/"+b.RoleRef.Name]; !ok {
			t.Errorf("ClusterRoleBinding %s refers to undeclared ClusterRole %s", b.Name, b.RoleRef.Name)
		}
	}
	for ns, bindings := range NamespaceRoleBindings() {
		for _, b := range bindings {
			if _, ok := ours["Role/"+ns+"/"+b.RoleRef.Name]; !ok || b.Namespace != ns {
				t.Errorf("RoleBinding %s/%s refers to undeclared Role %s", b.Namespace, b.Name, b.RoleRef.Name)
			}
		}
	}
}

func TestEveryControllerRoleIsBoundToItsServiceAccount(t *testing.T) {
	bindings := map[string]rbacv1.ClusterRoleBinding{}
	for _, b := range ControllerRoleBindings() {
		bindings[b.Name] = b
	}
	for _, r := range ControllerRoles() {
		b, ok := bindings[r.Name]
		want := rbacv1.Subject{Kind: "ServiceAccount", Namespace: "kube-system", Name: r.Name[len(ControllerRolePrefix):]}
		if !ok || len(b.Subjects) != 1 || b.Subjects[0] != want {
			t.Errorf("%s: binding %+v", r.Name, b.Subjects)
		}
	}
	// the controllers skiff runs have their roles
	for _, sa := range []string{"replicaset-controller", "deployment-controller", "generic-garbage-collector", "namespace-controller",
		"node-controller", "endpointslice-controller", "pod-garbage-collector", "service-account-controller", "root-ca-cert-publisher",
		"clusterrole-aggregation-controller"} {
		if _, ok := bindings[ControllerRolePrefix+sa]; !ok {
			t.Errorf("no role for %s", sa)
		}
	}
}

func TestEveryObjectIsMarkedForReconciliation(t *testing.T) {
	for key, o := range declared() {
		var m metav1.ObjectMeta
		switch o := o.(type) {
		case rbacv1.ClusterRole:
			m = o.ObjectMeta
		case rbacv1.ClusterRoleBinding:
			m = o.ObjectMeta
		case rbacv1.Role:
			m = o.ObjectMeta
		case rbacv1.RoleBinding:
			m = o.ObjectMeta
		}
		if m.Labels[BootstrappingLabel] != BootstrappingLabelValue || m.Annotations[rbacv1.AutoUpdateAnnotationKey] != "true" {
			t.Errorf("%s: labels %v annotations %v", key, m.Labels, m.Annotations)
		}
	}
}

func TestRulesAreWellFormed(t *testing.T) {
	check := func(owner string, rules []rbacv1.PolicyRule) {
		for i, r := range rules {
			resourceRule := len(r.Resources) > 0
			urlRule := len(r.NonResourceURLs) > 0
			if len(r.Verbs) == 0 || resourceRule == urlRule || (resourceRule && len(r.APIGroups) == 0) || (urlRule && len(r.APIGroups)+len(r.ResourceNames) > 0) {
				t.Errorf("%s rule %d is malformed: %+v", owner, i, r)
			}
		}
	}
	for _, r := range append(ClusterRoles(), ControllerRoles()...) {
		check(r.Name, r.Rules)
	}
	for _, roles := range NamespaceRoles() {
		for _, r := range roles {
			check(r.Namespace+"/"+r.Name, r.Rules)
		}
	}
}
