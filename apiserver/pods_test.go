package apiserver_test

import (
	"context"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestBindingSetsNodeNameOnceAndScheduledCondition(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	pods := s.Client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, testPod("b"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node1"}}
	if err := pods.Bind(ctx, bind, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := pods.Get(ctx, "b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.NodeName != "node1" {
		t.Errorf("nodeName %q after binding", got.Spec.NodeName)
	}
	scheduled := false
	for _, c := range got.Status.Conditions {
		scheduled = scheduled || (c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue)
	}
	if !scheduled {
		t.Errorf("no PodScheduled=True condition: %v", got.Status.Conditions)
	}
	bind.Target.Name = "node2"
	err = pods.Bind(ctx, bind, metav1.CreateOptions{})
	if !apierrors.IsConflict(err) || err.Error() != `Operation cannot be fulfilled on pods/binding "b": pod b is already assigned to node "node1"` {
		t.Errorf("second binding: %v, want upstream's Conflict", err)
	}
	// a bound pod is deleted gracefully: it stays, marked, until the kubelet finishes
	if err := pods.Delete(ctx, "b", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)}); err != nil {
		t.Fatal(err)
	}
	marked, err := pods.Get(ctx, "b", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("bound pod gone at once: %v", err)
	}
	if marked.DeletionTimestamp == nil || marked.DeletionGracePeriodSeconds == nil || *marked.DeletionGracePeriodSeconds != 30 {
		t.Errorf("deletionTimestamp %v grace %v", marked.DeletionTimestamp, marked.DeletionGracePeriodSeconds)
	}
	if err := pods.Delete(ctx, "b", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after a zero-grace delete: %v, want NotFound", err)
	}
}

func TestPodSpecAndStatusAreWrittenApart(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	pods := s.Client.CoreV1().Pods("default")
	p, err := pods.Create(ctx, testPod("split"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = "10.0.0.5"
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.5"}}
	p.Spec.ActiveDeadlineSeconds = ptr.To[int64](100)
	st, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.Phase != corev1.PodRunning || st.Spec.ActiveDeadlineSeconds != nil {
		t.Errorf("status write: phase %q, spec change leaked: %v", st.Status.Phase, st.Spec.ActiveDeadlineSeconds)
	}
	list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "status.podIP=10.0.0.5,status.phase=Running"})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("field-selected by status: %d %v", len(list.Items), err)
	}
	// status patch, as the kubelet sends it
	patched, err := pods.Patch(ctx, "split", types.StrategicMergePatchType, []byte(`{"status":{"phase":"Succeeded"}}`), metav1.PatchOptions{}, "status")
	if err != nil {
		t.Fatal(err)
	}
	if patched.Status.Phase != corev1.PodSucceeded {
		t.Errorf("status patch: phase %q", patched.Status.Phase)
	}
	// the image may change; other spec fields may not
	patched.Spec.Containers[0].Image = "busybox:1.37"
	if _, err := pods.Update(ctx, patched, metav1.UpdateOptions{}); err != nil {
		t.Errorf("image update refused: %v", err)
	}
}

func TestNamespaceDeletionMarksTerminating(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	ns, err := s.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gone"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Status.Phase != corev1.NamespaceActive || len(ns.Spec.Finalizers) != 1 || ns.Spec.Finalizers[0] != corev1.FinalizerKubernetes {
		t.Fatalf("new namespace: phase %q finalizers %v", ns.Status.Phase, ns.Spec.Finalizers)
	}
	if err := s.Client.CoreV1().Namespaces().Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Client.CoreV1().Namespaces().Get(ctx, "gone", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.NamespaceTerminating || got.DeletionTimestamp == nil {
		t.Fatalf("deleted namespace: phase %q deletionTimestamp %v", got.Status.Phase, got.DeletionTimestamp)
	}
	// what the namespace controller does once the namespace is empty
	got.Spec.Finalizers = nil
	if _, err := s.Client.CoreV1().Namespaces().Finalize(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Client.CoreV1().Namespaces().Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.CoreV1().Namespaces().Get(ctx, "gone", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("finalized namespace: %v, want NotFound", err)
	}
}

// An object leaving a watch's selector arrives as DELETED carrying its last matching state
// with the new resourceVersion; that state was never stored and must not be served later as
// the object at that resourceVersion.
func TestGetAfterSelectorLeavingWatchSeesTheStoredState(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	pods := s.Client.CoreV1().Pods("default")
	p, err := pods.Create(ctx, testPod("leaver"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=", ResourceVersion: p.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "leaver"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Type != "DELETED" {
		t.Fatalf("event %s, want DELETED", ev.Type)
	}
	got, err := pods.Get(ctx, "leaver", metav1.GetOptions{})
	if err != nil || got.Spec.NodeName != "n1" {
		t.Fatalf("GET after the watch: nodeName %q (%v), want n1", got.Spec.NodeName, err)
	}
}

func TestGracefulPodDeletionAnswers200AndCountsAGeneration(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	scheduled := testPod("graceful")
	scheduled.Spec.NodeName = "node1" // an unscheduled pod is deleted at once
	pod, err := s.Client.CoreV1().Pods("default").Create(ctx, scheduled, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Generation != 1 {
		t.Fatalf("new pod generation %d", pod.Generation)
	}
	var code int
	result := s.Client.CoreV1().RESTClient().Delete().Namespace("default").Resource("pods").Name("graceful").
		Body(&metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)}).Do(ctx).StatusCode(&code)
	if err := result.Error(); err != nil {
		t.Fatal(err)
	}
	obj, err := result.Get()
	if err != nil {
		t.Fatal(err)
	}
	marked, ok := obj.(*corev1.Pod)
	if code != http.StatusOK || !ok || marked.DeletionTimestamp == nil {
		t.Fatalf("graceful delete answered %d %T", code, obj)
	}
	if marked.Generation != 2 {
		t.Errorf("generation after a graceful delete: %d, want 2", marked.Generation)
	}
}
