package apis

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestNewInvalidSaysWhatUpstreamSays(t *testing.T) {
	name := field.NewPath("spec", "containers").Index(0).Child("name")
	image := field.NewPath("spec", "containers").Index(0).Child("image")
	for _, errs := range []field.ErrorList{
		nil,
		{field.Required(name, "")},
		{field.Required(name, ""), field.Required(name, "")},
		{field.Required(name, ""), field.Required(image, ""), field.Required(name, ""), field.Invalid(image, "a b", "must not contain spaces")},
		{field.NotSupported(name, "x", []string{"a", "b"}), field.TooMany(image, 3, 2)},
	} {
		for _, gk := range []schema.GroupKind{{Kind: "Pod"}, {Group: "apps", Kind: "Deployment"}} {
			want := apierrors.NewInvalid(gk, "web", errs).ErrStatus
			got := NewInvalid(gk, "web", errs).ErrStatus
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%d errors on %s:\n got %+v\nwant %+v", len(errs), gk, got, want)
			}
		}
	}
}

func TestNewInvalidListsTheFirstThousandErrorsAndCountsTheRest(t *testing.T) {
	var errs field.ErrorList
	for i := range 100_000 {
		errs = append(errs, field.Required(field.NewPath("spec", "containers").Index(i).Child("name"), ""))
	}
	st := NewInvalid(schema.GroupKind{Kind: "Pod"}, "many", errs).ErrStatus
	if st.Code != 422 || st.Reason != "Invalid" {
		t.Fatalf("status %d %s", st.Code, st.Reason)
	}
	if len(st.Details.Causes) != MaxInvalidCauses || st.Details.Causes[999].Field != "spec.containers[999].name" {
		t.Errorf("%d causes, last %+v", len(st.Details.Causes), st.Details.Causes[len(st.Details.Causes)-1])
	}
	wantStart := `Pod "many" is invalid: [spec.containers[0].name: Required value, spec.containers[1].name: Required value, `
	wantEnd := `, spec.containers[999].name: Required value, and 99000 more errors]`
	if !strings.HasPrefix(st.Message, wantStart) || !strings.HasSuffix(st.Message, wantEnd) {
		t.Errorf("message %.120s ... %s", st.Message, st.Message[len(st.Message)-80:])
	}
	if n := strings.Count(st.Message, "Required value"); n != MaxInvalidCauses {
		t.Errorf("message lists %d errors, want %d", n, MaxInvalidCauses)
	}
}

func TestNewInvalidWithOneErrorRepeatedBeyondTheCapStillCountsTheRest(t *testing.T) {
	errs := make(field.ErrorList, 0, 1500)
	for range 1500 {
		errs = append(errs, field.Required(field.NewPath("metadata", "name"), ""))
	}
	got := NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, "x", errs).ErrStatus.Message
	if want := fmt.Sprintf(`ConfigMap "x" is invalid: [metadata.name: Required value, and %d more errors]`, 500); got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}
