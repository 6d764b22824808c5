package podautoscaler

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	custommetricsv1beta2 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta2"
	externalmetricsv1beta1 "k8s.io/metrics/pkg/apis/external_metrics/v1beta1"
	custommetrics "k8s.io/metrics/pkg/client/custom_metrics"
	externalmetrics "k8s.io/metrics/pkg/client/external_metrics"
)

// fakeCustomMetrics is a custom metrics API of fixed values: pods' by metric and pod name,
// objects' by "Kind/name/metric"; err, when set, is every answer.
type fakeCustomMetrics struct {
	pods    map[string]map[string]string
	objects map[string]string
	err     error
}

var _ custommetrics.CustomMetricsClient = &fakeCustomMetrics{}

func (f *fakeCustomMetrics) RootScopedMetrics() custommetrics.MetricsInterface {
	return fakeCustomScope{f}
}
func (f *fakeCustomMetrics) NamespacedMetrics(string) custommetrics.MetricsInterface {
	return fakeCustomScope{f}
}

type fakeCustomScope struct{ f *fakeCustomMetrics }

func (s fakeCustomScope) GetForObject(gk schema.GroupKind, name, metric string, _ labels.Selector) (*custommetricsv1beta2.MetricValue, error) {
	if s.f.err != nil {
		return nil, s.f.err
	}
	v, ok := s.f.objects[gk.Kind+"/"+name+"/"+metric]
	if !ok {
		return nil, fmt.Errorf("the server could not find the metric %s for %s %s", metric, gk.Kind, name)
	}
	return &custommetricsv1beta2.MetricValue{DescribedObject: corev1.ObjectReference{Kind: gk.Kind, Name: name},
		Metric: custommetricsv1beta2.MetricIdentifier{Name: metric}, Timestamp: metav1.NewTime(epoch), Value: resource.MustParse(v)}, nil
}

func (s fakeCustomScope) GetForObjects(gk schema.GroupKind, _ labels.Selector, metric string, _ labels.Selector) (*custommetricsv1beta2.MetricValueList, error) {
	if s.f.err != nil {
		return nil, s.f.err
	}
	list := &custommetricsv1beta2.MetricValueList{}
	for pod, v := range s.f.pods[metric] {
		list.Items = append(list.Items, custommetricsv1beta2.MetricValue{DescribedObject: corev1.ObjectReference{Kind: gk.Kind, Name: pod},
			Metric: custommetricsv1beta2.MetricIdentifier{Name: metric}, Timestamp: metav1.NewTime(epoch), Value: resource.MustParse(v)})
	}
	return list, nil
}

// fakeExternalMetrics is an external metrics API whose metrics are series of fixed values.
type fakeExternalMetrics struct {
	series map[string][]string
	err    error
}

var _ externalmetrics.ExternalMetricsClient = &fakeExternalMetrics{}

func (f *fakeExternalMetrics) NamespacedMetrics(string) externalmetrics.MetricsInterface { return f }

func (f *fakeExternalMetrics) List(metric string, _ labels.Selector) (*externalmetricsv1beta1.ExternalMetricValueList, error) {
	if f.err != nil {
		return nil, f.err
	}
	list := &externalmetricsv1beta1.ExternalMetricValueList{}
	for _, v := range f.series[metric] {
		list.Items = append(list.Items, externalmetricsv1beta1.ExternalMetricValue{MetricName: metric, Timestamp: metav1.NewTime(epoch), Value: resource.MustParse(v)})
	}
	return list, nil
}

// autoscalerOn is an autoscaler of the fixture's Widget (1 to 10 replicas) on metrics, with
// the default behavior.
func autoscalerOn(metrics ...autoscalingv2.MetricSpec) *autoscalingv2.HorizontalPodAutoscaler {
	// the default behavior lets 2 replicas grow to 6 at once
	hpa := cpuAutoscaler(50, defaultedBehavior(&autoscalingv2.HorizontalPodAutoscalerBehavior{}))
	hpa.Spec.Metrics = metrics
	return hpa
}

func podsMetric(name, averageValue string) autoscalingv2.MetricSpec {
	v := resource.MustParse(averageValue)
	return autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: name},
		Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &v}}}
}

// serviceMetric is an Object metric of the Service web with a Value or AverageValue target.
func serviceMetric(name string, typ autoscalingv2.MetricTargetType, target string) autoscalingv2.MetricSpec {
	v := resource.MustParse(target)
	t := autoscalingv2.MetricTarget{Type: typ, Value: &v}
	if typ == autoscalingv2.AverageValueMetricType {
		t = autoscalingv2.MetricTarget{Type: typ, AverageValue: &v}
	}
	return autoscalingv2.MetricSpec{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricSource{
		DescribedObject: autoscalingv2.CrossVersionObjectReference{APIVersion: "v1", Kind: "Service", Name: "web"},
		Metric:          autoscalingv2.MetricIdentifier{Name: name}, Target: t}}
}

func externalMetric(name string, typ autoscalingv2.MetricTargetType, target string) autoscalingv2.MetricSpec {
	v := resource.MustParse(target)
	t := autoscalingv2.MetricTarget{Type: typ, Value: &v}
	if typ == autoscalingv2.AverageValueMetricType {
		t = autoscalingv2.MetricTarget{Type: typ, AverageValue: &v}
	}
	return autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: name, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"queue": "jobs"}}},
		Target: t}}
}

// customFixture is the fixture with two ready pods a and b behind the Widget at 2 replicas,
// and the custom and external metrics given.
func customFixture(t *testing.T, hpa *autoscalingv2.HorizontalPodAutoscaler, custom *fakeCustomMetrics, external *fakeExternalMetrics) *fixture {
	f := newFixture(t, 2, hpa, []*corev1.Pod{readyPod("a", "100m"), readyPod("b", "100m")}, nil)
	f.c.metrics.Custom, f.c.metrics.External = custom, external
	return f
}

// events are the events recorded so far.
func (f *fixture) recorded() []string {
	var out []string
	for {
		select {
		case e := <-f.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestPodsMetricScalesToItsAverageOverTheTarget(t *testing.T) {
	custom := &fakeCustomMetrics{pods: map[string]map[string]string{"requests_per_second": {"a": "20", "b": "20"}}}
	f := customFixture(t, autoscalerOn(podsMetric("requests_per_second", "10")), custom, nil)
	st, err := f.sync()
	if err != nil || f.scaledTo != 4 {
		t.Fatalf("scaled to %d (%v), want 4", f.scaledTo, err)
	}
	want := autoscalingv2.MetricStatus{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricStatus{
		Metric: autoscalingv2.MetricIdentifier{Name: "requests_per_second"}, Current: autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(20000, resource.DecimalSI)}}}
	if len(st.CurrentMetrics) != 1 || st.CurrentMetrics[0].Pods == nil || st.CurrentMetrics[0].Pods.Current.AverageValue.Cmp(*want.Pods.Current.AverageValue) != 0 {
		t.Errorf("current metrics %+v, want %+v", st.CurrentMetrics, want)
	}
	if c := condition(st, autoscalingv2.ScalingActive); c.Reason != "ValidMetricFound" ||
		c.Message != "the HPA was able to successfully calculate a replica count from pods metric requests_per_second" {
		t.Errorf("ScalingActive: %+v", c)
	}
	if e := f.recorded(); !slices.Contains(e, "Normal SuccessfulRescale New size: 4; reason: pods metric requests_per_second above target") {
		t.Errorf("events: %q", e)
	}
}

func TestPodsMetricWithinTheToleranceChangesNothing(t *testing.T) {
	custom := &fakeCustomMetrics{pods: map[string]map[string]string{"requests_per_second": {"a": "13", "b": "13"}}}
	// 130% of the target scales 2 pods to 3 by default ...
	f := customFixture(t, autoscalerOn(podsMetric("requests_per_second", "10")), custom, nil)
	if _, err := f.sync(); err != nil || f.scaledTo != 3 {
		t.Fatalf("scaled to %d (%v), want 3", f.scaledTo, err)
	}
	// ... and not at all within a scale-up tolerance of 50%
	half := resource.MustParse("0.5")
	hpa := autoscalerOn(podsMetric("requests_per_second", "10"))
	hpa.Spec.Behavior = defaultedBehavior(&autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{Tolerance: &half}})
	f = customFixture(t, hpa, custom, nil)
	if st, err := f.sync(); err != nil || f.scaledTo != -1 || st.DesiredReplicas != 2 {
		t.Errorf("scaled to %d, desired %d (%v), want nothing", f.scaledTo, st.DesiredReplicas, err)
	}
}

func TestObjectMetricValueScalesTheReadyPodsByItsRatio(t *testing.T) {
	custom := &fakeCustomMetrics{objects: map[string]string{"Service/web/requests": "30"}}
	f := customFixture(t, autoscalerOn(serviceMetric("requests", autoscalingv2.ValueMetricType, "10")), custom, nil)
	st, err := f.sync()
	if err != nil || f.scaledTo != 6 {
		t.Fatalf("scaled to %d (%v), want 6", f.scaledTo, err)
	}
	got := st.CurrentMetrics[0].Object
	if got == nil || got.Current.Value.Cmp(resource.MustParse("30")) != 0 || got.DescribedObject.Name != "web" || got.Metric.Name != "requests" {
		t.Errorf("current metrics %+v", st.CurrentMetrics)
	}
	if e := f.recorded(); !slices.Contains(e, "Normal SuccessfulRescale New size: 6; reason: Service metric requests above target") {
		t.Errorf("events: %q", e)
	}
}

func TestObjectMetricAverageValueDividesByTheReplicas(t *testing.T) {
	custom := &fakeCustomMetrics{objects: map[string]string{"Service/web/requests": "30"}}
	f := customFixture(t, autoscalerOn(serviceMetric("requests", autoscalingv2.AverageValueMetricType, "10")), custom, nil)
	st, err := f.sync()
	if err != nil || f.scaledTo != 3 {
		t.Fatalf("scaled to %d (%v), want 3", f.scaledTo, err)
	}
	if got := st.CurrentMetrics[0].Object; got == nil || got.Current.AverageValue.Cmp(resource.MustParse("15")) != 0 {
		t.Errorf("current metrics %+v, want an average of 15 over the 2 replicas", st.CurrentMetrics)
	}
}

func TestExternalMetricSumsItsSeries(t *testing.T) {
	external := &fakeExternalMetrics{series: map[string][]string{"queue_messages": {"40", "20"}}}
	// a value target: 60 is 3 times 20, which triples the 2 ready pods
	f := customFixture(t, autoscalerOn(externalMetric("queue_messages", autoscalingv2.ValueMetricType, "20")), nil, external)
	st, err := f.sync()
	if err != nil || f.scaledTo != 6 {
		t.Fatalf("value target: scaled to %d (%v), want 6", f.scaledTo, err)
	}
	if got := st.CurrentMetrics[0].External; got == nil || got.Current.Value.Cmp(resource.MustParse("60")) != 0 || got.Metric.Name != "queue_messages" {
		t.Errorf("current metrics %+v", st.CurrentMetrics)
	}
	if e := f.recorded(); !slices.Contains(e, "Normal SuccessfulRescale New size: 6; reason: external metric queue_messages(&LabelSelector{MatchLabels:map[string]string{queue: jobs,},MatchExpressions:[]LabelSelectorRequirement{},}) above target") {
		t.Errorf("events: %q", e)
	}
	// an average value target: 60 is 20 for each of 3 pods
	f = customFixture(t, autoscalerOn(externalMetric("queue_messages", autoscalingv2.AverageValueMetricType, "20")), nil, external)
	st, err = f.sync()
	if err != nil || f.scaledTo != 3 {
		t.Fatalf("average value target: scaled to %d (%v), want 3", f.scaledTo, err)
	}
	if got := st.CurrentMetrics[0].External; got == nil || got.Current.AverageValue.Cmp(resource.MustParse("30")) != 0 {
		t.Errorf("current metrics %+v, want an average of 30 over the 2 replicas", st.CurrentMetrics)
	}
}

func TestUnavailableMetricsMakeScalingInactiveInUpstreamWords(t *testing.T) {
	notFound := errors.New("the server could not find the requested resource")
	selector := "&LabelSelector{MatchLabels:map[string]string{queue: jobs,},MatchExpressions:[]LabelSelectorRequirement{},}"
	for _, tc := range []struct {
		metric          autoscalingv2.MetricSpec
		reason, reason2 string
		message, err    string
	}{
		{
			metric: podsMetric("requests_per_second", "10"), reason: "FailedGetPodsMetric",
			message: "unable to get metric requests_per_second: unable to fetch metrics from custom metrics API: the server could not find the requested resource",
			err:     "failed to get pods metric value: unable to get metric requests_per_second: unable to fetch metrics from custom metrics API: the server could not find the requested resource",
		},
		{
			metric: serviceMetric("requests", autoscalingv2.ValueMetricType, "10"), reason: "FailedGetObjectMetric",
			message: "unable to get metric requests: Service on default web/unable to fetch metrics from custom metrics API: the server could not find the requested resource",
			err:     "failed to get object metric value: unable to get metric requests: Service on default web/unable to fetch metrics from custom metrics API: the server could not find the requested resource",
		},
		{
			metric: serviceMetric("requests", autoscalingv2.AverageValueMetricType, "10"), reason: "FailedGetObjectMetric",
			message: "unable to get metric requests: Service on default web/unable to fetch metrics from custom metrics API: the server could not find the requested resource",
			err:     "failed to get object metric value: failed to get requests object metric: unable to get metric requests: Service on default web/unable to fetch metrics from custom metrics API: the server could not find the requested resource",
		},
		{
			metric: externalMetric("queue_messages", autoscalingv2.ValueMetricType, "20"), reason: "FailedGetExternalMetric",
			message: "unable to get external metric default/queue_messages/" + selector + ": unable to fetch metrics from external metrics API: the server could not find the requested resource",
			err:     "failed to get queue_messages external metric value: failed to get external metric queue_messages: unable to get external metric default/queue_messages/" + selector + ": unable to fetch metrics from external metrics API: the server could not find the requested resource",
		},
		{
			metric: externalMetric("queue_messages", autoscalingv2.AverageValueMetricType, "20"), reason: "FailedGetExternalMetric",
			message: "unable to get external metric default/queue_messages/" + selector + ": unable to fetch metrics from external metrics API: the server could not find the requested resource",
			err:     "failed to get queue_messages external metric value: failed to get queue_messages external metric: unable to get external metric default/queue_messages/" + selector + ": unable to fetch metrics from external metrics API: the server could not find the requested resource",
		},
	} {
		t.Run(tc.reason+"/"+string(tc.metric.Type), func(t *testing.T) {
			f := customFixture(t, autoscalerOn(tc.metric), &fakeCustomMetrics{err: notFound}, &fakeExternalMetrics{err: notFound})
			st, err := f.sync()
			if want := "invalid metrics (1 invalid out of 1), first error is: " + tc.err; err == nil || !strings.HasSuffix(err.Error(), want) {
				t.Errorf("error:\n %v\nwant it to end in\n %s", err, want)
			}
			if c := condition(st, autoscalingv2.ScalingActive); c.Status != corev1.ConditionFalse || c.Reason != tc.reason ||
				c.Message != "the HPA was unable to compute the replica count: "+tc.message {
				t.Errorf("ScalingActive: %+v", c)
			}
			if f.scaledTo != -1 {
				t.Errorf("scaled without metrics to %d", f.scaledTo)
			}
			if e := f.recorded(); !slices.Contains(e, "Warning "+tc.reason+" "+tc.message) {
				t.Errorf("events: %q", e)
			}
		})
	}
}

func TestAFailedMetricDoesNotStopAScaleUpByAnother(t *testing.T) {
	custom := &fakeCustomMetrics{pods: map[string]map[string]string{"requests_per_second": {"a": "20", "b": "20"}}}
	f := customFixture(t, autoscalerOn(podsMetric("requests_per_second", "10"), externalMetric("queue_messages", autoscalingv2.ValueMetricType, "20")),
		custom, &fakeExternalMetrics{err: errors.New("no such metric")})
	st, err := f.sync()
	if f.scaledTo != 4 {
		t.Errorf("scaled to %d, want 4", f.scaledTo)
	}
	if err == nil || !strings.Contains(err.Error(), "invalid metrics (1 invalid out of 2)") {
		t.Errorf("error: %v", err)
	}
	if c := condition(st, autoscalingv2.ScalingActive); c.Status != corev1.ConditionTrue || c.Reason != "ValidMetricFound" {
		t.Errorf("ScalingActive: %+v", c)
	}
	// a failed metric holds a scale down: it might have asked for more
	custom.pods["requests_per_second"] = map[string]string{"a": "1", "b": "1"}
	f = customFixture(t, autoscalerOn(podsMetric("requests_per_second", "10"), externalMetric("queue_messages", autoscalingv2.ValueMetricType, "20")),
		custom, &fakeExternalMetrics{err: errors.New("no such metric")})
	if st, _ := f.sync(); f.scaledTo != -1 || condition(st, autoscalingv2.ScalingActive).Reason != "FailedGetExternalMetric" {
		t.Errorf("scaled to %d, ScalingActive %+v", f.scaledTo, condition(st, autoscalingv2.ScalingActive))
	}
}

func TestObjectAndExternalValueTargetsScaleFromZero(t *testing.T) {
	calc := replicaCalculator{tolerances: defaultTolerances}
	none := func() (int64, error) { return 0, errors.New("no pods asked for at zero replicas") }
	if got, err := calc.usageRatioReplicas(0, 2.5, none); err != nil || got != 3 {
		t.Errorf("from zero: %d (%v), want 3", got, err)
	}
	if got, err := calc.usageRatioReplicas(0, 0, none); err != nil || got != 0 {
		t.Errorf("to zero: %d (%v), want 0", got, err)
	}
	_, err := calc.usageRatioReplicas(2, 3, func() (int64, error) { return readyPodCount(nil, nil) })
	if err == nil || err.Error() != "unable to calculate ready pods: no pods returned by selector while calculating replica count" {
		t.Errorf("without pods: %v", err)
	}
}
