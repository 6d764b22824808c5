package disruption

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	scalefake "k8s.io/client-go/scale/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
)

// fixture is a controller on a fake clientset whose caches hold the given objects, with one
// custom kind (example.com/v1 Widget, resource widgets) whose scale is widgetReplicas.
type fixture struct {
	t              *testing.T
	client         *fake.Clientset
	c              *Controller
	widgetReplicas int32
	widgetUID      types.UID
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	f := &fixture{t: t, client: fake.NewClientset(objs...), widgetUID: "widget-uid"}
	factory := informers.NewSharedInformerFactory(f.client, 0)
	scales := &scalefake.FakeScaleClient{}
	scales.AddReactor("get", "widgets", func(core.Action) (bool, runtime.Object, error) {
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "ns", UID: f.widgetUID},
			Spec: autoscalingv1.ScaleSpec{Replicas: f.widgetReplicas}}, nil
	})
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}, meta.RESTScopeNamespace)
	c, err := New(factory.Policy().V1().PodDisruptionBudgets(), factory.Core().V1().Pods(), factory.Apps().V1().ReplicaSets(),
		factory.Apps().V1().Deployments(), f.client, scales, mapper, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	for _, obj := range objs {
		var err error
		switch o := obj.(type) {
		case *corev1.Pod:
			err = factory.Core().V1().Pods().Informer().GetIndexer().Add(o)
		case *policyv1.PodDisruptionBudget:
			err = factory.Policy().V1().PodDisruptionBudgets().Informer().GetIndexer().Add(o)
		case *appsv1.ReplicaSet:
			err = factory.Apps().V1().ReplicaSets().Informer().GetIndexer().Add(o)
		case *appsv1.Deployment:
			err = factory.Apps().V1().Deployments().Informer().GetIndexer().Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// status syncs the budget and returns the status the controller wrote.
func (f *fixture) status(pdb *policyv1.PodDisruptionBudget) (policyv1.PodDisruptionBudgetStatus, error) {
	f.t.Helper()
	err := f.c.sync(context.Background(), pdb.Namespace+"/"+pdb.Name)
	got, getErr := f.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).Get(context.Background(), pdb.Name, metav1.GetOptions{})
	if getErr != nil {
		f.t.Fatal(getErr)
	}
	return got.Status, err
}

func pdbOf(min, max *intstr.IntOrString) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Generation: 1},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: min, MaxUnavailable: max,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
}

func ownedPod(name string, ready bool, owner *metav1.OwnerReference) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "web"}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	return p
}

func ref(apiVersion, kind, name string, uid types.UID) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: ptr.To(true)}
}

func intOrString(s string) *intstr.IntOrString {
	v := intstr.Parse(s)
	return &v
}

func TestIntegerMinAvailableCountsTheSelectedPods(t *testing.T) {
	pdb := pdbOf(intOrString("2"), nil)
	f := newFixture(t, pdb, ownedPod("a", true, nil), ownedPod("b", true, nil), ownedPod("c", true, nil), ownedPod("d", false, nil))
	st, err := f.status(pdb)
	if err != nil {
		t.Fatal(err)
	}
	if st.CurrentHealthy != 3 || st.DesiredHealthy != 2 || st.ExpectedPods != 4 || st.DisruptionsAllowed != 1 || st.ObservedGeneration != 1 {
		t.Errorf("status %+v", st)
	}
	if c := meta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition); c == nil || c.Status != metav1.ConditionTrue || c.Reason != policyv1.SufficientPodsReason {
		t.Errorf("condition %+v", c)
	}
}

func TestMaxUnavailableCountsTheDeploymentThatOwnsTheReplicaSets(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "d-uid"}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](5)}}
	rsRef := func(name string) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name + "-uid"),
			OwnerReferences: []metav1.OwnerReference{*ref("apps/v1", "Deployment", "web", "d-uid")}}, Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2)}}
	}
	old, cur := rsRef("old"), rsRef("cur")
	pdb := pdbOf(nil, intOrString("40%"))
	f := newFixture(t, pdb, d, old, cur,
		ownedPod("a", true, ref("apps/v1", "ReplicaSet", "old", old.UID)),
		ownedPod("b", true, ref("apps/v1", "ReplicaSet", "cur", cur.UID)),
		ownedPod("c", true, ref("apps/v1", "ReplicaSet", "cur", cur.UID)),
		ownedPod("e", true, ref("apps/v1", "ReplicaSet", "cur", cur.UID)))
	st, err := f.status(pdb)
	if err != nil {
		t.Fatal(err)
	}
	// 40% of the Deployment's 5, rounded up, may be unavailable: 3 must stay
	if st.ExpectedPods != 5 || st.DesiredHealthy != 3 || st.CurrentHealthy != 4 || st.DisruptionsAllowed != 1 {
		t.Errorf("status %+v", st)
	}
}

func TestPercentagesCountACustomResourceThroughItsScale(t *testing.T) {
	pdb := pdbOf(intOrString("50%"), nil)
	owner := ref("example.com/v1", "Widget", "w", "widget-uid")
	f := newFixture(t, pdb, ownedPod("a", true, owner), ownedPod("b", true, owner), ownedPod("c", false, owner))
	f.widgetReplicas = 5
	st, err := f.status(pdb)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExpectedPods != 5 || st.DesiredHealthy != 3 || st.CurrentHealthy != 2 || st.DisruptionsAllowed != 0 {
		t.Errorf("status %+v", st)
	}
	if c := meta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition); c == nil || c.Status != metav1.ConditionFalse || c.Reason != policyv1.InsufficientPodsReason {
		t.Errorf("condition %+v", c)
	}
}

func TestABudgetWhoseControllersCannotBeFoundAllowsNothing(t *testing.T) {
	pdb := pdbOf(nil, intOrString("1"))
	pdb.Status.DisruptionsAllowed = 2
	f := newFixture(t, pdb, ownedPod("a", true, ref("example.com/v1", "Gadget", "g", "g-uid")), ownedPod("b", true, nil))
	st, err := f.status(pdb)
	if err == nil {
		t.Fatal("sync succeeded on a pod whose controller's kind is not served")
	}
	c := meta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition)
	if st.DisruptionsAllowed != 0 || c == nil || c.Reason != policyv1.SyncFailedReason || !strings.Contains(c.Message, `found no controllers for pod "a"`) {
		t.Errorf("status %+v", st)
	}
}

func TestEvictedPodsCountOutUntilDeletedOrTimedOut(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pdb := pdbOf(intOrString("1"), nil)
	pdb.Status.DisruptedPods = map[string]metav1.Time{
		"a": metav1.NewTime(now.Add(-time.Minute)),     // evicted a minute ago: still counted out
		"b": metav1.NewTime(now.Add(-3 * time.Minute)), // never deleted: forgotten
		"z": metav1.NewTime(now.Add(-time.Minute)),     // gone already: forgotten
	}
	f := newFixture(t, pdb, ownedPod("a", true, nil), ownedPod("b", true, nil), ownedPod("c", true, nil))
	f.c.now = func() time.Time { return now }
	st, err := f.status(pdb)
	if !strings.Contains(errString(err), "requeue after") {
		t.Errorf("sync: %v, want a requeue to expire a's eviction", err)
	}
	if st.CurrentHealthy != 2 || st.DisruptionsAllowed != 1 || len(st.DisruptedPods) != 1 || !st.DisruptedPods["a"].Time.Equal(now.Add(-time.Minute)) {
		t.Errorf("status %+v", st)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestAStaleDisruptionTargetIsClearedAfterItsTimeout(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pod := ownedPod("a", true, nil)
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: "EvictionByEvictionAPI", LastTransitionTime: metav1.NewTime(now.Add(-time.Minute))})
	f := newFixture(t, pod)
	f.c.now = func() time.Time { return now }
	if err := f.c.syncStalePodDisruption(context.Background(), "ns/a"); err == nil || !strings.Contains(err.Error(), "requeue after 1m0s") {
		t.Errorf("a minute-old condition: %v, want a requeue in a minute", err)
	}
	f.c.now = func() time.Time { return now.Add(2 * time.Minute) }
	if err := f.c.syncStalePodDisruption(context.Background(), "ns/a"); err != nil {
		t.Fatal(err)
	}
	got, _ := f.client.CoreV1().Pods("ns").Get(context.Background(), "a", metav1.GetOptions{})
	for _, c := range got.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status != corev1.ConditionFalse {
			t.Errorf("condition %+v, want False", c)
		}
	}
}
