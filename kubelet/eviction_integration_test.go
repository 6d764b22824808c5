package kubelet_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/fakeruntime"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

// memorySignals are a node's memory and its pods' working sets (by pod name), which a test
// sets while the kubelet reads them: memory.available is what the pods that still run leave
// of free bytes, so that evicting a pod frees what it used.
type memorySignals struct {
	client kubernetes.Interface

	mu    sync.Mutex
	free  int64
	usage map[string]uint64
}

func (s *memorySignals) set(free int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.free = free
}

func (s *memorySignals) adjust(c *kubelet.Config) {
	c.EvictionMonitoringInterval = 100 * time.Millisecond
	c.EvictionPressureTransitionPeriod = 2 * time.Second
	c.EvictionSignals = func(ctx context.Context) (kubelet.SignalObservations, error) {
		pods, err := s.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		available := s.free
		for _, p := range pods.Items {
			if p.Status.Phase != v1.PodFailed {
				available -= int64(s.usage[p.Name])
			}
		}
		return kubelet.SignalObservations{kubelet.SignalMemoryAvailable: {Available: available, Capacity: 8 << 30}}, nil
	}
	// the fake runtime's containers use nothing: the pods' usage is the test's
	c.PodStats = func(ctx context.Context) ([]statsapi.PodStats, error) {
		pods, err := s.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		var out []statsapi.PodStats
		for _, p := range pods.Items {
			ws := s.usage[p.Name]
			out = append(out, statsapi.PodStats{PodRef: statsapi.PodReference{Name: p.Name, Namespace: p.Namespace, UID: string(p.UID)},
				Containers: []statsapi.ContainerStats{{Name: "main", Memory: &statsapi.MemoryStats{WorkingSetBytes: &ws}}}})
		}
		return out, nil
	}
}

func nodeCondition(n *v1.Node, t v1.NodeConditionType) v1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return v1.NodeCondition{}
}

// waitNode waits up to a minute until cond holds for the Node.
func waitNode(t *testing.T, client kubernetes.Interface, name, what string, cond func(*v1.Node) bool) {
	t.Helper()
	var last *v1.Node
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = n
		return cond(n), nil
	})
	if err != nil {
		t.Fatalf("node %s never %s; conditions %+v", name, what, last.Status.Conditions)
	}
}

func TestMemoryPressureSetsTheConditionEvictsTheLowestRankedPodAndClearsAfterTheTransitionPeriod(t *testing.T) {
	s := apiservertest.Start(t)
	fake, err := fakeruntime.New("10.244.1.0/24")
	if err != nil {
		t.Fatal(err)
	}
	signals := &memorySignals{client: s.Client, free: 8 << 30,
		usage: map[string]uint64{"guaranteed": 900 << 20, "hog": 700 << 20, "modest": 200 << 20}}
	n := kubelettest.StartFakeNode(t, s.Client, fake, "node-a", signals.adjust)
	ctx := context.Background()
	pods := map[string]*v1.Pod{}
	for name, request := range map[string]string{"guaranteed": "1Gi", "hog": "100Mi", "modest": "500Mi"} {
		p := simplePod(name, "main")
		p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceMemory: resource.MustParse(request)}
		pods[name] = n.CreatePod(p)
	}
	for _, p := range pods {
		n.WaitPod(p, "ready", kubelettest.PodReady)
	}

	// 50Mi left while all three run
	signals.set((900 + 700 + 200 + 50) << 20)
	waitNode(t, s.Client, n.Name, "under MemoryPressure", func(node *v1.Node) bool {
		c := nodeCondition(node, v1.NodeMemoryPressure)
		return c.Status == v1.ConditionTrue && c.Reason == "KubeletHasInsufficientMemory" && c.Message == "kubelet has insufficient memory available"
	})
	// hog is the one pod using more than it requests
	want := "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. " +
		"Container main was using 700Mi, request is 100Mi, has larger consumption of memory. "
	hog := n.WaitPod(pods["hog"], "evicted", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if hog.Status.Reason != "Evicted" || hog.Status.Message != want {
		t.Errorf("hog's status: reason %q message %q, want Evicted %q", hog.Status.Reason, hog.Status.Message, want)
	}
	if c := condition(hog, v1.DisruptionTarget); c == nil || c.Status != v1.ConditionTrue || c.Reason != v1.PodReasonTerminationByKubelet || c.Message != want {
		t.Errorf("hog's DisruptionTarget condition %+v", c)
	}
	n.WaitEvent(pods["hog"], "Warning Evicted "+want)
	n.WaitPod(pods["hog"], "stopped", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.State.Terminated != nil
	})

	// with hog gone the pressure is gone: the condition clears after the transition period,
	// and the pods within their requests were left alone
	waitNode(t, s.Client, n.Name, "free of MemoryPressure", func(node *v1.Node) bool {
		c := nodeCondition(node, v1.NodeMemoryPressure)
		return c.Status == v1.ConditionFalse && c.Reason == "KubeletHasSufficientMemory"
	})
	// and the Node's events say so, in upstream's words
	var events []string
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := s.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=node-a"})
		if err != nil {
			return false, nil
		}
		events = nil
		for _, e := range list.Items {
			events = append(events, e.Reason+" "+e.Message)
		}
		return slices.Contains(events, "NodeHasInsufficientMemory Node node-a status is now: NodeHasInsufficientMemory") &&
			slices.Contains(events, "NodeHasSufficientMemory Node node-a status is now: NodeHasSufficientMemory"), nil
	}); err != nil {
		t.Errorf("the Node's events %q", events)
	}
	for _, name := range []string{"guaranteed", "modest"} {
		p, err := s.Client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase != v1.PodRunning {
			t.Errorf("%s is %s (%s), want Running", name, p.Status.Phase, p.Status.Message)
		}
	}
}
