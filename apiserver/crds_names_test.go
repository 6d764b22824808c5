package apiserver

import (
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

func definition(group, plural, kind string, shortNames ...string) *apiextensionsv1.CustomResourceDefinition {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crd.Name = plural + "." + group
	crd.Spec.Group = group
	crd.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Singular: kind, Kind: kind, ListKind: kind + "List", ShortNames: shortNames}
	return crd
}

func TestAcceptNamesRefusesNamesAnotherDefinitionOrABuiltinKindHolds(t *testing.T) {
	holder := definition("example.com", "widgets", "Widget", "wd")
	holder.Status.AcceptedNames = holder.Spec.Names
	cases := []struct {
		name            string
		crd             *apiextensionsv1.CustomResourceDefinition
		reason, message string
		acceptedPlural  string
	}{
		{"no conflict", definition("example.com", "gadgets", "Gadget"), "NoConflicts", "no conflicts found", "gadgets"},
		{"a plural another holds", definition("example.com", "widgets", "Gizmo"), "PluralConflict", `"widgets" is already in use`, ""},
		{"a short name another holds", definition("example.com", "gizmos", "Gizmo", "wd"), "ShortNamesConflict", `"wd" is already in use`, "gizmos"},
		{"a built-in kind's plural", definition("apiextensions.k8s.io", "customresourcedefinitions", "Other"), "PluralConflict",
			`"customresourcedefinitions" is already in use`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			names, cond := acceptNames(tc.crd, []*apiextensionsv1.CustomResourceDefinition{holder})
			if cond.Reason != tc.reason || cond.Message != tc.message {
				t.Errorf("condition %s: %q, want %s: %q", cond.Reason, cond.Message, tc.reason, tc.message)
			}
			if names.Plural != tc.acceptedPlural {
				t.Errorf("accepted plural %q, want %q", names.Plural, tc.acceptedPlural)
			}
		})
	}
	// names accepted before stay accepted when another definition later claims them too
	renamed := definition("example.com", "widgets", "Widget")
	renamed.Status.AcceptedNames = renamed.Spec.Names
	if _, cond := acceptNames(renamed, []*apiextensionsv1.CustomResourceDefinition{holder}); cond.Status != apiextensionsv1.ConditionTrue {
		t.Errorf("names it already had: %+v", cond)
	}
}
