package apis

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDefaultSecretTypeIsOpaque(t *testing.T) {
	s := &corev1.Secret{}
	Scheme.Default(s)
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("type = %q, want Opaque", s.Type)
	}
	tls := &corev1.Secret{Type: corev1.SecretTypeTLS}
	Scheme.Default(tls)
	if tls.Type != corev1.SecretTypeTLS {
		t.Errorf("type = %q, want it kept", tls.Type)
	}
}

func TestDefaultReplicaSetHasOneReplicaAndADefaultedTemplate(t *testing.T) {
	rs := &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
	}}}
	Scheme.Default(rs)
	if rs.Spec.Replicas == nil || *rs.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1", rs.Spec.Replicas)
	}
	// apps/v1 does not copy template labels to the selector or the replica set.
	if rs.Spec.Selector != nil || rs.Labels != nil {
		t.Errorf("selector %v and labels %v should stay empty", rs.Spec.Selector, rs.Labels)
	}
	want := corev1.PodSpec{}
	DefaultPodSpec(&want)
	if !equality.Semantic.DeepEqual(rs.Spec.Template.Spec, want) {
		t.Errorf("template spec = %+v, want DefaultPodSpec's %+v", rs.Spec.Template.Spec, want)
	}

	zero := int32(0)
	scaledDown := &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Replicas: &zero}}
	Scheme.Default(scaledDown)
	if *scaledDown.Spec.Replicas != 0 {
		t.Errorf("replicas = %d, want 0 kept", *scaledDown.Spec.Replicas)
	}
}

func TestDefaultNamespaceIsActiveAndLabelledWithItsName(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{corev1.LabelMetadataName: "spoofed"}}}
	Scheme.Default(ns)
	if ns.Status.Phase != corev1.NamespaceActive {
		t.Errorf("phase = %q, want Active", ns.Status.Phase)
	}
	if ns.Labels[corev1.LabelMetadataName] != "team-a" {
		t.Errorf("labels = %v, want %s=team-a", ns.Labels, corev1.LabelMetadataName)
	}
	generated := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "team-"}}
	Scheme.Default(generated)
	if generated.Labels != nil {
		t.Errorf("labels = %v, want none before the name is known", generated.Labels)
	}
}

func TestDefaultNodeAllocatableIsCapacityRoundedToMilli(t *testing.T) {
	node := &corev1.Node{Status: corev1.NodeStatus{Capacity: corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("1500u"),
		corev1.ResourceMemory: resource.MustParse("1Gi"),
	}}}
	Scheme.Default(node)
	if got := node.Status.Capacity[corev1.ResourceCPU]; got.String() != "2m" {
		t.Errorf("capacity cpu = %s, want 2m", got.String())
	}
	if got := node.Status.Allocatable[corev1.ResourceMemory]; got.String() != "1Gi" {
		t.Errorf("allocatable memory = %s, want 1Gi", got.String())
	}
	if got := node.Status.Allocatable[corev1.ResourceCPU]; got.String() != "2m" {
		t.Errorf("allocatable cpu = %s, want 2m", got.String())
	}

	given := &corev1.Node{Status: corev1.NodeStatus{
		Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")},
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3")},
	}}
	Scheme.Default(given)
	if got := given.Status.Allocatable[corev1.ResourceCPU]; got.String() != "3" {
		t.Errorf("allocatable cpu = %s, want the given 3", got.String())
	}
}

func TestDefaultConfigMapHasData(t *testing.T) {
	cm := &corev1.ConfigMap{}
	Scheme.Default(cm)
	if cm.Data == nil {
		t.Error("data is nil, want an empty map as upstream")
	}
}

func TestDefaultListsDefaultTheirItems(t *testing.T) {
	list := &corev1.SecretList{Items: []corev1.Secret{{}, {Type: corev1.SecretTypeTLS}}}
	Scheme.Default(list)
	if list.Items[0].Type != corev1.SecretTypeOpaque || list.Items[1].Type != corev1.SecretTypeTLS {
		t.Errorf("types = %q, %q", list.Items[0].Type, list.Items[1].Type)
	}
}

func TestDefaultLeaveUndefaultedKindsAlone(t *testing.T) {
	lease := &coordinationv1.Lease{}
	Scheme.Default(lease)
	if !equality.Semantic.DeepEqual(lease, &coordinationv1.Lease{}) {
		t.Errorf("lease changed: %+v", lease)
	}
	sa := &corev1.ServiceAccount{}
	Scheme.Default(sa)
	if !equality.Semantic.DeepEqual(sa, &corev1.ServiceAccount{}) {
		t.Errorf("service account changed: %+v", sa)
	}
}

func TestDefaultPodUsesDefaultPod(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	want := pod.DeepCopy()
	DefaultPod(want)
	Scheme.Default(pod)
	if !equality.Semantic.DeepEqual(pod, want) {
		t.Errorf("Scheme.Default(pod) = %+v, want DefaultPod's %+v", pod, want)
	}
	list := &corev1.PodList{Items: []corev1.Pod{*pod.DeepCopy()}}
	list.Items[0].Spec = corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}
	Scheme.Default(list)
	if !equality.Semantic.DeepEqual(&list.Items[0], want) {
		t.Errorf("Scheme.Default(podList) item = %+v, want %+v", list.Items[0], want)
	}
}
