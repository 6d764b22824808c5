package apis

import (
	"context"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// leaseStrategy is upstream's lease strategy: a PUT may create a lease, but an update must name
// the resourceVersion it replaces (leader election depends on that compare-and-swap). The
// coordinated leader election fields (strategy, preferredHolder) are dropped, as upstream does
// while that feature is off by default, unless the stored lease already has them.
type leaseStrategy struct{}

// LeaseStrategy is the strategy of leases.
var LeaseStrategy = leaseStrategy{}

var _ Strategy = leaseStrategy{}

func (leaseStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	lease := obj.(*coordinationv1.Lease)
	lease.Spec.Strategy = nil
	lease.Spec.PreferredHolder = nil
}

func (leaseStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateLease(obj.(*coordinationv1.Lease))
}

func (leaseStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	lease, oldLease := obj.(*coordinationv1.Lease), old.(*coordinationv1.Lease)
	if oldLease.Spec.Strategy == nil {
		lease.Spec.Strategy = nil
	}
	if oldLease.Spec.PreferredHolder == nil {
		lease.Spec.PreferredHolder = nil
	}
}

func (leaseStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateLeaseUpdate(obj.(*coordinationv1.Lease), old.(*coordinationv1.Lease))
}

func (leaseStrategy) AllowCreateOnUpdate() bool      { return true }
func (leaseStrategy) AllowUnconditionalUpdate() bool { return false }
