package apis

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// configMapStrategy is upstream's config map strategy: everything a client sends is kept; an
// immutable config map refuses changes to its data in validation.
type configMapStrategy struct{}

// ConfigMapStrategy is the strategy of config maps.
var ConfigMapStrategy = configMapStrategy{}

var _ Strategy = configMapStrategy{}

func (configMapStrategy) PrepareForCreate(context.Context, runtime.Object) {}

func (configMapStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateConfigMap(obj.(*corev1.ConfigMap))
}

func (configMapStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (configMapStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateConfigMapUpdate(obj.(*corev1.ConfigMap), old.(*corev1.ConfigMap))
}

func (configMapStrategy) AllowCreateOnUpdate() bool      { return false }
func (configMapStrategy) AllowUnconditionalUpdate() bool { return true }
