package apiserver_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// A pod asking for a RuntimeClass gets the class's overhead and scheduling from admission, as
// upstream's RuntimeClass plugin gives them; one asking for a class that does not exist, or
// stating an overhead of its own, is refused in upstream's words.
func TestRuntimeClassesGivePodsTheirOverheadAndScheduling(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	rcs := s.Client.NodeV1().RuntimeClasses()
	if _, err := rcs.Create(ctx, &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{Name: "sandboxed"},
		Handler:    "runsc",
		Overhead:   &nodev1.Overhead{PodFixed: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("120Mi")}},
		Scheduling: &nodev1.Scheduling{
			NodeSelector: map[string]string{"sandbox": "gvisor"},
			Tolerations:  []corev1.Toleration{{Key: "sandbox", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := s.Client.CoreV1().Pods("default")
	pod := testPod("sandboxed")
	pod.Spec.RuntimeClassName = ptr.To("sandboxed")
	pod.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	got, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Overhead.Cpu().String() != "250m" || got.Spec.NodeSelector["sandbox"] != "gvisor" || got.Spec.NodeSelector["disk"] != "ssd" ||
		!hasToleration(got.Spec.Tolerations, "sandbox") {
		t.Errorf("admitted pod: overhead %v, node selector %v, tolerations %v", got.Spec.Overhead, got.Spec.NodeSelector, got.Spec.Tolerations)
	}

	for _, tc := range []struct {
		name   string
		mutate func(*corev1.Pod)
		want   string
	}{
		{"missing", func(p *corev1.Pod) { p.Spec.RuntimeClassName = ptr.To("nope") },
			`pods "missing" is forbidden: pod rejected: RuntimeClass "nope" not found`},
		{"own-overhead", func(p *corev1.Pod) { p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")} },
			`pods "own-overhead" is forbidden: pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead`},
		{"other-overhead", func(p *corev1.Pod) {
			p.Spec.RuntimeClassName = ptr.To("sandboxed")
			p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
		}, `pods "other-overhead" is forbidden: pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead`},
		{"conflict", func(p *corev1.Pod) {
			p.Spec.RuntimeClassName = ptr.To("sandboxed")
			p.Spec.NodeSelector = map[string]string{"sandbox": "kata"}
		}, `pods "conflict" is forbidden: conflict: runtimeClass.scheduling.nodeSelector[sandbox] = gvisor; pod.spec.nodeSelector[sandbox] = kata`},
	} {
		p := testPod(tc.name)
		tc.mutate(p)
		_, err := pods.Create(ctx, p, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.name, err, tc.want)
		}
	}

	// validation as upstream's: a handler is a DNS label and may not change
	_, err = rcs.Create(ctx, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Handler: "Not_A_Label"}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `handler: Invalid value: "Not_A_Label": a lowercase RFC 1123 label must consist of`) {
		t.Errorf("bad handler: %v", err)
	}
	rc, err := rcs.Get(ctx, "sandboxed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc.Handler = "kata"
	_, err = rcs.Update(ctx, rc, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "handler: Invalid value: \"kata\": field is immutable") {
		t.Errorf("changed handler: %v", err)
	}

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	run := kubectlRunner(t, kubectlOnPath(t), kubeconfig, nil)
	if out := run("get", "runtimeclasses"); !strings.Contains(out, "NAME        HANDLER   AGE") || !strings.Contains(out, "sandboxed   runsc") {
		t.Errorf("kubectl get runtimeclasses:\n%s", out)
	}
}

func hasToleration(ts []corev1.Toleration, key string) bool {
	for _, t := range ts {
		if t.Key == key {
			return true
		}
	}
	return false
}
