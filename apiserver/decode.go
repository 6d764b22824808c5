package apiserver

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
)

// Reading a write's body: its size, its media type, decoding it into the resource's kind with
// upstream's answers for bodies of another version or kind, and the name and namespace rules a
// body must keep.

// readBody reads the request body within the size limit.
func (h *resourceHandler) readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > h.maxBodyBytes {
		return nil, requestEntityTooLarge(h.maxBodyBytes)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.maxBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if int64(len(body)) > h.maxBodyBytes {
		return nil, requestEntityTooLarge(h.maxBodyBytes)
	}
	return body, nil
}

// unsupportedMediaType is upstream's 415 for a body in a format the endpoint does not take.
func unsupportedMediaType(accepted ...string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: "the body of the request was in an unknown format - accepted media types include: " + strings.Join(accepted, ", "),
	}}
}

func requestEntityTooLarge(limit int64) error {
	return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", limit))
}

// inputSerializer is the serializer of the request body's media type, or upstream's 415.
func inputSerializer(r *http.Request) (runtime.SerializerInfo, error) {
	contentType := r.Header.Get("Content-Type")
	if contentType == "" {
		contentType = runtime.ContentTypeJSON
	}
	mt := strings.TrimSpace(strings.Split(contentType, ";")[0])
	info := serializerFor(mt)
	if info.Serializer == nil {
		return runtime.SerializerInfo{}, unsupportedMediaType("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
	}
	return info, nil
}

// decodeBody decodes a request body into the kind gvk, defaulted, with upstream's answers for
// bodies of another version or kind. Unknown and duplicate fields are checked as the request's
// fieldValidation asks: Strict fails the request, Warn (the default) adds a warning per field.
func (h *resourceHandler) decodeBody(r *http.Request, body []byte, gvk schema.GroupVersionKind) (runtime.Object, error) {
	if h.res.Unstructured && gvk == h.res.GroupVersionKind() {
		return h.decodeUnstructured(r, body, gvk)
	}
	into, err := apis.Scheme.New(gvk)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	info, err := inputSerializer(r)
	if err != nil {
		return nil, err
	}
	directive := fieldValidation(r.URL.Query().Get("fieldValidation"))
	decoder := info.Serializer
	if checksFields(directive) && info.StrictSerializer != nil {
		decoder = info.StrictSerializer
	}
	obj, actual, err := decoder.Decode(body, &gvk, into)
	if err != nil {
		strict, isStrict := runtime.AsStrictDecodingError(err)
		if !isStrict || obj == nil || directive != metav1.FieldValidationWarn {
			return nil, decodeError(err, gvk, actual, body)
		}
		addStrictDecodingWarnings(r.Context(), strict.Errors())
	}
	if actual != nil && actual.GroupVersion() != gvk.GroupVersion() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)",
			actual.GroupVersion().String(), gvk.GroupVersion().String()))
	}
	if actual != nil && actual.Kind != gvk.Kind {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: the kind in the data (%s) does not match the expected kind",
			actual.Kind, actual.Version, gvk.Kind, actual.Kind))
	}
	apis.Scheme.Default(obj)
	obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	return obj, nil
}

// decodeError words a body that does not decode the way upstream does.
func decodeError(err error, into schema.GroupVersionKind, actual *schema.GroupVersionKind, body []byte) error {
	if actual != nil && actual.Kind != "" {
		return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", actual.Kind, actual.Version, into.Kind, err))
	}
	summary := string(body)
	if len(summary) > 30 {
		summary = summary[:30] + " ..."
	}
	return apierrors.NewBadRequest(fmt.Sprintf("the object provided is unrecognized (must be of type %s): %v (%s)", into.Kind, err, summary))
}

// decodeWrite reads, decodes and checks the body of a create or update of the resource.
func (h *resourceHandler) decodeWrite(r *http.Request, ri *requestInfo) (runtime.Object, metav1.Object, writeOptions, error) {
	if _, err := inputSerializer(r); err != nil {
		return nil, nil, writeOptions{}, err
	}
	body, err := h.readBody(r)
	if err != nil {
		return nil, nil, writeOptions{}, err
	}
	opts, err := writeOptionsFor(r, ri.Verb)
	if err != nil {
		return nil, nil, writeOptions{}, err
	}
	obj, err := h.decodeBody(r, body, h.res.GroupVersionKind())
	if err != nil {
		return nil, nil, writeOptions{}, err
	}
	m, _ := meta.Accessor(obj)
	if err := checkNamespace(h.res, ri, m); err != nil {
		return nil, nil, writeOptions{}, err
	}
	return obj, m, opts, nil
}

// nameMatchesURL is upstream's rule for a body written to a named URL.
func nameMatchesURL(bodyName, urlName string) error {
	if bodyName != urlName {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", bodyName, urlName))
	}
	return nil
}

// checkNamespace applies upstream's rules on the namespace in a body against the URL's.
func checkNamespace(res *apis.Resource, ri *requestInfo, m metav1.Object) error {
	if !res.Namespaced {
		return nil
	}
	if ns := m.GetNamespace(); ns != "" && ns != ri.Namespace {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	return nil
}

// ensureNamespace is upstream's rule for the namespace of an object a patch produced: none
// means the request's, a cluster-scoped object has none, anything else must match.
func ensureNamespace(expected string, m metav1.Object) error {
	switch got := m.GetNamespace(); {
	case got == expected:
	case got == "":
		m.SetNamespace(expected)
	case expected == "":
		m.SetNamespace("")
	default:
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	return nil
}
