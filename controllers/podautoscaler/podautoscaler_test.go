package podautoscaler

import (
	"context"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	scalefake "k8s.io/client-go/scale/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsfake "k8s.io/metrics/pkg/client/clientset/versioned/fake"

	"github.com/skiff-dev/skiff/controllers"
)

// fixture is the controller on fake clientsets: a custom kind (example.com/v1 Widget) whose
// scale is replicas with selector app=web, pods, and their metrics.
type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	c        *Controller
	replicas int32
	// scaledTo is what the controller wrote to the scale, -1 for nothing
	scaledTo int32
	events   *record.FakeRecorder
}

func newFixture(t *testing.T, replicas int32, hpa *autoscalingv2.HorizontalPodAutoscaler, pods []*corev1.Pod, usage map[string]string) *fixture {
	f := &fixture{t: t, client: fake.NewClientset(hpa), replicas: replicas, scaledTo: -1, events: record.NewFakeRecorder(100)}
	factory := informers.NewSharedInformerFactory(f.client, 0)
	scales := &scalefake.FakeScaleClient{}
	scales.AddReactor("get", "widgets", func(core.Action) (bool, runtime.Object, error) {
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "default"},
			Spec: autoscalingv1.ScaleSpec{Replicas: f.replicas}, Status: autoscalingv1.ScaleStatus{Replicas: f.replicas, Selector: "app=web"}}, nil
	})
	scales.AddReactor("update", "widgets", func(a core.Action) (bool, runtime.Object, error) {
		sc := a.(core.UpdateAction).GetObject().(*autoscalingv1.Scale)
		f.scaledTo = sc.Spec.Replicas
		return true, sc, nil
	})
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{{Group: "example.com", Version: "v1"}})
	mapper.Add(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}, meta.RESTScopeNamespace)
	list := &metricsv1beta1.PodMetricsList{}
	for name, cpu := range usage {
		list.Items = append(list.Items, metricsv1beta1.PodMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
			Timestamp:  metav1.NewTime(epoch), Window: metav1.Duration{Duration: 30 * time.Second},
			Containers: []metricsv1beta1.ContainerMetrics{{Name: "c", Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}},
		})
	}
	// the fake's tracker names PodMetrics' resource podmetricses; the API names it pods
	metrics := metricsfake.NewSimpleClientset()
	metrics.PrependReactor("list", "pods", func(core.Action) (bool, runtime.Object, error) { return true, list.DeepCopy(), nil })
	c, err := New(factory.Autoscaling().V2().HorizontalPodAutoscalers(), factory.Core().V1().Pods(), f.client, MetricsClients{Resource: metrics.MetricsV1beta1()},
		scales, mapper, controllers.Reporting{Recorder: func(string) record.EventRecorder { return f.events }})
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return epoch }
	f.c = c
	if err := factory.Autoscaling().V2().HorizontalPodAutoscalers().Informer().GetIndexer().Add(hpa); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if err := factory.Core().V1().Pods().Informer().GetIndexer().Add(p); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// sync reconciles the autoscaler and returns the status it wrote.
func (f *fixture) sync() (autoscalingv2.HorizontalPodAutoscalerStatus, error) {
	f.t.Helper()
	err := f.c.reconcile(context.Background(), "default/web", mustGet(f))
	got, getErr := f.client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(context.Background(), "web", metav1.GetOptions{})
	if getErr != nil {
		f.t.Fatal(getErr)
	}
	return got.Status, err
}

func mustGet(f *fixture) *autoscalingv2.HorizontalPodAutoscaler {
	hpa, err := f.c.hpaLister.HorizontalPodAutoscalers("default").Get("web")
	if err != nil {
		f.t.Fatal(err)
	}
	return hpa.DeepCopy()
}

func cpuAutoscaler(target int32, behavior *autoscalingv2.HorizontalPodAutoscalerBehavior) *autoscalingv2.HorizontalPodAutoscaler {
	one := int32(1)
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "example.com/v1", Kind: "Widget", Name: "w"},
			MinReplicas:    &one, MaxReplicas: 10, Behavior: behavior,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target}}}},
		},
	}
}

func condition(st autoscalingv2.HorizontalPodAutoscalerStatus, typ autoscalingv2.HorizontalPodAutoscalerConditionType) autoscalingv2.HorizontalPodAutoscalerCondition {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return autoscalingv2.HorizontalPodAutoscalerCondition{}
}

func TestBusyPodsScaleTheTargetUp(t *testing.T) {
	f := newFixture(t, 2, cpuAutoscaler(50, nil), []*corev1.Pod{readyPod("a", "100m"), readyPod("b", "100m")},
		map[string]string{"a": "100m", "b": "100m"})
	st, err := f.sync()
	if err != nil {
		t.Fatal(err)
	}
	if f.scaledTo != 4 || st.DesiredReplicas != 4 || st.CurrentReplicas != 2 || st.LastScaleTime == nil {
		t.Errorf("scaled to %d, status %+v", f.scaledTo, st)
	}
	if u := st.CurrentMetrics[0].Resource.Current.AverageUtilization; u == nil || *u != 100 {
		t.Errorf("current metrics: %+v", st.CurrentMetrics)
	}
	for typ, want := range map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
		autoscalingv2.AbleToScale:    "SucceededRescale",
		autoscalingv2.ScalingActive:  "ValidMetricFound",
		autoscalingv2.ScalingLimited: "DesiredWithinRange",
	} {
		if c := condition(st, typ); c.Reason != want {
			t.Errorf("%s: %+v", typ, c)
		}
	}
	if e := <-f.events.Events; e != "Normal SuccessfulRescale New size: 4; reason: cpu resource utilization (percentage of request) above target" {
		t.Errorf("event: %s", e)
	}
}

func TestIdlePodsWaitForTheStabilizationWindow(t *testing.T) {
	f := newFixture(t, 4, cpuAutoscaler(50, nil), []*corev1.Pod{readyPod("a", "100m"), readyPod("b", "100m"), readyPod("c", "100m"), readyPod("d", "100m")},
		map[string]string{"a": "10m", "b": "10m", "c": "10m", "d": "10m"})
	// the first recommendation is the current count: a scale down waits five minutes
	st, err := f.sync()
	if err != nil || f.scaledTo != -1 || condition(st, autoscalingv2.AbleToScale).Reason != "ScaleDownStabilized" {
		t.Fatalf("first sync: scaled to %d, %+v (%v)", f.scaledTo, st, err)
	}
	f.c.now = func() time.Time { return epoch.Add(6 * time.Minute) }
	if _, err := f.sync(); err != nil || f.scaledTo != 1 {
		t.Errorf("after the window: scaled to %d (%v)", f.scaledTo, err)
	}
}

func TestMaxReplicasAndPoliciesLimitTheScaleUp(t *testing.T) {
	window := int32(0)
	pods, usage := []*corev1.Pod{}, map[string]string{}
	for _, n := range []string{"a", "b"} {
		pods = append(pods, readyPod(n, "100m"))
		usage[n] = "1"
	}
	behavior := &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &window,
		Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 60}}}}
	behavior = defaultedBehavior(behavior)
	f := newFixture(t, 2, cpuAutoscaler(50, behavior), pods, usage)
	st, err := f.sync()
	if err != nil || f.scaledTo != 3 {
		t.Fatalf("scaled to %d (%v)", f.scaledTo, err)
	}
	if c := condition(st, autoscalingv2.ScalingLimited); c.Status != corev1.ConditionTrue || c.Reason != "ScaleUpLimit" {
		t.Errorf("ScalingLimited: %+v", c)
	}
}

func TestNoMetricsMakesScalingInactive(t *testing.T) {
	f := newFixture(t, 2, cpuAutoscaler(50, nil), []*corev1.Pod{readyPod("a", "100m")}, nil)
	st, err := f.sync()
	if err == nil || !strings.Contains(err.Error(), "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API") {
		t.Errorf("error: %v", err)
	}
	if c := condition(st, autoscalingv2.ScalingActive); c.Status != corev1.ConditionFalse || c.Reason != "FailedGetResourceMetric" ||
		c.Message != "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API" {
		t.Errorf("ScalingActive: %+v", c)
	}
	if f.scaledTo != -1 {
		t.Errorf("scaled without metrics to %d", f.scaledTo)
	}
}

func TestReplicasOutsideTheRangeAreBroughtIn(t *testing.T) {
	f := newFixture(t, 20, cpuAutoscaler(50, nil), nil, nil)
	if _, err := f.sync(); err != nil || f.scaledTo != 10 {
		t.Errorf("scaled to %d (%v)", f.scaledTo, err)
	}
	if e := <-f.events.Events; e != "Normal SuccessfulRescale New size: 10; reason: Current number of replicas above Spec.MaxReplicas" {
		t.Errorf("event: %s", e)
	}
}

// Two autoscalers over the same pods would fight: upstream scales neither, and says why.
func TestTwoAutoscalersOverTheSamePodsScaleNeither(t *testing.T) {
	f := newFixture(t, 2, cpuAutoscaler(50, nil), []*corev1.Pod{readyPod("a", "100m"), readyPod("b", "100m")}, map[string]string{"a": "90m", "b": "90m"})
	other := cpuAutoscaler(50, nil)
	other.Name = "other"
	if _, err := f.client.AutoscalingV2().HorizontalPodAutoscalers("default").Create(context.Background(), other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// the other autoscaler's target selects the same pods (the fixture's scale is app=web)
	if err := f.c.reconcile(context.Background(), "default/other", other); err != nil {
		t.Fatalf("the other autoscaler, alone yet: %v", err)
	}
	f.scaledTo = -1
	st, err := f.sync()
	want := "pods by selector app=web are controlled by more than one HPA (e.g. [default/other default/web])"
	if err == nil || !strings.HasSuffix(err.Error(), ": "+want) {
		t.Errorf("error: %v, want it to end in %q", err, want)
	}
	if c := condition(st, autoscalingv2.ScalingActive); c.Status != corev1.ConditionFalse || c.Reason != "AmbiguousSelector" || c.Message != want {
		t.Errorf("ScalingActive: %+v", c)
	}
	if f.scaledTo != -1 {
		t.Errorf("scaled to %d by an ambiguous autoscaler", f.scaledTo)
	}
	// once the other is gone, this one scales again
	if err := f.client.AutoscalingV2().HorizontalPodAutoscalers("default").Delete(context.Background(), "other", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.c.sync(context.Background(), "default/other"); err != nil {
		t.Fatalf("sync of the deleted autoscaler: %v", err)
	}
	if _, err := f.sync(); err != nil {
		t.Errorf("alone again: %v", err)
	}
	if f.scaledTo == -1 {
		t.Error("alone again, it did not scale")
	}
}
