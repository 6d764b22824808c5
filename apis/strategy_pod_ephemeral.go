package apis

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// podEphemeralContainersStrategy is the strategy of pods/ephemeralcontainers, what kubectl
// debug writes: only spec.ephemeralContainers comes from the request, everything else from
// the stored pod, and containers may be added there, never changed or removed.
type podEphemeralContainersStrategy struct{ podStrategy }

// PodEphemeralContainersStrategy is the strategy of pods/ephemeralcontainers.
var PodEphemeralContainersStrategy = podEphemeralContainersStrategy{}

func (podEphemeralContainersStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	ephemeral, rv := pod.Spec.EphemeralContainers, pod.ResourceVersion
	oldPod.DeepCopyInto(pod)
	pod.Spec.EphemeralContainers, pod.ResourceVersion = ephemeral, rv
	bumpPodGeneration(pod, oldPod)
}

func (podEphemeralContainersStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidatePodEphemeralContainersUpdate(obj.(*corev1.Pod), old.(*corev1.Pod))
}

// ValidatePodEphemeralContainersUpdate checks a write of pods/ephemeralcontainers: the pod as
// a whole stays valid (names unique across all containers, an ephemeral container sets only
// what it may), static pods take none, and the existing ones stay as they are.
func ValidatePodEphemeralContainersUpdate(pod, old *corev1.Pod) field.ErrorList {
	metaPath := field.NewPath("metadata")
	allErrs := ValidateObjectMetaUpdate(&pod.ObjectMeta, &old.ObjectMeta, metaPath)
	allErrs = append(allErrs, validatePodMetadataAndSpec(pod)...)
	allErrs = append(allErrs, validatePodAnnotationUpdates(pod, old, metaPath.Child("annotations"))...)
	if _, ok := old.Annotations[corev1.MirrorPodAnnotationKey]; ok {
		return field.ErrorList{field.Forbidden(field.NewPath(""), "static pods do not support ephemeral containers")}
	}
	// a patch does not keep their order: each is matched by name
	byName := map[string]*corev1.EphemeralContainer{}
	for i := range pod.Spec.EphemeralContainers {
		byName[pod.Spec.EphemeralContainers[i].Name] = &pod.Spec.EphemeralContainers[i]
	}
	specPath := field.NewPath("spec", "ephemeralContainers")
	for _, before := range old.Spec.EphemeralContainers {
		after, ok := byName[before.Name]
		switch {
		case !ok:
			allErrs = append(allErrs, field.Forbidden(specPath, fmt.Sprintf("existing ephemeral containers %q may not be removed\n", before.Name)))
		case !apiequality.Semantic.DeepEqual(before, *after):
			allErrs = append(allErrs, field.Forbidden(specPath, fmt.Sprintf("existing ephemeral containers %q may not be changed\n%v", before.Name, jsonDiff(before, *after))))
		}
	}
	return allErrs
}

// jsonDiff is a unified diff of two values as indented JSON, as podSpecDiff.
func jsonDiff(old, updated any) string {
	a, errA := json.MarshalIndent(old, "", " ")
	b, errB := json.MarshalIndent(updated, "", " ")
	if errA != nil || errB != nil {
		return fmt.Sprintf("%+v\n%+v", old, updated)
	}
	return unifiedDiff(strings.Split(string(a), "\n"), strings.Split(string(b), "\n"), 3)
}
