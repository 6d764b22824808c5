package apiserver

import (
	"context"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Field validation is upstream's answer to a body carrying fields the kind does not have, or a
// field twice: the fieldValidation parameter of every write says whether that fails the request
// (Strict: 400 for a body, 422 for a patch), comes back as one warning per field (Warn, the
// default since 1.27) or passes silently (Ignore). The fields are found by apimachinery's strict
// decoders (JSON and YAML; protobuf cannot carry unknown fields, so it is never checked).

// fieldValidation is the directive of a write: its fieldValidation parameter, already
// validated, or Warn when it has none.
func fieldValidation(directive string) string {
	if directive == "" {
		return metav1.FieldValidationWarn
	}
	return directive
}

// checksFields reports whether the directive asks for unknown and duplicate fields at all.
func checksFields(directive string) bool {
	return directive == metav1.FieldValidationStrict || directive == metav1.FieldValidationWarn
}

// The YAML decoder reports duplicate keys as one error of several lines, behind one of these.
const (
	yamlErrorsShortPrefix = "yaml: unmarshal errors:\n"
	yamlErrorsLongPrefix  = "error converting YAML to JSON: yaml: unmarshal errors:\n"
)

// addStrictDecodingWarnings raises one warning per strict decoding error, splitting the YAML
// decoder's multi-line errors into their lines, as upstream.
func addStrictDecodingWarnings(ctx context.Context, errs []error) {
	for _, e := range errs {
		for _, w := range splitYAMLErrors(e.Error()) {
			addWarning(ctx, w)
		}
	}
}

func splitYAMLErrors(msg string) []string {
	var rest string
	switch {
	case strings.HasPrefix(msg, yamlErrorsShortPrefix):
		rest = strings.TrimPrefix(msg, yamlErrorsShortPrefix)
	case strings.HasPrefix(msg, yamlErrorsLongPrefix):
		rest = strings.TrimPrefix(msg, yamlErrorsLongPrefix)
	default:
		return []string{msg}
	}
	lines := strings.Split(rest, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return lines
}

// strictPatchError is upstream's answer to a patch whose result (or the patch itself) has
// unknown or duplicate fields under fieldValidation=Strict: 422, on the field "patch", with
// the patched document as the value.
func strictPatchError(patched string, errs []error) error {
	return apierrors.NewInvalid(schema.GroupKind{}, "", field.ErrorList{
		field.Invalid(field.NewPath("patch"), patched, runtime.NewStrictDecodingError(errs).Error()),
	})
}

// invalidPatchError is upstream's answer to a patched document that does not decode into the
// kind at all.
func invalidPatchError(patched string, err error) error {
	return apierrors.NewInvalid(schema.GroupKind{}, "", field.ErrorList{
		field.Invalid(field.NewPath("patch"), patched, err.Error()),
	})
}
