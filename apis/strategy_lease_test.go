package apis

import (
	"context"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLeaseIsCreatableByPutButUpdatedOnlyConditionally(t *testing.T) {
	if !LeaseStrategy.AllowCreateOnUpdate() || LeaseStrategy.AllowUnconditionalUpdate() {
		t.Error("leases: want create on update and no unconditional updates, as upstream")
	}
}

func TestLeaseDropsCoordinatedLeaderElectionFields(t *testing.T) {
	strategy, holder := coordinationv1.OldestEmulationVersion, "a"
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "ns"},
		Spec:       coordinationv1.LeaseSpec{Strategy: &strategy, PreferredHolder: &holder, HolderIdentity: &holder},
	}
	LeaseStrategy.PrepareForCreate(context.Background(), lease)
	if lease.Spec.Strategy != nil || lease.Spec.PreferredHolder != nil || lease.Spec.HolderIdentity == nil {
		t.Errorf("spec = %+v", lease.Spec)
	}
	old := lease.DeepCopy()
	old.ResourceVersion = "1"
	update := old.DeepCopy()
	update.Spec.Strategy = &strategy
	LeaseStrategy.PrepareForUpdate(context.Background(), update, old)
	if update.Spec.Strategy != nil {
		t.Errorf("strategy = %v, want dropped", *update.Spec.Strategy)
	}
	checkErrorStrings(t, LeaseStrategy.ValidateUpdate(context.Background(), update, old))
}
