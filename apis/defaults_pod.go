package apis

import corev1 "k8s.io/api/core/v1"

// DefaultPod fills in what upstream's API server defaults on a pod.
func DefaultPod(pod *corev1.Pod) { DefaultPodSpec(&pod.Spec) }

// DefaultPodSpec fills in what upstream defaults in a pod spec (also used for pod templates).
func DefaultPodSpec(spec *corev1.PodSpec) {}
