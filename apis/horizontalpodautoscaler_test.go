package apis

import (
	"strings"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestHorizontalPodAutoscalerSurvivesARoundTripThroughV1(t *testing.T) {
	ten, window := int32(10), int32(60)
	value := resource.MustParse("2")
	in := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Annotations: map[string]string{"keep": "me"}},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    &ten, MaxReplicas: 20,
			Metrics: []autoscalingv2.MetricSpec{
				cpuUtilizationMetric(50),
				{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: "qps"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &value}}},
				{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: "queue"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: &value}}},
			},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &window}},
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{
			CurrentReplicas: 3, DesiredReplicas: 4,
			CurrentMetrics: []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
				Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: &ten, AverageValue: &value}}}},
			Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{{Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue, Reason: "ReadyForNewScale"}},
		},
	}
	var v1 autoscalingv1.HorizontalPodAutoscaler
	if err := Scheme.Convert(in, &v1, nil); err != nil {
		t.Fatal(err)
	}
	if p := v1.Spec.TargetCPUUtilizationPercentage; p == nil || *p != 50 {
		t.Errorf("targetCPUUtilizationPercentage: %v", p)
	}
	if p := v1.Status.CurrentCPUUtilizationPercentage; p == nil || *p != 10 {
		t.Errorf("currentCPUUtilizationPercentage: %v", p)
	}
	for _, key := range []string{hpaMetricSpecsAnnotation, hpaMetricStatusesAnnotation, hpaConditionsAnnotation, hpaBehaviorAnnotation, "keep"} {
		if v1.Annotations[key] == "" {
			t.Errorf("v1 has no annotation %s: %v", key, v1.Annotations)
		}
	}
	if _, ok := in.Annotations[hpaMetricSpecsAnnotation]; ok {
		t.Errorf("conversion wrote into its input")
	}
	var back autoscalingv2.HorizontalPodAutoscaler
	if err := Scheme.Convert(&v1, &back, nil); err != nil {
		t.Fatal(err)
	}
	if !apiequality.Semantic.DeepEqual(in, &back) {
		t.Errorf("round trip changed the object:\n%+v\n%+v", in, &back)
	}
}

func TestHorizontalPodAutoscalerDefaultsFillBehaviorRulesAsUpstream(t *testing.T) {
	window := int32(30)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &window}},
	}}
	DefaultHorizontalPodAutoscaler(hpa)
	up, down := hpa.Spec.Behavior.ScaleUp, hpa.Spec.Behavior.ScaleDown
	if *up.StabilizationWindowSeconds != 30 || *up.SelectPolicy != autoscalingv2.MaxChangePolicySelect || len(up.Policies) != 2 ||
		up.Policies[0] != (autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15}) {
		t.Errorf("scaleUp: %+v", up)
	}
	if *down.StabilizationWindowSeconds != 300 || len(down.Policies) != 1 ||
		down.Policies[0] != (autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}) {
		t.Errorf("scaleDown: %+v", down)
	}
	if *hpa.Spec.MinReplicas != 1 || !isCPUUtilization(hpa.Spec.Metrics[0]) || *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 {
		t.Errorf("spec: %+v", hpa.Spec)
	}
}

func TestHorizontalPodAutoscalerValidationSpeaksUpstreamsWords(t *testing.T) {
	zero := int32(0)
	neg := resource.MustParse("-1")
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "a/b"},
			MaxReplicas:    0,
			Metrics: []autoscalingv2.MetricSpec{
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &zero}}},
				{Type: autoscalingv2.PodsMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceMemory,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &neg}}},
			},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{
				Policies: []autoscalingv2.HPAScalingPolicy{{Type: "Nodes", Value: 0, PeriodSeconds: 1801}}, Tolerance: &neg}},
		},
	}
	var got []string
	for _, e := range ValidateHorizontalPodAutoscaler(hpa) {
		got = append(got, e.Error())
	}
	want := []string{
		`spec.maxReplicas: Invalid value: 0: must be greater than 0`,
		`spec.scaleTargetRef.name: Invalid value: "a/b": may not contain '/'`,
		`spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0`,
		`spec.metrics[1].resource.target.averageValue: Invalid value: "-1": must be positive`,
		`spec.metrics[1].pods: Required value: must populate information for the given metric source`,
		`spec.behavior.scaleDown.policies[0].type: Unsupported value: "Nodes": supported values: "Percent", "Pods"`,
		`spec.behavior.scaleDown.policies[0].value: Invalid value: 0: must be greater than zero`,
		`spec.behavior.scaleDown.policies[0].periodSeconds: Invalid value: 1801: must be less than or equal to 1800`,
		`spec.behavior.scaleDown.tolerance: Invalid value: "-1": must be greater than or equal to 0`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHorizontalPodAutoscalerTargetsColumn(t *testing.T) {
	fifty, value := int32(50), resource.MustParse("100Mi")
	specs := []autoscalingv2.MetricSpec{
		cpuUtilizationMetric(50),
		{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceMemory,
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &value}}},
		cpuUtilizationMetric(70),
	}
	if got := formatHPAMetrics(specs[:1], nil); got != "cpu: <unknown>/50%" {
		t.Errorf("no status: %q", got)
	}
	statuses := []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
		Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: &fifty}}}}
	if got := formatHPAMetrics(specs, statuses); got != "cpu: 50%/50%, memory: <unknown>/100Mi + 1 more..." {
		t.Errorf("three metrics: %q", got)
	}
}
