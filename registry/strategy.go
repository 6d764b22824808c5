package registry

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Strategy is what one resource (or one of its subresources) adds to the generic store: which
// fields a client may set on create and update, how an object is validated, and how it is
// deleted. The generic store already handles name, generateName, namespace, uid,
// creationTimestamp, resourceVersion, deletionTimestamp and finalizers.
type Strategy interface {
	// PrepareForCreate clears what a client may not set on create (usually status) and fills
	// what the server owns on create (pods start Pending, generation starts at 1, ...).
	PrepareForCreate(ctx context.Context, obj runtime.Object)
	// Validate checks a new object as upstream does, with field paths.
	Validate(ctx context.Context, obj runtime.Object) field.ErrorList

	// PrepareForUpdate copies from old what this write may not change (status for the main
	// resource, everything but status for the status subresource) and bumps generation when
	// the spec changes.
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object)
	// ValidateUpdate checks obj replacing old (immutable fields, ...).
	ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList

	// AllowCreateOnUpdate says whether a PUT to a missing object creates it.
	AllowCreateOnUpdate() bool
	// AllowUnconditionalUpdate says whether a PUT without resourceVersion is accepted.
	AllowUnconditionalUpdate() bool
}

// GracefulDeleter is implemented by strategies whose objects are deleted in two steps (pods):
// first marked with a deletionTimestamp and grace period, then removed.
type GracefulDeleter interface {
	// CheckGracefulDelete sets opts.GracePeriodSeconds to the grace period to use and
	// reports whether deletion should be graceful (false: remove at once).
	CheckGracefulDelete(ctx context.Context, obj runtime.Object, opts *metav1.DeleteOptions) bool
}
