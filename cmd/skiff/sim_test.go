package main

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestSimRunsManyNodesThatRunPods(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	o := &simOptions{nodes: 5, namePrefix: "sim-", cpu: "4", memory: "16Gi", maxPods: 50}
	go func() { done <- runSim(ctx, o, s.Config, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sim: %v", err)
		}
	})

	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := s.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 5 {
			return false, nil
		}
		for _, n := range nodes.Items {
			ready := false
			for _, c := range n.Status.Conditions {
				ready = ready || c.Type == v1.NodeReady && c.Status == v1.ConditionTrue
			}
			if !ready || n.Status.Capacity.Cpu().String() != "4" || n.Status.Capacity.Pods().String() != "50" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal("five simulated nodes never registered Ready with their capacity")
	}
	for _, name := range []string{"sim-0", "sim-4"} {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := s.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, name, metav1.GetOptions{})
			return err == nil, nil
		})
		if err != nil {
			t.Errorf("no lease for %s", name)
		}
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec:       v1.PodSpec{NodeName: "sim-3", Containers: []v1.Container{{Name: "c", Image: "busybox:1.36", ImagePullPolicy: v1.PullIfNotPresent}}},
	}
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := s.Client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		return err == nil && p.Status.Phase == v1.PodRunning && p.Status.PodIP != "", nil
	})
	if err != nil {
		t.Fatal("pod on a simulated node never ran")
	}
}

func TestKubeletFlagsMakeAFakeNode(t *testing.T) {
	s := apiservertest.Start(t)
	cmd := newKubeletCommand(&globalOptions{})
	if err := cmd.Flags().Parse([]string{"--hostname-override", "Flag-Node", "--container-runtime-endpoint", "fake",
		"--system-reserved", "cpu=1,memory=1Gi", "--port", "0", "--address", "127.0.0.1", "--node-ip", "192.0.2.7"}); err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	if get("root-dir") != "/var/lib/skiff-kubelet" || get("max-pods") != "110" {
		t.Errorf("defaults: root-dir %s max-pods %s", get("root-dir"), get("max-pods"))
	}
	opts := &kubeletOptions{hostnameOverride: "Flag-Node", runtimeEndpoint: "fake", maxPods: 110, address: "127.0.0.1",
		systemReserved: map[string]string{"cpu": "1", "memory": "1Gi"}, nodeIPs: []string{"192.0.2.7"}}
	ctx, cancel := context.WithCancel(context.Background())
	setup, err := opts.setUp(ctx, s.Config)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- setup.run(ctx, false) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("kubelet: %v", err)
		}
	})
	var node *v1.Node
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		node, err = s.Client.CoreV1().Nodes().Get(ctx, "flag-node", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatal("node flag-node never registered")
	}
	capacity, allocatable := node.Status.Capacity.Cpu(), node.Status.Allocatable.Cpu()
	if capacity.Value()-allocatable.Value() != 1 {
		t.Errorf("cpu capacity %s allocatable %s with 1 reserved", capacity, allocatable)
	}
	if node.Status.Addresses[0].Address != "192.0.2.7" {
		t.Errorf("addresses %v", node.Status.Addresses)
	}
}
