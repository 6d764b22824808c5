package statefulset

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/controllers"
)

// The labels a StatefulSet's pods carry, as upstream's.
const (
	// PodNameLabel is the pod's own name, for Services that pick one member.
	PodNameLabel = "statefulset.kubernetes.io/pod-name"
	// PodIndexLabel is the pod's ordinal.
	PodIndexLabel = "apps.kubernetes.io/pod-index"
	// RevisionLabel is the name of the ControllerRevision the pod was made from.
	RevisionLabel = appsv1.StatefulSetRevisionLabel
)

func podName(set *appsv1.StatefulSet, ordinal int) string {
	return fmt.Sprintf("%s-%d", set.Name, ordinal)
}

func claimName(set *appsv1.StatefulSet, claim *corev1.PersistentVolumeClaim, ordinal int) string {
	return fmt.Sprintf("%s-%s-%d", claim.Name, set.Name, ordinal)
}

func podRevision(pod *corev1.Pod) string { return pod.Labels[RevisionLabel] }

// templateOf is the pod template a revision holds: its data is the patch that puts it back.
func templateOf(revision *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var patch struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(revision.Data.Raw, &patch); err != nil {
		return nil, fmt.Errorf("revision %s: %w", revision.Name, err)
	}
	return &patch.Spec.Template, nil
}

// newPod is the pod of ordinal made from template and labelled with revision: its stable
// name, hostname and subdomain, its identity labels, and its claims in place of the
// template's volumes of the same names.
func newPod(set *appsv1.StatefulSet, template *corev1.PodTemplateSpec, revision string, ordinal int) *corev1.Pod {
	pod := controllers.PodFromTemplate(template, set, metav1.NewControllerRef(set, controllerKind))
	pod.GenerateName = ""
	pod.Name = podName(set, ordinal)
	pod.Namespace = set.Namespace
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[PodNameLabel] = pod.Name
	pod.Labels[PodIndexLabel] = strconv.Itoa(ordinal)
	pod.Labels[RevisionLabel] = revision
	pod.Spec.Hostname = pod.Name
	pod.Spec.Subdomain = set.Spec.ServiceName
	claims := map[string]string{}
	for i := range set.Spec.VolumeClaimTemplates {
		claim := &set.Spec.VolumeClaimTemplates[i]
		claims[claim.Name] = claimName(set, claim, ordinal)
	}
	if len(claims) == 0 {
		return pod
	}
	volumes := make([]corev1.Volume, 0, len(pod.Spec.Volumes)+len(claims))
	for _, claim := range set.Spec.VolumeClaimTemplates {
		volumes = append(volumes, corev1.Volume{Name: claim.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claims[claim.Name]},
		}})
	}
	for _, v := range pod.Spec.Volumes {
		if _, replaced := claims[v.Name]; !replaced {
			volumes = append(volumes, v)
		}
	}
	pod.Spec.Volumes = volumes
	return pod
}

// createClaims creates the claims of ordinal's pod that do not exist yet. The claims outlive
// the pod; with whenDeleted: Delete they are owned by the set, so that they go with it.
func (c *Controller) createClaims(ctx context.Context, set *appsv1.StatefulSet, ordinal int) error {
	for i := range set.Spec.VolumeClaimTemplates {
		claim := set.Spec.VolumeClaimTemplates[i].DeepCopy()
		claim.Name = claimName(set, claim, ordinal)
		claim.Namespace = set.Namespace
		claim.ResourceVersion, claim.UID = "", ""
		claim.Status = corev1.PersistentVolumeClaimStatus{}
		if claim.Labels == nil {
			claim.Labels = map[string]string{}
		}
		for k, v := range set.Spec.Selector.MatchLabels {
			claim.Labels[k] = v
		}
		if p := set.Spec.PersistentVolumeClaimRetentionPolicy; p != nil && p.WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
			claim.OwnerReferences = append(claim.OwnerReferences, metav1.OwnerReference{
				APIVersion: controllerKind.GroupVersion().String(), Kind: controllerKind.Kind, Name: set.Name, UID: set.UID})
		}
		_, err := c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Create(ctx, claim, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			continue
		}
		c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedCreate", "create Claim %s for Pod %s in StatefulSet %s failed error: %s",
			claim.Name, podName(set, ordinal), set.Name, err)
		return err
	}
	return nil
}

// releaseClaimsToPod makes a condemned pod the owner of its claims when the set's claims go on
// scale-down (whenScaled: Delete), so that the garbage collector deletes them after the pod.
// Claims that do not exist are left so.
func (c *Controller) releaseClaimsToPod(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	p := set.Spec.PersistentVolumeClaimRetentionPolicy
	if p == nil || p.WhenScaled != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		return nil
	}
	_, ordinal := parentAndOrdinal(pod)
	claims := c.client.CoreV1().PersistentVolumeClaims(set.Namespace)
	for i := range set.Spec.VolumeClaimTemplates {
		claim, err := claims.Get(ctx, claimName(set, &set.Spec.VolumeClaimTemplates[i], ordinal), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		owned := false
		for _, ref := range claim.OwnerReferences {
			owned = owned || ref.UID == pod.UID
		}
		if owned {
			continue
		}
		claim.OwnerReferences = append(claim.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID})
		if _, err := claims.Update(ctx, claim, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// createPod creates ordinal's claims, then its pod, recording upstream's Events.
func (c *Controller) createPod(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod, ordinal int) error {
	if err := c.createClaims(ctx, set, ordinal); err != nil {
		return err
	}
	_, err := c.client.CoreV1().Pods(set.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		return nil // our cache has not seen it yet
	case err != nil:
		if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedCreate", "create Pod %s in StatefulSet %s failed error: %s", pod.Name, set.Name, err)
		}
		return err
	}
	c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful", pod.Name, set.Name)
	return nil
}

// deletePod deletes a member, recording upstream's Events.
func (c *Controller) deletePod(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	err := c.client.CoreV1().Pods(set.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		return nil // gone already, or replaced by a new one
	case err != nil:
		c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedDelete", "delete Pod %s in StatefulSet %s failed error: %s", pod.Name, set.Name, err)
		return err
	}
	c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", pod.Name, set.Name)
	return nil
}

func isCreated(pod *corev1.Pod) bool     { return pod.Status.Phase != "" }
func isTerminating(pod *corev1.Pod) bool { return pod.DeletionTimestamp != nil }
func isFinished(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded
}

// isHealthy: Running, Ready (for minReadySeconds) and not going away.
func (c *Controller) isHealthy(set *appsv1.StatefulSet, pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodRunning && !isTerminating(pod) &&
		controllers.IsPodAvailable(pod, set.Spec.MinReadySeconds, c.now())
}
