package intern

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func pod(cpu, memory string) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memory)},
		}}},
		InitContainers: []corev1.Container{{Name: "i"}},
	}}
}

func TestPodsOfOneTemplateShareTheirLists(t *testing.T) {
	in := NewResources()
	a, b, c := pod("100m", "64Mi"), pod("100m", "64Mi"), pod("0.1", "64Mi")
	other := pod("200m", "64Mi")
	want := other.DeepCopy()
	for _, p := range []*corev1.Pod{a, b, c, other} {
		in.Pod(p)
	}
	same := func(x, y corev1.ResourceList) bool {
		return reflect.ValueOf(x).Pointer() == reflect.ValueOf(y).Pointer()
	}
	ra, rb, rc := a.Spec.Containers[0].Resources, b.Spec.Containers[0].Resources, c.Spec.Containers[0].Resources
	if !same(ra.Requests, rb.Requests) || !same(ra.Limits, rb.Limits) {
		t.Error("two pods of one template do not share their lists")
	}
	// 0.1 and 100m are one quantity, written as 100m
	if !same(ra.Requests, rc.Requests) {
		t.Error("equal quantities written differently are not shared")
	}
	if same(ra.Requests, other.Spec.Containers[0].Resources.Requests) {
		t.Error("different requests share one list")
	}
	// a pod's memory limit equals its memory request alone: a list of one is not a list of two
	if same(ra.Requests, ra.Limits) {
		t.Error("lists of different resources share one list")
	}
	if !reflect.DeepEqual(other, want) {
		t.Errorf("interning changed the pod:\n got %+v\nwant %+v", other.Spec, want.Spec)
	}
	if a.Spec.InitContainers[0].Resources.Requests != nil || a.Spec.Overhead != nil {
		t.Error("empty lists were given a list")
	}
}
