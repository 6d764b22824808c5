package scheduler

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/internal/trim"
)

// The scheduler holds every pod that has not finished, bound ones in its cache and pending
// ones in its queue: at 30,000 pods, most of its memory. Of a pod's spec its plugins read the
// placement fields (node name and selector, affinity, tolerations, topology spread, scheduling
// gates, priority and scheduler name), what the pod asks of a node (containers' resources,
// ports and restart policy; overhead; pod-level resources) and its volumes' claims; of its
// status the conditions, nominated node and start time, and all of its metadata. What a
// kubelet needs to run the pod (commands, environment, mounts, probes, the contents of
// projected, secret and config map volumes) the scheduler never reads, so its pod informer
// drops it on the way in (slimPod).
//
// A plugin that comes to read a pod field must keep it here: the spec's own fields are all
// kept, and TestSlimPodKeepsWhatPluginsRead names every field of a container as kept or
// dropped, so that a field a new API version adds is decided on rather than dropped unnoticed.
//
// The scheduler never writes a cached pod back: it binds, deletes victims by name and uid, and
// patches status with a patch computed from the cached status, which slimPod leaves whole.

// slimPod is the transform of the scheduler's pod informer: what the plugins never read
// dropped from the spec, then trim.Informer, which so shares nothing the scheduler drops.
func slimPod(obj any) (any, error) {
	if pod, ok := obj.(*corev1.Pod); ok {
		for _, containers := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for i := range containers {
				c := &containers[i]
				*c = corev1.Container{Name: c.Name, Image: c.Image, Resources: c.Resources, Ports: c.Ports, RestartPolicy: c.RestartPolicy}
			}
		}
		// ephemeral containers ask nothing of a node
		pod.Spec.EphemeralContainers = nil
		for i := range pod.Spec.Volumes {
			v := &pod.Spec.Volumes[i]
			if v.PersistentVolumeClaim == nil && v.Ephemeral == nil {
				// the volume stays, by name, without a source: none the plugins look at
				v.VolumeSource = corev1.VolumeSource{}
			}
		}
	}
	return trim.Informer(obj)
}
