package apiserver

import (
	"context"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var evictionGR = schema.GroupResource{Resource: "pods/eviction"}

// podEviction serves pods/eviction: POST a policy/v1 Eviction to delete a pod gracefully
// unless its PodDisruptionBudget forbids it (registry's Evict decides).
type podEviction struct{ s *Server }

func (podEviction) get(context.Context, *resourceHandler, *requestInfo, *http.Request) (runtime.Object, schema.GroupVersion, error) {
	return nil, schema.GroupVersion{}, apierrors.NewMethodNotSupported(evictionGR, "get")
}

func (e podEviction) write(ctx context.Context, h *resourceHandler, ri *requestInfo, r *http.Request, body []byte) (runtime.Object, schema.GroupVersion, int, error) {
	if ri.Verb != "create" {
		return nil, schema.GroupVersion{}, 0, apierrors.NewMethodNotSupported(evictionGR, ri.Verb)
	}
	opts, err := createOptions(r)
	if err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	obj, err := h.decodeBody(r, body, policyv1.SchemeGroupVersion.WithKind("Eviction"))
	if err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	eviction := obj.(*policyv1.Eviction)
	if eviction.Name != ri.Name {
		return nil, schema.GroupVersion{}, 0, apierrors.NewBadRequest("name in URL does not match name in Eviction object")
	}
	if eviction.Namespace != "" && eviction.Namespace != ri.Namespace {
		return nil, schema.GroupVersion{}, 0, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	admitted, err := e.s.admitOtherKind(ctx, ri, admissionv1.Create, policyv1.SchemeGroupVersion.WithKind("Eviction"), eviction, opts.dryRun)
	if err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	eviction = admitted.(*policyv1.Eviction)
	budgets := e.s.store(policyv1.SchemeGroupVersion.String(), "poddisruptionbudgets")
	if budgets == nil {
		return nil, schema.GroupVersion{}, 0, apierrors.NewServiceUnavailable("poddisruptionbudgets are not served")
	}
	var dryRun []string
	if opts.dryRun {
		dryRun = []string{metav1.DryRunAll}
	}
	if err := h.store.Evict(ctx, ri.Namespace, eviction, budgets, dryRun); err != nil {
		return nil, schema.GroupVersion{}, 0, err
	}
	return &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}, metav1.SchemeGroupVersion, http.StatusCreated, nil
}
