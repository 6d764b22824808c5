package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metainternalversionvalidation "k8s.io/apimachinery/pkg/apis/meta/internalversion/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	kjson "sigs.k8s.io/json"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// resourceHandler serves the REST verbs of one resource in one group version.
type resourceHandler struct {
	res   *apis.Resource
	store *registry.Store
	// subresources by name: how each is read and written
	subresources map[string]subresource
	admit        *admission
	// maxBodyBytes bounds request bodies (413 beyond).
	maxBodyBytes int64
	// fieldManagers track managedFields, by subresource ("" for the resource itself).
	fieldManagers map[string]*managedfields.FieldManager
}

// subresource serves one child path of a resource.
type subresource interface {
	get(ctx context.Context, h *resourceHandler, ri *requestInfo, r *http.Request) (runtime.Object, schema.GroupVersion, error)
	// write handles create (binding), update and patch of the subresource; it returns the
	// object to answer with and the HTTP code.
	write(ctx context.Context, h *resourceHandler, ri *requestInfo, r *http.Request, body []byte) (runtime.Object, schema.GroupVersion, int, error)
}

func (h *resourceHandler) gv() schema.GroupVersion { return h.res.GroupVersion }

func (h *resourceHandler) serve(w http.ResponseWriter, r *http.Request, ri *requestInfo) {
	if h.res.Warning != "" {
		// a deprecated version warns on every request, as upstream
		if header, err := utilnet.NewWarningHeader(299, "", h.res.Warning); err == nil {
			w.Header().Add("Warning", header)
		}
	}
	if isMutating(ri.Verb) {
		// writes may warn (unknown fields) and may turn out to be dry runs
		r = withDryRunNote(withWarningRecorder(w, r))
	}
	ctx := r.Context()
	if ri.Subresource != "" {
		h.serveSubresource(w, r, ri)
		return
	}
	var (
		obj  runtime.Object
		code = http.StatusOK
		err  error
	)
	switch ri.Verb {
	case "get":
		obj, err = h.get(ctx, ri, r)
	case "list":
		obj, err = h.list(ctx, ri, r)
	case "watch":
		h.watch(w, r, ri)
		return
	case "create":
		obj, code, err = h.create(ctx, ri, r)
	case "update":
		obj, code, err = h.update(ctx, ri, r)
	case "patch":
		obj, code, err = h.patch(ctx, ri, r)
	case "delete":
		obj, code, err = h.delete(ctx, ri, r)
	case "deletecollection":
		obj, err = h.deleteCollection(ctx, ri, r)
	default:
		err = apierrors.NewMethodNotSupported(h.store.GroupResource(), ri.Verb)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if isDryRunAnswer(ctx) {
		defer encodeAfresh(obj)()
	}
	writeObject(w, r, code, h.gv(), obj)
}

func (h *resourceHandler) serveSubresource(w http.ResponseWriter, r *http.Request, ri *requestInfo) {
	sub, ok := h.subresources[ri.Subresource]
	if !ok || ri.Name == "" {
		writeError(w, r, apierrors.NewNotFound(schema.GroupResource{Group: ri.APIGroup, Resource: ri.resourceLabel()}, ri.Name))
		return
	}
	var (
		obj  runtime.Object
		gv   schema.GroupVersion
		code = http.StatusOK
		err  error
	)
	switch ri.Verb {
	case "get":
		obj, gv, err = sub.get(r.Context(), h, ri, r)
	case "create", "update", "patch":
		var body []byte
		if body, err = h.readBody(r); err == nil {
			obj, gv, code, err = sub.write(r.Context(), h, ri, r, body)
		}
	default:
		err = apierrors.NewMethodNotSupported(schema.GroupResource{Group: ri.APIGroup, Resource: ri.resourceLabel()}, ri.Verb)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if isDryRunAnswer(r.Context()) {
		defer encodeAfresh(obj)()
	}
	writeObject(w, r, code, gv, obj)
}

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

func (h *resourceHandler) get(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, error) {
	opts := metav1.GetOptions{}
	if err := apis.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, &opts); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if err := checkResourceVersion(opts.ResourceVersion); err != nil {
		return nil, err
	}
	return h.store.Get(ctx, ri.Namespace, ri.Name, &opts)
}

// checkResourceVersion refuses a resourceVersion that is not an etcd revision, as upstream.
func checkResourceVersion(rv string) error {
	if rv == "" {
		return nil
	}
	if _, err := strconv.ParseUint(rv, 10, 64); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid resource version: %q", rv))
	}
	return nil
}

// listOptions parses and validates the query of a list or watch, as upstream.
func (h *resourceHandler) listOptions(ri *requestInfo, r *http.Request) (registry.ListOptions, *metainternalversion.ListOptions, error) {
	opts := metainternalversion.ListOptions{}
	if err := metainternalversionscheme.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, &opts); err != nil {
		return registry.ListOptions{}, nil, apierrors.NewBadRequest(err.Error())
	}
	if ri.Verb == "watch" {
		opts.Watch = true
	}
	if err := checkResourceVersion(opts.ResourceVersion); err != nil {
		return registry.ListOptions{}, nil, err
	}
	if errs := metainternalversionvalidation.ValidateListOptions(&opts, true); len(errs) > 0 {
		return registry.ListOptions{}, nil, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", errs)
	}
	if opts.FieldSelector != nil {
		supported := h.res.FieldLabels()
		if _, err := opts.FieldSelector.Transform(func(label, value string) (string, string, error) {
			if !supported[label] {
				return "", "", fmt.Errorf("field label not supported: %s", label)
			}
			return label, value, nil
		}); err != nil {
			return registry.ListOptions{}, nil, apierrors.NewBadRequest(err.Error())
		}
	}
	// a watch of one object by name (GET .../pods/x?watch=true) is a watch with a field selector
	if ri.Name != "" {
		nameSel := fields.OneTermEqualSelector("metadata.name", ri.Name)
		if opts.FieldSelector == nil || opts.FieldSelector.Empty() {
			opts.FieldSelector = nameSel
		} else {
			opts.FieldSelector = fields.AndSelectors(opts.FieldSelector, nameSel)
		}
	}
	return registry.ListOptions{
		Label: opts.LabelSelector, Field: opts.FieldSelector,
		ResourceVersion: opts.ResourceVersion, ResourceVersionMatch: opts.ResourceVersionMatch,
		Limit: opts.Limit, Continue: opts.Continue,
		AllowWatchBookmarks: opts.AllowWatchBookmarks, SendInitialEvents: opts.SendInitialEvents,
	}, &opts, nil
}

func (h *resourceHandler) list(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, error) {
	opts, _, err := h.listOptions(ri, r)
	if err != nil {
		return nil, err
	}
	return h.store.List(ctx, ri.Namespace, opts)
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

// writeOptions are what the query of a write asks for: CreateOptions, UpdateOptions and
// PatchOptions share them.
type writeOptions struct {
	dryRun bool
	// manager records the write in managedFields: the fieldManager parameter, or the
	// client's user agent up to its first "/".
	manager string
	// validation is the fieldValidation directive: Strict, Warn or Ignore.
	validation string
	// force takes over conflicting fields (apply only).
	force bool
}

func newWriteOptions(r *http.Request, dryRun []string, manager, validation string) writeOptions {
	if len(dryRun) > 0 {
		noteDryRun(r.Context())
	}
	return writeOptions{
		dryRun:     len(dryRun) > 0,
		manager:    managerOrUserAgent(manager, r.UserAgent()),
		validation: fieldValidation(validation),
	}
}

// createOptions parses and validates the query of a create, as upstream.
func createOptions(r *http.Request) (writeOptions, error) {
	opts := metav1.CreateOptions{}
	if err := metainternalversionscheme.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, &opts); err != nil {
		return writeOptions{}, apierrors.NewBadRequest(err.Error())
	}
	if errs := metav1validation.ValidateCreateOptions(&opts); len(errs) > 0 {
		return writeOptions{}, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "CreateOptions"}, "", errs)
	}
	return newWriteOptions(r, opts.DryRun, opts.FieldManager, opts.FieldValidation), nil
}

// updateOptions parses and validates the query of an update, as upstream.
func updateOptions(r *http.Request) (writeOptions, error) {
	opts := metav1.UpdateOptions{}
	if err := metainternalversionscheme.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, &opts); err != nil {
		return writeOptions{}, apierrors.NewBadRequest(err.Error())
	}
	if errs := metav1validation.ValidateUpdateOptions(&opts); len(errs) > 0 {
		return writeOptions{}, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "UpdateOptions"}, "", errs)
	}
	return newWriteOptions(r, opts.DryRun, opts.FieldManager, opts.FieldValidation), nil
}

// patchOptions parses and validates the query of a patch of the given type, as upstream: an
// apply must name its field manager, and only an apply may force.
func patchOptions(r *http.Request, pt types.PatchType) (writeOptions, error) {
	opts := metav1.PatchOptions{}
	if err := metainternalversionscheme.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, &opts); err != nil {
		return writeOptions{}, apierrors.NewBadRequest(err.Error())
	}
	if errs := metav1validation.ValidatePatchOptions(&opts, pt); len(errs) > 0 {
		return writeOptions{}, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "PatchOptions"}, "", errs)
	}
	wo := newWriteOptions(r, opts.DryRun, opts.FieldManager, opts.FieldValidation)
	wo.force = opts.Force != nil && *opts.Force
	return wo, nil
}

// writeOptionsFor parses the options of a write by its verb (subresources take all three).
func writeOptionsFor(r *http.Request, verb string) (writeOptions, error) {
	switch verb {
	case "create":
		return createOptions(r)
	case "patch":
		pt, err := patchTypeOf(r)
		if err != nil {
			return writeOptions{}, err
		}
		return patchOptions(r, pt)
	}
	return updateOptions(r)
}

// dryRun reports whether the request's write is a dry run, after checking its options as
// upstream does (for subresources that read no other option).
func dryRun(r *http.Request) (bool, error) {
	verb := ""
	if ri := requestInfoFrom(r.Context()); ri != nil {
		verb = ri.Verb
	}
	opts, err := writeOptionsFor(r, verb)
	return opts.dryRun, err
}

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

func (h *resourceHandler) create(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, int, error) {
	if ri.Name != "" {
		return nil, 0, apierrors.NewMethodNotSupported(h.store.GroupResource(), "create")
	}
	if h.res.RefuseCreate != "" {
		return nil, 0, apierrors.NewGenericServerResponse(http.StatusMethodNotAllowed, "create", h.store.GroupResource(), "", h.res.RefuseCreate, 0, false)
	}
	obj, _, opts, err := h.decodeWrite(r, ri)
	if err != nil {
		return nil, 0, err
	}
	dedupOwnerReferences(ctx, obj, false)
	if err := h.admit.admitCreate(ctx, h.res, ri.Namespace, obj); err != nil {
		return nil, 0, err
	}
	obj = trackManagedFields(h.fieldManager(""), h.res, nil, obj, opts.manager)
	out, err := h.store.Create(ctx, ri.Namespace, obj, opts.dryRun)
	if err != nil {
		return nil, 0, err
	}
	if opts.dryRun {
		// a dry run stores nothing, but answers as the write would: an object that exists
		// already is a conflict, as upstream's dry-run storage checks
		m, _ := meta.Accessor(out)
		if _, err := h.store.Get(ctx, m.GetNamespace(), m.GetName(), &metav1.GetOptions{}); err == nil {
			return nil, 0, apierrors.NewAlreadyExists(h.store.GroupResource(), m.GetName())
		} else if !apierrors.IsNotFound(err) {
			return nil, 0, err
		}
	}
	return out, http.StatusCreated, nil
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

func (h *resourceHandler) update(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, int, error) {
	obj, m, opts, err := h.decodeWrite(r, ri)
	if err != nil {
		return nil, 0, err
	}
	if err := nameMatchesURL(m.GetName(), ri.Name); err != nil {
		return nil, 0, err
	}
	dedupOwnerReferences(ctx, obj, false)
	out, created, err := h.store.Update(ctx, ri.Namespace, ri.Name, nil, func(ctx context.Context, current runtime.Object) (runtime.Object, error) {
		if current == nil {
			if err := h.admit.admitCreate(ctx, h.res, ri.Namespace, obj); err != nil {
				return nil, err
			}
		}
		return trackManagedFields(h.fieldManager(""), h.res, current, obj.DeepCopyObject(), opts.manager), nil
	}, opts.dryRun)
	if err != nil {
		return nil, 0, err
	}
	if created {
		return out, http.StatusCreated, nil
	}
	return out, http.StatusOK, nil
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
		patched, err := ops.Apply(doc)
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
	patchedMap, err := strategicpatch.StrategicMergeMapPatch(original, patchMap, schemaObj)
	if err != nil {
		return nil, strategicMergePatchError(err)
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

// deleteOptions reads DeleteOptions from the body (if any) and the query, as upstream.
func (h *resourceHandler) deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := h.readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		gvk := metav1.SchemeGroupVersion.WithKind("DeleteOptions")
		obj, _, err := apis.Codecs.UniversalDeserializer().Decode(body, &gvk, opts)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		decoded, ok := obj.(*metav1.DeleteOptions)
		if !ok {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("expected DeleteOptions, got %T", obj))
		}
		opts = decoded
	} else if err := metainternalversionscheme.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, opts); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if q := r.URL.Query()["dryRun"]; len(q) > 0 && len(opts.DryRun) == 0 {
		// upstream reads the query only without a body; a dry run asked for anywhere is
		// honoured here rather than deleting for real
		opts.DryRun = q
	}
	if errs := metav1validation.ValidateDeleteOptions(opts); len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "DeleteOptions"}, "", errs)
	}
	if len(opts.DryRun) > 0 {
		noteDryRun(r.Context())
	}
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	return opts, nil
}

func (h *resourceHandler) delete(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, int, error) {
	opts, err := h.deleteOptions(r)
	if err != nil {
		return nil, 0, err
	}
	if err := h.admit.admitDelete(ctx, h.res, ri.Namespace, ri.Name); err != nil {
		return nil, 0, err
	}
	obj, deleted, err := h.store.Delete(ctx, ri.Namespace, ri.Name, opts)
	if err != nil {
		return nil, 0, err
	}
	if !deleted {
		// still there (finalizers or a grace period): 202 with the object, as upstream
		return obj, http.StatusAccepted, nil
	}
	if h.res.ReturnDeletedObject {
		return obj, http.StatusOK, nil
	}
	m, _ := meta.Accessor(obj)
	return successStatus(m.GetName(), h.res.GroupVersionResource(), string(m.GetUID())), http.StatusOK, nil
}

func (h *resourceHandler) deleteCollection(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, error) {
	opts, err := h.deleteOptions(r)
	if err != nil {
		return nil, err
	}
	lopts, _, err := h.listOptions(ri, r)
	if err != nil {
		return nil, err
	}
	lopts.Limit, lopts.Continue = 0, ""
	list, err := h.store.List(ctx, ri.Namespace, lopts)
	if err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	deleted := make([]runtime.Object, 0, len(items))
	for _, it := range items {
		m, _ := meta.Accessor(it)
		obj, _, err := h.store.Delete(ctx, m.GetNamespace(), m.GetName(), opts.DeepCopy())
		if apierrors.IsNotFound(err) {
			continue // deleted by someone else meanwhile
		}
		if err != nil {
			return nil, err
		}
		deleted = append(deleted, obj)
	}
	if err := meta.SetList(list, deleted); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return list, nil
}

// watchTimeout is how long a watch without timeoutSeconds stays open: upstream picks at
// random between the minimum request timeout (30 minutes) and twice it, so that watches spread
// across API servers.
func watchTimeout(opts *metainternalversion.ListOptions) time.Duration {
	if opts.TimeoutSeconds != nil && *opts.TimeoutSeconds > 0 {
		return time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return 30*time.Minute + time.Duration(time.Now().UnixNano()%int64(30*time.Minute))
}
