package kubelet

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// NodeLeaseNamespace holds one Lease per Node, named as the Node.
const NodeLeaseNamespace = "kube-node-lease"

// renewLease keeps the node's Lease fresh: renewed every quarter of its duration (10 s for
// upstream's 40 s), retried sooner after a failure.
func (k *Kubelet) renewLease(ctx context.Context) {
	interval := k.cfg.LeaseDuration / 4
	for {
		wait := interval
		if err := k.renewLeaseOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			k.log.Warn("failed to renew node lease", "err", err)
			wait = min(interval, time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (k *Kubelet) renewLeaseOnce(ctx context.Context) error {
	leases := k.client.CoordinationV1().Leases(NodeLeaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	// The last Lease written is updated as is; only a failed update reads it again.
	lease := k.lease
	if lease == nil {
		var err error
		lease, err = leases.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return k.createLease(ctx, now)
		}
		if err != nil {
			return err
		}
	}
	lease = lease.DeepCopy()
	lease.Spec.HolderIdentity = ptr.To(k.cfg.NodeName)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(k.cfg.LeaseDuration / time.Second))
	lease.Spec.RenewTime = &now
	if len(lease.OwnerReferences) == 0 {
		lease.OwnerReferences = k.nodeOwnerReferences(ctx)
	}
	updated, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
	k.lease = updated
	if err != nil {
		k.lease = nil
	}
	return err
}

func (k *Kubelet) createLease(ctx context.Context, now metav1.MicroTime) error {
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Namespace: NodeLeaseNamespace, OwnerReferences: k.nodeOwnerReferences(ctx)},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(k.cfg.NodeName),
			LeaseDurationSeconds: ptr.To(int32(k.cfg.LeaseDuration / time.Second)),
			RenewTime:            &now,
		},
	}
	created, err := k.client.CoordinationV1().Leases(NodeLeaseNamespace).Create(ctx, lease, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) {
		// Upstream's API server creates kube-node-lease itself; create it where it has not.
		ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: NodeLeaseNamespace}}
		if _, err := k.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		created, err = k.client.CoordinationV1().Leases(NodeLeaseNamespace).Create(ctx, lease, metav1.CreateOptions{})
	}
	if err == nil {
		k.lease = created
	}
	return err
}

// nodeOwnerReferences makes the Node own its Lease, so that deleting the Node deletes it.
func (k *Kubelet) nodeOwnerReferences(ctx context.Context) []metav1.OwnerReference {
	node, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
}
