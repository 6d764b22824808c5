package apis

import (
	"context"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCreateNamespaceIsActiveWithTheKubernetesFinalizerAndNameLabel(t *testing.T) {
	for _, tc := range []struct {
		name       string
		finalizers []corev1.FinalizerName
		want       []corev1.FinalizerName
	}{
		{"none given", nil, []corev1.FinalizerName{"kubernetes"}},
		{"others kept", []corev1.FinalizerName{"example.com/x"}, []corev1.FinalizerName{"example.com/x", "kubernetes"}},
		{"not repeated", []corev1.FinalizerName{"kubernetes"}, []corev1.FinalizerName{"kubernetes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := &corev1.Namespace{
				ObjectMeta: metav1.ObjectMeta{Name: "team-a"},
				Spec:       corev1.NamespaceSpec{Finalizers: tc.finalizers},
				Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating},
			}
			NamespaceStrategy.PrepareForCreate(context.Background(), ns)
			if !reflect.DeepEqual(ns.Spec.Finalizers, tc.want) {
				t.Errorf("finalizers = %v, want %v", ns.Spec.Finalizers, tc.want)
			}
			if ns.Status.Phase != corev1.NamespaceActive || ns.Labels[corev1.LabelMetadataName] != "team-a" {
				t.Errorf("phase %s, labels %v", ns.Status.Phase, ns.Labels)
			}
			if errs := NamespaceStrategy.Validate(context.Background(), ns); len(errs) != 0 {
				t.Errorf("Validate: %v", errs)
			}
		})
	}
}

func TestNamespaceSubresourcesWriteOnlyTheirPart(t *testing.T) {
	old := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a", ResourceVersion: "4", Labels: map[string]string{corev1.LabelMetadataName: "team-a"}},
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
	}
	write := func() *corev1.Namespace {
		ns := old.DeepCopy()
		ns.Labels = map[string]string{"owner": "me"}
		ns.Spec.Finalizers = nil
		ns.Status.Phase = corev1.NamespaceTerminating
		return ns
	}

	main := write()
	NamespaceStrategy.PrepareForUpdate(context.Background(), main, old)
	if len(main.Spec.Finalizers) != 1 || main.Status.Phase != corev1.NamespaceActive {
		t.Errorf("main: finalizers %v, phase %s; want both kept", main.Spec.Finalizers, main.Status.Phase)
	}
	if main.Labels["owner"] != "me" || main.Labels[corev1.LabelMetadataName] != "team-a" {
		t.Errorf("main: labels %v; want the written label and the name label", main.Labels)
	}

	status := write()
	NamespaceStatusStrategy.PrepareForUpdate(context.Background(), status, old)
	if len(status.Spec.Finalizers) != 1 || status.Status.Phase != corev1.NamespaceTerminating {
		t.Errorf("status: finalizers %v, phase %s; want spec kept, phase written", status.Spec.Finalizers, status.Status.Phase)
	}
	checkErrorStrings(t, NamespaceStatusStrategy.ValidateUpdate(context.Background(), status, old),
		"status.Phase: Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty")

	finalize := write()
	NamespaceFinalizeStrategy.PrepareForUpdate(context.Background(), finalize, old)
	if len(finalize.Spec.Finalizers) != 0 || finalize.Status.Phase != corev1.NamespaceActive {
		t.Errorf("finalize: finalizers %v, phase %s; want finalizers written, status kept", finalize.Spec.Finalizers, finalize.Status.Phase)
	}
	checkErrorStrings(t, NamespaceFinalizeStrategy.ValidateUpdate(context.Background(), finalize, old))
}
