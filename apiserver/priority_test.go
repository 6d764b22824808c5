package apiserver_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestPodPriorityComesFromItsPriorityClass(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	pcs := s.Client.SchedulingV1().PriorityClasses()
	system, err := pcs.Get(ctx, "system-cluster-critical", metav1.GetOptions{})
	if err != nil || system.Value != 2000000000 {
		t.Fatalf("system class: %v %v", system, err)
	}
	if _, err := pcs.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = pcs.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "huge"}, Value: 2000000000}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || err.Error() != `PriorityClass.scheduling.k8s.io "huge" is invalid: value: Forbidden: maximum allowed value of a user defined priority is 1000000000` {
		t.Errorf("too high a user class: %v", err)
	}

	pods := s.Client.CoreV1().Pods("default")
	plain, err := pods.Create(ctx, testPod("plain"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Spec.Priority == nil || *plain.Spec.Priority != 0 || *plain.Spec.PreemptionPolicy != corev1.PreemptLowerPriority {
		t.Errorf("pod without a class: priority %v policy %v", plain.Spec.Priority, plain.Spec.PreemptionPolicy)
	}
	classy := testPod("classy")
	classy.Spec.PriorityClassName = "high"
	got, err := pods.Create(ctx, classy, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Spec.Priority != 1000 {
		t.Errorf("pod of class high: priority %d", *got.Spec.Priority)
	}
	missing := testPod("missing")
	missing.Spec.PriorityClassName = "nope"
	_, err = pods.Create(ctx, missing, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || err.Error() != `pods "missing" is forbidden: no PriorityClass with name nope was found` {
		t.Errorf("pod of a missing class: %v", err)
	}
	if _, err := pcs.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "default-one"}, Value: 10, GlobalDefault: true}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = pcs.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "default-two"}, Value: 20, GlobalDefault: true}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("second global default: %v, want Forbidden", err)
	}
	defaulted, err := pods.Create(ctx, testPod("defaulted"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *defaulted.Spec.Priority != 10 || defaulted.Spec.PriorityClassName != "default-one" {
		t.Errorf("pod under a global default: priority %d class %q", *defaulted.Spec.Priority, defaulted.Spec.PriorityClassName)
	}
}
