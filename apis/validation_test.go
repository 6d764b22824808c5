package apis

import (
	"testing"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// fieldErrorStrings renders errors as a client sees them, one line each ("path: detail").
func fieldErrorStrings(errs field.ErrorList) []string {
	out := []string{}
	for _, err := range errs {
		out = append(out, err.Error())
	}
	return out
}

// checkFieldErrors fails the test unless errs are exactly want, in order.
func checkFieldErrors(t *testing.T, errs field.ErrorList, want ...string) {
	t.Helper()
	got := fieldErrorStrings(errs)
	if want == nil {
		want = []string{}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\ngot:  %q\nwant: %q", len(got), len(want), got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("error %d:\ngot:  %s\nwant: %s", i, got[i], want[i])
		}
	}
}

func TestValidateObjectMetaRejectsUnqualifiedNonStandardFinalizer(t *testing.T) {
	meta := &metav1.ObjectMeta{Name: "a", Namespace: "ns", Finalizers: []string{"kubernetes", "orphan", "example.com/mine", "custom"}}
	checkFieldErrors(t, ValidateObjectMeta(meta, true, apivalidation.NameIsDNSSubdomain, metadataPath),
		`metadata.finalizers[3]: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified`)
}

func TestValidateObjectMetaRequiresNamespaceOnlyWhenNamespaced(t *testing.T) {
	checkFieldErrors(t, ValidateObjectMeta(&metav1.ObjectMeta{Name: "a"}, true, apivalidation.NameIsDNSSubdomain, metadataPath),
		`metadata.namespace: Required value`)
	checkFieldErrors(t, ValidateObjectMeta(&metav1.ObjectMeta{Name: "a", Namespace: "ns"}, false, apivalidation.NameIsDNSSubdomain, metadataPath),
		`metadata.namespace: Forbidden: not allowed on this type`)
}

func TestValidateObjectMetaRequiresNameOrGenerateName(t *testing.T) {
	checkFieldErrors(t, ValidateObjectMeta(&metav1.ObjectMeta{Namespace: "ns"}, true, apivalidation.NameIsDNSSubdomain, metadataPath),
		`metadata.name: Required value: name or generateName is required`)
}

func TestValidateObjectMetaUpdateKeepsNameAndRequiresResourceVersion(t *testing.T) {
	old := &metav1.ObjectMeta{Name: "a", Namespace: "ns", ResourceVersion: "5", Generation: 2}
	checkFieldErrors(t, ValidateObjectMetaUpdate(&metav1.ObjectMeta{Name: "b", Namespace: "ns", Generation: 1}, old, metadataPath),
		`metadata.resourceVersion: Invalid value: "": must be specified for an update`,
		`metadata.generation: Invalid value: 1: must not be decremented`,
		`metadata.name: Invalid value: "b": field is immutable`)
}
