package apis

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// podResizeStrategy is the strategy of pods/resize, upstream's in-place pod vertical scaling
// (GA in 1.35): only the containers' resources and resizePolicy come from the request,
// everything else from the stored pod; the kubelet then actuates the new resources.
type podResizeStrategy struct{ podStrategy }

// PodResizeStrategy is the strategy of pods/resize.
var PodResizeStrategy = podResizeStrategy{}

func (podResizeStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	// added, removed, renamed or reordered containers are left for validation to refuse
	if len(pod.Spec.Containers) == len(oldPod.Spec.Containers) && len(pod.Spec.InitContainers) == len(oldPod.Spec.InitContainers) {
		containers, okC := resizedContainers(pod.Spec.Containers, oldPod.Spec.Containers)
		initContainers, okI := resizedContainers(pod.Spec.InitContainers, oldPod.Spec.InitContainers)
		if okC && okI {
			// metadata as a status write leaves it: the stored pod's
			rv := pod.ResourceVersion
			oldPod.DeepCopyInto(pod)
			pod.ResourceVersion = rv
			pod.Spec.Containers, pod.Spec.InitContainers = containers, initContainers
		}
	}
	pod.Status = oldPod.Status
	bumpPodGeneration(pod, oldPod)
}

// resizedContainers are old with each container's resources and resizePolicy from updated;
// false when a container was renamed or moved.
func resizedContainers(updated, old []corev1.Container) ([]corev1.Container, bool) {
	if len(updated) == 0 {
		return updated, true
	}
	out := make([]corev1.Container, len(old))
	for i := range old {
		if updated[i].Name != old[i].Name {
			return nil, false
		}
		old[i].DeepCopyInto(&out[i])
		out[i].Resources = *updated[i].Resources.DeepCopy()
		out[i].ResizePolicy = append([]corev1.ContainerResizePolicy(nil), updated[i].ResizePolicy...)
	}
	return out, true
}

func (podResizeStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidatePodResize(obj.(*corev1.Pod), old.(*corev1.Pod))
}

// ValidatePodResize is upstream's ValidatePodResize for what skiff serves (pods without
// pod-level resources): the pod stays valid, static and Windows pods are not resized, the QoS
// class stays, containers are not added, removed, renamed or reordered, requests and limits
// are not removed, and only cpu and memory change (init containers' only for sidecars).
func ValidatePodResize(pod, old *corev1.Pod) field.ErrorList {
	metaPath := field.NewPath("metadata")
	allErrs := ValidateObjectMetaUpdate(&pod.ObjectMeta, &old.ObjectMeta, metaPath)
	allErrs = append(allErrs, validatePodMetadataAndSpec(pod)...)
	if _, ok := old.Annotations[corev1.MirrorPodAnnotationKey]; ok {
		return field.ErrorList{field.Forbidden(field.NewPath(""), "static pods cannot be resized")}
	}
	if old.Spec.OS != nil && old.Spec.OS.Name == corev1.Windows {
		return field.ErrorList{field.Forbidden(field.NewPath(""), "windows pods cannot be resized")}
	}
	specPath := field.NewPath("spec")
	oldQOS := old.Status.QOSClass
	if oldQOS == "" {
		oldQOS = computePodQOS(old)
	}
	if oldQOS != computePodQOS(pod) {
		allErrs = append(allErrs, field.Invalid(specPath, pod.Status.QOSClass, "Pod QOS Class may not change as a result of resizing"))
	}
	if !podResizeRequestSupported(old) {
		allErrs = append(allErrs, field.Forbidden(specPath, "Pod running on node without support for resize"))
	}
	if hasPodLevelResources(old) || hasPodLevelResources(pod) {
		return append(allErrs, field.Forbidden(field.NewPath(""), "resize of pods with pod-level resources is forbidden when InPlacePodLevelResourcesVerticalScalingEnabled feature gate is disabled"))
	}
	if orderErrs := validateResizeContainerOrder(pod, old, specPath); len(orderErrs) > 0 {
		return append(allErrs, orderErrs...)
	}
	for i := range old.Spec.InitContainers {
		if !isRestartableInit(&old.Spec.InitContainers[i]) {
			continue
		}
		allErrs = append(allErrs, validateContainerResize(&pod.Spec.InitContainers[i].Resources, &old.Spec.InitContainers[i].Resources,
			specPath.Child("initContainers").Index(i).Child("resources"))...)
	}
	for i := range old.Spec.Containers {
		allErrs = append(allErrs, validateContainerResize(&pod.Spec.Containers[i].Resources, &old.Spec.Containers[i].Resources,
			specPath.Child("containers").Index(i).Child("resources"))...)
	}
	for i := range pod.Spec.Containers {
		c := *pod.Spec.Containers[i].DeepCopy()
		keepOldCPUAndMemory(&c, &old.Spec.Containers[i])
		if !apiequality.Semantic.DeepEqual(c, old.Spec.Containers[i]) {
			allErrs = append(allErrs, field.Forbidden(specPath, "only cpu and memory resources are mutable"))
		}
	}
	for i := range pod.Spec.InitContainers {
		c := *pod.Spec.InitContainers[i].DeepCopy()
		changed := !apiequality.Semantic.DeepEqual(c, old.Spec.InitContainers[i])
		if !isRestartableInit(&c) {
			if changed {
				allErrs = append(allErrs, field.Forbidden(specPath, "resources for non-sidecar init containers are immutable"))
			}
			continue
		}
		keepOldCPUAndMemory(&c, &old.Spec.InitContainers[i])
		if !apiequality.Semantic.DeepEqual(c, old.Spec.InitContainers[i]) {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("initContainers").Index(i), "only cpu and memory resources for init or sidecar containers are mutable"))
		}
	}
	return allErrs
}

func hasPodLevelResources(pod *corev1.Pod) bool {
	return pod.Spec.Resources != nil && len(pod.Spec.Resources.Requests)+len(pod.Spec.Resources.Limits) > 0
}

func isRestartableInit(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// podResizeRequestSupported is upstream's version-skew check: a pod with a running container
// is resized only when its kubelet reports the containers' resources.
func podResizeRequestSupported(pod *corev1.Pod) bool {
	for _, c := range pod.Status.ContainerStatuses {
		if c.State.Running != nil {
			return c.Resources != nil
		}
	}
	return true
}

func validateResizeContainerOrder(pod, old *corev1.Pod, specPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(pod.Spec.Containers) != len(old.Spec.Containers) {
		allErrs = append(allErrs, field.Forbidden(specPath.Child("containers"), "containers may not be added or removed on resize"))
	} else {
		for i := range old.Spec.Containers {
			if pod.Spec.Containers[i].Name != old.Spec.Containers[i].Name {
				allErrs = append(allErrs, field.Forbidden(specPath.Child("containers").Index(i).Child("name"), "containers may not be renamed or reordered on resize"))
			}
		}
	}
	if len(pod.Spec.InitContainers) != len(old.Spec.InitContainers) {
		allErrs = append(allErrs, field.Forbidden(specPath.Child("initContainers"), "initContainers may not be added or removed on resize"))
	} else {
		for i := range old.Spec.InitContainers {
			if pod.Spec.InitContainers[i].Name != old.Spec.InitContainers[i].Name {
				allErrs = append(allErrs, field.Forbidden(specPath.Child("initContainers").Index(i).Child("name"), "initContainers may not be renamed or reordered on resize"))
			}
		}
	}
	return allErrs
}

// validateContainerResize refuses removing a request or a limit.
func validateContainerResize(updated, old *corev1.ResourceRequirements, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if resourcesRemoved(updated.Requests, old.Requests) {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("requests"), "resource requests cannot be removed"))
	}
	if resourcesRemoved(updated.Limits, old.Limits) {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("limits"), "resource limits cannot be removed"))
	}
	return allErrs
}

func resourcesRemoved(list, old corev1.ResourceList) bool {
	if len(old) > len(list) {
		return true
	}
	for name := range old {
		if _, ok := list[name]; !ok {
			return true
		}
	}
	return false
}

// keepOldCPUAndMemory sets c's cpu and memory requests and limits back to old's, so that what
// else differs shows.
func keepOldCPUAndMemory(c, old *corev1.Container) {
	keep := func(list, oldList corev1.ResourceList) corev1.ResourceList {
		out := corev1.ResourceList{}
		for name, q := range list {
			if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
				out[name] = q
			}
		}
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := oldList[name]; ok {
				out[name] = q
			}
		}
		if len(out) == 0 && oldList == nil {
			return nil
		}
		return out
	}
	c.Resources.Requests = keep(c.Resources.Requests, old.Resources.Requests)
	c.Resources.Limits = keep(c.Resources.Limits, old.Resources.Limits)
}
