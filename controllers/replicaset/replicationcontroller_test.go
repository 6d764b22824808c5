package replicaset

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

func newRC(name string, replicas int32) *corev1.ReplicationController {
	labels := map[string]string{"app": name}
	return &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"), Generation: 2},
		Spec: corev1.ReplicationControllerSpec{
			Replicas: ptr.To(replicas),
			Selector: labels,
			Template: &corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
}

func newRCFixture(t *testing.T, objects ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objects...)
	generateNames(client)
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(1000)
	c, err := NewForReplicationControllers(factory.Core().V1().ReplicationControllers(), factory.Core().V1().Pods(), client, controllers.Reporting{
		Recorder: func(string) record.EventRecorder { return recorder },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return &fixture{t: t, client: client, c: c, recorder: recorder}
}

func TestReplicationControllerSyncCreatesPodsItControls(t *testing.T) {
	f := newRCFixture(t, newRC("web", 3))
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	creates := f.actions("create", "pods")
	if len(creates) != 3 {
		t.Fatalf("created %d pods, want 3", len(creates))
	}
	pod := creates[0].(clienttesting.CreateAction).GetObject().(*corev1.Pod)
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "ReplicationController" || ref.APIVersion != "v1" || ref.UID != "web-uid" {
		t.Errorf("controllerRef = %+v, want the ReplicationController", ref)
	}
	if got := f.events(); len(got) != 3 || got[0][:len("Normal SuccessfulCreate")] != "Normal SuccessfulCreate" {
		t.Errorf("events = %q", got)
	}
}

func TestReplicationControllerStatusCountsItsPods(t *testing.T) {
	rc := newRC("web", 2)
	rs := replicaSetOf(rc)
	pods := []runtime.Object{rc}
	for _, name := range []string{"web-a", "web-b"} {
		p := running(newPod(name, rs), "node-1", metav1.Now().Add(-60e9))
		p.OwnerReferences[0].Kind, p.OwnerReferences[0].APIVersion = "ReplicationController", "v1"
		pods = append(pods, p)
	}
	f := newRCFixture(t, pods...)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.actions("create", "pods")) + len(f.actions("delete", "pods")); n != 0 {
		t.Errorf("%d pods created or deleted, want none", n)
	}
	got, err := f.client.CoreV1().ReplicationControllers("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := corev1.ReplicationControllerStatus{Replicas: 2, FullyLabeledReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, ObservedGeneration: 2}
	if got.Status.Replicas != want.Replicas || got.Status.ReadyReplicas != want.ReadyReplicas ||
		got.Status.AvailableReplicas != want.AvailableReplicas || got.Status.FullyLabeledReplicas != want.FullyLabeledReplicas ||
		got.Status.ObservedGeneration != want.ObservedGeneration {
		t.Errorf("status = %+v, want %+v", got.Status, want)
	}
}

func TestReplicationControllerAdoptsOrphansItsSelectorMapMatches(t *testing.T) {
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stray", Namespace: "default", UID: "stray-uid", Labels: map[string]string{"app": "web"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	f := newRCFixture(t, newRC("web", 1), orphan)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.actions("create", "pods")); n != 0 {
		t.Errorf("created %d pods, want the orphan adopted instead", n)
	}
	var patched bool
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "patch" && a.GetResource().Resource == "pods" {
			patched = string(a.(clienttesting.PatchAction).GetPatch()) != ""
		}
	}
	if !patched {
		t.Error("the orphan was not adopted")
	}
}
