package apiserver_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// notReadyNoScheduleTaints counts the node's node.kubernetes.io/not-ready:NoSchedule taints.
func notReadyNoScheduleTaints(n *corev1.Node) int {
	count := 0
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady && t.Effect == corev1.TaintEffectNoSchedule {
			count++
		}
	}
	return count
}

func TestTaintNodesByConditionTaintsNewNodesNotReady(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.EnableAdmission("TaintNodesByCondition"))
	ctx := context.Background()
	nodes := s.Client.CoreV1().Nodes()

	mine := corev1.Taint{Key: "example.com/gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}
	created, err := nodes.Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "fresh"},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{mine}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(created.Spec.Taints) != 2 || created.Spec.Taints[0] != mine || notReadyNoScheduleTaints(created) != 1 {
		t.Errorf("created node's taints %v, want its own then not-ready:NoSchedule", created.Spec.Taints)
	}
	stored, err := nodes.Get(ctx, "fresh", metav1.GetOptions{})
	if err != nil || notReadyNoScheduleTaints(stored) != 1 {
		t.Errorf("stored node's taints %v (%v), want not-ready:NoSchedule", stored.Spec.Taints, err)
	}

	// a node that states the taint itself keeps its own, value and all
	own := corev1.Taint{Key: corev1.TaintNodeNotReady, Value: "booting", Effect: corev1.TaintEffectNoSchedule}
	tainted, err := nodes.Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "tainted"},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{own}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tainted.Spec.Taints) != 1 || tainted.Spec.Taints[0] != own {
		t.Errorf("node created with the taint has taints %v, want only its own", tainted.Spec.Taints)
	}
	// the NoExecute taint of that key is another taint: the NoSchedule one is still added
	noExecute, err := nodes.Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "no-execute"},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(noExecute.Spec.Taints) != 2 || notReadyNoScheduleTaints(noExecute) != 1 {
		t.Errorf("node created with not-ready:NoExecute has taints %v, want not-ready:NoSchedule added", noExecute.Spec.Taints)
	}

	// only creates are admitted: removing the taint (as the node lifecycle controller does) sticks
	stored.Spec.Taints = stored.Spec.Taints[:1]
	updated, err := nodes.Update(ctx, stored, metav1.UpdateOptions{})
	if err != nil || notReadyNoScheduleTaints(updated) != 0 {
		t.Errorf("node updated without the taint: taints %v (%v), want none added", updated.Spec.Taints, err)
	}

	// a dry run answers what the create would store; a server-side apply that creates is a create
	dry, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil || notReadyNoScheduleTaints(dry) != 1 {
		t.Errorf("dry-run create: taints %v (%v), want not-ready:NoSchedule", dry.Spec.Taints, err)
	}
	applied, err := nodes.Apply(ctx, corev1ac.Node("applied"), metav1.ApplyOptions{FieldManager: "test"})
	if err != nil || notReadyNoScheduleTaints(applied) != 1 {
		t.Errorf("node created by apply: taints %v (%v), want not-ready:NoSchedule", applied.Spec.Taints, err)
	}
}

func TestNodesAreNotTaintedWithTaintNodesByConditionOff(t *testing.T) {
	s := apiservertest.Start(t) // the test server runs without the plugin
	created, err := s.Client.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(created.Spec.Taints) != 0 {
		t.Errorf("node created with the plugin off has taints %v, want none", created.Spec.Taints)
	}
}
