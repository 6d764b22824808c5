package kubelet_test

import (
	"context"
	"errors"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/fakeruntime"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

func TestNodeIsNotReadyAndRunsNoPodUntilPrepareReturns(t *testing.T) {
	s := apiservertest.Start(t)
	fake, err := fakeruntime.New("10.244.1.0/24")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	n := kubelettest.StartFakeNode(t, s.Client, fake, "node-p", func(c *kubelet.Config) {
		c.PrepareMessage = "importing images from /images"
		c.Prepare = func(ctx context.Context) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			// a failed preparation is logged; the node goes on
			return errors.New("one tarball was bad")
		}
	})

	readyCondition := func() *v1.NodeCondition {
		node, err := s.Client.CoreV1().Nodes().Get(context.Background(), "node-p", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		for i, c := range node.Status.Conditions {
			if c.Type == v1.NodeReady {
				return &node.Status.Conditions[i]
			}
		}
		return nil
	}
	var ready *v1.NodeCondition
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		ready = readyCondition()
		return ready != nil, nil
	}); err != nil {
		t.Fatal("the node never registered")
	}
	if ready.Status != v1.ConditionFalse || ready.Reason != "KubeletNotReady" || ready.Message != "importing images from /images" {
		t.Errorf("Ready while preparing = %s %s %q, want False KubeletNotReady with what it prepares", ready.Status, ready.Reason, ready.Message)
	}

	// a pod bound while the node prepares waits for it
	pod := n.CreatePod(simplePod("early", "c"))
	for range 10 {
		time.Sleep(50 * time.Millisecond) // a relist period: time for a kubelet that would start it
		p, err := s.Client.CoreV1().Pods("default").Get(context.Background(), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sandboxes, _, _ := fake.Counts(); sandboxes > 0 || len(p.Status.ContainerStatuses) > 0 {
			t.Fatalf("the pod started while the node prepared: %d sandboxes, status %s", sandboxes, kubelettest.DescribeStatus(p))
		}
	}
	if ready = readyCondition(); ready == nil || ready.Status != v1.ConditionFalse {
		t.Errorf("Ready while preparing = %+v, want False", ready)
	}

	close(release)
	n.WaitPod(pod, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	if ready = readyCondition(); ready == nil || ready.Status != v1.ConditionTrue || ready.Reason != "KubeletReady" {
		t.Errorf("Ready after preparing = %+v, want True KubeletReady", ready)
	}
}
