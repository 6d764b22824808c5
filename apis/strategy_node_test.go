package apis

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCreateNodeKeepsStatusButDropsDynamicConfig(t *testing.T) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Spec:       corev1.NodeSpec{ConfigSource: &corev1.NodeConfigSource{ConfigMap: &corev1.ConfigMapNodeConfigSource{Name: "c"}}},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")},
			Config:   &corev1.NodeConfigStatus{Error: "x"},
		},
	}
	NodeStrategy.PrepareForCreate(context.Background(), node)
	if node.Spec.ConfigSource != nil || node.Status.Config != nil {
		t.Errorf("configSource %v, config %v: want both dropped", node.Spec.ConfigSource, node.Status.Config)
	}
	if _, ok := node.Status.Capacity[corev1.ResourcePods]; !ok {
		t.Error("capacity dropped: a kubelet registers its node with status")
	}
	if errs := NodeStrategy.Validate(context.Background(), node); len(errs) != 0 {
		t.Errorf("Validate: %v", errs)
	}
}

func TestUpdateNodeKeepsStatusAndNodeStatusKeepsSpec(t *testing.T) {
	old := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: "3"},
		Status:     corev1.NodeStatus{Phase: corev1.NodeRunning},
	}

	node := old.DeepCopy()
	node.Spec.Unschedulable = true
	node.Status.Phase = corev1.NodeTerminated
	NodeStrategy.PrepareForUpdate(context.Background(), node, old)
	if !node.Spec.Unschedulable || node.Status.Phase != corev1.NodeRunning {
		t.Errorf("main update: unschedulable %v, phase %s; want true, Running", node.Spec.Unschedulable, node.Status.Phase)
	}
	if errs := NodeStrategy.ValidateUpdate(context.Background(), node, old); len(errs) != 0 {
		t.Errorf("ValidateUpdate: %v", errs)
	}

	status := old.DeepCopy()
	status.Spec.Unschedulable = true
	status.Labels = map[string]string{"a": "b"}
	status.Status.Phase = corev1.NodeTerminated
	NodeStatusStrategy.PrepareForUpdate(context.Background(), status, old)
	if status.Spec.Unschedulable || status.Status.Phase != corev1.NodeTerminated || status.Labels["a"] != "b" {
		t.Errorf("status update: unschedulable %v, phase %s, labels %v; want false, Terminated, a=b",
			status.Spec.Unschedulable, status.Status.Phase, status.Labels)
	}
	if NodeStrategy.AllowCreateOnUpdate() || !NodeStrategy.AllowUnconditionalUpdate() {
		t.Error("nodes: want no create on update, unconditional updates allowed")
	}
}
