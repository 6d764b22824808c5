package apiserver_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func resizablePod(name string, resources corev1.ResourceRequirements) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c1", Image: "busybox", Resources: resources,
			ResizePolicy: []corev1.ContainerResizePolicy{{ResourceName: corev1.ResourceCPU, RestartPolicy: corev1.NotRequired}},
		}}},
	}
}

func requests(cpu, mem string) corev1.ResourceList {
	out := corev1.ResourceList{}
	if cpu != "" {
		out[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		out[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return out
}

func TestPodsResizeSubresourceChangesOnlyResourcesAndBumpsGeneration(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	pods := s.Client.CoreV1().Pods("default")
	pod, err := pods.Create(ctx, resizablePod("burstable", corev1.ResourceRequirements{Requests: requests("20m", "35Mi")}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Generation != 1 {
		t.Fatalf("generation %d", pod.Generation)
	}

	// a strategic merge patch of resources, as kubectl patch --subresource resize sends; the
	// image it also changes is not a resize and is dropped
	patch := `{"spec":{"containers":[{"name":"c1","image":"other","resources":{"requests":{"cpu":"25m","memory":"40Mi"},"limits":{"cpu":"35m"}}}]}}`
	resized, err := pods.Patch(ctx, "burstable", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "resize")
	if err != nil {
		t.Fatal(err)
	}
	c := resized.Spec.Containers[0]
	if c.Resources.Requests.Cpu().String() != "25m" || c.Resources.Requests.Memory().String() != "40Mi" || c.Resources.Limits.Cpu().String() != "35m" {
		t.Errorf("resources after resize: %v", c.Resources)
	}
	if c.Image != "busybox" {
		t.Errorf("image %q: a resize changes resources only", c.Image)
	}
	if resized.Generation != 2 {
		t.Errorf("generation %d after a resize, want 2", resized.Generation)
	}

	// read through the subresource, and replaced through it
	got, err := s.Client.CoreV1().RESTClient().Get().Namespace("default").Resource("pods").Name("burstable").SubResource("resize").Do(ctx).Get()
	if err != nil {
		t.Fatal(err)
	}
	if p := got.(*corev1.Pod); p.Spec.Containers[0].Resources.Requests.Cpu().String() != "25m" {
		t.Errorf("pods/resize read %v", p.Spec.Containers[0].Resources)
	}
	resized.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("30m")
	replaced, err := pods.UpdateResize(ctx, "burstable", resized, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if replaced.Spec.Containers[0].Resources.Requests.Cpu().String() != "30m" || replaced.Generation != 3 {
		t.Errorf("after replace: %v, generation %d", replaced.Spec.Containers[0].Resources, replaced.Generation)
	}

	// the main endpoint still refuses a change of resources
	replaced.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("40m")
	if _, err := pods.Update(ctx, replaced, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("update of resources through pods = %v, want 422", err)
	}

	if _, err := pods.Create(ctx, resizablePod("besteffort", corev1.ResourceRequirements{}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, pod, patch, message string
	}{
		{"a BestEffort pod asks for memory", "besteffort", `{"spec":{"containers":[{"name":"c1","resources":{"requests":{"memory":"40Mi"}}}]}}`,
			`Pod "besteffort" is invalid: spec: Invalid value: "BestEffort": Pod QOS Class may not change as a result of resizing`},
		{"memory requests removed", "burstable", `{"spec":{"containers":[{"name":"c1","resources":{"requests":{"memory":null}}}]}}`,
			`Pod "burstable" is invalid: spec.containers[0].resources.requests: Forbidden: resource requests cannot be removed`},
		{"cpu limits removed", "burstable", `{"spec":{"containers":[{"name":"c1","resources":{"limits":null}}]}}`,
			`Pod "burstable" is invalid: spec.containers[0].resources.limits: Forbidden: resource limits cannot be removed`},
		{"an extended resource asked for", "burstable", `{"spec":{"containers":[{"name":"c1","resources":{"requests":{"example.com/gpu":"1"},"limits":{"example.com/gpu":"1"}}}]}}`,
			`Pod "burstable" is invalid: spec: Forbidden: only cpu and memory resources are mutable`},
		{"a container added", "burstable", `{"spec":{"containers":[{"name":"c2","image":"busybox"}]}}`,
			`Pod "burstable" is invalid: spec.containers: Forbidden: containers may not be added or removed on resize`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdSnapshot(t, s)
			_, err := pods.Patch(ctx, tc.pod, types.StrategicMergePatchType, []byte(tc.patch), metav1.PatchOptions{}, "resize")
			var se *apierrors.StatusError
			if !asStatus(err, &se) {
				t.Fatalf("error %v, want a Status", err)
			}
			if st := se.ErrStatus; st.Code != 422 || st.Message != tc.message {
				t.Errorf("got %d %q\nwant 422 %q", st.Code, st.Message, tc.message)
			}
			if after := etcdSnapshot(t, s); !sameSnapshot(before, after) {
				t.Errorf("etcd changed by a refused resize: %v", snapshotDiff(before, after))
			}
		})
	}
}
