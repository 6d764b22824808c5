package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	kjson "sigs.k8s.io/json"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// PATCH: JSON, merge and strategic merge patches and server-side apply (apply.go), each run on
// every attempt of the store's compare-and-swap, with upstream's answers for bad patches.

// patchFunc returns the update function of the request's patch (any type, apply included)
// of an object of kind gvk: the resource's, or a subresource's (Scale).
func (h *resourceHandler) patchFunc(r *http.Request, body []byte, gvk schema.GroupVersionKind, name, subresource string) (registry.UpdateFunc, error) {
	pt, err := patchTypeOf(r)
	if err != nil {
		return nil, err
	}
	opts, err := patchOptions(r, pt)
	if err != nil {
		return nil, err
	}
	if h.res.Unstructured && pt == types.StrategicMergePatchType && gvk == h.res.GroupVersionKind() {
		return nil, unsupportedMediaType(customResourcePatchTypes...)
	}
	var fm *managedfields.FieldManager
	if subresource == "scale" {
		if fm, err = scaleFieldManagerFor(); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
	} else {
		fm = h.fieldManager(subresource)
	}
	ri := requestInfoFrom(r.Context())
	if ri == nil {
		ri = &requestInfo{}
	}
	p := h.newPatch(ri, pt, body, opts, gvk, fm)
	p.name = name
	return p.update, nil
}

// patchTypes are the patch media types served, in upstream's order.
var patchTypes = []string{string(types.JSONPatchType), string(types.MergePatchType), string(types.StrategicMergePatchType), string(types.ApplyYAMLPatchType)}

// patchTypeOf is the patch type of a PATCH request, or upstream's 415 for one not served
// (application/apply-patch+cbor among them, as upstream without its CBOR feature gate).
func patchTypeOf(r *http.Request) (types.PatchType, error) {
	contentType := r.Header.Get("Content-Type")
	if i := strings.Index(contentType, ";"); i > 0 {
		contentType = contentType[:i]
	}
	for _, t := range patchTypes {
		if contentType == t {
			return types.PatchType(t), nil
		}
	}
	return "", unsupportedMediaType(patchTypes...)
}

// maxJSONPatchOperations bounds the operations of one JSON patch, as upstream.
const maxJSONPatchOperations = 10000

// patchRequest is one PATCH (JSON, merge, strategic merge or server-side apply) of an
// object of kind gvk: its update function applies it to the current object and records the
// write in managedFields with fm.
type patchRequest struct {
	h         *resourceHandler
	patchType types.PatchType
	body      []byte
	opts      writeOptions
	gvk       schema.GroupVersionKind
	fm        *managedfields.FieldManager
	name      string
	// namespace is the namespace the object must be in ("" for cluster-scoped kinds).
	namespace string
	// createMissing: an apply to a missing object creates it (the resource itself, not its
	// subresources).
	createMissing bool
}

func (h *resourceHandler) newPatch(ri *requestInfo, pt types.PatchType, body []byte, opts writeOptions,
	gvk schema.GroupVersionKind, fm *managedfields.FieldManager) *patchRequest {
	ns := ""
	if h.res.Namespaced {
		ns = ri.Namespace
	}
	return &patchRequest{h: h, patchType: pt, body: body, opts: opts, gvk: gvk, fm: fm, name: ri.Name, namespace: ns}
}

func (p *patchRequest) isApply() bool { return p.patchType == types.ApplyYAMLPatchType }

// unstructured reports whether the patch is of a custom resource itself (not of its scale).
func (p *patchRequest) unstructured() bool {
	return p.h.res.Unstructured && p.gvk == p.h.res.GroupVersionKind()
}

// newObject is an empty object of the patched kind.
func (p *patchRequest) newObject() (runtime.Object, error) {
	if p.unstructured() {
		return p.h.res.New(), nil
	}
	return apis.Scheme.New(p.gvk)
}

// update is the registry.UpdateFunc of the patch, run on every attempt of the
// compare-and-swap.
func (p *patchRequest) update(ctx context.Context, current runtime.Object) (runtime.Object, error) {
	creating := current == nil
	if creating && !(p.isApply() && p.createMissing) {
		return nil, apierrors.NewNotFound(p.h.store.GroupResource(), p.name)
	}
	var (
		obj runtime.Object
		err error
	)
	switch p.patchType {
	case types.JSONPatchType, types.MergePatchType:
		obj, err = p.jsonPatch(ctx, current)
	case types.StrategicMergePatchType:
		obj, err = p.strategicMergePatch(ctx, current)
	case types.ApplyYAMLPatchType:
		obj, err = p.serverSideApply(ctx, current)
	default:
		err = unsupportedMediaType(patchTypes...)
	}
	if err != nil {
		return nil, err
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if creating {
		if uid := m.GetUID(); uid != "" {
			return nil, apierrors.NewConflict(p.h.store.GroupResource(), p.name,
				fmt.Errorf("uid mismatch: the provided object specified uid %s, and no existing object was found", uid))
		}
		// what the server sets on create is never the client's
		m.SetCreationTimestamp(metav1.Time{})
		m.SetDeletionTimestamp(nil)
		m.SetDeletionGracePeriodSeconds(nil)
		m.SetSelfLink("")
	}
	if err := ensureNamespace(p.namespace, m); err != nil {
		return nil, err
	}
	if err := nameMatchesURL(m.GetName(), p.name); err != nil {
		return nil, err
	}
	if creating {
		if err := p.h.admit.admitCreate(ctx, p.h.res, p.namespace, obj); err != nil {
			return nil, err
		}
	}
	dedupOwnerReferences(ctx, obj, true)
	if !p.unstructured() {
		// a custom resource's apiVersion and kind are part of it, checked and stored
		obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	}
	return obj, nil
}

// jsonPatch applies a JSON or merge patch to the JSON of the current object, as upstream's
// jsonPatcher: unknown fields are looked for in the patched document, duplicate fields in the
// patch itself.
func (p *patchRequest) jsonPatch(ctx context.Context, current runtime.Object) (runtime.Object, error) {
	if p.unstructured() {
		return p.jsonPatchUnstructured(ctx, current)
	}
	currentJSON, err := runtime.Encode(apis.Codecs.LegacyCodec(p.gvk.GroupVersion()), current)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	patched, patchErrs, err := p.applyJSONPatch(currentJSON)
	if err != nil {
		return nil, err
	}
	obj, err := apis.Scheme.New(p.gvk)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	info := serializerFor(runtime.ContentTypeJSON)
	decoder := info.Serializer
	if checksFields(p.opts.validation) {
		decoder = info.StrictSerializer
	}
	gvk := p.gvk
	if _, _, err := decoder.Decode(patched, &gvk, obj); err != nil {
		strict, isStrict := runtime.AsStrictDecodingError(err)
		switch {
		case !isStrict:
			// the strict errors of the patch are incomplete without the document's
			return nil, invalidPatchError(string(patched), err)
		case p.opts.validation == metav1.FieldValidationWarn:
			addStrictDecodingWarnings(ctx, append(patchErrs, strict.Errors()...))
		default:
			return nil, strictPatchError(string(patched), append(patchErrs, strict.Errors()...))
		}
	} else if len(patchErrs) > 0 {
		if p.opts.validation == metav1.FieldValidationWarn {
			addStrictDecodingWarnings(ctx, patchErrs)
		} else {
			return nil, strictPatchError(string(patched), patchErrs)
		}
	}
	apis.Scheme.Default(obj)
	return p.track(current, obj), nil
}

// jsonPatchOperation is the shape of one JSON patch operation, for finding duplicate fields.
type jsonPatchOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	From  string `json:"from"`
	Value any    `json:"value"`
}

// applyJSONPatch applies the JSON or merge patch to doc. It returns the patch's own strict
// decoding errors (duplicate fields) when field validation asks for them.
func (p *patchRequest) applyJSONPatch(doc []byte) ([]byte, []error, error) {
	var strictErrs []error
	switch p.patchType {
	case types.JSONPatchType:
		if checksFields(p.opts.validation) {
			var ops []jsonPatchOperation
			errs, err := kjson.UnmarshalStrict(p.body, &ops)
			if err != nil {
				return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
			}
			for _, e := range errs {
				strictErrs = append(strictErrs, fmt.Errorf("json patch %v", e))
			}
		}
		ops, err := jsonpatch.DecodePatch(p.body)
		if err != nil {
			return nil, nil, apierrors.NewBadRequest(err.Error())
		}
		if len(ops) > maxJSONPatchOperations {
			return nil, nil, apierrors.NewRequestEntityTooLargeError(
				fmt.Sprintf("The allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOperations, len(ops)))
		}
		patched, err := applyJSONPatchOperations(ops, doc)
		if err != nil {
			return nil, nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
		}
		return patched, strictErrs, nil
	default: // merge patch
		if checksFields(p.opts.validation) {
			var v map[string]any
			errs, err := kjson.UnmarshalStrict(p.body, &v)
			if err != nil {
				return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
			}
			strictErrs = errs
		}
		patched, err := jsonpatch.MergePatch(doc, p.body)
		if errors.Is(err, jsonpatch.ErrBadJSONPatch) {
			return nil, nil, apierrors.NewBadRequest(err.Error())
		}
		if err != nil {
			return nil, nil, unknownStatus(err)
		}
		return patched, strictErrs, nil
	}
}

// applyJSONPatchOperations applies ops to doc. The library panics on some malformed
// operations (FuzzPatch found a "test" of the root with no value); that is the client's
// mistake, answered as any operation that does not apply (422), not a server error.
func applyJSONPatchOperations(ops jsonpatch.Patch, doc []byte) (patched []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			patched, err = nil, fmt.Errorf("the JSON patch has an operation that cannot be applied: %v", r)
		}
	}()
	return ops.Apply(doc)
}

// applyStrategicMergePatch merges patch into original. The library panics on some malformed
// patches (FuzzPatch found a merge key whose value is a list: {"containers":[{"name":[]}]}).
// kube-apiserver answers those 500, from its panic handler; skiff answers the same status
// without unwinding the request through its own.
func applyStrategicMergePatch(original, patch map[string]any, schemaObj runtime.Object) (patched map[string]any, err error) {
	defer func() {
		if r := recover(); r != nil {
			patched, err = nil, apierrors.NewInternalError(fmt.Errorf("the strategic merge patch cannot be applied: %v", r))
		}
	}()
	if patched, err = strategicpatch.StrategicMergeMapPatch(original, patch, schemaObj); err != nil {
		return nil, strategicMergePatchError(err)
	}
	return patched, nil
}

// strategicMergePatch applies a strategic merge patch to the current object's fields, as
// upstream's smpPatcher: duplicate fields are looked for in the patch, unknown ones in the
// result.
func (p *patchRequest) strategicMergePatch(ctx context.Context, current runtime.Object) (runtime.Object, error) {
	versioned := current.DeepCopyObject()
	versioned.GetObjectKind().SetGroupVersionKind(p.gvk)
	original, err := runtime.DefaultUnstructuredConverter.ToUnstructured(versioned)
	if err != nil {
		return nil, unknownStatus(err)
	}
	patchMap := map[string]any{}
	var strictErrs []error
	if checksFields(p.opts.validation) {
		if strictErrs, err = kjson.UnmarshalStrict(p.body, &patchMap); err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
	} else if err := kjson.UnmarshalCaseSensitivePreserveInts(p.body, &patchMap); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	schemaObj, err := apis.Scheme.New(p.gvk)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	patchedMap, err := applyStrategicMergePatch(original, patchMap, schemaObj)
	if err != nil {
		return nil, err
	}
	obj, err := apis.Scheme.New(p.gvk)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(patchedMap, obj, checksFields(p.opts.validation)); err != nil {
		strict, isStrict := runtime.AsStrictDecodingError(err)
		switch {
		case !isStrict:
			return nil, invalidPatchError(fmt.Sprintf("%+v", patchMap), err)
		case p.opts.validation == metav1.FieldValidationWarn:
			addStrictDecodingWarnings(ctx, append(strictErrs, strict.Errors()...))
		default:
			return nil, strictPatchError(fmt.Sprintf("%+v", patchMap), append(strictErrs, strict.Errors()...))
		}
	} else if len(strictErrs) > 0 {
		if p.opts.validation == metav1.FieldValidationWarn {
			addStrictDecodingWarnings(ctx, strictErrs)
		} else {
			return nil, strictPatchError(fmt.Sprintf("%+v", patchMap), strictErrs)
		}
	}
	apis.Scheme.Default(obj)
	return p.track(current, obj), nil
}

// strategicMergePatchError gives a failed strategic merge patch upstream's status code.
func strategicMergePatchError(err error) error {
	switch err {
	case mergepatch.ErrBadJSONDoc, mergepatch.ErrBadPatchFormatForPrimitiveList, mergepatch.ErrBadPatchFormatForRetainKeys,
		mergepatch.ErrBadPatchFormatForSetElementOrderList, mergepatch.ErrUnsupportedStrategicMergePatchFormat:
		return apierrors.NewBadRequest(err.Error())
	case mergepatch.ErrNoListOfLists, mergepatch.ErrPatchContentNotMatchRetainKeys:
		return apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
	}
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return err
	}
	return unknownStatus(err)
}

// unknownStatus is what upstream answers for an error that is not a Status: 500 with the
// error's own words and no reason.
func unknownStatus(err error) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Reason: metav1.StatusReasonUnknown, Message: err.Error(),
	}}
}

// track records a non-apply patch in obj's managedFields.
func (p *patchRequest) track(current, obj runtime.Object) runtime.Object {
	if p.fm == nil {
		return obj
	}
	return p.fm.UpdateNoErrors(current, obj, p.opts.manager)
}

func (h *resourceHandler) patch(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, int, error) {
	pt, err := patchTypeOf(r)
	if err != nil {
		return nil, 0, err
	}
	body, err := h.readBody(r)
	if err != nil {
		return nil, 0, err
	}
	opts, err := patchOptions(r, pt)
	if err != nil {
		return nil, 0, err
	}
	if h.res.Unstructured && pt == types.StrategicMergePatchType {
		return nil, 0, unsupportedMediaType(customResourcePatchTypes...)
	}
	p := h.newPatch(ri, pt, body, opts, h.res.GroupVersionKind(), h.fieldManager(""))
	var strategy apis.Strategy
	if p.isApply() {
		p.createMissing = true
		strategy = applyCreates{h.store.Strategy}
		ctx = registry.KeepManagedFields(ctx)
	}
	out, created, err := h.store.Update(ctx, ri.Namespace, ri.Name, strategy, p.update, opts.dryRun)
	if err != nil {
		return nil, 0, err
	}
	if created {
		return out, http.StatusCreated, nil
	}
	return out, http.StatusOK, nil
}
