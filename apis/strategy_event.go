package apis

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// eventStrategy is upstream's event strategy, for one of the two APIs that write events. Both
// store core v1 Events (the store converts events.k8s.io/v1 before the strategy sees them); they
// differ in validation, which is strict only through events.k8s.io/v1. Events may be created by
// a PUT and written without a resourceVersion, as upstream allows.
type eventStrategy struct {
	// requestVersion is the group version whose rules apply.
	requestVersion schema.GroupVersion
}

var (
	// EventStrategy is the strategy of v1 events.
	EventStrategy = eventStrategy{requestVersion: corev1.SchemeGroupVersion}
	// EventsV1Strategy is the strategy of events.k8s.io/v1 events.
	EventsV1Strategy = eventStrategy{requestVersion: schema.GroupVersion{Group: "events.k8s.io", Version: "v1"}}
)

var _ Strategy = eventStrategy{}

func (eventStrategy) PrepareForCreate(context.Context, runtime.Object) {}

func (s eventStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateEventCreate(obj.(*corev1.Event), s.requestVersion)
}

func (eventStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s eventStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateEventUpdate(obj.(*corev1.Event), old.(*corev1.Event), s.requestVersion)
}

func (eventStrategy) AllowCreateOnUpdate() bool      { return true }
func (eventStrategy) AllowUnconditionalUpdate() bool { return true }
