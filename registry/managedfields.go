package registry

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A write that etcd refuses as too large is tried once more without its managed fields, as
// upstream's create, update and patch handlers do: managed fields can be as large as the object
// itself (one entry per label of a ConfigMap of 100,000 labels), and an object stored without
// them is still whole. Server-side apply keeps them, since they are what apply works on: an
// apply that is too large with them gets the 413.

type keepManagedFieldsKey struct{}

// KeepManagedFields marks ctx as a write whose managed fields must be stored with the object
// or not at all (server-side apply).
func KeepManagedFields(ctx context.Context) context.Context {
	return context.WithValue(ctx, keepManagedFieldsKey{}, true)
}

func managedFieldsDroppable(ctx context.Context) bool {
	keep, _ := ctx.Value(keepManagedFieldsKey{}).(bool)
	return !keep
}

// dropManagedFields takes the managed fields off m for another try at storing it, and
// reports whether there were any to take and ctx allows it.
func dropManagedFields(ctx context.Context, m metav1.Object) bool {
	if len(m.GetManagedFields()) == 0 || !managedFieldsDroppable(ctx) {
		return false
	}
	m.SetManagedFields(nil)
	return true
}
