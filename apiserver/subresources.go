package apiserver

import (
	"context"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// parentWrite is a subresource that reads and writes the parent object itself through its own
// strategy (status, finalize): GET returns the parent, PUT replaces it and PATCH patches it,
// and the strategy keeps what the subresource may not change.
type parentWrite struct {
	strategy apis.Strategy
	// getAllowed is false for finalize, which upstream serves for update only.
	getAllowed bool
}

func (p parentWrite) get(ctx context.Context, h *resourceHandler, ri *requestInfo, r *http.Request) (runtime.Object, schema.GroupVersion, error) {
	if !p.getAllowed {
		return nil, schema.GroupVersion{}, apierrors.NewMethodNotSupported(schema.GroupResource{Group: ri.APIGroup, Resource: ri.resourceLabel()}, "get")
	}
	obj, err := h.get(ctx, ri, r)
	return obj, h.gv(), err
}

func (p parentWrite) write(ctx context.Context, h *resourceHandler, ri *requestInfo, r *http.Request, body []byte) (runtime.Object, schema.GroupVersion, int, error) {
	var (
		update registry.UpdateFunc
		opts   writeOptions
	)
	switch ri.Verb {
	case "update":
		var err error
		if opts, err = updateOptions(r); err != nil {
			return nil, schema.GroupVersion{}, 0, err
		}
		obj, err := h.decodeBody(r, body, h.res.GroupVersionKind())
		if err != nil {
			return nil, schema.GroupVersion{}, 0, err
		}
		m, _ := meta.Accessor(obj)
		if err := checkNamespace(h.res, ri, m); err != nil {
			return nil, schema.GroupVersion{}, 0, err
		}
		if err := nameMatchesURL(m.GetName(), ri.Name); err != nil {
			return nil, schema.GroupVersion{}, 0, err
		}
		update = func(_ context.Context, current runtime.Object) (runtime.Object, error) {
			if current == nil {
				return nil, apierrors.NewNotFound(h.store.GroupResource(), ri.Name)
			}
			return trackManagedFields(h.fieldManager(ri.Subresource), h.res, current, obj.DeepCopyObject(), opts.manager), nil
		}
	case "patch":
		pt, err := patchTypeOf(r)
		if err != nil {
			return nil, schema.GroupVersion{}, 0, err
		}
		if opts, err = patchOptions(r, pt); err != nil {
			return nil, schema.GroupVersion{}, 0, err
		}
		update = h.newPatch(ri, pt, body, opts, h.res.GroupVersionKind(), h.fieldManager(ri.Subresource)).update
	default:
		return nil, schema.GroupVersion{}, 0, apierrors.NewMethodNotSupported(schema.GroupResource{Group: ri.APIGroup, Resource: ri.resourceLabel()}, ri.Verb)
	}
	out, _, err := h.store.Update(ctx, ri.Namespace, ri.Name, p.strategy, update, opts.dryRun)
	return out, h.gv(), http.StatusOK, err
}

// podBinding serves pods/binding: POST a Binding to set spec.nodeName once, as the scheduler
// does.
type podBinding struct{ s *Server }

func (podBinding) get(_ context.Context, _ *resourceHandler, ri *requestInfo, _ *http.Request) (runtime.Object, schema.GroupVersion, error) {
	return nil, schema.GroupVersion{}, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "pods/binding"}, "get")
}

func (p podBinding) write(ctx context.Context, h *resourceHandler, ri *requestInfo, r *http.Request, body []byte) (runtime.Object, schema.GroupVersion, int, error) {
	if ri.Verb != "create" {
		return nil, schema.GroupVersion{}, 0, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "pods/binding"}, ri.Verb)
	}
	opts, err := createOptions(r)
	if err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	obj, err := h.decodeBody(r, body, corev1.SchemeGroupVersion.WithKind("Binding"))
	if err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	binding := obj.(*corev1.Binding)
	if binding.Namespace != "" && binding.Namespace != ri.Namespace {
		return nil, schema.GroupVersion{}, 0, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if err := nameMatchesURL(binding.Name, ri.Name); err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	admitted, err := p.s.admitOtherKind(ctx, ri, admissionv1.Create, corev1.SchemeGroupVersion.WithKind("Binding"), binding, opts.dryRun)
	if err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	binding = admitted.(*corev1.Binding)
	if err := h.store.Bind(ctx, ri.Namespace, binding, opts.dryRun); err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	return &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}, metav1.SchemeGroupVersion, http.StatusCreated, nil
}
