package scheduler

import (
	"context"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/util/retry"
)

// updatePodCondition sets cond in status as upstream's podutil.UpdatePodCondition: the
// transition time moves only when the condition's status changes. It says whether anything
// changed.
func updatePodCondition(status *corev1.PodStatus, cond *corev1.PodCondition, now metav1.Time) bool {
	for i := range status.Conditions {
		old := &status.Conditions[i]
		if old.Type != cond.Type {
			continue
		}
		c := *cond
		if c.Status == old.Status {
			c.LastTransitionTime = old.LastTransitionTime
		} else {
			c.LastTransitionTime = now
		}
		if c.Status == old.Status && c.Reason == old.Reason && c.Message == old.Message &&
			c.LastProbeTime.Equal(&old.LastProbeTime) && c.LastTransitionTime.Equal(&old.LastTransitionTime) &&
			c.ObservedGeneration == old.ObservedGeneration {
			return false
		}
		*old = c
		return true
	}
	c := *cond
	c.LastTransitionTime = now
	status.Conditions = append(status.Conditions, c)
	return true
}

// patchPodStatus writes a condition and/or a nominated node to the pod's status with a
// strategic merge patch on pods/status, computed against the status the informer last showed,
// as upstream's util.PatchPodStatus. Nothing is sent when nothing would change.
func (s *Scheduler) patchPodStatus(ctx context.Context, pod *corev1.Pod, cond *corev1.PodCondition, nomination nominationChange) error {
	newStatus := pod.Status.DeepCopy()
	changed := false
	if cond != nil && updatePodCondition(newStatus, cond, metav1.NewTime(s.now())) {
		changed = true
	}
	if nomination.set && newStatus.NominatedNodeName != nomination.node {
		newStatus.NominatedNodeName = nomination.node
		changed = true
	}
	if !changed {
		return nil
	}
	oldData, err := json.Marshal(corev1.Pod{Status: pod.Status})
	if err != nil {
		return err
	}
	newData, err := json.Marshal(corev1.Pod{Status: *newStatus})
	if err != nil {
		return err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldData, newData, &corev1.Pod{})
	if err != nil {
		return err
	}
	if string(patch) == "{}" {
		return nil
	}
	return retry.OnError(retry.DefaultBackoff, retriable, func() error {
		_, err := s.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
		return err
	})
}

// retriable says whether an API error may pass if tried again.
func retriable(err error) bool {
	return apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) ||
		apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		net.IsConnectionRefused(err)
}
