package scheduler

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/controllers/persistentvolume"
)

const volumeBindingName = "VolumeBinding"

// Upstream's VolumeBinding reasons, word for word.
const (
	reasonUnboundImmediateClaims = "pod has unbound immediate PersistentVolumeClaims"
	reasonVolumeNodeConflict     = "node(s) had volume node affinity conflict"
	reasonNoVolumeToBind         = "node(s) didn't find available persistent volumes to bind"
	reasonBoundToMissingVolume   = "pvc(s) bound to non-existent pv(s)"
)

// volumeBinding is the smallest part of upstream's VolumeBinding plugin that
// WaitForFirstConsumer needs: a pod whose claims are missing, or unbound in an Immediate class,
// waits; a bound claim's volume must reach the node (local volumes' node affinity); an unbound
// WaitForFirstConsumer claim fits a node where a matching volume reaches or whose class has a
// provisioner. At bind time the scheduler writes the node it picked on such claims
// (volume.kubernetes.io/selected-node) and does not wait for them to be bound: the PV
// controller and the provisioner bind them, and the kubelet waits for that before it starts
// the pod.
type volumeBinding struct {
	claims  corelisters.PersistentVolumeClaimLister
	volumes corelisters.PersistentVolumeLister
	classes storagelisters.StorageClassLister
}

var (
	_ filterPlugin    = (*volumeBinding)(nil)
	_ preFilterPlugin = (*volumeBinding)(nil)
)

func (*volumeBinding) name() string { return volumeBindingName }

// volumeBindingState is what preFilter found of a pod's claims.
type volumeBindingState struct {
	// bound are the volumes of the pod's bound claims.
	bound []*corev1.PersistentVolume
	// delayed are its unbound WaitForFirstConsumer claims, with their classes.
	delayed []delayedClaim
}

type delayedClaim struct {
	claim *corev1.PersistentVolumeClaim
	class *storagev1.StorageClass
}

func (s *volumeBindingState) clone() stateData { return s }

// podClaimNames are the claims a pod's volumes use, ephemeral ones included.
func podClaimNames(pod *corev1.Pod) []string {
	var names []string
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			names = append(names, v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil:
			names = append(names, pod.Name+"-"+v.Name)
		}
	}
	return names
}

func (b *volumeBinding) preFilter(cs *cycleState, pi *podInfo, _ *snapshot) (bool, *status) {
	names := podClaimNames(pi.pod)
	if len(names) == 0 {
		return true, nil
	}
	state := &volumeBindingState{}
	for _, name := range names {
		pvc, err := b.claims.PersistentVolumeClaims(pi.pod.Namespace).Get(name)
		if err != nil {
			if apierrors.IsNotFound(err) {
				return false, newStatus(unresolvable, volumeBindingName, fmt.Sprintf("persistentvolumeclaim %q not found", name))
			}
			return false, newStatus(internalError, volumeBindingName, err.Error())
		}
		if pvc.DeletionTimestamp != nil {
			return false, newStatus(unresolvable, volumeBindingName, fmt.Sprintf("persistentvolumeclaim %q is being deleted", name))
		}
		if pvc.Spec.VolumeName != "" {
			pv, err := b.volumes.Get(pvc.Spec.VolumeName)
			if err != nil {
				return false, newStatus(unresolvable, volumeBindingName, reasonBoundToMissingVolume)
			}
			state.bound = append(state.bound, pv)
			continue
		}
		class, err := b.classes.Get(apis.PersistentVolumeClaimClass(pvc))
		if err != nil || class.VolumeBindingMode == nil || *class.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
			return false, newStatus(unresolvable, volumeBindingName, reasonUnboundImmediateClaims)
		}
		state.delayed = append(state.delayed, delayedClaim{claim: pvc, class: class})
	}
	cs.write(volumeBindingName, state)
	return false, nil
}

func (b *volumeBinding) filter(cs *cycleState, _ *podInfo, node *nodeInfo) *status {
	state, _ := cs.read(volumeBindingName).(*volumeBindingState)
	if state == nil {
		return nil
	}
	nodeLabels := labels.Set(node.node.Labels)
	for _, pv := range state.bound {
		if !persistentvolume.VolumeNodeAffinityMatches(pv, nodeLabels) {
			return newStatus(unresolvable, volumeBindingName, reasonVolumeNodeConflict)
		}
	}
	for _, d := range state.delayed {
		if d.class.Provisioner != "" && d.class.Provisioner != "kubernetes.io/no-provisioner" {
			continue
		}
		if !b.volumeAvailableOn(d.claim, nodeLabels) {
			return newStatus(unresolvable, volumeBindingName, reasonNoVolumeToBind)
		}
	}
	return nil
}

// volumeAvailableOn says whether an Available volume that satisfies the claim reaches a node
// with these labels.
func (b *volumeBinding) volumeAvailableOn(pvc *corev1.PersistentVolumeClaim, nodeLabels labels.Set) bool {
	all, err := b.volumes.List(labels.Everything())
	if err != nil {
		return false
	}
	for _, pv := range all {
		if pv.Status.Phase != corev1.VolumeAvailable || pv.DeletionTimestamp != nil {
			continue
		}
		if ref := pv.Spec.ClaimRef; ref != nil && (ref.Namespace != pvc.Namespace || ref.Name != pvc.Name) {
			continue
		}
		if persistentvolume.Unsatisfied(pv, pvc) == "" && persistentvolume.VolumeNodeAffinityMatches(pv, nodeLabels) {
			return true
		}
	}
	return false
}

// selectNodeForClaims writes the chosen node on the pod's unbound WaitForFirstConsumer claims,
// which is what lets their volumes be found or made there.
func (s *Scheduler) selectNodeForClaims(ctx context.Context, pod *corev1.Pod, node string) error {
	if s.volumeBinding == nil {
		return nil
	}
	for _, name := range podClaimNames(pod) {
		pvc, err := s.volumeBinding.claims.PersistentVolumeClaims(pod.Namespace).Get(name)
		if err != nil || pvc.Spec.VolumeName != "" || pvc.Annotations[persistentvolume.AnnSelectedNode] == node {
			continue
		}
		class, err := s.volumeBinding.classes.Get(apis.PersistentVolumeClaimClass(pvc))
		if err != nil || class.VolumeBindingMode == nil || *class.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{persistentvolume.AnnSelectedNode: node}}})
		if _, err := s.client.CoreV1().PersistentVolumeClaims(pod.Namespace).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("select node %s for claim %s/%s: %w", node, pod.Namespace, name, err)
		}
	}
	return nil
}
