package apiserver

import (
	"context"
	"fmt"
	"net/http"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// workloadScale serves the scale subresource as an autoscaling/v1 Scale, reading and writing
// the workload at the paths its declaration gives (registry.ScaleOf).
type workloadScale struct{}

var autoscalingV1 = autoscalingv1.SchemeGroupVersion

func (workloadScale) get(ctx context.Context, h *resourceHandler, ri *requestInfo, r *http.Request) (runtime.Object, schema.GroupVersion, error) {
	obj, err := h.get(ctx, ri, r)
	if err != nil {
		return nil, autoscalingV1, err
	}
	scale, err := registry.ScaleOf(h.res, obj)
	return scale, autoscalingV1, err
}

func (workloadScale) write(ctx context.Context, h *resourceHandler, ri *requestInfo, r *http.Request, body []byte) (runtime.Object, schema.GroupVersion, int, error) {
	dry, err := dryRun(r)
	if err != nil {
		return nil, autoscalingV1, 0, err
	}
	scaleGVK := autoscalingV1.WithKind("Scale")
	var change func(current *autoscalingv1.Scale) (*autoscalingv1.Scale, error)
	switch ri.Verb {
	case "update":
		obj, err := h.decodeBody(r, body, scaleGVK)
		if err != nil {
			return nil, autoscalingV1, 0, err
		}
		scale := obj.(*autoscalingv1.Scale)
		if err := nameMatchesURL(scale.Name, ri.Name); err != nil {
			return nil, autoscalingV1, 0, err
		}
		change = func(old *autoscalingv1.Scale) (*autoscalingv1.Scale, error) {
			return trackScaleUpdate(r, old, scale.DeepCopy()).(*autoscalingv1.Scale), nil
		}
	case "patch":
		patch, err := h.patchFunc(r, body, scaleGVK, ri.Name, "scale")
		if err != nil {
			return nil, autoscalingV1, 0, err
		}
		change = func(current *autoscalingv1.Scale) (*autoscalingv1.Scale, error) {
			obj, err := patch(ctx, current)
			if err != nil {
				return nil, err
			}
			return obj.(*autoscalingv1.Scale), nil
		}
	default:
		return nil, autoscalingV1, 0, apierrors.NewMethodNotSupported(schema.GroupResource{Group: ri.APIGroup, Resource: ri.resourceLabel()}, ri.Verb)
	}
	out, _, err := h.store.Update(ctx, ri.Namespace, ri.Name, nil, func(_ context.Context, current runtime.Object) (runtime.Object, error) {
		if current == nil {
			return nil, apierrors.NewNotFound(h.store.GroupResource(), ri.Name)
		}
		// the scale's managers of spec.replicas are the workload's, as upstream's ScaleHandler
		cm, err := meta.Accessor(current)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		fields := scaleManagedFields(cm.GetManagedFields(), h.gv(), h.res)
		old, err := registry.ScaleOf(h.res, current)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		scaleFields, err := fields.ToSubresource()
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		old.ManagedFields = scaleFields
		scale, err := change(old)
		if err != nil {
			return nil, err
		}
		if errs := apis.ValidateScale(scale); len(errs) > 0 {
			return nil, apis.NewInvalid(autoscalingv1.SchemeGroupVersion.WithKind("Scale").GroupKind(), scale.Name, errs)
		}
		if scale.ResourceVersion != "" && scale.ResourceVersion != cm.GetResourceVersion() {
			return nil, apierrors.NewConflict(h.store.GroupResource(), ri.Name,
				fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
		}
		scaled, err := registry.SetScaleReplicas(h.res, current, scale.Spec.Replicas)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		parentFields, err := fields.ToParent(scale.ManagedFields)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		sm, _ := meta.Accessor(scaled)
		sm.SetManagedFields(parentFields)
		return scaled, nil
	}, dry)
	if err != nil {
		return nil, autoscalingV1, 0, err
	}
	scale, err := registry.ScaleOf(h.res, out)
	return scale, autoscalingV1, http.StatusOK, err
}
