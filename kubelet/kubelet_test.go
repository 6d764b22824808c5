package kubelet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/fakeruntime"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// newFakeNode starts an API server and a kubelet "node-a" on a fresh fake runtime whose pods
// get addresses from 10.244.1.0/24.
func newFakeNode(t *testing.T, adjust ...func(*kubelet.Config)) (*apiservertest.Server, *kubelettest.Node) {
	s := apiservertest.Start(t)
	fake, err := fakeruntime.New("10.244.1.0/24")
	if err != nil {
		t.Fatal(err)
	}
	return s, kubelettest.StartFakeNode(t, s.Client, fake, "node-a", adjust...)
}

func condition(p *v1.Pod, t v1.PodConditionType) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func containerStatus(p *v1.Pod, name string) *v1.ContainerStatus {
	for _, list := range [][]v1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// waitingFor is a WaitPod condition: the container waits with reason.
func waitingFor(container, reason string) func(*v1.Pod) bool {
	return func(p *v1.Pod) bool {
		cs := containerStatus(p, container)
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == reason
	}
}

func simplePod(name string, containers ...string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: c, Image: "busybox:1.36", ImagePullPolicy: v1.PullIfNotPresent})
	}
	return p
}

func TestNodeRegistersWithLabelsCapacityConditionsAndLease(t *testing.T) {
	s, n := newFakeNode(t, func(c *kubelet.Config) {
		c.SystemReserved = v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("1Gi")}
	})
	ctx := context.Background()
	node, err := s.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"kubernetes.io/hostname": "node-a", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"} {
		if node.Labels[key] != want {
			t.Errorf("label %s = %q, want %q", key, node.Labels[key], want)
		}
	}
	checkQuantity := func(list v1.ResourceList, name v1.ResourceName, want string) {
		t.Helper()
		got := list[name]
		if got.Cmp(resource.MustParse(want)) != 0 {
			t.Errorf("%s = %s, want %s", name, got.String(), want)
		}
	}
	checkQuantity(node.Status.Capacity, v1.ResourceCPU, "4")
	checkQuantity(node.Status.Capacity, v1.ResourceMemory, "8Gi")
	checkQuantity(node.Status.Capacity, v1.ResourcePods, "110")
	checkQuantity(node.Status.Allocatable, v1.ResourceCPU, "3500m")
	checkQuantity(node.Status.Allocatable, v1.ResourceMemory, fmt.Sprint(7<<30-100<<20))
	checkQuantity(node.Status.Allocatable, v1.ResourceEphemeralStorage, fmt.Sprint(90<<30))

	want := map[v1.NodeConditionType][3]string{
		v1.NodeReady:          {"True", "KubeletReady", "kubelet is posting ready status"},
		v1.NodeMemoryPressure: {"False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
		v1.NodeDiskPressure:   {"False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
		v1.NodePIDPressure:    {"False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
	}
	for _, c := range node.Status.Conditions {
		w, ok := want[c.Type]
		if !ok {
			t.Errorf("unexpected condition %s", c.Type)
			continue
		}
		if string(c.Status) != w[0] || c.Reason != w[1] || c.Message != w[2] {
			t.Errorf("condition %s = %s %s %q, want %v", c.Type, c.Status, c.Reason, c.Message, w)
		}
		delete(want, c.Type)
	}
	if len(want) > 0 {
		t.Errorf("missing conditions %v", want)
	}
	if got := node.Status.NodeInfo; got.KubeletVersion != "v1.37.0-test" || got.ContainerRuntimeVersion != "fake://0.1.0" || got.OSImage != "Test OS" || got.KernelVersion != "6.1.0" {
		t.Errorf("nodeInfo %+v", got)
	}
	if len(node.Status.Addresses) != 2 || node.Status.Addresses[0] != (v1.NodeAddress{Type: v1.NodeInternalIP, Address: "192.0.2.10"}) ||
		node.Status.Addresses[1] != (v1.NodeAddress{Type: v1.NodeHostName, Address: "node-a"}) {
		t.Errorf("addresses %v", node.Status.Addresses)
	}
	if node.Status.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
		t.Errorf("kubelet endpoint %v", node.Status.DaemonEndpoints)
	}

	var lease *coordinationv1.Lease
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		lease, err = s.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, n.Name, metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("no lease: %v", err)
	}
	if ptr.Deref(lease.Spec.HolderIdentity, "") != "node-a" || ptr.Deref(lease.Spec.LeaseDurationSeconds, 0) != 40 || lease.Spec.RenewTime == nil {
		t.Errorf("lease spec %+v", lease.Spec)
	}
	if len(lease.OwnerReferences) != 1 || lease.OwnerReferences[0].Kind != "Node" || lease.OwnerReferences[0].UID != node.UID {
		t.Errorf("lease owners %v", lease.OwnerReferences)
	}
}

func TestPodRunsAndBecomesReadyWithUpstreamStatus(t *testing.T) {
	_, n := newFakeNode(t)
	pod := n.CreatePod(simplePod("web", "app", "sidecar"))
	got := n.WaitPod(pod, "ready", kubelettest.PodReady)

	if got.Status.Phase != v1.PodRunning {
		t.Errorf("phase %s", got.Status.Phase)
	}
	for _, ct := range []v1.PodConditionType{v1.PodScheduled, v1.PodReadyToStartContainers, v1.PodInitialized, v1.ContainersReady, v1.PodReady} {
		if c := condition(got, ct); c == nil || c.Status != v1.ConditionTrue {
			t.Errorf("condition %s: %+v", ct, c)
		}
	}
	if got.Status.HostIP != "192.0.2.10" || len(got.Status.HostIPs) != 1 {
		t.Errorf("hostIP %q %v", got.Status.HostIP, got.Status.HostIPs)
	}
	if !strings.HasPrefix(got.Status.PodIP, "10.244.1.") || len(got.Status.PodIPs) != 1 || got.Status.PodIPs[0].IP != got.Status.PodIP {
		t.Errorf("podIP %q %v", got.Status.PodIP, got.Status.PodIPs)
	}
	if got.Status.StartTime == nil || got.Status.QOSClass != v1.PodQOSBestEffort {
		t.Errorf("startTime %v qos %s", got.Status.StartTime, got.Status.QOSClass)
	}
	for _, name := range []string{"app", "sidecar"} {
		cs := containerStatus(got, name)
		if cs == nil || cs.State.Running == nil || !cs.Ready || cs.Started == nil || !*cs.Started || cs.RestartCount != 0 ||
			!strings.HasPrefix(cs.ContainerID, "fake://") || !strings.HasPrefix(cs.ImageID, "sha256:") || cs.Image != "busybox:1.36" {
			t.Errorf("status of %s: %+v", name, cs)
		}
	}
	n.WaitEvent(pod, `Normal Pulled Container image "busybox:1.36" already present on machine and can be accessed by the pod`)
	n.WaitEvent(pod, "Normal Created Created container: app")
	n.WaitEvent(pod, "Normal Started Started container app")
}

func TestInitContainersRunInOrderBeforeAppContainers(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("init", "app")
	pod.Spec.InitContainers = []v1.Container{
		{Name: "first", Image: "busybox:1.36", ImagePullPolicy: v1.PullIfNotPresent},
		{Name: "second", Image: "busybox:1.36", ImagePullPolicy: v1.PullIfNotPresent},
	}
	// the first init container runs until the test ends it; the second succeeds at once
	pod.Annotations = map[string]string{fakeruntime.AnnotationPrefix + "second": "exit=0"}
	pod = n.CreatePod(pod)

	pending := n.WaitPod(pod, "running its first init container", func(p *v1.Pod) bool {
		cs := containerStatus(p, "first")
		return cs != nil && cs.State.Running != nil
	})
	if pending.Status.Phase != v1.PodPending {
		t.Errorf("phase %s while initializing", pending.Status.Phase)
	}
	if c := condition(pending, v1.PodInitialized); c == nil || c.Status != v1.ConditionFalse || c.Reason != "ContainersNotInitialized" ||
		c.Message != "containers with incomplete status: [first second]" {
		t.Errorf("Initialized while initializing: %+v", c)
	}
	if c := condition(pending, v1.PodReady); c == nil || c.Reason != "ContainersNotReady" || c.Message != "containers with unready status: [app]" {
		t.Errorf("Ready while initializing: %+v", c)
	}
	// a pod with init containers has every container, init ones too, PodInitializing until it runs
	if cs := containerStatus(pending, "second"); cs == nil || cs.State.Waiting == nil || cs.State.Waiting.Reason != "PodInitializing" {
		t.Errorf("second init container while the first runs: %+v", cs)
	}
	if cs := containerStatus(pending, "app"); cs == nil || cs.State.Waiting == nil || cs.State.Waiting.Reason != "PodInitializing" {
		t.Errorf("app container while initializing: %+v", cs)
	}
	if n.Fake.ContainerConfig(string(pod.UID), "second") != nil || n.Fake.ContainerConfig(string(pod.UID), "app") != nil {
		t.Fatal("a later container was created before the first init container finished")
	}

	if !n.Fake.ExitContainer(string(pod.UID), "first", 0) {
		t.Fatal("no running init container to end")
	}
	got := n.WaitPod(pod, "ready", kubelettest.PodReady)
	for _, name := range []string{"first", "second"} {
		cs := containerStatus(got, name)
		if cs == nil || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 || cs.State.Terminated.Reason != "Completed" || !cs.Ready {
			t.Errorf("init container %s after init: %+v", name, cs)
		}
	}
	if c := condition(got, v1.PodInitialized); c == nil || c.Status != v1.ConditionTrue {
		t.Errorf("Initialized: %+v", c)
	}
}

func TestFailingInitContainerWithRestartNeverFailsPod(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("initfail", "app")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	pod.Spec.InitContainers = []v1.Container{{Name: "setup", Image: "busybox:1.36", ImagePullPolicy: v1.PullIfNotPresent}}
	pod.Annotations = map[string]string{fakeruntime.AnnotationPrefix + "setup": "exit=3"}
	pod = n.CreatePod(pod)
	got := n.WaitPod(pod, "failed", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if cs := containerStatus(got, "setup"); cs == nil || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 3 || cs.State.Terminated.Reason != "Error" {
		t.Errorf("init container: %+v", cs)
	}
	if n.Fake.ContainerConfig(string(pod.UID), "app") != nil {
		t.Error("app container created although init failed")
	}
}

func TestCrashingContainerBacksOffAndCountsRestarts(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("crash", "app")
	pod.Annotations = map[string]string{fakeruntime.AnnotationPrefix + "app": "exit=1"}
	pod = n.CreatePod(pod)

	got := n.WaitPod(pod, "in CrashLoopBackOff after restarts", func(p *v1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs != nil && cs.RestartCount >= 2 && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
	})
	cs := containerStatus(got, "app")
	wantPrefix := "back-off "
	wantSuffix := fmt.Sprintf(" restarting failed container=app pod=crash_default(%s)", pod.UID)
	if msg := cs.State.Waiting.Message; !strings.HasPrefix(msg, wantPrefix) || !strings.HasSuffix(msg, wantSuffix) {
		t.Errorf("waiting message %q", msg)
	}
	if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 || cs.LastTerminationState.Terminated.Reason != "Error" {
		t.Errorf("lastState %+v", cs.LastTerminationState)
	}
	if cs.Ready || got.Status.Phase != v1.PodRunning {
		t.Errorf("ready %v phase %s", cs.Ready, got.Status.Phase)
	}
	if c := condition(got, v1.ContainersReady); c == nil || c.Status != v1.ConditionFalse || c.Message != "containers with unready status: [app]" {
		t.Errorf("ContainersReady %+v", c)
	}
	n.WaitEvent(pod, fmt.Sprintf("Warning BackOff Back-off restarting failed container app in pod crash_default(%s)", pod.UID))
}

func TestRestartPolicies(t *testing.T) {
	_, n := newFakeNode(t)
	cases := []struct {
		name   string
		policy v1.RestartPolicy
		exit   int
		phase  v1.PodPhase
	}{
		{"never-ok", v1.RestartPolicyNever, 0, v1.PodSucceeded},
		{"never-fail", v1.RestartPolicyNever, 2, v1.PodFailed},
		{"onfailure-ok", v1.RestartPolicyOnFailure, 0, v1.PodSucceeded},
	}
	for _, c := range cases {
		pod := simplePod(c.name, "app")
		pod.Spec.RestartPolicy = c.policy
		pod.Annotations = map[string]string{fakeruntime.AnnotationPrefix + "app": fmt.Sprintf("exit=%d", c.exit)}
		pod = n.CreatePod(pod)
		got := n.WaitPod(pod, string(c.phase), func(p *v1.Pod) bool { return p.Status.Phase == c.phase })
		cs := containerStatus(got, "app")
		if cs == nil || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != int32(c.exit) || cs.RestartCount != 0 {
			t.Errorf("%s: %+v", c.name, cs)
		}
		reason := "PodCompleted"
		if c.phase == v1.PodFailed {
			reason = "PodFailed"
		}
		if cond := condition(got, v1.PodReady); cond == nil || cond.Status != v1.ConditionFalse || cond.Reason != reason {
			t.Errorf("%s: Ready %+v", c.name, cond)
		}
	}
	// OnFailure restarts a failing container until it succeeds (fails twice here)
	pod := simplePod("onfailure-retry", "app")
	pod.Spec.RestartPolicy = v1.RestartPolicyOnFailure
	pod.Annotations = map[string]string{fakeruntime.AnnotationPrefix + "app": "exit=1 runs=2"}
	pod = n.CreatePod(pod)
	got := n.WaitPod(pod, "running after two failures", func(p *v1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs != nil && cs.RestartCount == 2 && cs.State.Running != nil
	})
	if got.Status.Phase != v1.PodRunning {
		t.Errorf("phase %s", got.Status.Phase)
	}
	n.Fake.ExitContainer(string(pod.UID), "app", 0)
	n.WaitPod(pod, "succeeded", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded })
}

func TestLivenessFailureRestartsContainer(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("live", "app")
	pod.Spec.Containers[0].LivenessProbe = &v1.Probe{
		ProbeHandler:  v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}},
		PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 1,
	}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	n.Fake.SetProbe(string(pod.UID), "app", runtime.Liveness, false)
	got := n.WaitPod(pod, "restarted", func(p *v1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs != nil && cs.RestartCount == 1 && cs.State.Running != nil
	})
	if cs := containerStatus(got, "app"); cs.LastTerminationState.Terminated == nil {
		t.Errorf("lastState after a liveness restart: %+v", cs.LastTerminationState)
	}
	n.WaitEvent(pod, "Warning Unhealthy Liveness probe failed: fake probe failure")
	n.WaitEvent(pod, "Normal Killing Container app failed liveness probe, will be restarted")
}

func TestReadinessProbeDrivesReadyCondition(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("ready", "app")
	pod.Spec.Containers[0].ReadinessProbe = &v1.Probe{
		ProbeHandler:  v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intOrString(80)}},
		PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 1,
	}
	pod.Annotations = map[string]string{fakeruntime.AnnotationPrefix + "app": "readiness=fail"}
	pod = n.CreatePod(pod)
	got := n.WaitPod(pod, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	if kubelettest.PodReady(got) {
		t.Fatal("ready although its readiness probe fails")
	}
	n.WaitEvent(pod, "Warning Unhealthy Readiness probe failed: fake probe failure")
	n.Fake.SetProbe(string(pod.UID), "app", runtime.Readiness, true)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	n.Fake.SetProbe(string(pod.UID), "app", runtime.Readiness, false)
	got = n.WaitPod(pod, "unready again", func(p *v1.Pod) bool { return !kubelettest.PodReady(p) })
	if cs := containerStatus(got, "app"); cs.RestartCount != 0 || cs.State.Running == nil {
		t.Errorf("a readiness failure restarted the container: %+v", cs)
	}
}

// TestPodMarkedNotReadyByNodeLifecycleIsReadyAgain: the node lifecycle controller sets the Ready
// condition of a silent node's pods False; once the kubelet is heard again, it puts back the
// status it computes, as upstream's status manager reconciles what the API holds with its own.
// A DaemonSet's rolling update counts such pods unavailable and waits for them forever.
func TestPodMarkedNotReadyByNodeLifecycleIsReadyAgain(t *testing.T) {
	s, n := newFakeNode(t)
	pod := n.CreatePod(simplePod("agent", "app"))
	got := n.WaitPod(pod, "ready", kubelettest.PodReady)
	// what the node lifecycle controller's markPodsNotReady writes
	c := condition(got, v1.PodReady)
	c.Status = v1.ConditionFalse
	c.LastTransitionTime = metav1.Now()
	if _, err := s.Client.CoreV1().Pods(got.Namespace).UpdateStatus(context.Background(), got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.WaitPod(pod, "ready again", kubelettest.PodReady)
}

func TestStartupProbeHoldsOffLivenessAndReadiness(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("startup", "app")
	probe := &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}, PeriodSeconds: 1, FailureThreshold: 100, SuccessThreshold: 1, TimeoutSeconds: 1}
	pod.Spec.Containers[0].StartupProbe = probe
	pod.Spec.Containers[0].ReadinessProbe = probe
	pod.Annotations = map[string]string{fakeruntime.AnnotationPrefix + "app": "startup=fail"}
	pod = n.CreatePod(pod)
	got := n.WaitPod(pod, "running", func(p *v1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs != nil && cs.State.Running != nil
	})
	if cs := containerStatus(got, "app"); *cs.Started || cs.Ready {
		t.Errorf("started=%v ready=%v before its startup probe succeeded", *cs.Started, cs.Ready)
	}
	n.Fake.SetProbe(string(pod.UID), "app", runtime.Startup, true)
	got = n.WaitPod(pod, "ready", kubelettest.PodReady)
	if cs := containerStatus(got, "app"); !*cs.Started {
		t.Error("not started after its startup probe succeeded")
	}
}

func TestGracefulDeletionStopsContainersThenRemovesPod(t *testing.T) {
	_, n := newFakeNode(t)
	pod := n.CreatePod(simplePod("del", "app"))
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	if err := n.Client.CoreV1().Pods("default").Delete(context.Background(), "del", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := n.Client.CoreV1().Pods("default").Get(ctx, "del", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal("pod still in the API after the kubelet stopped it")
	}
	n.WaitEvent(pod, "Normal Killing Stopping container app")
	err = wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		sandboxes, containers, _ := n.Fake.Counts()
		return sandboxes == 0 && containers == 0, nil
	})
	if err != nil {
		t.Error("sandbox or containers left behind after deletion")
	}
}

func TestDeletionWaitsForContainerThatIgnoresSigterm(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("stubborn", "app")
	pod.Annotations = map[string]string{fakeruntime.AnnotationPrefix + "app": "ignore-term"}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	if err := n.Client.CoreV1().Pods("default").Delete(context.Background(), "stubborn", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](1)}); err != nil {
		t.Fatal(err)
	}
	// still there (terminating) while the container has its grace period, then gone
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := n.Client.CoreV1().Pods("default").Get(ctx, "stubborn", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal("pod never removed")
	}
	// the pod leaves the API once its container has stopped; removing it may come just after
	err = wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, containers, _ := n.Fake.Counts()
		return containers == 0, nil
	})
	if err != nil {
		_, containers, _ := n.Fake.Counts()
		t.Errorf("%d containers left", containers)
	}
}

func TestImagePullFailureGoesToImagePullBackOff(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("pull", "app")
	pod.Spec.Containers[0].Image = fakeruntime.UnreachableRegistry + "app:1"
	pod.Spec.Containers[0].ImagePullPolicy = v1.PullAlways
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "in ErrImagePull", waitingFor("app", "ErrImagePull"))
	got := n.WaitPod(pod, "in ImagePullBackOff", waitingFor("app", "ImagePullBackOff"))
	want := `Back-off pulling image "unreachable.invalid/app:1"`
	if msg := containerStatus(got, "app").State.Waiting.Message; msg != want {
		t.Errorf("message %q, want %q", msg, want)
	}
	if got.Status.Phase != v1.PodPending {
		t.Errorf("phase %s", got.Status.Phase)
	}
	n.WaitEvent(pod, `Normal Pulling Pulling image "unreachable.invalid/app:1"`)
	n.WaitEvent(pod, "Warning Failed Error: ErrImagePull")
	n.WaitEvent(pod, "Normal BackOff "+want)
}

func TestImageNeverPulledWhenAbsent(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("never", "app")
	pod.Spec.Containers[0].Image = fakeruntime.UnreachableRegistry + "app:1"
	pod.Spec.Containers[0].ImagePullPolicy = v1.PullNever
	pod = n.CreatePod(pod)
	got := n.WaitPod(pod, "in ErrImageNeverPull", waitingFor("app", "ErrImageNeverPull"))
	want := `Container image "unreachable.invalid/app:1" is not present with pull policy of Never`
	if msg := containerStatus(got, "app").State.Waiting.Message; msg != want {
		t.Errorf("message %q", msg)
	}
}

func TestEnvironmentAndCommandExpansion(t *testing.T) {
	s, n := newFakeNode(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"color": "blue", "size": "L"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.CoreV1().Secrets("default").Create(ctx, &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sec"}, Data: map[string][]byte{"password": []byte("hunter2")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := simplePod("env", "app")
	pod.Labels = map[string]string{"tier": "web"}
	c := &pod.Spec.Containers[0]
	c.Command = []string{"echo", "$(GREETING)", "$$(GREETING)", "$(MISSING)"}
	c.Args = []string{"$(POD_NAME)-$(COLOR)"}
	c.EnvFrom = []v1.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}}
	c.Env = []v1.EnvVar{
		{Name: "GREETING", Value: "hello"},
		{Name: "DERIVED", Value: "$(GREETING) world"},
		{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "NODE", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "POD_IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "TIER", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}}},
		{Name: "COLOR", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Key: "color"}}},
		{Name: "PASSWORD", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}, Key: "password"}}},
		{Name: "CPUS", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.cpu"}}},
	}
	pod = n.CreatePod(pod)
	got := n.WaitPod(pod, "ready", kubelettest.PodReady)
	config := n.Fake.ContainerConfig(string(pod.UID), "app")
	env := map[string]string{}
	for _, kv := range config.Envs {
		env[kv.Key] = string(kv.Value)
	}
	want := map[string]string{
		"CM_color": "blue", "CM_size": "L", "GREETING": "hello", "DERIVED": "hello world", "POD_NAME": "env",
		"NODE": "node-a", "POD_IP": got.Status.PodIP, "TIER": "web", "COLOR": "blue", "PASSWORD": "hunter2", "CPUS": "4",
	}
	for key, v := range want {
		if env[key] != v {
			t.Errorf("env %s = %q, want %q", key, env[key], v)
		}
	}
	if got := strings.Join(config.Command, " "); got != "echo hello $(GREETING) $(MISSING)" {
		t.Errorf("command %q", got)
	}
	if got := strings.Join(config.Args, " "); got != "env-blue" {
		t.Errorf("args %q", got)
	}
}

func TestMissingConfigMapKeyIsCreateContainerConfigError(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("badenv", "app")
	pod.Spec.Containers[0].Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Key: "k"}}}}
	pod = n.CreatePod(pod)
	got := n.WaitPod(pod, "in CreateContainerConfigError", waitingFor("app", "CreateContainerConfigError"))
	if msg := containerStatus(got, "app").State.Waiting.Message; msg != `configmaps "nope" not found` {
		t.Errorf("message %q", msg)
	}
}

func TestActiveDeadlineFailsPod(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("deadline", "app")
	pod.Spec.ActiveDeadlineSeconds = ptr.To[int64](1)
	pod = n.CreatePod(pod)
	got := n.WaitPod(pod, "failed", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if got.Status.Reason != "DeadlineExceeded" || got.Status.Message != "Pod was active on the node longer than the specified deadline" {
		t.Errorf("reason %q message %q", got.Status.Reason, got.Status.Message)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, _, running := n.Fake.Counts()
		return running == 0, nil
	})
	if err != nil {
		t.Error("container still running after the deadline")
	}
}

func TestKubeletRestartAdoptsRunningContainers(t *testing.T) {
	s, n := newFakeNode(t)
	pod := n.CreatePod(simplePod("adopt", "app"))
	before := n.WaitPod(pod, "ready", kubelettest.PodReady)
	id := containerStatus(before, "app").ContainerID
	n.Stop()

	// a pod bound while the kubelet is down starts when it returns
	later := n.CreatePod(simplePod("later", "app"))
	n2 := kubelettest.StartFakeNode(t, s.Client, n.Fake, n.Name)
	after := n2.WaitPod(pod, "ready", kubelettest.PodReady)
	if cs := containerStatus(after, "app"); cs.ContainerID != id || cs.RestartCount != 0 {
		t.Errorf("container after restart: %s restarts=%d, want %s restarts=0", cs.ContainerID, cs.RestartCount, id)
	}
	n2.WaitPod(later, "ready", kubelettest.PodReady)
}

func TestPodForceDeletedWhileKubeletDownIsCleanedUp(t *testing.T) {
	s, n := newFakeNode(t)
	pod := n.CreatePod(simplePod("orphan", "app"))
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	n.Stop()
	if err := s.Client.CoreV1().Pods("default").Delete(context.Background(), "orphan", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	kubelettest.StartFakeNode(t, s.Client, n.Fake, n.Name)
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		sandboxes, containers, _ := n.Fake.Counts()
		return sandboxes == 0 && containers == 0, nil
	})
	if err != nil {
		t.Error("the orphan's sandbox was not removed")
	}
}

func intOrString(port int) intstr.IntOrString { return intstr.FromInt32(int32(port)) }

// As upstream: every container learns the kubernetes Service (in-cluster clients need
// KUBERNETES_SERVICE_HOST), and the Services of its namespace unless enableServiceLinks is
// false, as {NAME}_SERVICE_* and Docker link variables that env values may refer to.
func TestContainersGetServiceEnvironmentVariables(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	svc, err := s.Client.CoreV1().Services("default").Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web-api"},
		Spec: v1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []v1.ServicePort{
			{Name: "http", Port: 80}, {Name: "metrics", Port: 9090, Protocol: v1.ProtocolTCP},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// the node starts after the Service exists: its pods start only once it has listed them
	fake, err := fakeruntime.New("10.244.1.0/24")
	if err != nil {
		t.Fatal(err)
	}
	n := kubelettest.StartFakeNode(t, s.Client, fake, "node-a")

	envOf := func(pod *v1.Pod) map[string]string {
		t.Helper()
		pod = n.CreatePod(pod)
		n.WaitPod(pod, "ready", kubelettest.PodReady)
		env := map[string]string{}
		for _, kv := range fake.ContainerConfig(string(pod.UID), "app").Envs {
			env[kv.Key] = string(kv.Value)
		}
		return env
	}
	linked := simplePod("linked", "app")
	linked.Spec.Containers[0].Env = []v1.EnvVar{{Name: "API", Value: "http://$(WEB_API_SERVICE_HOST):$(WEB_API_SERVICE_PORT_HTTP)"}}
	env := envOf(linked)
	ip := svc.Spec.ClusterIP
	for key, want := range map[string]string{
		"WEB_API_SERVICE_HOST": ip, "WEB_API_SERVICE_PORT": "80", "WEB_API_SERVICE_PORT_HTTP": "80",
		"WEB_API_SERVICE_PORT_METRICS": "9090", "WEB_API_PORT": "tcp://" + ip + ":80",
		"WEB_API_PORT_9090_TCP": "tcp://" + ip + ":9090", "WEB_API_PORT_9090_TCP_PROTO": "tcp",
		"WEB_API_PORT_9090_TCP_PORT": "9090", "WEB_API_PORT_9090_TCP_ADDR": ip,
		"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "KUBERNETES_SERVICE_PORT_HTTPS": "443",
		"API": "http://" + ip + ":80",
	} {
		if env[key] != want {
			t.Errorf("%s = %q, want %q", key, env[key], want)
		}
	}

	unlinked := simplePod("unlinked", "app")
	unlinked.Spec.EnableServiceLinks = ptr.To(false)
	env = envOf(unlinked)
	if env["KUBERNETES_SERVICE_HOST"] != "10.96.0.1" {
		t.Errorf("KUBERNETES_SERVICE_HOST = %q without service links, want it all the same", env["KUBERNETES_SERVICE_HOST"])
	}
	if _, ok := env["WEB_API_SERVICE_HOST"]; ok {
		t.Error("WEB_API_SERVICE_HOST set although enableServiceLinks is false")
	}
}

func TestStatusObservesEachSpecGeneration(t *testing.T) {
	s, n := newFakeNode(t)
	pod := n.CreatePod(simplePod("gen", "app"))
	observed := func(generation int64) func(*v1.Pod) bool {
		return func(p *v1.Pod) bool {
			if p.Generation != generation || p.Status.ObservedGeneration != generation {
				return false
			}
			for _, ct := range []v1.PodConditionType{v1.PodScheduled, v1.PodReadyToStartContainers, v1.PodInitialized, v1.ContainersReady, v1.PodReady} {
				if c := condition(p, ct); c == nil || c.ObservedGeneration != generation {
					return false
				}
			}
			return true
		}
	}
	n.WaitPod(pod, "status of generation 1", observed(1))

	// a spec change (the active deadline) is a new generation the kubelet acknowledges
	ctx := context.Background()
	current, err := s.Client.CoreV1().Pods("default").Get(ctx, "gen", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	current.Spec.ActiveDeadlineSeconds = ptr.To[int64](3600)
	if _, err := s.Client.CoreV1().Pods("default").Update(ctx, current, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.WaitPod(pod, "status of generation 2", observed(2))
}

func TestSubPathExprMountsExpandedDirectoryOfVolume(t *testing.T) {
	_, n := newFakeNode(t, func(c *kubelet.Config) { c.RootDir = t.TempDir() })
	pod := simplePod("subpaths", "app")
	pod.Spec.Volumes = []v1.Volume{{Name: "work", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	c := &pod.Spec.Containers[0]
	c.Env = []v1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "KIND", Value: "logs"},
	}
	c.VolumeMounts = []v1.VolumeMount{
		{Name: "work", MountPath: "/logs", SubPathExpr: "$(POD_NAME)/$(KIND)"},
		{Name: "work", MountPath: "/all"},
	}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	hostPaths := map[string]string{}
	for _, m := range n.Fake.ContainerConfig(string(pod.UID), "app").Mounts {
		hostPaths[m.ContainerPath] = m.HostPath
	}
	if want := filepath.Join(hostPaths["/all"], "subpaths", "logs"); hostPaths["/logs"] != want {
		t.Fatalf("/logs is mounted from %q, want %q", hostPaths["/logs"], want)
	}
	// the directories made for the subPath are as writable as the emptyDir itself
	for _, dir := range []string{filepath.Join(hostPaths["/all"], "subpaths"), hostPaths["/logs"]} {
		info, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !info.IsDir() || info.Mode().Perm() != 0o777 {
			t.Errorf("%s: %v", dir, info.Mode())
		}
	}
}

func TestSubPathExprLeavingVolumeIsCreateContainerConfigError(t *testing.T) {
	_, n := newFakeNode(t, func(c *kubelet.Config) { c.RootDir = t.TempDir() })
	pod := simplePod("badsubpaths", "absolute", "backstep", "unset")
	pod.Spec.Volumes = []v1.Volume{{Name: "work", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	for i, value := range []string{"/tmp", "..", ""} {
		c := &pod.Spec.Containers[i]
		c.Env = []v1.EnvVar{{Name: "DIR", Value: value}}
		c.VolumeMounts = []v1.VolumeMount{{Name: "work", MountPath: "/work", SubPathExpr: "$(DIR)"}}
	}
	pod = n.CreatePod(pod)
	want := map[string]string{
		"absolute": "error SubPath `/tmp` must not be an absolute path",
		"backstep": "unable to provision SubPath `..`: must not contain '..'",
		"unset":    "missing value for DIR",
	}
	got := n.WaitPod(pod, "every container in CreateContainerConfigError", func(p *v1.Pod) bool {
		for name := range want {
			cs := containerStatus(p, name)
			if cs == nil || cs.State.Waiting == nil || cs.State.Waiting.Reason != "CreateContainerConfigError" {
				return false
			}
		}
		return true
	})
	for name, message := range want {
		if got := containerStatus(got, name).State.Waiting.Message; got != message {
			t.Errorf("%s: message %q, want %q", name, got, message)
		}
	}
}

func TestImageVolumeImagePulledAsItsPullPolicySays(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("image-volumes", "app")
	pod.Spec.Volumes = []v1.Volume{
		{Name: "always", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: "skiff.local/vol-a:1", PullPolicy: v1.PullAlways}}},
		{Name: "present", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: "skiff.local/vol-b:1", PullPolicy: v1.PullIfNotPresent}}},
	}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "always", MountPath: "/a"}, {Name: "present", MountPath: "/b"}}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	n.WaitEvent(pod, `Normal Pulling Pulling image "skiff.local/vol-a:1"`)
	n.WaitEvent(pod, `Normal Pulled Container image "skiff.local/vol-b:1" already present on machine and can be accessed by the pod`)
}

func TestImageVolumeNeverPulledWhenAbsentHoldsTheContainersThatMountIt(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("image-volume-never", "app")
	image := fakeruntime.UnreachableRegistry + "vol:1"
	pod.Spec.Volumes = []v1.Volume{{Name: "v", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: image, PullPolicy: v1.PullNever}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "v", MountPath: "/v"}}
	pod = n.CreatePod(pod)
	got := n.WaitPod(pod, "in ErrImageNeverPull", waitingFor("app", "ErrImageNeverPull"))
	want := `Container image "unreachable.invalid/vol:1" is not present with pull policy of Never`
	if msg := containerStatus(got, "app").State.Waiting.Message; msg != want {
		t.Errorf("message %q", msg)
	}
	n.WaitEvent(pod, "Warning ErrImageNeverPull "+want)
}

func TestImageVolumePullFailureGoesToImagePullBackOff(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("image-volume-pull", "app")
	image := fakeruntime.UnreachableRegistry + "vol:1"
	pod.Spec.Volumes = []v1.Volume{{Name: "v", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: image, PullPolicy: v1.PullAlways}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "v", MountPath: "/v"}}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "in ImagePullBackOff", waitingFor("app", "ImagePullBackOff"))
	n.WaitEvent(pod, `Normal Pulling Pulling image "unreachable.invalid/vol:1"`)
	n.WaitEvent(pod, "Warning Failed Error: ErrImagePull")
	n.WaitEvent(pod, `Normal BackOff Back-off pulling image "unreachable.invalid/vol:1"`)
}
