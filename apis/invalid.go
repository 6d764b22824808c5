package apis

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MaxInvalidCauses is how many field errors a 422 Invalid answer reports, in its causes and in
// its message; the rest are counted, not listed. A client needs the first few to fix its
// object, and a list as long as the object (one error per empty container of a pod of
// 100,000) only costs the server the time to render it and the client the time to read it.
// kube-apiserver (1.37) lists them all.
const MaxInvalidCauses = 1000

// NewInvalid is the 422 Invalid answer for errs about the object name of kind qualifiedKind:
// apierrors.NewInvalid's status, word for word while errs has at most MaxInvalidCauses
// errors, made in time linear in the size of errs. (apierrors.NewInvalid's message is built
// by appending each error's text to the whole message so far: quadratic, 21 s for a pod of
// 10,000 empty containers.)
//
// Beyond MaxInvalidCauses errors the causes are the first MaxInvalidCauses, and the message
// lists those and ends with "and N more errors".
func NewInvalid(qualifiedKind schema.GroupKind, name string, errs field.ErrorList) *apierrors.StatusError {
	shown := errs
	if len(shown) > MaxInvalidCauses {
		shown = shown[:MaxInvalidCauses]
	}
	causes := make([]metav1.StatusCause, 0, len(shown))
	for _, err := range shown {
		causes = append(causes, metav1.StatusCause{
			Type:    metav1.CauseType(err.Type),
			Message: err.ErrorBody(),
			Field:   err.Field,
		})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%s %q is invalid", qualifiedKind.String(), name)
	if len(errs) > 0 {
		// As errors.Aggregate prints a list: each distinct message once, in order, in brackets
		// unless there is only one.
		seen := make(map[string]struct{}, len(shown))
		var list strings.Builder
		for _, err := range shown {
			msg := err.Error()
			if _, dup := seen[msg]; dup {
				continue
			}
			seen[msg] = struct{}{}
			if len(seen) > 1 {
				list.WriteString(", ")
			}
			list.WriteString(msg)
		}
		if more := len(errs) - len(shown); more > 0 {
			list.WriteString(", and " + strconv.Itoa(more) + " more errors")
		}
		b.WriteString(": ")
		if len(seen) == 1 && len(errs) == len(shown) {
			b.WriteString(list.String())
		} else {
			b.WriteString("[" + list.String() + "]")
		}
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusUnprocessableEntity,
		Reason:  metav1.StatusReasonInvalid,
		Message: b.String(),
		Details: &metav1.StatusDetails{
			Group:  qualifiedKind.Group,
			Kind:   qualifiedKind.Kind,
			Name:   name,
			Causes: causes,
		},
	}}
}
