package intern

import (
	"reflect"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
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

func TestPodsOfOneTemplateShareTheirResourceLists(t *testing.T) {
	in := NewPods()
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

func templatePod(name, app string) *corev1.Pod {
	mode := int32(420)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app, "pod-template-hash": "5d4f"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app, UID: "rs-" + types.UID(app),
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c"}},
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
			},
			Volumes: []corev1.Volume{{Name: "kube-api-access-" + name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				DefaultMode: &mode,
				Sources:     []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}}},
			}}}},
		},
	}
}

func TestPodsOfOneTemplateShareTheirLabelsOwnersTolerationsAndTokenVolume(t *testing.T) {
	in := NewPods()
	a, b, other := templatePod("a", "web"), templatePod("b", "web"), templatePod("c", "api")
	want := []*corev1.Pod{a.DeepCopy(), b.DeepCopy(), other.DeepCopy()}
	for _, p := range []*corev1.Pod{a, b, other} {
		in.Pod(p)
	}
	for i, p := range []*corev1.Pod{a, b, other} {
		if !reflect.DeepEqual(p, want[i]) {
			t.Errorf("interning changed pod %s:\n got %+v\nwant %+v", p.Name, p, want[i])
		}
	}
	sameMap := func(x, y map[string]string) bool { return reflect.ValueOf(x).Pointer() == reflect.ValueOf(y).Pointer() }
	sameSlice := func(x, y any) bool { return reflect.ValueOf(x).Pointer() == reflect.ValueOf(y).Pointer() }
	if !sameMap(a.Labels, b.Labels) || !sameSlice(a.OwnerReferences, b.OwnerReferences) ||
		!sameSlice(a.Spec.Tolerations, b.Spec.Tolerations) || a.Spec.Volumes[0].Projected != b.Spec.Volumes[0].Projected {
		t.Error("two pods of one template do not share their labels, owners, tolerations and token volume")
	}
	// the volume's own name differs; only its source is shared
	if a.Spec.Volumes[0].Name == b.Spec.Volumes[0].Name {
		t.Error("the volumes' names were shared")
	}
	if sameMap(a.Labels, other.Labels) || sameSlice(a.OwnerReferences, other.OwnerReferences) {
		t.Error("another template's labels or owner share the first's")
	}
	// equal in every field the key sees, or not shared: a later field decides too
	c := templatePod("d", "web")
	c.OwnerReferences[0].BlockOwnerDeletion = nil
	c.Spec.Tolerations[0].TolerationSeconds = ptr.To[int64](60)
	in.Pod(c)
	if sameSlice(a.OwnerReferences, c.OwnerReferences) || sameSlice(a.Spec.Tolerations, c.Spec.Tolerations) {
		t.Error("owner references or tolerations that differ in one field share one copy")
	}
}

func TestPodsForgetsPastItsBound(t *testing.T) {
	in := NewPods()
	for i := range maxHeld + 10 {
		p := templatePod("p", "app-"+strconv.Itoa(i))
		in.Pod(p)
	}
	if in.held > maxHeld {
		t.Errorf("the interner holds %d parts, over its bound %d", in.held, maxHeld)
	}
}
