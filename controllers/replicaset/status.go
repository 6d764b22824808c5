package replicaset

import (
	"context"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

// calculateStatus is the status of rs given its active pods, its terminating pods and how the
// last attempt to create or delete pods went.
func calculateStatus(rs *appsv1.ReplicaSet, active, terminating []*corev1.Pod, manageErr error, now time.Time) appsv1.ReplicaSetStatus {
	status := *rs.Status.DeepCopy()
	templateLabels := labels.Set(rs.Spec.Template.Labels).AsSelectorPreValidated()
	var fullyLabeled, ready, available int32
	for _, pod := range active {
		if templateLabels.Matches(labels.Set(pod.Labels)) {
			fullyLabeled++
		}
		if controllers.IsPodReady(pod) {
			ready++
			if controllers.IsPodAvailable(pod, rs.Spec.MinReadySeconds, now) {
				available++
			}
		}
	}

	failure := replicaFailureCondition(status)
	switch {
	case manageErr != nil && failure == nil:
		reason := ""
		if diff := len(active) - int(replicasOf(rs)); diff < 0 {
			reason = "FailedCreate"
		} else if diff > 0 {
			reason = "FailedDelete"
		}
		status.Conditions = append(status.Conditions, appsv1.ReplicaSetCondition{
			Type:               appsv1.ReplicaSetReplicaFailure,
			Status:             corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(now),
			Reason:             reason,
			Message:            manageErr.Error(),
		})
	case manageErr == nil && failure != nil:
		var kept []appsv1.ReplicaSetCondition
		for _, c := range status.Conditions {
			if c.Type != appsv1.ReplicaSetReplicaFailure {
				kept = append(kept, c)
			}
		}
		status.Conditions = kept
	}

	status.Replicas = int32(len(active))
	status.FullyLabeledReplicas = fullyLabeled
	status.ReadyReplicas = ready
	status.AvailableReplicas = available
	status.TerminatingReplicas = ptr.To(int32(len(terminating)))
	return status
}

func replicaFailureCondition(s appsv1.ReplicaSetStatus) *appsv1.ReplicaSetCondition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == appsv1.ReplicaSetReplicaFailure {
			return &s.Conditions[i]
		}
	}
	return nil
}

// updateStatus writes status (and the generation it answers) to rs unless nothing changed,
// reading the ReplicaSet again once on a conflict.
func (c *Controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, status appsv1.ReplicaSetStatus) (*appsv1.ReplicaSet, error) {
	if rs.Generation == rs.Status.ObservedGeneration && statusEqual(rs.Status, status) {
		return rs, nil
	}
	status.ObservedGeneration = rs.Generation
	rs = rs.DeepCopy()
	for attempt := 0; ; attempt++ {
		rs.Status = status
		updated, err := c.kind.updateStatus(ctx, rs)
		if err == nil || attempt >= 1 {
			return updated, err
		}
		fresh, getErr := c.kind.fresh(ctx, rs.Namespace, rs.Name)
		if getErr != nil {
			return nil, getErr
		}
		// keep the generation this sync acted on, not the one just read
		rs = fresh
	}
}

func statusEqual(a, b appsv1.ReplicaSetStatus) bool {
	return a.Replicas == b.Replicas &&
		a.FullyLabeledReplicas == b.FullyLabeledReplicas &&
		a.ReadyReplicas == b.ReadyReplicas &&
		a.AvailableReplicas == b.AvailableReplicas &&
		ptr.Deref(a.TerminatingReplicas, 0) == ptr.Deref(b.TerminatingReplicas, 0) &&
		(a.TerminatingReplicas == nil) == (b.TerminatingReplicas == nil) &&
		reflect.DeepEqual(a.Conditions, b.Conditions)
}
