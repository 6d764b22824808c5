package deployment

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

func testDeployment(name string, n int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"), Generation: 1,
			Annotations: map[string]string{"note": "copied", lastAppliedAnnotation: "not copied"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(n),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptr.To(intstr.FromString("25%")), MaxUnavailable: ptr.To(intstr.FromString("25%")),
			}},
			RevisionHistoryLimit:    ptr.To(int32(10)),
			ProgressDeadlineSeconds: ptr.To(int32(600)),
		},
	}
}

var uidSeq atomic.Int64

func syncOnce(t *testing.T, objects ...runtime.Object) (*fake.Clientset, *record.FakeRecorder) {
	t.Helper()
	client := fake.NewClientset(objects...)
	client.PrependReactor("create", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if obj := a.(clienttesting.CreateAction).GetObject().(metav1.Object); obj.GetUID() == "" {
			obj.SetUID(types.UID(fmt.Sprintf("uid-%d", uidSeq.Add(1))))
		}
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	rec := record.NewFakeRecorder(100)
	c, err := New(factory.Apps().V1().Deployments(), factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(), client,
		controllers.Reporting{Recorder: func(string) record.EventRecorder { return rec }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	if err := c.sync(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	return client, rec
}

func TestFirstSyncCreatesTheNewReplicaSetAtRevisionOne(t *testing.T) {
	d := testDeployment("web", 4)
	client, rec := syncOnce(t, d)
	rss, _ := client.AppsV1().ReplicaSets("default").List(context.Background(), metav1.ListOptions{})
	if len(rss.Items) != 1 {
		t.Fatalf("%d replica sets, want 1", len(rss.Items))
	}
	rs := rss.Items[0]
	hash := ComputeHash(&d.Spec.Template, nil)
	if rs.Name != "web-"+hash || rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash ||
		rs.Spec.Selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] != hash || rs.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash {
		t.Errorf("replica set %s labels %v selector %v, want named and labelled by pod-template-hash %s", rs.Name, rs.Labels, rs.Spec.Selector, hash)
	}
	if *rs.Spec.Replicas != 4 {
		t.Errorf("replicas %d, want 4", *rs.Spec.Replicas)
	}
	want := map[string]string{RevisionAnnotation: "1", DesiredReplicasAnnotation: "4", MaxReplicasAnnotation: "5", "note": "copied"}
	for k, v := range want {
		if rs.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, rs.Annotations[k], v)
		}
	}
	if _, ok := rs.Annotations[lastAppliedAnnotation]; ok {
		t.Error("last-applied-configuration copied to the replica set")
	}
	if ref := metav1.GetControllerOf(&rs); ref == nil || ref.UID != d.UID || ref.Kind != "Deployment" {
		t.Errorf("controllerRef %+v", ref)
	}
	if e := <-rec.Events; e != "Normal ScalingReplicaSet Scaled up replica set web-"+hash+" from 0 to 4" {
		t.Errorf("event %q", e)
	}
	got, _ := client.AppsV1().Deployments("default").Get(context.Background(), "web", metav1.GetOptions{})
	if got.Annotations[RevisionAnnotation] != "1" {
		t.Errorf("deployment revision %q, want 1", got.Annotations[RevisionAnnotation])
	}
	var progressing *appsv1.DeploymentCondition
	for i := range got.Status.Conditions {
		if got.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
			progressing = &got.Status.Conditions[i]
		}
	}
	if progressing == nil || progressing.Reason != NewReplicaSetReason || progressing.Message != fmt.Sprintf("Created new replica set %q", rs.Name) {
		t.Errorf("Progressing = %+v, want NewReplicaSetCreated", progressing)
	}
}

func TestEmptySelectorIsRefused(t *testing.T) {
	d := testDeployment("web", 1)
	d.Spec.Selector = &metav1.LabelSelector{}
	client, rec := syncOnce(t, d)
	if e := <-rec.Events; !strings.Contains(e, "SelectingAll") {
		t.Errorf("event %q, want SelectingAll", e)
	}
	rss, _ := client.AppsV1().ReplicaSets("default").List(context.Background(), metav1.ListOptions{})
	if len(rss.Items) != 0 {
		t.Error("created a replica set for a deployment selecting everything")
	}
}

func TestFenceposts(t *testing.T) {
	d := testDeployment("web", 10)
	if s, u := MaxSurge(d), MaxUnavailable(d); s != 3 || u != 2 {
		t.Errorf("25%% of 10: surge %d (want 3, rounded up), unavailable %d (want 2, rounded down)", s, u)
	}
	d.Spec.Replicas = ptr.To(int32(1))
	d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(0))
	if u := MaxUnavailable(d); u != 1 {
		t.Errorf("surge 0 and unavailable rounding to 0: unavailable %d, want 1", u)
	}
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if s, u := MaxSurge(d), MaxUnavailable(d); s != 0 || u != 0 {
		t.Errorf("recreate: surge %d unavailable %d, want 0 0", s, u)
	}
}

func TestRevisionHistoryIsKeptWhenAReplicaSetComesBack(t *testing.T) {
	d := testDeployment("web", 1)
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{RevisionAnnotation: "1"}}}
	setNewReplicaSetAnnotations(d, rs, "3", true)
	if rs.Annotations[RevisionAnnotation] != "3" || rs.Annotations[RevisionHistoryAnnotation] != "1" {
		t.Errorf("annotations %v, want revision 3 with history 1", rs.Annotations)
	}
	setNewReplicaSetAnnotations(d, rs, "5", true)
	if rs.Annotations[RevisionHistoryAnnotation] != "1,3" {
		t.Errorf("history %q, want 1,3", rs.Annotations[RevisionHistoryAnnotation])
	}
	// a lower revision never replaces a higher one
	setNewReplicaSetAnnotations(d, rs, "4", true)
	if rs.Annotations[RevisionAnnotation] != "5" {
		t.Errorf("revision %q, want 5 kept", rs.Annotations[RevisionAnnotation])
	}
}

func TestLastRevisionIsTheOneBeforeTheNewest(t *testing.T) {
	mk := func(r string) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{RevisionAnnotation: r}}}
	}
	if got := lastRevision([]*appsv1.ReplicaSet{mk("2"), mk("7"), mk("5")}); got != 5 {
		t.Errorf("last revision %d, want 5", got)
	}
}

func TestHashIsStableAndChangesWithTheTemplateAndCollisions(t *testing.T) {
	d := testDeployment("web", 1)
	a := ComputeHash(&d.Spec.Template, nil)
	if b := ComputeHash(d.Spec.Template.DeepCopy(), nil); a != b {
		t.Errorf("hash not stable: %s %s", a, b)
	}
	if c := ComputeHash(&d.Spec.Template, ptr.To(int32(1))); c == a {
		t.Error("collision count does not change the hash")
	}
	d.Spec.Template.Spec.Containers[0].Image = "other"
	if c := ComputeHash(&d.Spec.Template, nil); c == a {
		t.Error("template change does not change the hash")
	}
}
