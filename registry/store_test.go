package registry

import (
	"testing"

	"k8s.io/apimachinery/pkg/fields"
)

func TestWatchOfOneKeyDropsOnlyTheFieldsItsKeyImplies(t *testing.T) {
	for _, c := range []struct {
		selector, ns, name string
		dropped            bool
	}{
		{"metadata.name=w", "default", "w", true},
		{"metadata.name==w,metadata.namespace=default", "default", "w", true},
		{"metadata.name=w", "", "w", true}, // cluster-scoped
		{"metadata.name=w,metadata.namespace=default", "", "w", false},
		{"metadata.name=w,metadata.namespace=other", "default", "w", false},
		{"metadata.name=w,spec.nodeName=n1", "default", "w", false},
		{"metadata.name=w,metadata.name!=x", "default", "w", false},
	} {
		sel, err := fields.ParseSelector(c.selector)
		if err != nil {
			t.Fatal(err)
		}
		got := withoutKeyFields(sel, c.ns, c.name)
		if c.dropped && got != nil {
			t.Errorf("%s in %q: kept %v, want nothing", c.selector, c.ns, got)
		}
		if !c.dropped && (got == nil || got.String() != sel.String()) {
			t.Errorf("%s in %q: %v, want the selector as given", c.selector, c.ns, got)
		}
	}
}
