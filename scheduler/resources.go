package scheduler

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Requests the scores count for a container that asks for no cpu or memory, so that nodes full
// of best-effort pods do not look empty (upstream's DefaultMilliCPURequest and
// DefaultMemoryRequest). Filtering never counts them.
const (
	defaultMilliCPURequest int64 = 100               // 0.1 core
	defaultMemoryRequest   int64 = 200 * 1024 * 1024 // 200 MiB
)

// resources is an amount of each resource the scheduler accounts for, in the units
// NodeResourcesFit compares: millicores, bytes, and plain counts.
type resources struct {
	milliCPU         int64
	memory           int64
	ephemeralStorage int64
	// pods is only meaningful in a node's allocatable: how many pods it takes.
	pods int64
	// scalar holds extended resources, hugepages and other countable resources; nil when none.
	scalar map[corev1.ResourceName]int64
}

// isScalarResource says whether NodeResourcesFit counts name as a scalar resource: an
// extended resource (example.com/gpu), hugepages-*, attachable-volumes-*, or a
// kubernetes.io/-prefixed one.
func isScalarResource(name corev1.ResourceName) bool {
	n := string(name)
	return strings.HasPrefix(n, corev1.ResourceHugePagesPrefix) ||
		strings.HasPrefix(n, corev1.ResourceAttachableVolumesPrefix) ||
		strings.Contains(n, "/")
}

// add adds a resource list to r.
func (r *resources) add(list corev1.ResourceList) {
	for name, q := range list {
		switch name {
		case corev1.ResourceCPU:
			r.milliCPU += q.MilliValue()
		case corev1.ResourceMemory:
			r.memory += q.Value()
		case corev1.ResourceEphemeralStorage:
			r.ephemeralStorage += q.Value()
		case corev1.ResourcePods:
			r.pods += q.Value()
		default:
			if isScalarResource(name) {
				r.addScalar(name, q.Value())
			}
		}
	}
}

func (r *resources) addScalar(name corev1.ResourceName, v int64) {
	if r.scalar == nil {
		r.scalar = make(map[corev1.ResourceName]int64, 1)
	}
	r.scalar[name] += v
}

// addResources adds o to r, or subtracts it when sign is -1.
func (r *resources) addResources(o *resources, sign int64) {
	r.milliCPU += sign * o.milliCPU
	r.memory += sign * o.memory
	r.ephemeralStorage += sign * o.ephemeralStorage
	for name, v := range o.scalar {
		r.addScalar(name, sign*v)
	}
}

func (r resources) clone() resources {
	c := r
	if r.scalar != nil {
		c.scalar = make(map[corev1.ResourceName]int64, len(r.scalar))
		for k, v := range r.scalar {
			c.scalar[k] = v
		}
	}
	return c
}

// isZero says whether the pod asks for nothing that NodeResourcesFit compares (a best-effort pod
// is still checked against the node's pod count).
func (r *resources) isZero() bool {
	if r.milliCPU != 0 || r.memory != 0 || r.ephemeralStorage != 0 {
		return false
	}
	for _, v := range r.scalar {
		if v != 0 {
			return false
		}
	}
	return true
}

// podRequests is what a pod asks of a node, computed as upstream's resource.PodRequests:
//
//   - regular containers run together, so their requests add up;
//   - an init container runs alone after the restartable (sidecar) init containers before it,
//     which keep running and add to the regular containers too;
//   - the pod needs the larger of the two, per resource;
//   - pod-level requests (spec.resources) replace the container sum for cpu and memory;
//   - overhead (from the RuntimeClass) is added on top.
//
// With nonZero set, a container (or pod) that asks for no cpu or memory is counted as asking
// for the scoring defaults instead, as upstream does for LeastAllocated.
func podRequests(pod *corev1.Pod, nonZero bool) resources {
	podLevel := podLevelRequests(pod)
	fill := func(list corev1.ResourceList) corev1.ResourceList {
		if !nonZero {
			return list
		}
		_, hasCPU := list[corev1.ResourceCPU]
		_, hasMem := list[corev1.ResourceMemory]
		if podLevel != nil {
			// with pod-level requests, a default fills in only what neither level sets
			_, podCPU := podLevel[corev1.ResourceCPU]
			_, podMem := podLevel[corev1.ResourceMemory]
			hasCPU, hasMem = hasCPU || podCPU, hasMem || podMem
		}
		if hasCPU && hasMem {
			return list
		}
		out := make(corev1.ResourceList, len(list)+2)
		for k, v := range list {
			out[k] = v
		}
		if !hasCPU {
			out[corev1.ResourceCPU] = *resource.NewMilliQuantity(defaultMilliCPURequest, resource.DecimalSI)
		}
		if !hasMem {
			out[corev1.ResourceMemory] = *resource.NewQuantity(defaultMemoryRequest, resource.BinarySI)
		}
		return out
	}

	var sum resources
	for i := range pod.Spec.Containers {
		sum.add(fill(pod.Spec.Containers[i].Resources.Requests))
	}
	var sidecars, initMax resources
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		var req resources
		req.add(fill(c.Resources.Requests))
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sum.addResources(&req, 1)
			sidecars.addResources(&req, 1)
			req = sidecars.clone()
		} else {
			req.addResources(&sidecars, 1)
		}
		initMax.setMax(&req)
	}
	sum.setMax(&initMax)

	if podLevel != nil {
		if q, ok := podLevel[corev1.ResourceCPU]; ok {
			sum.milliCPU = q.MilliValue()
		}
		if q, ok := podLevel[corev1.ResourceMemory]; ok {
			sum.memory = q.Value()
		}
	}
	sum.add(pod.Spec.Overhead)
	return sum
}

// podLevelRequests returns the pod-level cpu and memory requests, or nil when the pod sets
// none (PodLevelResources).
func podLevelRequests(pod *corev1.Pod) corev1.ResourceList {
	if pod.Spec.Resources == nil {
		return nil
	}
	var out corev1.ResourceList
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := pod.Spec.Resources.Requests[name]; ok {
			if out == nil {
				out = corev1.ResourceList{}
			}
			out[name] = q
		}
	}
	return out
}

// setMax raises each resource of r to o's where o's is larger.
func (r *resources) setMax(o *resources) {
	r.milliCPU = max(r.milliCPU, o.milliCPU)
	r.memory = max(r.memory, o.memory)
	r.ephemeralStorage = max(r.ephemeralStorage, o.ephemeralStorage)
	for name, v := range o.scalar {
		if v > r.scalar[name] {
			if r.scalar == nil {
				r.scalar = make(map[corev1.ResourceName]int64, 1)
			}
			r.scalar[name] = v
		}
	}
}

// nodeAllocatable is what a node offers to pods.
func nodeAllocatable(node *corev1.Node) resources {
	var r resources
	r.add(node.Status.Allocatable)
	return r
}
