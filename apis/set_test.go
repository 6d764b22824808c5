package apis

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestSetOrdersAGroupsVersionsByPriority(t *testing.T) {
	res := func(group, version string) *Resource {
		return &Resource{GroupVersion: schema.GroupVersion{Group: group, Version: version}, Name: "things", Kind: "Thing"}
	}
	set := Builtin.With(res("example.com", "v1beta1"), res("example.com", "v2"), res("example.com", "v1"), res("other.io", "v1alpha1"))
	var got []string
	for _, gv := range set.GroupVersions() {
		if gv.Group == "example.com" || gv.Group == "other.io" {
			got = append(got, gv.String())
		}
	}
	want := []string{"example.com/v2", "example.com/v1", "example.com/v1beta1", "other.io/v1alpha1"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if set.GroupVersions()[0] != (schema.GroupVersion{Version: "v1"}) {
		t.Errorf("the core group is not first: %v", set.GroupVersions()[0])
	}
	if set.Lookup(schema.GroupVersion{Group: "example.com", Version: "v2"}, "things") == nil {
		t.Error("lookup of an added resource")
	}
	without := set.Without(func(r *Resource) bool { return r.GroupVersion.Group == "example.com" })
	if without.Lookup(schema.GroupVersion{Group: "example.com", Version: "v2"}, "things") != nil || len(without.In(schema.GroupVersion{Group: "other.io", Version: "v1alpha1"})) != 1 {
		t.Error("Without dropped the wrong resources")
	}
}
