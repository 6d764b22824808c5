package kubelet_test

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

// runtimeResources are the cgroup limits the runtime holds for the pod's running container.
func runtimeResources(t *testing.T, n *kubelettest.Node, pod *v1.Pod, name string) *runtimeapi.LinuxContainerResources {
	t.Helper()
	cs := containerStatus(pod, name)
	st, err := n.Fake.ContainerStatus(context.Background(), strings.TrimPrefix(cs.ContainerID, "fake://"))
	if err != nil {
		t.Fatal(err)
	}
	return st.GetResources().GetLinux()
}

func TestResizedPodGetsItsNewResourcesInPlaceOrByRestartAsItsPolicySays(t *testing.T) {
	s, n := newFakeNode(t)
	ctx := context.Background()
	pod := simplePod("resizable", "c1")
	pod.Spec.Containers[0].Resources = v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("20m"), v1.ResourceMemory: resource.MustParse("35Mi")},
	}
	pod.Spec.Containers[0].ResizePolicy = []v1.ContainerResizePolicy{
		{ResourceName: v1.ResourceCPU, RestartPolicy: v1.NotRequired},
		{ResourceName: v1.ResourceMemory, RestartPolicy: v1.RestartContainer},
	}
	pod = n.CreatePod(pod)
	running := n.WaitPod(pod, "ready", kubelettest.PodReady)
	cs := containerStatus(running, "c1")
	if cs.Resources == nil || cs.Resources.Requests.Cpu().String() != "20m" || cs.AllocatedResources.Memory().String() != "35Mi" {
		t.Fatalf("status of a running container before any resize: resources %v allocated %v", cs.Resources, cs.AllocatedResources)
	}
	if got := runtimeResources(t, n, running, "c1").CpuShares; got != 20 {
		t.Errorf("cpu shares %d before the resize, want 20", got)
	}

	resize := func(patch string) *v1.Pod {
		t.Helper()
		p, err := s.Client.CoreV1().Pods("default").Patch(ctx, "resizable", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "resize")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	actuated := func(cpu, mem string) func(*v1.Pod) bool {
		return func(p *v1.Pod) bool {
			cs := containerStatus(p, "c1")
			return p.Status.ObservedGeneration == p.Generation && kubelettest.PodReady(p) &&
				condition(p, v1.PodResizePending) == nil && condition(p, v1.PodResizeInProgress) == nil &&
				cs.Resources != nil && cs.Resources.Requests.Cpu().String() == cpu && cs.Resources.Requests.Memory().String() == mem &&
				cs.AllocatedResources.Cpu().String() == cpu && cs.AllocatedResources.Memory().String() == mem
		}
	}

	// cpu changes in place: the same container, new shares and quota
	resize(`{"spec":{"containers":[{"name":"c1","resources":{"requests":{"cpu":"25m"},"limits":{"cpu":"35m"}}}]}}`)
	got := n.WaitPod(pod, "cpu resized in place", actuated("25m", "35Mi"))
	if cs := containerStatus(got, "c1"); cs.RestartCount != 0 || cs.Resources.Limits.Cpu().String() != "35m" {
		t.Errorf("after an in-place resize: restarts %d, limits %v", cs.RestartCount, cs.Resources.Limits)
	}
	if r := runtimeResources(t, n, got, "c1"); r.CpuShares != 25 || r.CpuQuota != 3500 || r.CpuPeriod != 100000 {
		t.Errorf("runtime cpu after resize: shares %d quota %d period %d", r.CpuShares, r.CpuQuota, r.CpuPeriod)
	}

	// memory's policy is RestartContainer: the container restarts with the new memory
	resize(`{"spec":{"containers":[{"name":"c1","resources":{"requests":{"memory":"40Mi"}}}]}}`)
	got = n.WaitPod(pod, "memory resized by a restart", func(p *v1.Pod) bool {
		return actuated("25m", "40Mi")(p) && containerStatus(p, "c1").RestartCount == 1
	})

	// more cpu than the node has stays pending, and the container keeps what it has
	resize(`{"spec":{"containers":[{"name":"c1","resources":{"requests":{"cpu":"64"},"limits":{"cpu":"64"}}}]}}`)
	got = n.WaitPod(pod, "an infeasible resize pending", func(p *v1.Pod) bool {
		c := condition(p, v1.PodResizePending)
		return p.Status.ObservedGeneration == p.Generation && c != nil && c.Reason == v1.PodReasonInfeasible
	})
	if c := condition(got, v1.PodResizePending); !strings.HasPrefix(c.Message, "Node didn't have enough capacity: cpu, requested: 64000, capacity: ") {
		t.Errorf("pending message %q", c.Message)
	}
	if cs := containerStatus(got, "c1"); cs.Resources.Requests.Cpu().String() != "25m" || cs.RestartCount != 1 {
		t.Errorf("an infeasible resize changed the container: %v, restarts %d", cs.Resources, cs.RestartCount)
	}
}

func TestRealContainerResizedInPlaceSeesItsNewCPULimit(t *testing.T) {
	s, n := newRealNode(t)
	ctx := context.Background()
	pod := kubelettest.BusyboxPod("resizable", "sleep 3600")
	pod.Spec.Containers[0].Resources = v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("20m"), v1.ResourceMemory: resource.MustParse("35Mi")},
		Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("30m"), v1.ResourceMemory: resource.MustParse("45Mi")},
	}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	// the CFS quota the container sees: cgroup v2's cpu.max, or v1's cpu.cfs_quota_us
	cpuMax := func() string {
		out, errOut, err := n.Exec(pod, "main", "sh", "-c", "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us")
		if err != nil {
			t.Fatalf("%v: %s %s", err, out, errOut)
		}
		return strings.TrimSpace(out)
	}
	if got := cpuMax(); got != "3000 100000" && got != "3000" {
		t.Fatalf("cpu quota before the resize: %q, want 3000 of 100000", got)
	}
	patch := `{"spec":{"containers":[{"name":"main","resources":{"requests":{"cpu":"25m"},"limits":{"cpu":"35m"}}}]}}`
	if _, err := s.Client.CoreV1().Pods("default").Patch(ctx, "resizable", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "resize"); err != nil {
		t.Fatal(err)
	}
	got := n.WaitPod(pod, "resized", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return p.Status.ObservedGeneration == p.Generation && cs.Resources != nil && cs.Resources.Limits.Cpu().String() == "35m"
	})
	if cs := containerStatus(got, "main"); cs.RestartCount != 0 {
		t.Errorf("restarts %d after an in-place resize", cs.RestartCount)
	}
	if got := cpuMax(); got != "3500 100000" && got != "3500" {
		t.Errorf("cpu quota after the resize: %q, want 3500 of 100000", got)
	}
}
