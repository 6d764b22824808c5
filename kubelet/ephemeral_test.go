package kubelet_test

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

func ephemeralStatus(p *v1.Pod, name string) *v1.ContainerStatus {
	for i := range p.Status.EphemeralContainerStatuses {
		if p.Status.EphemeralContainerStatuses[i].Name == name {
			return &p.Status.EphemeralContainerStatuses[i]
		}
	}
	return nil
}

// An ephemeral container added to a running pod (kubectl debug) starts in the pod's sandbox,
// in its target container's process namespace, reports its own status, and is never
// restarted; the pod's phase and readiness ignore it.
func TestEphemeralContainerStartsInRunningPodAndIsNotRestarted(t *testing.T) {
	s, n := newFakeNode(t)
	pod := n.CreatePod(simplePod("debugged", "app"))
	ready := n.WaitPod(pod, "ready", kubelettest.PodReady)
	appID := strings.TrimPrefix(containerStatus(ready, "app").ContainerID, "fake://")

	ready.Spec.EphemeralContainers = []v1.EphemeralContainer{{
		EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debugger", Image: "busybox:1.36", ImagePullPolicy: v1.PullIfNotPresent},
		TargetContainerName:      "app",
	}}
	if _, err := s.Client.CoreV1().Pods("default").UpdateEphemeralContainers(context.Background(), "debugged", ready, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := n.WaitPod(pod, "running its ephemeral container", func(p *v1.Pod) bool {
		cs := ephemeralStatus(p, "debugger")
		return cs != nil && cs.State.Running != nil
	})
	if cs := ephemeralStatus(got, "debugger"); !strings.HasPrefix(cs.ContainerID, "fake://") || cs.Image != "busybox:1.36" {
		t.Errorf("ephemeral status %+v", cs)
	}
	if len(got.Status.ContainerStatuses) != 1 {
		t.Errorf("the ephemeral container leaked into containerStatuses: %+v", got.Status.ContainerStatuses)
	}
	ns := n.Fake.ContainerConfig(string(pod.UID), "debugger").GetLinux().GetSecurityContext().GetNamespaceOptions()
	if ns.GetPid() != runtimeapi.NamespaceMode_TARGET || ns.GetTargetId() != appID {
		t.Errorf("pid namespace %v target %q, want TARGET %q", ns.GetPid(), ns.GetTargetId(), appID)
	}
	n.WaitEvent(pod, "Normal Started Started container debugger")

	if !n.Fake.ExitContainer(string(pod.UID), "debugger", 3) {
		t.Fatal("debugger not running")
	}
	got = n.WaitPod(pod, "seeing the debugger exit", func(p *v1.Pod) bool {
		cs := ephemeralStatus(p, "debugger")
		return cs != nil && cs.State.Terminated != nil
	})
	if cs := ephemeralStatus(got, "debugger"); cs.State.Terminated.ExitCode != 3 || cs.RestartCount != 0 {
		t.Errorf("ephemeral status after exit %+v", cs)
	}
	if got.Status.Phase != v1.PodRunning || !kubelettest.PodReady(got) {
		t.Errorf("pod %s ready=%v after its ephemeral container exited", got.Status.Phase, kubelettest.PodReady(got))
	}
	if _, _, running := n.Fake.Counts(); running != 1 {
		t.Errorf("%d containers running, want the app alone (no restart of the debugger)", running)
	}
}
