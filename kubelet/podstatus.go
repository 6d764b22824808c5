package kubelet

import (
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// generatePodStatus computes the pod's status from what the runtime holds, as upstream's
// generateAPIPodStatus does: container statuses, phase, the kubelet's conditions, IPs.
// podIsTerminal says that nothing of the pod will run again (deletion, a terminal phase).
func (k *Kubelet) generatePodStatus(pod *v1.Pod, rs *podRuntime, state *podState, podIsTerminal bool) v1.PodStatus {
	api := pod.Status
	// what this kubelet last wrote is newer than what the watch may have brought back yet
	old := api
	if last, ok := k.statuses.get(pod.UID); ok {
		old = last
	}
	// observedGeneration says which spec this status is about (upstream's
	// PodObservedGenerationTracking): the pod's generation, on the status and on every
	// condition the kubelet computes.
	s := v1.PodStatus{QOSClass: qosClass(pod), StartTime: state.startTime, ObservedGeneration: pod.Generation}

	hasInit := len(pod.Spec.InitContainers) > 0
	s.InitContainerStatuses = k.containerStatuses(pod, rs, state, pod.Spec.InitContainers, old.InitContainerStatuses, hasInit, true)
	s.ContainerStatuses = k.containerStatuses(pod, rs, state, pod.Spec.Containers, old.ContainerStatuses, hasInit, false)
	// ephemeral containers have statuses of their own and count for neither phase nor readiness
	if n := len(pod.Spec.EphemeralContainers); n > 0 {
		ephemeral := make([]v1.Container, n)
		for i := range pod.Spec.EphemeralContainers {
			ephemeral[i] = v1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		}
		s.EphemeralContainerStatuses = k.containerStatuses(pod, rs, state, ephemeral, old.EphemeralContainerStatuses, false, false)
	}

	all := append(append([]v1.ContainerStatus{}, s.ContainerStatuses...), s.InitContainerStatuses...)
	s.Phase = getPhase(pod, all, podIsTerminal)
	if !isTerminalPhase(s.Phase) && isTerminalPhase(old.Phase) {
		// pods never leave a terminal phase
		s.Phase = old.Phase
	}
	if !isTerminalPhase(s.Phase) && isTerminalPhase(api.Phase) {
		s.Phase = api.Phase
	}
	if s.Phase == old.Phase {
		s.Reason, s.Message = old.Reason, old.Message
	}

	// conditions: others' are kept, the kubelet's computed
	for _, c := range api.Conditions {
		if !kubeletOwnsCondition(c.Type) {
			s.Conditions = append(s.Conditions, c)
		}
	}
	allStatuses := append(append([]v1.ContainerStatus{}, s.InitContainerStatuses...), s.ContainerStatuses...)
	s.Conditions = append(s.Conditions,
		podReadyToStartContainersCondition(pod, rs),
		podInitializedCondition(&pod.Spec, allStatuses, s.Phase),
		podReadyCondition(&pod.Spec, s.Conditions, allStatuses, s.Phase),
		containersReadyCondition(&pod.Spec, allStatuses, s.Phase),
		v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionTrue},
	)
	s.Conditions = append(s.Conditions, resizeConditions(state)...)
	for i := range s.Conditions {
		c := &s.Conditions[i]
		if !kubeletOwnsCondition(c.Type) {
			continue
		}
		c.ObservedGeneration = pod.Generation
		c.LastTransitionTime = metav1.NewTime(time.Now().Truncate(time.Second))
		for _, o := range old.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
	}

	hostIPs := k.hostIPs()
	s.HostIP = hostIPs[0]
	s.HostIPs = nil
	for _, ip := range hostIPs {
		s.HostIPs = append(s.HostIPs, v1.HostIP{IP: ip})
	}
	if pod.Spec.HostNetwork {
		// the node's addresses, of both families on a dual-stack node, as upstream
		s.PodIP = hostIPs[0]
		s.PodIPs = nil
		for _, ip := range hostIPs {
			s.PodIPs = append(s.PodIPs, v1.PodIP{IP: ip})
		}
	} else if ips := rs.podIPs(); len(ips) > 0 {
		s.PodIP = ips[0]
		for _, ip := range ips {
			s.PodIPs = append(s.PodIPs, v1.PodIP{IP: ip})
		}
	} else if podIsTerminal || isTerminalPhase(s.Phase) {
		// a stopped sandbox has no network: keep the IP the pod had
		s.PodIP, s.PodIPs = old.PodIP, old.PodIPs
	}
	return s
}

// kubeletOwnsCondition is upstream's PodConditionByKubelet.
func kubeletOwnsCondition(t v1.PodConditionType) bool {
	switch t {
	case v1.PodScheduled, v1.PodReady, v1.PodInitialized, v1.ContainersReady, v1.PodReadyToStartContainers,
		v1.PodResizePending, v1.PodResizeInProgress:
		return true
	}
	return false
}

// containerStatuses converts the runtime's containers named in specs to API statuses.
func (k *Kubelet) containerStatuses(pod *v1.Pod, rs *podRuntime, state *podState, specs []v1.Container,
	old []v1.ContainerStatus, hasInit, isInit bool) []v1.ContainerStatus {
	if len(specs) == 0 {
		return nil
	}
	out := make([]v1.ContainerStatus, 0, len(specs))
	for i := range specs {
		spec := &specs[i]
		cs := v1.ContainerStatus{Name: spec.Name, Image: spec.Image, Ready: false, Started: ptr.To(false)}
		// upstream's default: every container of a pod with init containers, init ones
		// included, is PodInitializing until the runtime has it
		waiting := reasonContainerCreating
		if hasInit {
			waiting = reasonPodInitializing
		}
		cs.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: waiting}}
		latest := rs.latest(spec.Name)
		if latest != nil {
			st := latest.status
			cs.ContainerID = k.containerID(st.Id)
			cs.ImageID = st.ImageRef
			cs.RestartCount = latest.attempt()
			switch st.State {
			case runtimeapi.ContainerState_CONTAINER_RUNNING:
				cs.State = v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: unixTime(st.StartedAt)}}
				started := k.probes.started(st.Id, spec)
				cs.Started = &started
				cs.Ready = started && k.probes.ready(st.Id, spec)
			case runtimeapi.ContainerState_CONTAINER_EXITED:
				cs.State = v1.ContainerState{Terminated: k.terminatedState(st, spec)}
				// an init container that succeeded counts as ready, as upstream's prober says
				cs.Ready = isInit && !isRestartableInit(spec) && st.ExitCode == 0
			case runtimeapi.ContainerState_CONTAINER_CREATED:
				// created, not started: waiting, with no reason, as upstream
				cs.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{}}
			}
			if prev := rs.previous(spec.Name); prev != nil && prev.exited() {
				cs.LastTerminationState = v1.ContainerState{Terminated: k.terminatedState(prev.status, spec)}
			}
		} else if len(rs.containers) == 0 {
			// a restarted kubelet whose runtime lost the containers keeps what the API knew
			for _, o := range old {
				if o.Name == spec.Name {
					cs.RestartCount = o.RestartCount
				}
			}
		}
		if allocated, ok := state.allocatedResources(pod, spec.Name); ok {
			statusResources(&cs, allocated, latest != nil && latest.running())
		}
		if w, ok := state.waiting[spec.Name]; ok && (latest == nil || !latest.running()) {
			if latest != nil && latest.exited() {
				cs.LastTerminationState = cs.State
			}
			cs.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: w.reason, Message: w.message}}
		}
		out = append(out, cs)
	}
	return out
}

func (k *Kubelet) containerID(id string) string {
	name := k.runtimeName
	if name == "" {
		name = "cri"
	}
	return name + "://" + id
}

func unixTime(ns int64) metav1.Time {
	if ns == 0 {
		return metav1.Time{}
	}
	return metav1.NewTime(time.Unix(0, ns).Truncate(time.Second))
}

// terminatedState is an exited container's state. Its message is the runtime's, then what the
// container wrote to its termination message file; with FallbackToLogsOnError, a container that
// failed and wrote nothing there gets the tail of its log instead, as upstream.
func (k *Kubelet) terminatedState(st *runtimeapi.ContainerStatus, spec *v1.Container) *v1.ContainerStateTerminated {
	reason := st.Reason
	if reason == "" {
		reason = "Completed"
		if st.ExitCode != 0 {
			reason = "Error"
		}
	}
	message := readTerminationMessage(st)
	if message == "" && spec != nil && spec.TerminationMessagePolicy == v1.TerminationMessageFallbackToLogsOnError &&
		st.ExitCode != 0 && reason != "ContainerCannotRun" {
		message = k.lastLogString(st)
	}
	if st.Message != "" && message != "" {
		message = st.Message + ": " + message
	} else if st.Message != "" {
		message = st.Message
	}
	return &v1.ContainerStateTerminated{
		ExitCode: st.ExitCode, Reason: reason, Message: message,
		StartedAt: unixTime(st.StartedAt), FinishedAt: unixTime(st.FinishedAt), ContainerID: k.containerID(st.Id),
	}
}

func findStatus(statuses []v1.ContainerStatus, name string) (v1.ContainerStatus, bool) {
	for _, s := range statuses {
		if s.Name == name {
			return s, true
		}
	}
	return v1.ContainerStatus{}, false
}

// getPhase is upstream's: the pod's phase from its containers' statuses.
func getPhase(pod *v1.Pod, info []v1.ContainerStatus, podIsTerminal bool) v1.PodPhase {
	spec := pod.Spec
	pendingInitialization, failedInitialization := 0, 0
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if isRestartableInit(c) {
			continue
		}
		cs, ok := findStatus(info, c.Name)
		if !ok {
			pendingInitialization++
			continue
		}
		switch {
		case cs.State.Running != nil:
			pendingInitialization++
		case cs.State.Terminated != nil:
			if cs.State.Terminated.ExitCode != 0 {
				failedInitialization++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				if cs.LastTerminationState.Terminated.ExitCode != 0 {
					failedInitialization++
				}
			} else {
				pendingInitialization++
			}
		default:
			pendingInitialization++
		}
	}
	unknown, running, waiting, stopped, succeeded := 0, 0, 0, 0, 0
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if !isRestartableInit(c) {
			continue
		}
		cs, ok := findStatus(info, c.Name)
		if !ok {
			unknown++
			continue
		}
		switch {
		case cs.State.Running != nil:
			if cs.Started == nil || !*cs.Started {
				pendingInitialization++
			}
			running++
		case cs.State.Terminated != nil:
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated == nil {
				pendingInitialization++
				waiting++
			}
		default:
			pendingInitialization++
			unknown++
		}
	}
	for _, c := range spec.Containers {
		cs, ok := findStatus(info, c.Name)
		if !ok {
			unknown++
			continue
		}
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		default:
			unknown++
		}
	}
	if failedInitialization > 0 && spec.RestartPolicy == v1.RestartPolicyNever {
		return v1.PodFailed
	}
	switch {
	case pendingInitialization > 0 && !anyRegularContainerStarted(&spec, info):
		return v1.PodPending
	case waiting > 0:
		return v1.PodPending
	case running > 0 && unknown == 0:
		return v1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		if podIsTerminal {
			if stopped == succeeded {
				return v1.PodSucceeded
			}
			return v1.PodFailed
		}
		if spec.RestartPolicy == v1.RestartPolicyAlways {
			return v1.PodRunning
		}
		if stopped == succeeded {
			return v1.PodSucceeded
		}
		if spec.RestartPolicy == v1.RestartPolicyNever {
			return v1.PodFailed
		}
		return v1.PodRunning
	default:
		return v1.PodPending
	}
}

func anyRegularContainerStarted(spec *v1.PodSpec, statuses []v1.ContainerStatus) bool {
	for _, c := range spec.Containers {
		if cs, ok := findStatus(statuses, c.Name); ok && (cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil) {
			return true
		}
	}
	return false
}

// podReadyToStartContainersCondition is True once the pod's sandbox runs with its network.
func podReadyToStartContainersCondition(pod *v1.Pod, rs *podRuntime) v1.PodCondition {
	c := v1.PodCondition{Type: v1.PodReadyToStartContainers, Status: v1.ConditionFalse}
	if rs.readySandbox() != nil && (pod.Spec.HostNetwork || len(rs.podIPs()) > 0) {
		c.Status = v1.ConditionTrue
	}
	return c
}

// podInitializedCondition is upstream's GeneratePodInitializedCondition.
func podInitializedCondition(spec *v1.PodSpec, statuses []v1.ContainerStatus, phase v1.PodPhase) v1.PodCondition {
	var unknown, incomplete []string
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		cs, ok := findStatus(statuses, c.Name)
		if !ok {
			unknown = append(unknown, c.Name)
			continue
		}
		if isRestartableInit(c) {
			if cs.Started == nil || !*cs.Started {
				incomplete = append(incomplete, c.Name)
			}
			continue
		}
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			incomplete = append(incomplete, c.Name)
		}
	}
	if phase == v1.PodSucceeded && len(unknown) == 0 {
		return v1.PodCondition{Type: v1.PodInitialized, Status: v1.ConditionTrue, Reason: "PodCompleted"}
	}
	if anyRegularContainerStarted(spec, statuses) {
		return v1.PodCondition{Type: v1.PodInitialized, Status: v1.ConditionTrue}
	}
	var msgs []string
	if len(unknown) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unknown status: %s", unknown))
	}
	if len(incomplete) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with incomplete status: %s", incomplete))
	}
	if len(msgs) > 0 {
		return v1.PodCondition{Type: v1.PodInitialized, Status: v1.ConditionFalse, Reason: "ContainersNotInitialized", Message: strings.Join(msgs, ", ")}
	}
	return v1.PodCondition{Type: v1.PodInitialized, Status: v1.ConditionTrue}
}

// containersReadyCondition is upstream's GenerateContainersReadyCondition.
func containersReadyCondition(spec *v1.PodSpec, statuses []v1.ContainerStatus, phase v1.PodPhase) v1.PodCondition {
	var unknown, unready []string
	check := func(name string) {
		cs, ok := findStatus(statuses, name)
		switch {
		case !ok:
			unknown = append(unknown, name)
		case !cs.Ready:
			unready = append(unready, name)
		}
	}
	for i := range spec.InitContainers {
		if isRestartableInit(&spec.InitContainers[i]) {
			check(spec.InitContainers[i].Name)
		}
	}
	for _, c := range spec.Containers {
		check(c.Name)
	}
	if phase == v1.PodSucceeded && len(unknown) == 0 {
		return v1.PodCondition{Type: v1.ContainersReady, Status: v1.ConditionFalse, Reason: "PodCompleted"}
	}
	if phase == v1.PodFailed {
		return v1.PodCondition{Type: v1.ContainersReady, Status: v1.ConditionFalse, Reason: "PodFailed"}
	}
	var msgs []string
	if len(unknown) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unknown status: %s", unknown))
	}
	if len(unready) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unready status: %s", unready))
	}
	if len(msgs) > 0 {
		return v1.PodCondition{Type: v1.ContainersReady, Status: v1.ConditionFalse, Reason: "ContainersNotReady", Message: strings.Join(msgs, ", ")}
	}
	return v1.PodCondition{Type: v1.ContainersReady, Status: v1.ConditionTrue}
}

// podReadyCondition is upstream's GeneratePodReadyCondition, readiness gates included.
func podReadyCondition(spec *v1.PodSpec, conditions []v1.PodCondition, statuses []v1.ContainerStatus, phase v1.PodPhase) v1.PodCondition {
	cr := containersReadyCondition(spec, statuses, phase)
	if cr.Status != v1.ConditionTrue {
		return v1.PodCondition{Type: v1.PodReady, Status: cr.Status, Reason: cr.Reason, Message: cr.Message}
	}
	var msgs []string
	for _, gate := range spec.ReadinessGates {
		found := false
		for _, c := range conditions {
			if c.Type == gate.ConditionType {
				found = true
				if c.Status != v1.ConditionTrue {
					msgs = append(msgs, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", gate.ConditionType, c.Status))
				}
			}
		}
		if !found {
			msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", gate.ConditionType))
		}
	}
	if len(msgs) > 0 {
		return v1.PodCondition{Type: v1.PodReady, Status: v1.ConditionFalse, Reason: "ReadinessGatesNotReady", Message: strings.Join(msgs, ", ")}
	}
	return v1.PodCondition{Type: v1.PodReady, Status: v1.ConditionTrue}
}

// qosClass is upstream's GetPodQOS (v1qos) for the containers' requests and limits.
func qosClass(pod *v1.Pod) v1.PodQOSClass {
	requests := v1.ResourceList{}
	limits := v1.ResourceList{}
	zero := true
	isGuaranteed := true
	containers := append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range containers {
		for name, q := range c.Resources.Requests {
			if name != v1.ResourceCPU && name != v1.ResourceMemory {
				continue
			}
			if !q.IsZero() {
				zero = false
				if cur, ok := requests[name]; ok {
					cur.Add(q)
					requests[name] = cur
				} else {
					requests[name] = q.DeepCopy()
				}
			}
		}
		seen := map[v1.ResourceName]bool{}
		for name, q := range c.Resources.Limits {
			if name != v1.ResourceCPU && name != v1.ResourceMemory {
				continue
			}
			if !q.IsZero() {
				zero = false
				seen[name] = true
				if cur, ok := limits[name]; ok {
					cur.Add(q)
					limits[name] = cur
				} else {
					limits[name] = q.DeepCopy()
				}
			}
		}
		if !seen[v1.ResourceCPU] || !seen[v1.ResourceMemory] {
			isGuaranteed = false
		}
	}
	if zero {
		return v1.PodQOSBestEffort
	}
	if isGuaranteed {
		for name, req := range requests {
			if lim, ok := limits[name]; !ok || lim.Cmp(req) != 0 {
				isGuaranteed = false
				break
			}
		}
	}
	if isGuaranteed && len(requests) == len(limits) {
		return v1.PodQOSGuaranteed
	}
	return v1.PodQOSBurstable
}

// setPodCondition puts c into conditions in place of one of its type, its transition time
// kept from old's condition of that type and status.
func setPodCondition(conditions []v1.PodCondition, c v1.PodCondition, old []v1.PodCondition) []v1.PodCondition {
	c.LastTransitionTime = metav1.NewTime(time.Now().Truncate(time.Second))
	for _, o := range old {
		if o.Type == c.Type && o.Status == c.Status {
			c.LastTransitionTime = o.LastTransitionTime
		}
	}
	for i := range conditions {
		if conditions[i].Type == c.Type {
			conditions[i] = c
			return conditions
		}
	}
	return append(conditions, c)
}
