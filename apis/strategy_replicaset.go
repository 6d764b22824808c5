package apis

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// replicaSetStrategy is upstream's replica set strategy: status is cleared on create and written
// only through replicasets/status; generation starts at 1 and counts spec changes.
type replicaSetStrategy struct{}

// ReplicaSetStrategy is the strategy of replica sets (and of replicasets/scale, which writes
// spec.replicas).
var ReplicaSetStrategy = replicaSetStrategy{}

var _ Strategy = replicaSetStrategy{}

func (replicaSetStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	rs := obj.(*appsv1.ReplicaSet)
	rs.Status = appsv1.ReplicaSetStatus{}
	rs.Generation = 1
}

func (replicaSetStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateReplicaSet(obj.(*appsv1.ReplicaSet))
}

func (replicaSetStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	rs, oldRS := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
	rs.Status = oldRS.Status
	// Writers of status report the generation they acted on; the spec's generation is ours.
	if !apiequality.Semantic.DeepEqual(rs.Spec, oldRS.Spec) {
		rs.Generation = oldRS.Generation + 1
	}
}

func (replicaSetStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateReplicaSetUpdate(obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet))
}

func (replicaSetStrategy) AllowCreateOnUpdate() bool      { return false }
func (replicaSetStrategy) AllowUnconditionalUpdate() bool { return true }

// replicaSetStatusStrategy is the strategy of replicasets/status: the spec comes from the stored
// replica set.
type replicaSetStatusStrategy struct{ replicaSetStrategy }

// ReplicaSetStatusStrategy is the strategy of replicasets/status.
var ReplicaSetStatusStrategy = replicaSetStatusStrategy{}

func (replicaSetStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*appsv1.ReplicaSet).Spec = old.(*appsv1.ReplicaSet).Spec
}

func (replicaSetStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateReplicaSetStatusUpdate(obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet))
}
