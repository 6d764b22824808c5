package podautoscaler

import (
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apis"
)

var epoch = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// readyPod is a running pod, ready long since, requesting cpuRequest of CPU.
func readyPod(name, cpuRequest string) *corev1.Pod {
	started := metav1.NewTime(epoch.Add(-time.Hour))
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuRequest), corev1.ResourceMemory: resource.MustParse("100Mi")}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &started,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: started}}},
	}
}

func sample(milli int64) podMetric {
	return podMetric{Value: milli, Timestamp: epoch, Window: 30 * time.Second}
}

func TestUtilizationReplicas(t *testing.T) {
	calc := replicaCalculator{now: func() time.Time { return epoch }, tolerances: defaultTolerances}
	pods := []*corev1.Pod{readyPod("a", "100m"), readyPod("b", "100m")}
	for _, tc := range []struct {
		name       string
		used       []int64
		target     int32
		want, util int32
	}{
		{"twice the target doubles", []int64{100, 100}, 50, 4, 100},
		{"within the tolerance nothing changes", []int64{54, 54}, 50, 2, 54},
		{"half the target halves", []int64{25, 25}, 50, 1, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			metrics := podMetrics{"a": sample(tc.used[0]), "b": sample(tc.used[1])}
			got, util, _, err := calc.resourceUtilizationReplicas(2, tc.target, corev1.ResourceCPU, "", pods, metrics)
			if err != nil || got != tc.want || util != tc.util {
				t.Errorf("replicas %d utilization %d (%v), want %d %d", got, util, err, tc.want, tc.util)
			}
		})
	}
}

func TestMissingAndUnreadyPodsDampTheChange(t *testing.T) {
	calc := replicaCalculator{now: func() time.Time { return epoch }, tolerances: defaultTolerances}
	pending := readyPod("c", "100m")
	pending.Status.Phase = corev1.PodPending
	pods := []*corev1.Pod{readyPod("a", "100m"), readyPod("b", "100m"), pending}
	// two ready pods at 100% of a 50% target would make 4; the pending one counts as idle
	got, _, _, err := calc.resourceUtilizationReplicas(3, 50, corev1.ResourceCPU, "", pods, podMetrics{"a": sample(100), "b": sample(100)})
	if err != nil || got != 4 {
		t.Errorf("with a pending pod: %d (%v)", got, err)
	}
	// scaling down, a pod without metrics counts as using all it requests: 0+0+100 of 300
	// is 33% of a 50% target
	got, _, _, err = calc.resourceUtilizationReplicas(3, 50, corev1.ResourceCPU, "", []*corev1.Pod{readyPod("a", "100m"), readyPod("b", "100m"), readyPod("m", "100m")},
		podMetrics{"a": sample(0), "b": sample(0)})
	if err != nil || got != 2 {
		t.Errorf("with a pod without metrics: %d (%v)", got, err)
	}
	if _, _, _, err := calc.resourceUtilizationReplicas(1, 50, corev1.ResourceCPU, "", []*corev1.Pod{pending}, podMetrics{}); err == nil ||
		err.Error() != "did not receive metrics for targeted pods (pods might be unready)" {
		t.Errorf("no ready pods: %v", err)
	}
	noRequest := readyPod("a", "100m")
	noRequest.Spec.Containers[0].Resources.Requests = nil
	if _, _, _, err := calc.resourceUtilizationReplicas(1, 50, corev1.ResourceCPU, "", []*corev1.Pod{noRequest}, podMetrics{"a": sample(10)}); err == nil ||
		err.Error() != "missing request for cpu in container c of Pod a" {
		t.Errorf("no request: %v", err)
	}
}

func TestAverageValueReplicas(t *testing.T) {
	calc := replicaCalculator{now: func() time.Time { return epoch }, tolerances: defaultTolerances}
	pods := []*corev1.Pod{readyPod("a", "100m"), readyPod("b", "100m")}
	got, avg, err := calc.averageValueReplicas(2, 200_000, corev1.ResourceMemory, pods, podMetrics{"a": sample(300_000), "b": sample(300_000)})
	if err != nil || got != 3 || avg != 300_000 {
		t.Errorf("replicas %d average %d (%v)", got, avg, err)
	}
}

func defaultedBehavior(b *autoscalingv2.HorizontalPodAutoscalerBehavior) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	b.ScaleUp, b.ScaleDown = apis.DefaultScaleUpRules(b.ScaleUp), apis.DefaultScaleDownRules(b.ScaleDown)
	return b
}

func TestBehaviorPoliciesLimitTheRate(t *testing.T) {
	b := defaultedBehavior(&autoscalingv2.HorizontalPodAutoscalerBehavior{})
	l := limits{minReplicas: 1, maxReplicas: 100, currentReplicas: 2}
	// default scale-up: the larger of +4 pods and +100% per 15s
	if got, reason, _ := limitWithBehavior(50, l, b, nil, nil, epoch); got != 6 || reason != "ScaleUpLimit" {
		t.Errorf("scale up: %d %s", got, reason)
	}
	// what was added within the period counts against it
	ups := []scaleEvent{{change: 4, timestamp: epoch.Add(-5 * time.Second)}}
	if got, _, _ := limitWithBehavior(50, limits{1, 100, 6}, b, ups, nil, epoch); got != 6 {
		t.Errorf("scale up after a scale up: %d", got)
	}
	minPolicy := autoscalingv2.MinChangePolicySelect
	b.ScaleUp.SelectPolicy = &minPolicy
	if got, _, _ := limitWithBehavior(50, l, b, nil, nil, epoch); got != 4 {
		t.Errorf("scale up with Min: %d", got)
	}
	disabled := autoscalingv2.DisabledPolicySelect
	b.ScaleDown.SelectPolicy = &disabled
	if got, reason, _ := limitWithBehavior(1, limits{1, 100, 10}, b, nil, nil, epoch); got != 10 || reason != "ScaleDownLimit" {
		t.Errorf("scale down disabled: %d %s", got, reason)
	}
	if got, reason, _ := limitWithBehavior(200, limits{1, 5, 4}, defaultedBehavior(&autoscalingv2.HorizontalPodAutoscalerBehavior{}), nil, nil, epoch); got != 5 || reason != "TooManyReplicas" {
		t.Errorf("above max: %d %s", got, reason)
	}
}

func TestStabilizationWindowsKeepRecentRecommendations(t *testing.T) {
	b := defaultedBehavior(&autoscalingv2.HorizontalPodAutoscalerBehavior{})
	recs := []timestampedRecommendation{{8, epoch.Add(-time.Minute)}, {3, epoch.Add(-10 * time.Minute)}}
	// the scale-down window (5m) remembers 8
	got, reason, _, recs := stabilizeWithBehavior(recs, 2, limits{1, 10, 6}, b, epoch)
	if got != 6 || reason != "ScaleDownStabilized" {
		t.Errorf("scale down within the window: %d %s", got, reason)
	}
	if len(recs) != 2 || recs[1].recommendation != 2 {
		t.Errorf("the old recommendation was not reused: %+v", recs)
	}
	// without a behavior the highest recommendation of 5 minutes wins
	if got, _ := stabilize([]timestampedRecommendation{{7, epoch.Add(-time.Minute)}}, 3, epoch); got != 7 {
		t.Errorf("stabilize: %d", got)
	}
	if got, _ := stabilize([]timestampedRecommendation{{7, epoch.Add(-6 * time.Minute)}}, 3, epoch); got != 3 {
		t.Errorf("stabilize past the window: %d", got)
	}
}
