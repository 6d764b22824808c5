package namespace

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

var resources = []*metav1.APIResourceList{
	{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "pods", Kind: "Pod", Namespaced: true, Verbs: []string{"list", "delete", "deletecollection"}},
		{Name: "configmaps", Kind: "ConfigMap", Namespaced: true, Verbs: []string{"list", "delete"}},
	}},
}

type nsFixture struct {
	t       *testing.T
	client  *fake.Clientset
	dynamic *dynamicfake.FakeDynamicClient
	c       *Controller
}

func newNSFixture(t *testing.T, ns *corev1.Namespace, content ...runtime.Object) *nsFixture {
	t.Helper()
	client := fake.NewClientset(append([]runtime.Object{ns}, content...)...)
	dyn := dynamicfake.NewSimpleDynamicClient(scheme.Scheme, content...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Core().V1().Namespaces(), client, dyn, func() ([]*metav1.APIResourceList, error) { return resources, nil }, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return &nsFixture{t: t, client: client, dynamic: dyn, c: c}
}

func terminating(name string) *corev1.Namespace {
	return &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, DeletionTimestamp: ptr.To(metav1.NewTime(time.Now().Add(-time.Minute)))},
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating},
	}
}

func (f *nsFixture) namespaceWrites() []clienttesting.Action {
	var out []clienttesting.Action
	for _, a := range f.client.Actions() {
		if a.GetResource().Resource == "namespaces" && (a.GetVerb() == "update" || a.GetVerb() == "create") {
			out = append(out, a)
		}
	}
	return out
}

func TestEmptyTerminatingNamespaceIsFinalized(t *testing.T) {
	f := newNSFixture(t, terminating("gone"))
	if err := f.c.sync(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	var finalized *corev1.Namespace
	for _, a := range f.namespaceWrites() {
		if a.GetSubresource() == "finalize" {
			finalized = a.(clienttesting.UpdateAction).GetObject().(*corev1.Namespace)
		}
	}
	if finalized == nil || len(finalized.Spec.Finalizers) != 0 {
		t.Fatalf("finalize = %+v, want the kubernetes finalizer removed", finalized)
	}
	// the conditions said all was well before it went
	var ns *corev1.Namespace
	for _, a := range f.namespaceWrites() {
		if a.GetSubresource() == "status" {
			ns = a.(clienttesting.UpdateAction).GetObject().(*corev1.Namespace)
		}
	}
	if ns == nil || len(ns.Status.Conditions) != 5 {
		t.Fatalf("conditions = %+v, want the five of upstream", ns.Status.Conditions)
	}
	for _, c := range ns.Status.Conditions {
		if c.Status != corev1.ConditionFalse || c.Reason != okReasons[c.Type] {
			t.Errorf("condition %+v, want False with reason %s", c, okReasons[c.Type])
		}
	}
	if _, err := f.client.CoreV1().Namespaces().Get(context.Background(), "gone", metav1.GetOptions{}); err == nil {
		t.Error("finalized namespace still there")
	}
}

func TestActiveNamespaceIsLeftAlone(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "live"}, Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "keep", Namespace: "live"}}
	f := newNSFixture(t, ns, cm)
	if err := f.c.sync(context.Background(), "live"); err != nil {
		t.Fatal(err)
	}
	if w := f.namespaceWrites(); len(w) != 0 {
		t.Errorf("namespace writes %v, want none", w)
	}
	for _, a := range f.dynamic.Actions() {
		if a.GetVerb() == "delete" || a.GetVerb() == "delete-collection" {
			t.Errorf("content deleted in an active namespace: %v", a)
		}
	}
}

func TestPodsGoFirstAndTheRestWaitsForThem(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec:       corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To(int64(3600))},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}}
	f := newNSFixture(t, terminating("ns"), pod, cm)
	// the pod stays while its kubelet stops it
	f.dynamic.PrependReactor("delete-collection", "pods", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, nil
	})
	err := f.c.sync(context.Background(), "ns")
	if err == nil || !strings.Contains(err.Error(), "some content remains") {
		t.Fatalf("sync = %v, want a requeue while the pod terminates", err)
	}
	for _, a := range f.dynamic.Actions() {
		if a.GetResource().Resource == "configmaps" && (a.GetVerb() == "delete" || a.GetVerb() == "delete-collection") {
			t.Errorf("configmaps deleted while pods remain: %v", a)
		}
	}
	ns, _ := f.client.CoreV1().Namespaces().Get(context.Background(), "ns", metav1.GetOptions{})
	c := findCondition(ns.Status.Conditions, corev1.NamespaceContentRemaining)
	if c == nil || c.Status != corev1.ConditionTrue || c.Reason != "SomeResourcesRemain" || c.Message != "Some resources are remaining: pods. has 1 resource instances" {
		t.Errorf("NamespaceContentRemaining = %+v, want upstream's message about the pod", c)
	}
}

func TestContentWithFinalizersIsReportedAndWaitedFor(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns", Finalizers: []string{"example.com/hold"}}}
	f := newNSFixture(t, terminating("ns"), cm)
	f.dynamic.PrependReactor("delete", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, nil // held by its finalizer
	})
	err := f.c.sync(context.Background(), "ns")
	if err == nil {
		t.Fatal("sync finalized a namespace with content left")
	}
	ns, _ := f.client.CoreV1().Namespaces().Get(context.Background(), "ns", metav1.GetOptions{})
	c := findCondition(ns.Status.Conditions, corev1.NamespaceFinalizersRemaining)
	if c == nil || c.Reason != "SomeFinalizersRemain" || c.Message != "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances" {
		t.Errorf("NamespaceFinalizersRemaining = %+v, want upstream's message", c)
	}
	for _, a := range f.namespaceWrites() {
		if a.GetSubresource() == "finalize" {
			t.Error("namespace finalized with content left")
		}
	}
}
