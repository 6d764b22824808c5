package apiserver

import (
	"context"
	"fmt"
	"net/http"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
)

// workloadScale serves the scale subresource of replica sets and deployments as an
// autoscaling/v1 Scale, reading and writing the workload's spec.replicas.
type workloadScale struct{}

var autoscalingV1 = autoscalingv1.SchemeGroupVersion

// scaled is what the scale subresource reads and writes of a workload.
type scaled struct {
	meta           *metav1.ObjectMeta
	replicas       **int32
	selector       *metav1.LabelSelector
	statusReplicas int32
}

func scaledOf(obj runtime.Object) scaled {
	switch w := obj.(type) {
	case *appsv1.ReplicaSet:
		return scaled{&w.ObjectMeta, &w.Spec.Replicas, w.Spec.Selector, w.Status.Replicas}
	case *appsv1.Deployment:
		return scaled{&w.ObjectMeta, &w.Spec.Replicas, w.Spec.Selector, w.Status.Replicas}
	}
	panic(fmt.Sprintf("no scale subresource for %T", obj)) // the table and this switch disagree
}

func scaleOf(obj runtime.Object) *autoscalingv1.Scale {
	w := scaledOf(obj)
	replicas := int32(1)
	if *w.replicas != nil {
		replicas = **w.replicas
	}
	selector := ""
	if sel, err := metav1.LabelSelectorAsSelector(w.selector); err == nil {
		selector = sel.String()
	}
	return &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{
			Name: w.meta.Name, Namespace: w.meta.Namespace, UID: w.meta.UID,
			ResourceVersion: w.meta.ResourceVersion, CreationTimestamp: w.meta.CreationTimestamp,
		},
		Spec:   autoscalingv1.ScaleSpec{Replicas: replicas},
		Status: autoscalingv1.ScaleStatus{Replicas: w.statusReplicas, Selector: selector},
	}
}

func (workloadScale) get(ctx context.Context, h *resourceHandler, ri *requestInfo, r *http.Request) (runtime.Object, schema.GroupVersion, error) {
	obj, err := h.get(ctx, ri, r)
	if err != nil {
		return nil, autoscalingV1, err
	}
	return scaleOf(obj), autoscalingV1, nil
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
		fields := scaleManagedFields(scaledOf(current).meta.ManagedFields, h.gv())
		old := scaleOf(current)
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
			return nil, apierrors.NewInvalid(autoscalingv1.SchemeGroupVersion.WithKind("Scale").GroupKind(), scale.Name, errs)
		}
		w := scaledOf(current)
		if scale.ResourceVersion != "" && scale.ResourceVersion != w.meta.ResourceVersion {
			return nil, apierrors.NewConflict(h.store.GroupResource(), ri.Name,
				fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
		}
		replicas := scale.Spec.Replicas
		*w.replicas = &replicas
		parentFields, err := fields.ToParent(scale.ManagedFields)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		w.meta.ManagedFields = parentFields
		return current, nil
	}, dry)
	if err != nil {
		return nil, autoscalingV1, 0, err
	}
	return scaleOf(out), autoscalingV1, http.StatusOK, nil
}
