package apiserver

import (
	"context"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/admissionpolicy"
	"github.com/skiff-dev/skiff/registry"
)

// resourceHandler serves the REST verbs of one resource in one group version.
type resourceHandler struct {
	res   *apis.Resource
	store *registry.Store
	// subresources by name: how each is read and written
	subresources map[string]subresource
	admit        *admission
	// policies are the ValidatingAdmissionPolicies, which judge deletes here
	policies *admissionpolicy.Policies
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
		h.serveList(w, r, ri)
		return
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

// serveList answers a LIST. In JSON and protobuf the answer is written straight from the
// items, which may be the watch cache's own objects, shared and never copied: the list
// writers only read them and splice their cached encodings. Other representations (Table,
// PartialObjectMetadataList) and custom resources are built from a list of copies.
func (h *resourceHandler) serveList(w http.ResponseWriter, r *http.Request, ri *requestInfo) {
	ctx := r.Context()
	mt, err := negotiate(r)
	if err != nil || mt.convert != nil || listWriterFor(mt.info.MediaType) == nil || h.res.Unstructured {
		obj, err := h.list(ctx, ri, r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeObject(w, r, http.StatusOK, h.gv(), obj)
		return
	}
	opts, _, err := h.listOptions(ri, r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, items, err := h.store.ListShared(ctx, ri.Namespace, opts)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeList(w, r, http.StatusOK, mt, h.gv(), list, items)
}

func (h *resourceHandler) list(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, error) {
	opts, _, err := h.listOptions(ri, r)
	if err != nil {
		return nil, err
	}
	return h.store.List(ctx, ri.Namespace, opts)
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
	// as upstream, the fields the admission plugins set (a service account's token volume, a
	// priority) are nobody's: the writer's are recorded before they run
	obj = trackManagedFields(h.fieldManager(""), h.res, nil, obj, opts.manager)
	if err := h.admit.admitCreate(ctx, h.res, ri.Namespace, obj); err != nil {
		return nil, 0, err
	}
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
		tracked := trackManagedFields(h.fieldManager(""), h.res, current, obj.DeepCopyObject(), opts.manager)
		if current == nil {
			if err := h.admit.admitCreate(ctx, h.res, ri.Namespace, tracked); err != nil {
				return nil, err
			}
		}
		return tracked, nil
	}, opts.dryRun)
	if err != nil {
		return nil, 0, err
	}
	if created {
		return out, http.StatusCreated, nil
	}
	return out, http.StatusOK, nil
}

func (h *resourceHandler) delete(ctx context.Context, ri *requestInfo, r *http.Request) (runtime.Object, int, error) {
	opts, err := h.deleteOptions(r)
	if err != nil {
		return nil, 0, err
	}
	if err := h.admit.admitDelete(ctx, h.res, ri.Namespace, ri.Name); err != nil {
		return nil, 0, err
	}
	if err := h.admitPolicyDelete(ctx, ri.Namespace, ri.Name, nil, opts); err != nil {
		return nil, 0, err
	}
	if h.res.OrphanWarning != "" && opts.PropagationPolicy == nil && opts.OrphanDependents == nil {
		addWarning(ctx, h.res.OrphanWarning)
	}
	obj, deleted, err := h.store.Delete(ctx, ri.Namespace, ri.Name, opts)
	if err != nil {
		return nil, 0, err
	}
	if !deleted {
		// still there (finalizers or a grace period): the object, with 200 as upstream answers
		// unless the client asked for cascading deletion the deprecated way
		if opts.OrphanDependents != nil && !*opts.OrphanDependents {
			return obj, http.StatusAccepted, nil
		}
		return obj, http.StatusOK, nil
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
		if err := h.admitPolicyDelete(ctx, m.GetNamespace(), m.GetName(), it, opts); err != nil {
			return nil, err
		}
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
