package statefulset

import (
	"context"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	c      *Controller
}

func newFixture(t *testing.T, objects ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objects...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Apps().V1().StatefulSets(), factory.Apps().V1().ControllerRevisions(), factory.Core().V1().Pods(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return &fixture{t: t, client: client, c: c}
}

func (f *fixture) sync() {
	f.t.Helper()
	if err := f.c.sync(context.Background(), "default/db"); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) created(resource string) []string {
	var out []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == resource {
			out = append(out, a.(clienttesting.CreateAction).GetObject().(metav1.Object).GetName())
		}
	}
	return out
}

func (f *fixture) deleted() []string {
	var out []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			out = append(out, a.(clienttesting.DeleteAction).GetName())
		}
	}
	return out
}

func newSet(replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{"app": "db"}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default", UID: "db-uid", Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			ServiceName:         "db-headless",
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](0)}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "busybox"}}},
			},
		},
	}
}

// member is the set's pod of ordinal, running and ready unless said otherwise.
func member(set *appsv1.StatefulSet, ordinal int, revision string, ready bool) *corev1.Pod {
	pod := newPod(set, &set.Spec.Template, revision, ordinal)
	pod.UID = types.UID(pod.Name)
	pod.ResourceVersion = "1"
	pod.Status.Phase = corev1.PodRunning
	if ready {
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Minute))}}
	}
	return pod
}

func TestOrderedReadyCreatesOnePodAtATimeWithItsIdentity(t *testing.T) {
	f := newFixture(t, newSet(3))
	f.sync()
	if got := f.created("pods"); !slices.Equal(got, []string{"db-0"}) {
		t.Fatalf("created %v, want db-0 alone", got)
	}
	var pod *corev1.Pod
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "pods" {
			pod = a.(clienttesting.CreateAction).GetObject().(*corev1.Pod)
		}
	}
	if pod.Spec.Hostname != "db-0" || pod.Spec.Subdomain != "db-headless" || pod.Labels[PodNameLabel] != "db-0" ||
		pod.Labels[PodIndexLabel] != "0" || pod.Labels[RevisionLabel] == "" {
		t.Errorf("pod identity: hostname %q subdomain %q labels %v", pod.Spec.Hostname, pod.Spec.Subdomain, pod.Labels)
	}
	revs, _ := f.client.AppsV1().ControllerRevisions("default").List(context.Background(), metav1.ListOptions{})
	if len(revs.Items) != 1 || revs.Items[0].Name != pod.Labels[RevisionLabel] || revs.Items[0].Revision != 1 {
		t.Errorf("revisions %+v, want one named as the pod's label", revs.Items)
	}
	set, _ := f.client.AppsV1().StatefulSets("default").Get(context.Background(), "db", metav1.GetOptions{})
	if set.Status.UpdateRevision != pod.Labels[RevisionLabel] || set.Status.CurrentRevision != set.Status.UpdateRevision || set.Status.ObservedGeneration != 1 {
		t.Errorf("status %+v", set.Status)
	}
}

func TestOrderedReadyWaitsForThePodBefore(t *testing.T) {
	set := newSet(3)
	f := newFixture(t, set, member(set, 0, "r", false))
	f.sync()
	if got := f.created("pods"); len(got) != 0 {
		t.Errorf("created %v while db-0 is not ready", got)
	}
	set2 := newSet(3)
	f = newFixture(t, set2, member(set2, 0, "r", true))
	f.sync()
	if got := f.created("pods"); !slices.Equal(got, []string{"db-1"}) {
		t.Errorf("created %v, want db-1 once db-0 is ready", got)
	}
}

func TestParallelCreatesEveryPodAtOnce(t *testing.T) {
	set := newSet(3)
	set.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	f := newFixture(t, set)
	f.sync()
	if got := f.created("pods"); !slices.Equal(got, []string{"db-0", "db-1", "db-2"}) {
		t.Errorf("created %v, want all three", got)
	}
}

func TestScaleDownRemovesTheHighestOrdinalFirst(t *testing.T) {
	set := newSet(1)
	f := newFixture(t, set, member(set, 0, "r", true), member(set, 1, "r", true), member(set, 2, "r", true))
	f.sync()
	if got := f.deleted(); !slices.Equal(got, []string{"db-2"}) {
		t.Errorf("deleted %v, want db-2 alone", got)
	}
}

func TestRollingUpdateReplacesFromTheTopDownToThePartition(t *testing.T) {
	set := newSet(3)
	set.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To[int32](1)
	f := newFixture(t, set, member(set, 0, "old", true), member(set, 1, "old", true), member(set, 2, "old", true))
	f.sync()
	if got := f.deleted(); !slices.Equal(got, []string{"db-2"}) {
		t.Errorf("deleted %v, want db-2 first", got)
	}
	// db-2 updated: db-1 is next, db-0 stays below the partition
	upd, _ := f.client.AppsV1().StatefulSets("default").Get(context.Background(), "db", metav1.GetOptions{})
	set2 := newSet(3)
	set2.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To[int32](1)
	f = newFixture(t, set2, member(set2, 0, "old", true), member(set2, 1, "old", true), member(set2, 2, upd.Status.UpdateRevision, true))
	f.sync()
	if got := f.deleted(); !slices.Equal(got, []string{"db-1"}) {
		t.Errorf("deleted %v, want db-1 next", got)
	}
}

func TestVolumeClaimTemplatesMakeClaimsBeforePods(t *testing.T) {
	set := newSet(1)
	set.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}}
	f := newFixture(t, set)
	f.sync()
	if got := f.created("persistentvolumeclaims"); !slices.Equal(got, []string{"data-db-0"}) {
		t.Errorf("claims %v, want data-db-0", got)
	}
	pod, err := f.client.CoreV1().Pods("default").Get(context.Background(), "db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := pod.Spec.Volumes; len(v) != 1 || v[0].PersistentVolumeClaim == nil || v[0].PersistentVolumeClaim.ClaimName != "data-db-0" {
		t.Errorf("pod volumes %+v", v)
	}
}

func TestOrdinalsStartNamesTheFirstPod(t *testing.T) {
	set := newSet(2)
	set.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	set.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
	f := newFixture(t, set, member(set, 0, "r", true))
	f.sync()
	if got := f.created("pods"); !slices.Equal(got, []string{"db-5", "db-6"}) {
		t.Errorf("created %v, want db-5 and db-6", got)
	}
	if got := f.deleted(); !slices.Equal(got, []string{"db-0"}) {
		t.Errorf("deleted %v, want db-0, outside the ordinals", got)
	}
}

func TestOnDeleteLeavesOldPodsAlone(t *testing.T) {
	set := newSet(2)
	set.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	f := newFixture(t, set, member(set, 0, "old", true), member(set, 1, "old", true))
	f.sync()
	if got := f.deleted(); len(got) != 0 {
		t.Errorf("deleted %v; OnDelete waits for the user", got)
	}
	got, _ := f.client.AppsV1().StatefulSets("default").Get(context.Background(), "db", metav1.GetOptions{})
	if got.Status.UpdatedReplicas != 0 || got.Status.Replicas != 2 || got.Status.UpdateRevision == "" {
		t.Errorf("status %+v", got.Status)
	}
}

func TestClaimsOfAPodScaledAwayGoWithItWhenThePolicySaysDelete(t *testing.T) {
	set := newSet(1)
	set.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}}
	set.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
	claim := func(name string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	}
	f := newFixture(t, set, member(set, 0, "r", true), member(set, 1, "r", true), claim("data-db-0"), claim("data-db-1"))
	f.sync()
	if got := f.deleted(); !slices.Equal(got, []string{"db-1"}) {
		t.Fatalf("deleted %v, want db-1", got)
	}
	for name, owner := range map[string]string{"data-db-1": "db-1", "data-db-0": ""} {
		c, err := f.client.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var owners []string
		for _, ref := range c.OwnerReferences {
			owners = append(owners, ref.Kind+"/"+ref.Name)
		}
		if (owner == "" && len(owners) != 0) || (owner != "" && !slices.Equal(owners, []string{"Pod/" + owner})) {
			t.Errorf("claim %s owned by %v, want %q", name, owners, owner)
		}
	}
}
