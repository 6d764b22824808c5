package customresource

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// loadCRD reads a CRD fixture from testdata and defaults it as the server would on create.
func loadCRD(t *testing.T, name string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	DefaultCRD(crd)
	PrepareCRDForCreate(crd)
	return crd
}

// compile loads a fixture and compiles one of its versions.
func compile(t *testing.T, name, version string) *Version {
	t.Helper()
	v, err := NewVersion(loadCRD(t, name), version)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// object parses a custom resource written in YAML, with integers as int64 as the server's
// JSON decoding reads them.
func object(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	data, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	obj := map[string]interface{}{}
	if err := json.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}

// checkErrors asserts errs are exactly want as upstream words them (Error()), in any order:
// upstream's schema validator and CEL rules visit an object's fields in map order.
func checkErrors(t *testing.T, errs field.ErrorList, want ...string) {
	t.Helper()
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	sort.Strings(got)
	want = slices.Sorted(slices.Values(want))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestFixturesAreValidCRDs(t *testing.T) {
	for _, name := range []string{
		"certificates.cert-manager.io", "httproutes.gateway.networking.k8s.io",
		"servicemonitors.monitoring.coreos.com", "crontabs.stable.example.com",
	} {
		t.Run(name, func(t *testing.T) {
			crd := loadCRD(t, name)
			checkErrors(t, ValidateCRD(context.Background(), crd))
			versions, err := NewVersions(crd)
			if err != nil {
				t.Fatal(err)
			}
			if len(versions) != len(crd.Spec.Versions) {
				t.Errorf("compiled %d versions of %d", len(versions), len(crd.Spec.Versions))
			}
		})
	}
}

func toJSON(t *testing.T, v interface{}) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func keys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
