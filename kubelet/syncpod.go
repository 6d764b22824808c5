package kubelet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/kubelet/podcgroups"
	"github.com/skiff-dev/skiff/kubelet/registryauth"
)

// podState is what a pod's worker remembers between passes; nothing in it is needed to rebuild
// the pod after a restart.
type podState struct {
	// waiting is why a container is not running although it should, by container name:
	// CrashLoopBackOff, ErrImagePull, CreateContainerConfigError and the like.
	waiting map[string]waitingReason
	// startTime is when the kubelet first saw the pod (status.startTime).
	startTime *metav1.Time
	// terminal is set once the pod's phase is Succeeded or Failed: nothing runs again.
	terminal bool
	// stopped is set once a terminal pod's sandbox has been stopped.
	stopped bool
	// deadlineExceeded is set once activeDeadlineSeconds has passed.
	deadlineExceeded bool
	// eviction is set once the eviction manager evicted the pod.
	eviction *podEviction
	// admitted is set once the pod passed admission (or was found running already).
	admitted bool
	// rejection is why admission refused the pod; nothing of it ever runs.
	rejection *admissionVerdict
	// allocated are the resources allocated to each container by name (resize.go).
	allocated map[string]v1.ResourceRequirements
	// resize is the pod's PodResizePending or PodResizeInProgress condition, nil for none.
	resize *resizeCondition
	// imageVolumesReady is set once this pass has pulled (and mounted) the pod's image
	// volumes, which happens in a pass that starts a container, once.
	imageVolumesReady bool
}

type waitingReason struct{ reason, message string }

func (s *podState) setWaiting(name, reason, message string) {
	if s.waiting == nil {
		s.waiting = map[string]waitingReason{}
	}
	s.waiting[name] = waitingReason{reason, message}
}

// Upstream's waiting reasons.
const (
	reasonContainerCreating   = "ContainerCreating"
	reasonPodInitializing     = "PodInitializing"
	reasonCrashLoopBackOff    = "CrashLoopBackOff"
	reasonErrImagePull        = "ErrImagePull"
	reasonImagePullBackOff    = "ImagePullBackOff"
	reasonErrImageNeverPull   = "ErrImageNeverPull"
	reasonCreateConfigError   = "CreateContainerConfigError"
	reasonCreateContainerErr  = "CreateContainerError"
	reasonRunContainerError   = "RunContainerError"
	minimumGracePeriodSeconds = 2
)

// syncPod is one pass of a pod's worker: it brings the runtime to the pod's spec (or tears the
// pod down), then writes the pod's status.
func (k *Kubelet) syncPod(ctx context.Context, w *podWorker) (time.Duration, bool) {
	pod, gone := w.snapshot()
	if pod == nil {
		return 0, true
	}
	rs, err := k.podRuntimeState(ctx, pod.UID)
	if err != nil {
		if ctx.Err() == nil {
			k.log.Warn("list pod's containers", "pod", podKey(pod), "err", err)
		}
		return time.Second, false
	}
	state := &w.state
	switch {
	case gone:
		// deleted from the API without us (force deletion): stop at once, as upstream's
		// grace period of 1 for a pod the API no longer has
		k.killPod(ctx, pod, rs, 1, "")
		k.removePod(ctx, pod.UID)
		return 0, true
	case pod.DeletionTimestamp != nil:
		return k.terminatePod(ctx, w, pod, rs)
	}

	if state.startTime == nil {
		if pod.Status.StartTime != nil {
			state.startTime = pod.Status.StartTime
		} else {
			now := metav1.NewTime(time.Now().Truncate(time.Second))
			state.startTime = &now
		}
	}
	if isTerminalPhase(pod.Status.Phase) {
		state.terminal = true
	}
	if state.rejection != nil || (!state.terminal && !k.admitPod(ctx, pod, rs, state)) {
		if err := k.statuses.set(ctx, pod, rejectedStatus(pod, state)); err != nil {
			if ctx.Err() == nil {
				k.log.Warn("update status of rejected pod", "pod", podKey(pod), "err", err)
			}
			return time.Second, false
		}
		return 0, false
	}
	if !state.terminal && pod.Spec.ActiveDeadlineSeconds != nil &&
		time.Since(state.startTime.Time) >= time.Duration(*pod.Spec.ActiveDeadlineSeconds)*time.Second {
		if !state.deadlineExceeded {
			k.recorder.Eventf(pod, v1.EventTypeNormal, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
		}
		state.deadlineExceeded = true
	}

	if e := w.evictionOf(); e != nil && state.eviction == nil && !state.terminal {
		state.eviction = e
	}

	var requeue time.Duration
	switch {
	case state.eviction != nil && !state.stopped:
		k.killPod(ctx, pod, rs, state.eviction.gracePeriod, "")
		state.terminal = true
	case state.deadlineExceeded:
		k.killPod(ctx, pod, rs, k.gracePeriod(pod), "")
		state.terminal = true
	case state.terminal:
		if !state.stopped {
			k.killPod(ctx, pod, rs, k.gracePeriod(pod), "")
		}
	default:
		requeue = k.syncPodContainers(ctx, pod, rs, state)
	}
	if rs, err = k.podRuntimeState(ctx, pod.UID); err != nil {
		return time.Second, false
	}
	status := k.generatePodStatus(pod, rs, state, state.terminal)
	if state.deadlineExceeded {
		status.Phase = v1.PodFailed
		status.Reason = "DeadlineExceeded"
		status.Message = "Pod was active on the node longer than the specified deadline"
	}
	if state.eviction != nil {
		// upstream's status of a pod the eviction manager killed, with its DisruptionTarget
		status.Phase = v1.PodFailed
		status.Reason = reasonEvicted
		status.Message = state.eviction.message
		status.Conditions = setPodCondition(status.Conditions, v1.PodCondition{
			Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: v1.PodReasonTerminationByKubelet,
			Message: state.eviction.message, ObservedGeneration: pod.Generation,
		}, pod.Status.Conditions)
	}
	if isTerminalPhase(status.Phase) {
		// Nothing of a terminal pod runs again: stop its sandbox (next pass, after the status)
		if !state.terminal {
			requeue = 10 * time.Millisecond
		}
		state.terminal = true
	}
	if state.terminal && !state.stopped && len(rs.sandboxes) > 0 && requeue == 0 {
		k.killPod(ctx, pod, rs, k.gracePeriod(pod), "")
		state.stopped = true
		k.probes.forget(pod.UID)
	}
	if err := k.statuses.set(ctx, pod, status); err != nil {
		if ctx.Err() == nil {
			k.log.Warn("update pod status", "pod", podKey(pod), "err", err)
		}
		requeue = nonZeroMin(requeue, time.Second)
	}
	if state.terminal {
		// a terminal pod holds no more ports or resources for the pods admitted after it
		k.admission.release(pod.UID)
	}
	if !state.terminal {
		k.probes.sync(pod, rs)
		requeue = nonZeroMin(requeue, k.cfg.ResyncPeriod)
		if ads := pod.Spec.ActiveDeadlineSeconds; ads != nil {
			left := time.Until(state.startTime.Add(time.Duration(*ads) * time.Second))
			requeue = nonZeroMin(requeue, max(left, 10*time.Millisecond))
		}
	}
	return requeue, false
}

func nonZeroMin(a, b time.Duration) time.Duration {
	if a == 0 {
		return b
	}
	return min(a, b)
}

func isTerminalPhase(p v1.PodPhase) bool { return p == v1.PodSucceeded || p == v1.PodFailed }

func podKey(pod *v1.Pod) string { return pod.Namespace + "/" + pod.Name }

// formatPod is upstream's format.Pod: name_namespace(uid).
func formatPod(pod *v1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// gracePeriod is how long the pod's containers get between SIGTERM and SIGKILL.
func (k *Kubelet) gracePeriod(pod *v1.Pod) int64 {
	grace := int64(v1.DefaultTerminationGracePeriodSeconds)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	if grace < minimumGracePeriodSeconds {
		grace = minimumGracePeriodSeconds
	}
	if pod.DeletionGracePeriodSeconds != nil {
		grace = *pod.DeletionGracePeriodSeconds
	}
	return grace
}

// terminatePod ends a pod the API marked for deletion: its containers get the deletion's
// grace period, its last status is written, and the pod is deleted with grace 0, which lets the
// API server forget it.
func (k *Kubelet) terminatePod(ctx context.Context, w *podWorker, pod *v1.Pod, rs *podRuntime) (time.Duration, bool) {
	k.killPod(ctx, pod, rs, k.gracePeriod(pod), "")
	k.probes.forget(pod.UID)
	rs, err := k.podRuntimeState(ctx, pod.UID)
	if err != nil {
		return time.Second, false
	}
	w.state.terminal = true
	status := k.generatePodStatus(pod, rs, &w.state, true)
	if err := k.statuses.set(ctx, pod, status); err != nil && !apierrors.IsNotFound(err) {
		if ctx.Err() == nil {
			k.log.Warn("update status of deleted pod", "pod", podKey(pod), "err", err)
		}
	}
	err = k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		if ctx.Err() == nil {
			k.log.Warn("delete terminated pod", "pod", podKey(pod), "err", err)
		}
		return time.Second, false
	}
	k.removePod(ctx, pod.UID)
	return 0, true
}

// killPod stops every running container of the pod, each given grace seconds after its
// preStop hook starts, all at once, then stops the pod's sandboxes. reason, when set, is the
// Killing event's message instead of upstream's "Stopping container NAME".
//
// Sidecars (restartable init containers) run their preStop hooks at once too, but stop only
// after every app container has, and in the reverse order of their start, as upstream: what
// the app containers do while they stop (their own hooks) can still reach them.
func (k *Kubelet) killPod(ctx context.Context, pod *v1.Pod, rs *podRuntime, grace int64, reason string) {
	running := map[string]bool{}
	for _, c := range rs.containers {
		if !c.exited() {
			running[c.name()] = true
		}
	}
	order := newTerminationOrder(pod, running)
	var wg sync.WaitGroup
	for _, c := range rs.containers {
		if c.exited() {
			continue
		}
		wg.Go(func() { k.killContainer(ctx, pod, c, grace, reason, order) })
	}
	wg.Wait()
	for _, s := range rs.sandboxes {
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			k.killSandbox(ctx, s.Id, grace)
		}
	}
}

func (k *Kubelet) killSandbox(ctx context.Context, id string, _ int64) {
	if err := k.rt.StopPodSandbox(ctx, id); err != nil && ctx.Err() == nil {
		k.log.Warn("stop sandbox", "sandbox", id, "err", err)
	}
}

// killContainer runs the container's preStop hook and stops it within grace seconds, after
// waiting its turn in order, when there is one.
func (k *Kubelet) killContainer(ctx context.Context, pod *v1.Pod, c *containerRecord, grace int64, message string, order *terminationOrder) {
	defer order.stopped(c.name())
	spec, fieldPath := containerSpec(pod, c.name())
	if message == "" {
		message = "Stopping container " + c.name()
	}
	k.containerEvent(pod, fieldPath, v1.EventTypeNormal, "Killing", "%s", message)
	start := time.Now()
	if spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil && c.running() {
		hookCtx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
		if msg, err := k.runHook(hookCtx, pod, spec, c.status.Id, spec.Lifecycle.PreStop); err != nil {
			k.containerEvent(pod, fieldPath, v1.EventTypeWarning, "FailedPreStopHook",
				"PreStopHook failed: %s", strings.TrimSpace(msg+" "+err.Error()))
		}
		cancel()
	}
	if grace > 0 {
		order.wait(c.name(), time.Duration(grace)*time.Second-time.Since(start))
	}
	grace -= int64(time.Since(start).Seconds())
	if grace < minimumGracePeriodSeconds {
		grace = minimumGracePeriodSeconds
	}
	if err := k.rt.StopContainer(ctx, c.status.Id, grace); err != nil && ctx.Err() == nil {
		k.log.Warn("stop container", "pod", podKey(pod), "container", c.name(), "err", err)
	}
}

// terminationOrder is the order in which a pod's containers stop: app containers at once,
// then the sidecars (restartable init containers) one by one from the last started. A nil
// order lets every container stop at once.
type terminationOrder struct {
	mu sync.Mutex
	// stoppedCh has, for each running container of the pod, a channel closed once it has
	// stopped.
	stoppedCh map[string]chan struct{}
	// after has, for each sidecar, the containers it must wait for.
	after map[string][]chan struct{}
}

func newTerminationOrder(pod *v1.Pod, running map[string]bool) *terminationOrder {
	o := &terminationOrder{stoppedCh: map[string]chan struct{}{}, after: map[string][]chan struct{}{}}
	channel := func(name string) chan struct{} {
		ch := make(chan struct{})
		if running[name] {
			o.stoppedCh[name] = ch
		} else {
			close(ch)
		}
		return ch
	}
	var apps []chan struct{}
	for _, c := range pod.Spec.Containers {
		apps = append(apps, channel(c.Name))
	}
	var later chan struct{} // the sidecar started after this one
	for i := len(pod.Spec.InitContainers) - 1; i >= 0; i-- {
		c := &pod.Spec.InitContainers[i]
		ch := channel(c.Name)
		if !isRestartableInit(c) {
			continue
		}
		o.after[c.Name] = append(o.after[c.Name], apps...)
		if later != nil {
			o.after[c.Name] = append(o.after[c.Name], later)
		}
		later = ch
	}
	return o
}

// wait holds the container named back until those it must outlive have stopped, or at most
// for limit.
func (o *terminationOrder) wait(name string, limit time.Duration) {
	if o == nil || len(o.after[name]) == 0 || limit <= 0 {
		return
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for _, ch := range o.after[name] {
		select {
		case <-ch:
		case <-timer.C:
			return
		}
	}
}

// stopped says the container named has stopped.
func (o *terminationOrder) stopped(name string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if ch, ok := o.stoppedCh[name]; ok {
		close(ch)
		delete(o.stoppedCh, name)
	}
}

// removePod removes every sandbox and container of a pod that is gone, and its volumes.
func (k *Kubelet) removePod(ctx context.Context, uid types.UID) {
	rs, err := k.podRuntimeState(ctx, uid)
	if err == nil {
		for _, c := range rs.containers {
			_ = k.rt.RemoveContainer(ctx, c.status.Id)
		}
		for _, s := range rs.sandboxes {
			_ = k.rt.StopPodSandbox(ctx, s.Id)
			_ = k.rt.RemovePodSandbox(ctx, s.Id)
		}
	}
	k.admission.release(uid)
	k.probes.forget(uid)
	k.crashLoop.Forget(string(uid))
	k.imagePull.Forget(string(uid))
	k.statuses.forget(uid)
	k.volumes.cleanup(uid)
	k.removePodCgroups(uid)
}

// removePodCgroups removes the cgroup the runtime made for the pod's sandboxes, once they are
// gone (runc removes only its containers' cgroups), on nodes whose containers are real.
func (k *Kubelet) removePodCgroups(uid types.UID) {
	if k.cfg.RootDir == "" {
		return
	}
	if err := podcgroups.Remove(uid); err != nil {
		k.log.Warn("remove the pod's cgroup", "uid", uid, "err", err)
	}
}

// containerSpec finds a container of the pod by name and says where it is in the spec
// ("spec.containers{NAME}"), for Events.
func containerSpec(pod *v1.Pod, name string) (*v1.Container, string) {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i], "spec.initContainers{" + name + "}"
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i], "spec.containers{" + name + "}"
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return (*v1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon), "spec.ephemeralContainers{" + name + "}"
		}
	}
	return nil, ""
}

func isRestartableInit(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// syncPodContainers brings the pod's sandbox and containers to its spec: a ready sandbox, the
// init containers one by one to success, then every app container running unless its restart
// policy lets it rest. It returns when to look again (back-offs), 0 for "when woken".
func (k *Kubelet) syncPodContainers(ctx context.Context, pod *v1.Pod, rs *podRuntime, state *podState) time.Duration {
	if err := k.volumes.setUp(ctx, pod); err != nil {
		k.recorder.Eventf(pod, v1.EventTypeWarning, "FailedMount", "%s", err.Error())
		return 2 * time.Second
	}
	sandbox := rs.readySandbox()
	if sandbox == nil {
		if len(rs.sandboxes) > 0 {
			if pod.Spec.RestartPolicy == v1.RestartPolicyNever && len(rs.containers) > 0 {
				// upstream: a pod that never restarts does not get a second sandbox
				return 0
			}
			k.recorder.Eventf(pod, v1.EventTypeNormal, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
			k.killPod(ctx, pod, rs, k.gracePeriod(pod), "")
		}
		attempt := uint32(0)
		if len(rs.sandboxes) > 0 {
			attempt = rs.sandboxes[0].GetMetadata().GetAttempt() + 1
		}
		config, err := k.sandboxConfig(pod, attempt)
		var handler string
		if err == nil {
			handler, err = k.runtimeHandler(ctx, pod)
		}
		if err == nil {
			_, err = k.rt.RunPodSandbox(ctx, config, handler)
		}
		if err != nil {
			if ctx.Err() == nil {
				k.recorder.Eventf(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			}
			return 2 * time.Second
		}
		var lerr error
		if rs, lerr = k.podRuntimeState(ctx, pod.UID); lerr != nil {
			return time.Second
		}
		if sandbox = rs.readySandbox(); sandbox == nil {
			return time.Second
		}
	}
	state.imageVolumesReady = false
	// containers of this sandbox only: a new sandbox starts the pod over
	current := &podRuntime{sandboxes: rs.sandboxes, sandboxStatus: rs.sandboxStatus, ipv6Primary: rs.ipv6Primary}
	for _, c := range rs.containers {
		if c.sandboxID == sandbox.Id {
			current.containers = append(current.containers, c)
		}
	}

	var requeue time.Duration
	note := func(d time.Duration) { requeue = nonZeroMin(requeue, d) }
	note(k.resizePod(ctx, pod, current, state))
	// containers start with what is allocated, which a pending resize has not changed yet
	pod = podWithAllocatedResources(pod, state)

	// init containers, in order
	for i := range pod.Spec.InitContainers {
		spec := &pod.Spec.InitContainers[i]
		c := current.latest(spec.Name)
		if isRestartableInit(spec) {
			// a sidecar: started, then left running while the next ones go
			switch {
			case c == nil || c.exited():
				note(k.startContainer(ctx, pod, spec, "spec.initContainers{"+spec.Name+"}", sandbox, rs, state, true))
				return requeue
			case !k.probes.started(c.status.Id, spec):
				return requeue
			}
			continue
		}
		switch {
		case c == nil:
			note(k.startContainer(ctx, pod, spec, "spec.initContainers{"+spec.Name+"}", sandbox, rs, state, true))
			return requeue
		case c.running() || c.status.State == runtimeapi.ContainerState_CONTAINER_CREATED:
			return requeue
		case c.status.ExitCode == 0:
			continue
		case pod.Spec.RestartPolicy == v1.RestartPolicyNever:
			return requeue // the pod has failed
		default:
			note(k.startContainer(ctx, pod, spec, "spec.initContainers{"+spec.Name+"}", sandbox, rs, state, true))
			return requeue
		}
	}

	// app containers, all at once
	for i := range pod.Spec.Containers {
		spec := &pod.Spec.Containers[i]
		fieldPath := "spec.containers{" + spec.Name + "}"
		c := rs.latest(spec.Name)
		switch {
		case c == nil:
			note(k.startContainer(ctx, pod, spec, fieldPath, sandbox, rs, state, false))
		case c.running():
			if failed, kind := k.probes.failedToLive(c.status.Id, spec); failed {
				k.killContainer(ctx, pod, c, k.gracePeriod(pod), fmt.Sprintf("Container %s failed %s probe, will be restarted", spec.Name, strings.ToLower(kind)), nil)
				k.probes.forgetContainer(c.status.Id)
				note(10 * time.Millisecond)
			}
		case c.status.State == runtimeapi.ContainerState_CONTAINER_CREATED:
			// created but never started (a start that failed): start it over
			_ = k.rt.RemoveContainer(ctx, c.status.Id)
			note(10 * time.Millisecond)
		case c.sandboxID != sandbox.Id || shouldRestart(pod.Spec.RestartPolicy, c.status.ExitCode):
			note(k.startContainer(ctx, pod, spec, fieldPath, sandbox, rs, state, false))
		}
	}

	// ephemeral containers (kubectl debug): each started once, in the pod's sandbox, and
	// never restarted, as upstream
	for i := range pod.Spec.EphemeralContainers {
		ec := &pod.Spec.EphemeralContainers[i]
		if rs.latest(ec.Name) != nil {
			continue
		}
		spec := (*v1.Container)(&ec.EphemeralContainerCommon)
		note(k.startContainer(ctx, pod, spec, "spec.ephemeralContainers{"+ec.Name+"}", sandbox, rs, state, false))
	}
	return requeue
}

// targetProcessNamespace puts an ephemeral container in the process namespace of its
// targetContainerName (when that one runs), so a debugger sees the target's processes.
func targetProcessNamespace(pod *v1.Pod, spec *v1.Container, rs *podRuntime, config *runtimeapi.ContainerConfig) {
	for i := range pod.Spec.EphemeralContainers {
		ec := &pod.Spec.EphemeralContainers[i]
		if ec.Name != spec.Name || ec.TargetContainerName == "" {
			continue
		}
		target := rs.latest(ec.TargetContainerName)
		if target == nil || !target.running() || config.GetLinux().GetSecurityContext().GetNamespaceOptions() == nil {
			return
		}
		ns := config.Linux.SecurityContext.NamespaceOptions
		if ns.Pid == runtimeapi.NamespaceMode_CONTAINER {
			ns.Pid = runtimeapi.NamespaceMode_TARGET
			ns.TargetId = target.status.Id
		}
	}
}

func shouldRestart(policy v1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return exitCode != 0
	default:
		return true
	}
}

// startContainer starts the next attempt of a container: crash-loop back-off, image, config,
// create, start, postStart. It returns when to look again when it had to wait.
func (k *Kubelet) startContainer(ctx context.Context, pod *v1.Pod, spec *v1.Container, fieldPath string,
	sandbox *runtimeapi.PodSandbox, rs *podRuntime, state *podState, isInit bool) time.Duration {
	last := rs.latest(spec.Name)
	attempt := uint32(0)
	if last != nil {
		attempt = uint32(last.attempt()) + 1
		if last.exited() && last.status.FinishedAt > 0 {
			key := string(pod.UID) + "/" + spec.Name
			finished := time.Unix(0, last.status.FinishedAt)
			if in, left := k.crashLoop.InBackOffSince(key, finished); in {
				delay := k.crashLoop.Delay(key)
				k.containerEvent(pod, fieldPath, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", spec.Name, formatPod(pod))
				state.setWaiting(spec.Name, reasonCrashLoopBackOff,
					fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", delay, spec.Name, formatPod(pod)))
				return left + 10*time.Millisecond
			}
			k.crashLoop.Next(key, finished)
		}
	}

	if !state.imageVolumesReady {
		// as upstream, image volumes are pulled before the containers' own images
		wait, ok := k.setUpImageVolumes(ctx, pod, sandbox, state)
		if !ok {
			return wait
		}
		state.imageVolumesReady = true
	}
	imageRef, wait, ok := k.ensureImage(ctx, pod, spec, fieldPath, sandbox, state)
	if !ok {
		return wait
	}
	sandboxConfig, err := k.sandboxConfig(pod, sandbox.GetMetadata().GetAttempt())
	if err != nil {
		return k.failStart(pod, spec, fieldPath, state, reasonCreateConfigError, err)
	}
	config, err := k.containerConfig(ctx, pod, spec, imageRef, attempt, rs, isInit)
	if err != nil {
		return k.failStart(pod, spec, fieldPath, state, reasonCreateConfigError, err)
	}
	targetProcessNamespace(pod, spec, rs, config)
	id, err := k.rt.CreateContainer(ctx, sandbox.Id, config, sandboxConfig)
	if err != nil {
		return k.failStart(pod, spec, fieldPath, state, reasonCreateContainerErr, err)
	}
	k.containerEvent(pod, fieldPath, v1.EventTypeNormal, "Created", "Created container: %s", spec.Name)
	if err := k.rt.StartContainer(ctx, id); err != nil {
		k.containerEvent(pod, fieldPath, v1.EventTypeWarning, "Failed", "Error: %v", err)
		state.setWaiting(spec.Name, reasonRunContainerError, err.Error())
		return 2 * time.Second
	}
	k.containerEvent(pod, fieldPath, v1.EventTypeNormal, "Started", "Started container %s", spec.Name)
	delete(state.waiting, spec.Name)

	if spec.Lifecycle != nil && spec.Lifecycle.PostStart != nil {
		if msg, err := k.runHook(ctx, pod, spec, id, spec.Lifecycle.PostStart); err != nil {
			k.containerEvent(pod, fieldPath, v1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed: %s", strings.TrimSpace(msg+" "+err.Error()))
			_ = k.rt.StopContainer(ctx, id, k.gracePeriod(pod))
		}
	}
	// keep the newest dead attempt (lastState, logs --previous); remove older ones
	seen := 0
	for _, c := range rs.containers {
		if c.name() == spec.Name && c.exited() {
			if seen++; seen > 1 {
				_ = k.rt.RemoveContainer(ctx, c.status.Id)
			}
		}
	}
	return 0
}

func (k *Kubelet) failStart(pod *v1.Pod, spec *v1.Container, fieldPath string, state *podState, reason string, err error) time.Duration {
	k.containerEvent(pod, fieldPath, v1.EventTypeWarning, "Failed", "Error: %v", err)
	state.setWaiting(spec.Name, reason, err.Error())
	return 2 * time.Second
}

// ensureImage makes the container's image present as its pull policy says, with upstream's
// events and waiting reasons. ok is false when the container cannot start now; wait is then
// when to try again.
func (k *Kubelet) ensureImage(ctx context.Context, pod *v1.Pod, spec *v1.Container, fieldPath string,
	sandbox *runtimeapi.PodSandbox, state *podState) (ref string, wait time.Duration, ok bool) {
	return k.pullImage(ctx, pod, spec.Image, spec.ImagePullPolicy, fieldPath, []string{spec.Name}, sandbox, state)
}

// pullImage makes image present as policy says, with upstream's events (about fieldPath of
// the pod, "" for the pod itself) and the waiting reasons of the containers named waiting,
// which cannot start without it.
func (k *Kubelet) pullImage(ctx context.Context, pod *v1.Pod, image string, policy v1.PullPolicy, fieldPath string,
	waiting []string, sandbox *runtimeapi.PodSandbox, state *podState) (ref string, wait time.Duration, ok bool) {
	setWaiting := func(reason, message string) {
		for _, name := range waiting {
			state.setWaiting(name, reason, message)
		}
	}
	if policy == "" {
		policy = v1.PullIfNotPresent
		if !strings.Contains(lastSegment(image), ":") || strings.HasSuffix(image, ":latest") {
			policy = v1.PullAlways
		}
	}
	present, err := k.rt.ImageStatus(ctx, image)
	if err != nil {
		return "", 2 * time.Second, false
	}
	creds := sync.OnceValue(func() podCredentials { return k.podPullCredentials(ctx, pod, image) })
	// an image on the node is the pod's only if the pod could have pulled it itself
	if present != nil && policy != v1.PullAlways {
		if c := creds(); c.err == nil && !k.pullRecords.MustPull(image, present.Id, c.creds) {
			k.containerEvent(pod, fieldPath, v1.EventTypeNormal, "Pulled", "Container image %q already present on machine and can be accessed by the pod", image)
			return present.Id, 0, true
		}
	}
	if policy == v1.PullNever {
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", image)
		k.containerEvent(pod, fieldPath, v1.EventTypeWarning, reasonErrImageNeverPull, "%s", msg)
		setWaiting(reasonErrImageNeverPull, msg)
		return "", 5 * time.Second, false
	}
	key := string(pod.UID) + "/image/" + image
	if pulling(state, waiting) {
		if in, left := k.imagePull.InBackOffSinceUpdate(key); in {
			msg := fmt.Sprintf("Back-off pulling image %q", image)
			k.containerEvent(pod, fieldPath, v1.EventTypeNormal, "BackOff", "%s", msg)
			k.containerEvent(pod, fieldPath, v1.EventTypeWarning, "Failed", "Error: %s", reasonImagePullBackOff)
			setWaiting(reasonImagePullBackOff, msg)
			return "", left + 10*time.Millisecond, false
		}
	}
	k.containerEvent(pod, fieldPath, v1.EventTypeNormal, "Pulling", "Pulling image %q", image)
	start := time.Now()
	config, _ := k.sandboxConfig(pod, sandbox.GetMetadata().GetAttempt())
	ref, err = k.pullWithPodCredentials(ctx, pod, image, config, creds())
	if err != nil {
		k.imagePull.Next(key, time.Now())
		k.containerEvent(pod, fieldPath, v1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", image, err)
		k.containerEvent(pod, fieldPath, v1.EventTypeWarning, "Failed", "Error: %s", reasonErrImagePull)
		setWaiting(reasonErrImagePull, err.Error())
		return "", k.imagePull.Delay(key) + 10*time.Millisecond, false
	}
	took := time.Since(start).Round(time.Millisecond)
	size := uint64(0)
	if st, err := k.rt.ImageStatus(ctx, image); err == nil && st != nil {
		size = st.Size
	}
	k.containerEvent(pod, fieldPath, v1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %v (%v including waiting). Image size: %d bytes.", image, took, took, size)
	return ref, 0, true
}

// podCredentials are the credentials a pod's imagePullSecrets hold for an image, the most
// specific first, and the names of the pull secrets that could not be read.
type podCredentials struct {
	creds   []registryauth.Credential
	missing []string
	err     error
}

// podPullCredentials reads the pod's pull secrets for image. Secrets it cannot read are left
// out, as upstream does; a docker config it cannot parse is an error.
func (k *Kubelet) podPullCredentials(ctx context.Context, pod *v1.Pod, image string) podCredentials {
	var secrets []*v1.Secret
	var missing []string
	for _, ref := range pod.Spec.ImagePullSecrets {
		if ref.Name == "" {
			continue // validation lets empty names through; upstream ignores them
		}
		s, err := k.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			k.log.Warn("unable to retrieve pull secret, the image pull may not succeed", "pod", podKey(pod), "secret", ref.Name, "err", err)
			missing = append(missing, ref.Name)
			continue
		}
		secrets = append(secrets, s)
	}
	keyring, err := registryauth.FromSecrets(secrets)
	return podCredentials{creds: keyring.Lookup(image), missing: missing, err: err}
}

// pullWithPodCredentials pulls image as upstream's kubelet does: with each of the pod's
// credentials for it in turn until one succeeds (anonymously when it has none), and records who
// pulled it. When the pull fails, an event names the pull secrets that could not be read.
func (k *Kubelet) pullWithPodCredentials(ctx context.Context, pod *v1.Pod, image string, config *runtimeapi.PodSandboxConfig, c podCredentials) (string, error) {
	if c.err != nil {
		return "", c.err
	}
	if err := k.pullRecords.BeginPull(image); err != nil {
		return "", fmt.Errorf("recording the pull of %q: %w", image, err)
	}
	var errs []error
	for i := 0; i == 0 || i < len(c.creds); i++ {
		var cred *registryauth.Credential
		var auth *runtimeapi.AuthConfig
		if i < len(c.creds) {
			cred = &c.creds[i]
			auth = cred.Auth()
		}
		ref, err := k.rt.PullImage(ctx, image, auth, config)
		if err == nil {
			if err := k.pullRecords.EndPull(image, ref, cred); err != nil {
				k.log.Warn("recording an image pull", "image", image, "err", err)
			}
			return ref, nil
		}
		errs = append(errs, err)
	}
	if err := k.pullRecords.EndPull(image, "", nil); err != nil {
		k.log.Warn("recording an image pull", "image", image, "err", err)
	}
	if len(c.missing) > 0 {
		k.containerEvent(pod, "", v1.EventTypeWarning, "FailedToRetrieveImagePullSecret",
			"Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", strings.Join(c.missing, ", "))
	}
	return "", utilerrors.NewAggregate(errs)
}

// pulling is whether a container named in waiting waits for an image pull that failed.
func pulling(state *podState, waiting []string) bool {
	for _, name := range waiting {
		if w, ok := state.waiting[name]; ok && (w.reason == reasonErrImagePull || w.reason == reasonImagePullBackOff) {
			return true
		}
	}
	return false
}

// lastSegment is the part of an image reference after its last slash.
func lastSegment(image string) string {
	if i := strings.LastIndex(image, "/"); i >= 0 {
		return image[i+1:]
	}
	return image
}

// containerEvent records an Event about one container of the pod.
func (k *Kubelet) containerEvent(pod *v1.Pod, fieldPath, eventType, reason, format string, args ...any) {
	ref := &v1.ObjectReference{
		Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		ResourceVersion: pod.ResourceVersion, FieldPath: fieldPath,
	}
	k.recorder.Eventf(ref, eventType, reason, format, args...)
}

// runtimeHandler is the handler of the pod's RuntimeClass, "" for none, as upstream's
// runtimeclass manager looks it up; a class that does not exist fails the sandbox's creation
// with the API's NotFound words.
func (k *Kubelet) runtimeHandler(ctx context.Context, pod *v1.Pod) (string, error) {
	name := ptr.Deref(pod.Spec.RuntimeClassName, "")
	if name == "" {
		return "", nil
	}
	rc, err := k.client.NodeV1().RuntimeClasses().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", err
	case err != nil:
		return "", fmt.Errorf("failed to lookup RuntimeClass %s: %v", name, err)
	}
	return rc.Handler, nil
}
