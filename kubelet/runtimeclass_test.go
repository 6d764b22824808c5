package kubelet_test

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

// The pod's RuntimeClass handler goes to the runtime with its sandbox; a class that does not
// exist keeps the sandbox from being created, with upstream's event.
func TestRuntimeClassHandlerReachesTheRuntime(t *testing.T) {
	s, n := newFakeNode(t)
	ctx := context.Background()
	if _, err := s.Client.NodeV1().RuntimeClasses().Create(ctx, &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{Name: "sandboxed"}, Handler: "runsc",
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := simplePod("gvisor", "app")
	pod.Spec.RuntimeClassName = ptr.To("sandboxed")
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	sandboxes, err := n.Fake.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sandboxes) != 1 || sandboxes[0].RuntimeHandler != "runsc" {
		t.Errorf("sandboxes %v, want one with handler runsc", sandboxes)
	}

	// the API server refuses a pod of a missing class; one deleted after the pod was made is
	// the kubelet's to find missing (here while the kubelet is down)
	n.Stop()
	late := n.CreatePod(&v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: "default"},
		Spec:       v1.PodSpec{RuntimeClassName: ptr.To("sandboxed"), Containers: []v1.Container{{Name: "app", Image: "busybox:1.36", ImagePullPolicy: v1.PullIfNotPresent}}},
	})
	if err := s.Client.NodeV1().RuntimeClasses().Delete(ctx, "sandboxed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	n2 := kubelettest.StartFakeNode(t, s.Client, n.Fake, n.Name)
	n2.WaitEvent(late, `Warning FailedCreatePodSandBox Failed to create pod sandbox: runtimeclasses.node.k8s.io "sandboxed" not found`)
	if got := n2.WaitPod(late, "listed", func(*v1.Pod) bool { return true }); got.Status.Phase != v1.PodPending {
		t.Errorf("phase %s, want Pending", got.Status.Phase)
	}
}
