package kubelet

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// In-place pod resize (upstream's InPlacePodVerticalScaling, GA in 1.35): the API's
// pods/resize changes a container's cpu and memory in the spec; the kubelet allocates the new
// resources when the node can hold them, and actuates them on the running container, through
// CRI UpdateContainerResources, or by restarting it where its resizePolicy says
// RestartContainer. Until then the pod has a PodResizePending condition; container statuses
// report what is allocated (allocatedResources) and actuated (resources).

// resizeCondition is the PodResizePending or PodResizeInProgress condition the pod shows, nil
// when no resize waits.
type resizeCondition struct {
	kind            v1.PodConditionType
	reason, message string
}

// allocatedResources are the resources the kubelet has allocated to the pod's container:
// the spec's when the kubelet first ran the pod, then each resize it accepted.
func (s *podState) allocatedResources(pod *v1.Pod, name string) (v1.ResourceRequirements, bool) {
	if s.allocated == nil {
		s.allocated = map[string]v1.ResourceRequirements{}
		for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for i := range list {
				s.allocated[list[i].Name] = *list[i].Resources.DeepCopy()
			}
		}
	}
	r, ok := s.allocated[name]
	return r, ok
}

// resizePod allocates and actuates what a resize asked of the pod's running containers and
// says when to look again.
func (k *Kubelet) resizePod(ctx context.Context, pod *v1.Pod, rs *podRuntime, state *podState) time.Duration {
	var changed []*v1.Container
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			spec := &list[i]
			allocated, ok := state.allocatedResources(pod, spec.Name)
			if ok && !sameCPUAndMemory(allocated, spec.Resources) {
				changed = append(changed, spec)
			}
		}
	}
	state.resize = nil
	if len(changed) == 0 {
		return 0
	}
	if msg := k.infeasibleResize(pod); msg != "" {
		state.resize = &resizeCondition{kind: v1.PodResizePending, reason: v1.PodReasonInfeasible, message: msg}
		return 0
	}
	var requeue time.Duration
	for _, spec := range changed {
		old := state.allocated[spec.Name]
		state.allocated[spec.Name] = *spec.Resources.DeepCopy()
		c := rs.latest(spec.Name)
		if c == nil || !c.running() {
			continue // it starts with what is allocated now
		}
		if needsRestart(spec, old) {
			k.killContainer(ctx, pod, c, k.gracePeriod(pod), fmt.Sprintf("Container %s resize requires restart", spec.Name), nil)
			k.probes.forgetContainer(c.status.Id)
			requeue = 10 * time.Millisecond
			continue
		}
		if err := k.rt.UpdateContainerResources(ctx, c.status.Id, k.containerResources(pod, spec)); err != nil {
			state.allocated[spec.Name] = old
			state.resize = &resizeCondition{kind: v1.PodResizeInProgress, reason: v1.PodReasonError, message: err.Error()}
			requeue = 2 * time.Second
		}
	}
	return requeue
}

// sameCPUAndMemory says whether two requirements ask for the same cpu and memory, equal
// quantities in any notation being the same.
func sameCPUAndMemory(a, b v1.ResourceRequirements) bool {
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		for _, pair := range [][2]v1.ResourceList{{a.Requests, b.Requests}, {a.Limits, b.Limits}} {
			x, okX := pair[0][name]
			y, okY := pair[1][name]
			if okX != okY || x.Cmp(y) != 0 {
				return false
			}
		}
	}
	return true
}

// needsRestart says whether a resource whose resizePolicy is RestartContainer changed.
func needsRestart(spec *v1.Container, old v1.ResourceRequirements) bool {
	for _, p := range spec.ResizePolicy {
		if p.RestartPolicy != v1.RestartContainer {
			continue
		}
		for _, pair := range [][2]v1.ResourceList{{old.Requests, spec.Resources.Requests}, {old.Limits, spec.Resources.Limits}} {
			x, okX := pair[0][p.ResourceName]
			y, okY := pair[1][p.ResourceName]
			if okX != okY || x.Cmp(y) != 0 {
				return true
			}
		}
	}
	return false
}

// infeasibleResize is why the node can never hold the pod as resized ("" when it can): its
// cpu or memory requests exceed what the node can allocate.
func (k *Kubelet) infeasibleResize(pod *v1.Pod) string {
	allocatable := k.nodeStatus(context.Background(), nil, nil).Allocatable
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		var requested resource.Quantity
		for _, c := range pod.Spec.Containers {
			if q, ok := c.Resources.Requests[name]; ok {
				requested.Add(q)
			}
		}
		capacity := allocatable[name]
		if requested.Cmp(capacity) > 0 {
			if name == v1.ResourceCPU {
				return fmt.Sprintf("Node didn't have enough capacity: cpu, requested: %d, capacity: %d", requested.MilliValue(), capacity.MilliValue())
			}
			return fmt.Sprintf("Node didn't have enough capacity: memory, requested: %d, capacity: %d", requested.Value(), capacity.Value())
		}
	}
	return ""
}

// resizeConditions is the pod's resize condition, as status shows it.
func resizeConditions(state *podState) []v1.PodCondition {
	if state.resize == nil {
		return nil
	}
	return []v1.PodCondition{{Type: state.resize.kind, Status: v1.ConditionTrue, Reason: state.resize.reason, Message: state.resize.message}}
}

// statusResources are what a container status reports of its resources: allocatedResources
// (the allocated requests) for every container the kubelet has allocated, and resources
// (allocated requests and limits, which are what the runtime was given) for a running one.
func statusResources(cs *v1.ContainerStatus, allocated v1.ResourceRequirements, running bool) {
	if len(allocated.Requests) > 0 {
		cs.AllocatedResources = allocated.Requests.DeepCopy()
	}
	if running {
		r := &v1.ResourceRequirements{}
		if len(allocated.Requests) > 0 {
			r.Requests = allocated.Requests.DeepCopy()
		}
		if len(allocated.Limits) > 0 {
			r.Limits = allocated.Limits.DeepCopy()
		}
		cs.Resources = r
	}
}

// podWithAllocatedResources is pod, or a copy of it whose containers have the resources
// allocated to them where a resize waits.
func podWithAllocatedResources(pod *v1.Pod, state *podState) *v1.Pod {
	var out *v1.Pod
	for _, init := range []bool{true, false} {
		list := pod.Spec.Containers
		if init {
			list = pod.Spec.InitContainers
		}
		for i := range list {
			allocated, ok := state.allocatedResources(pod, list[i].Name)
			if !ok || sameCPUAndMemory(allocated, list[i].Resources) {
				continue
			}
			if out == nil {
				out = pod.DeepCopy()
			}
			target := &out.Spec.Containers[i]
			if init {
				target = &out.Spec.InitContainers[i]
			}
			target.Resources = *allocated.DeepCopy()
		}
	}
	if out == nil {
		return pod
	}
	return out
}
