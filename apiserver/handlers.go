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
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// resourceHandler serves the REST verbs of one resource in one group version.
type resourceHandler struct {
	res   *apis.Resource
	store *registry.Store
	// subresources by name: how each is read and written
	subresources map[string]subresource
	admit        admission
	// maxBodyBytes bounds request bodies (413 beyond).
	maxBodyBytes int64
	// fieldManagers track managedFields, by subresource ("" for the resource itself).
	fieldManagers map[string]*managedfields.FieldManager
}

// track records the write in obj's managedFields (live is nil on create).
func (h *resourceHandler) track(r *http.Request, subresource string, live, obj runtime.Object) runtime.Object {
	return trackManagedFields(h.fieldManagers[subresource], h.res, live, obj, fieldManagerName(r))
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
		obj, err = h.patch(ctx, ri, r)
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
	return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schema.GroupResource{}, "",
		"the body of the request was in an unknown format - accepted media types include: "+strings.Join(accepted, ", "), 0, false)
}

func requestEntityTooLarge(limit int64) error {
	return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", limit))
}

func (h *resourceHandler) get(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, error) {
	opts := metav1.GetOptions{}
	if err := metav1.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, &opts); err != nil {
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

// decodeBody decodes a request body into the resource's kind, defaulted, with upstream's
// answers for bodies of another version or kind.
func (h *resourceHandler) decodeBody(r *http.Request, body []byte, gvk schema.GroupVersionKind) (runtime.Object, error) {
	into, err := apis.Scheme.New(gvk)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	contentType := r.Header.Get("Content-Type")
	if contentType == "" {
		contentType = runtime.ContentTypeJSON
	}
	mt := strings.TrimSpace(strings.Split(contentType, ";")[0])
	info := serializerFor(mt)
	if info.Serializer == nil {
		return nil, unsupportedMediaType("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
	}
	obj, actual, err := info.Serializer.Decode(body, &gvk, into)
	if err != nil {
		return nil, decodeError(err, gvk, actual, body)
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

func dryRun(r *http.Request) (bool, error) {
	values := r.URL.Query()["dryRun"]
	for _, v := range values {
		if v != metav1.DryRunAll {
			return false, apierrors.NewBadRequest(fmt.Sprintf("Invalid dryRun value: %q. Valid values: %q", v, metav1.DryRunAll))
		}
	}
	return len(values) > 0, nil
}

// decodeWrite reads, decodes and checks the body of a create or update of the resource.
func (h *resourceHandler) decodeWrite(r *http.Request, ri *requestInfo) (runtime.Object, metav1.Object, bool, error) {
	body, err := h.readBody(r)
	if err != nil {
		return nil, nil, false, err
	}
	dry, err := dryRun(r)
	if err != nil {
		return nil, nil, false, err
	}
	obj, err := h.decodeBody(r, body, h.res.GroupVersionKind())
	if err != nil {
		return nil, nil, false, err
	}
	m, _ := meta.Accessor(obj)
	if err := checkNamespace(h.res, ri, m); err != nil {
		return nil, nil, false, err
	}
	return obj, m, dry, nil
}

func (h *resourceHandler) create(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, int, error) {
	if ri.Name != "" {
		return nil, 0, apierrors.NewMethodNotSupported(h.store.GroupResource(), "create")
	}
	obj, _, dry, err := h.decodeWrite(r, ri)
	if err != nil {
		return nil, 0, err
	}
	if err := h.admit.admitCreate(ctx, h.res, ri.Namespace, obj); err != nil {
		return nil, 0, err
	}
	obj = h.track(r, "", nil, obj)
	out, err := h.store.Create(ctx, ri.Namespace, obj, dry)
	if err != nil {
		return nil, 0, err
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

func (h *resourceHandler) update(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, int, error) {
	obj, m, dry, err := h.decodeWrite(r, ri)
	if err != nil {
		return nil, 0, err
	}
	if err := nameMatchesURL(m.GetName(), ri.Name); err != nil {
		return nil, 0, err
	}
	out, created, err := h.store.Update(ctx, ri.Namespace, ri.Name, nil, func(ctx context.Context, current runtime.Object) (runtime.Object, error) {
		if current == nil {
			if err := h.admit.admitCreate(ctx, h.res, ri.Namespace, obj); err != nil {
				return nil, err
			}
		}
		return h.track(r, "", current, obj.DeepCopyObject()), nil
	}, dry)
	if err != nil {
		return nil, 0, err
	}
	if created {
		return out, http.StatusCreated, nil
	}
	return out, http.StatusOK, nil
}

// patchFunc returns an update function applying the request's patch to the current object.
func (h *resourceHandler) patchFunc(r *http.Request, body []byte, gvk schema.GroupVersionKind, name, subresource string) (registry.UpdateFunc, error) {
	patchType := types.PatchType(strings.TrimSpace(strings.Split(r.Header.Get("Content-Type"), ";")[0]))
	switch patchType {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
	default:
		// server-side apply arrives with the kubectl-grade API (not served yet)
		return nil, unsupportedMediaType(string(types.JSONPatchType), string(types.MergePatchType), string(types.StrategicMergePatchType))
	}
	var jp jsonpatch.Patch
	if patchType == types.JSONPatchType {
		p, err := jsonpatch.DecodePatch(body)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		jp = p
	}
	jsonCodec := apis.Codecs.LegacyCodec(gvk.GroupVersion())
	return func(ctx context.Context, current runtime.Object) (runtime.Object, error) {
		if current == nil {
			return nil, apierrors.NewNotFound(h.store.GroupResource(), name)
		}
		original, err := runtime.Encode(jsonCodec, current)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		var patched []byte
		switch patchType {
		case types.JSONPatchType:
			patched, err = jp.Apply(original)
		case types.MergePatchType:
			patched, err = jsonpatch.MergePatch(original, body)
		case types.StrategicMergePatchType:
			var schemaObj runtime.Object
			if schemaObj, err = apis.Scheme.New(gvk); err == nil {
				patched, err = strategicpatch.StrategicMergePatch(original, body, schemaObj)
			}
		}
		if err != nil {
			return nil, patchError(err, patchType)
		}
		obj, err := apis.Scheme.New(gvk)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		if _, _, err := apis.Codecs.UniversalDeserializer().Decode(patched, &gvk, obj); err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		apis.Scheme.Default(obj)
		obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
		pm, _ := meta.Accessor(obj)
		if err := nameMatchesURL(pm.GetName(), name); err != nil {
			return nil, err
		}
		if gvk == h.res.GroupVersionKind() {
			obj = h.track(r, subresource, current, obj)
		}
		return obj, nil
	}, nil
}

// patchError words a failed patch application as upstream.
func patchError(err error, pt types.PatchType) error {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return err
	}
	if pt == types.JSONPatchType {
		return apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
	}
	return apierrors.NewBadRequest(err.Error())
}

func (h *resourceHandler) patch(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, error) {
	body, err := h.readBody(r)
	if err != nil {
		return nil, err
	}
	dry, err := dryRun(r)
	if err != nil {
		return nil, err
	}
	apply, err := h.patchFunc(r, body, h.res.GroupVersionKind(), ri.Name, "")
	if err != nil {
		return nil, err
	}
	out, _, err := h.store.Update(ctx, ri.Namespace, ri.Name, nil, apply, dry)
	return out, err
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
	} else if err := metav1.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, opts); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if q := r.URL.Query()["dryRun"]; len(q) > 0 && len(opts.DryRun) == 0 {
		opts.DryRun = q
	}
	for _, v := range opts.DryRun {
		if v != metav1.DryRunAll {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("Invalid dryRun value: %q. Valid values: %q", v, metav1.DryRunAll))
		}
	}
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationOrphan, metav1.DeletePropagationBackground, metav1.DeletePropagationForeground:
		default:
			return nil, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "DeleteOptions"}, "", field.ErrorList{
				field.NotSupported(field.NewPath("propagationPolicy"), *opts.PropagationPolicy,
					[]string{string(metav1.DeletePropagationForeground), string(metav1.DeletePropagationBackground), string(metav1.DeletePropagationOrphan), "nil"}),
			})
		}
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
	if h.store.ReturnDeletedObject {
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
