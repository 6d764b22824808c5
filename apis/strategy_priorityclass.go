package apis

import (
	"context"

	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// priorityClassStrategy keeps what a client sends; value and preemptionPolicy are immutable.
type priorityClassStrategy struct{}

// PriorityClassStrategy is the strategy of priority classes.
var PriorityClassStrategy = priorityClassStrategy{}

var _ Strategy = priorityClassStrategy{}

func (priorityClassStrategy) PrepareForCreate(context.Context, runtime.Object) {}

func (priorityClassStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidatePriorityClass(obj.(*schedulingv1.PriorityClass))
}

func (priorityClassStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (priorityClassStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidatePriorityClassUpdate(obj.(*schedulingv1.PriorityClass), old.(*schedulingv1.PriorityClass))
}

func (priorityClassStrategy) AllowCreateOnUpdate() bool      { return false }
func (priorityClassStrategy) AllowUnconditionalUpdate() bool { return true }
