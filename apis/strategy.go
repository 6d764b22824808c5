package apis

import (
	"context"
	"fmt"
	"reflect"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
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

// SpecAndStatus is the behaviour most kinds with a spec and a status share, as upstream's
// strategies write it again for each: status is cleared on create and written only through
// the status subresource, generation starts at 1 and counts spec changes, and the status
// subresource keeps the stored spec. The hooks add what a kind checks or sets beyond that;
// any may be nil.
type SpecAndStatus[T runtime.Object] struct {
	// PrepareForCreate and PrepareForUpdate run after the shared preparation.
	PrepareForCreate func(obj T)
	PrepareForUpdate func(obj, old T)
	Validate         func(obj T) field.ErrorList
	ValidateUpdate   func(obj, old T) field.ErrorList
	// ValidateStatusUpdate checks a write of the status subresource.
	ValidateStatusUpdate func(obj, old T) field.ErrorList
}

// Strategies returns the strategy of the resource and of its status subresource.
func (k SpecAndStatus[T]) Strategies() (main, status Strategy) {
	return specStrategy[T]{k}, statusStrategy[T]{k}
}

type specStrategy[T runtime.Object] struct{ k SpecAndStatus[T] }

func (s specStrategy[T]) PrepareForCreate(_ context.Context, obj runtime.Object) {
	setField(obj, "Status", reflect.Value{})
	if m, err := meta.Accessor(obj); err == nil {
		m.SetGeneration(1)
	}
	if s.k.PrepareForCreate != nil {
		s.k.PrepareForCreate(obj.(T))
	}
}

func (s specStrategy[T]) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	if s.k.Validate == nil {
		return nil
	}
	return s.k.Validate(obj.(T))
}

func (s specStrategy[T]) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	setField(obj, "Status", fieldOf(old, "Status"))
	// writers of status report the generation they acted on; the spec's generation is ours
	if !apiequality.Semantic.DeepEqual(fieldOf(obj, "Spec").Interface(), fieldOf(old, "Spec").Interface()) {
		m, _ := meta.Accessor(obj)
		om, _ := meta.Accessor(old)
		m.SetGeneration(om.GetGeneration() + 1)
	}
	if s.k.PrepareForUpdate != nil {
		s.k.PrepareForUpdate(obj.(T), old.(T))
	}
}

func (s specStrategy[T]) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	if s.k.ValidateUpdate == nil {
		return nil
	}
	return s.k.ValidateUpdate(obj.(T), old.(T))
}

func (specStrategy[T]) AllowCreateOnUpdate() bool      { return false }
func (specStrategy[T]) AllowUnconditionalUpdate() bool { return true }

type statusStrategy[T runtime.Object] struct{ k SpecAndStatus[T] }

func (s statusStrategy[T]) PrepareForCreate(ctx context.Context, obj runtime.Object) {
	specStrategy[T](s).PrepareForCreate(ctx, obj)
}

func (s statusStrategy[T]) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	return specStrategy[T](s).Validate(ctx, obj)
}

func (s statusStrategy[T]) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	setField(obj, "Spec", fieldOf(old, "Spec"))
}

func (s statusStrategy[T]) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	if s.k.ValidateStatusUpdate == nil {
		m, _ := meta.Accessor(obj)
		om, _ := meta.Accessor(old)
		return ValidateObjectMetaAccessorUpdate(m, om)
	}
	return s.k.ValidateStatusUpdate(obj.(T), old.(T))
}

func (statusStrategy[T]) AllowCreateOnUpdate() bool      { return false }
func (statusStrategy[T]) AllowUnconditionalUpdate() bool { return true }

// fieldOf is the named field of the struct obj points to.
func fieldOf(obj runtime.Object, name string) reflect.Value {
	f := reflect.ValueOf(obj).Elem().FieldByName(name)
	if !f.IsValid() {
		panic(fmt.Sprintf("%T has no field %s", obj, name)) // a declaration names a kind without one
	}
	return f
}

// setField sets the named field of the struct obj points to (to its zero value when v is the
// zero Value).
func setField(obj runtime.Object, name string, v reflect.Value) {
	f := fieldOf(obj, name)
	if !v.IsValid() {
		f.Set(reflect.Zero(f.Type()))
		return
	}
	f.Set(v)
}

// asWritten is the strategy of a kind stored as its client writes it, with no status and no
// generation to keep: it only validates.
type asWritten[T runtime.Object] struct {
	validate       func(T) field.ErrorList
	validateUpdate func(obj, old T) field.ErrorList
}

func (asWritten[T]) PrepareForCreate(context.Context, runtime.Object) {}
func (s asWritten[T]) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return s.validate(obj.(T))
}
func (asWritten[T]) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}
func (s asWritten[T]) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return s.validateUpdate(obj.(T), old.(T))
}
func (asWritten[T]) AllowCreateOnUpdate() bool      { return false }
func (asWritten[T]) AllowUnconditionalUpdate() bool { return true }
