package kubelet_test

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

func podFailed(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed }

// expectRejected waits for the kubelet to refuse pod, checks upstream's reason and message
// and that nothing of the pod was started.
func expectRejected(t *testing.T, n *kubelettest.Node, pod *v1.Pod, reason, message string) {
	t.Helper()
	got := n.WaitPod(pod, "rejected", podFailed)
	if got.Status.Reason != reason || got.Status.Message != "Pod was rejected: "+message {
		t.Errorf("reason %q message %q, want %q %q", got.Status.Reason, got.Status.Message, reason, "Pod was rejected: "+message)
	}
	if len(got.Status.ContainerStatuses) != 0 || got.Status.PodIP != "" {
		t.Errorf("a rejected pod got containers or an address: %s", kubelettest.DescribeStatus(got))
	}
	n.WaitEvent(pod, "Warning "+reason+" "+message)
}

func withHostPort(p *v1.Pod, port int32) *v1.Pod {
	p.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80, HostPort: port}}
	return p
}

// As upstream's kubelet: a pod bound to the node whose host port another active pod holds is
// Failed with NodePorts and never started; once the holder is gone, a new pod with the same
// port runs (a StatefulSet recreates its evicted pod this way).
func TestPodWithHostPortInUseIsRejected(t *testing.T) {
	s, n := newFakeNode(t)
	holder := n.CreatePod(withHostPort(simplePod("holder", "app"), 21017))
	n.WaitPod(holder, "ready", kubelettest.PodReady)
	_, before, _ := n.Fake.Counts()

	clash := n.CreatePod(withHostPort(simplePod("clash", "app"), 21017))
	expectRejected(t, n, clash, "NodePorts", "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports")
	if _, after, _ := n.Fake.Counts(); after != before {
		t.Errorf("containers %d after the rejection, %d before", after, before)
	}

	// another port, or another protocol on the same port, fits
	udp := simplePod("udp", "app")
	udp.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80, HostPort: 21017, Protocol: v1.ProtocolUDP}}
	n.WaitPod(n.CreatePod(udp), "ready", kubelettest.PodReady)

	ctx := context.Background()
	if err := s.Client.CoreV1().Pods("default").Delete(ctx, "holder", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Client.CoreV1().Pods("default").Delete(ctx, "clash", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again := n.CreatePod(withHostPort(simplePod("again", "app"), 21017))
	n.WaitPod(again, "ready", kubelettest.PodReady)
}

func TestPodRequestingMoreThanAllocatableIsRejected(t *testing.T) {
	_, n := newFakeNode(t) // 4 CPUs
	big := simplePod("big", "app")
	big.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("3")}
	n.WaitPod(n.CreatePod(big), "ready", kubelettest.PodReady)

	more := simplePod("more", "app")
	more.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("1500m")}
	expectRejected(t, n, n.CreatePod(more), "OutOfcpu",
		"Node didn't have enough resource: cpu, requested: 1500, used: 3000, capacity: 4000")

	// the rejected pod holds nothing: what is left still fits
	fits := simplePod("fits", "app")
	fits.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}
	n.WaitPod(n.CreatePod(fits), "ready", kubelettest.PodReady)
}

func TestPodNotMatchingNodeSelectorIsRejected(t *testing.T) {
	_, n := newFakeNode(t)
	pod := simplePod("elsewhere", "app")
	pod.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	expectRejected(t, n, n.CreatePod(pod), "NodeAffinity", "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector")

	here := simplePod("here", "app")
	here.Spec.NodeSelector = map[string]string{v1.LabelHostname: "node-a"}
	n.WaitPod(n.CreatePod(here), "ready", kubelettest.PodReady)
}

// The kubelet looks only at NoExecute taints: NoSchedule ones are the scheduler's business,
// and a pod bound by hand runs despite them.
func TestPodNotToleratingNoExecuteTaintIsRejected(t *testing.T) {
	s, n := newFakeNode(t)
	ctx := context.Background()
	node, err := s.Client.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Spec.Taints = []v1.Taint{
		{Key: "maintenance", Value: "yes", Effect: v1.TaintEffectNoExecute},
		{Key: "dedicated", Value: "db", Effect: v1.TaintEffectNoSchedule},
	}
	if _, err := s.Client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectRejected(t, n, n.CreatePod(simplePod("intolerant", "app")), "TaintToleration",
		"Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate")

	tolerant := simplePod("tolerant", "app")
	tolerant.Spec.Tolerations = []v1.Toleration{{Key: "maintenance", Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute}}
	n.WaitPod(n.CreatePod(tolerant), "ready", kubelettest.PodReady)
}
