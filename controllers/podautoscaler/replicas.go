package podautoscaler

import (
	"fmt"
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Upstream's figures for the replica calculation.
const (
	// Tolerance is how far from 1 the ratio of current to target use must be before the
	// autoscaler acts (--horizontal-pod-autoscaler-tolerance).
	Tolerance = 0.1
	// CPUInitializationPeriod is how long after a pod starts its CPU samples may be skewed
	// by start-up (--horizontal-pod-autoscaler-cpu-initialization-period).
	CPUInitializationPeriod = 5 * time.Minute
	// DelayOfInitialReadinessStatus is how long after a pod starts a readiness change is
	// still its first (--horizontal-pod-autoscaler-initial-readiness-delay).
	DelayOfInitialReadinessStatus = 30 * time.Second
)

// podMetric is one pod's use of a resource, in milli-units, measured over Window before
// Timestamp.
type podMetric struct {
	Value     int64
	Timestamp time.Time
	Window    time.Duration
}

// podMetrics are pods' metrics by pod name.
type podMetrics map[string]podMetric

// replicaCalculator computes the replica count that brings a resource's use to its target,
// as upstream's: pods not yet ready or not yet measured count so as to damp the change,
// and nothing changes within Tolerance.
type replicaCalculator struct {
	now        func() time.Time
	tolerances tolerances
}

// tolerances are how far below and above 1 the ratio of current to target use may be
// without a change: Tolerance each, unless the autoscaler's behavior sets its own.
type tolerances struct {
	scaleDown, scaleUp float64
}

var defaultTolerances = tolerances{scaleDown: Tolerance, scaleUp: Tolerance}

// tolerancesOf are an autoscaler's tolerances (behavior.scaleDown.tolerance and
// behavior.scaleUp.tolerance, autoscaling/v2's HPAConfigurableTolerance).
func tolerancesOf(hpa *autoscalingv2.HorizontalPodAutoscaler) tolerances {
	t := defaultTolerances
	if b := hpa.Spec.Behavior; b != nil {
		if b.ScaleDown != nil && b.ScaleDown.Tolerance != nil {
			t.scaleDown = b.ScaleDown.Tolerance.AsApproximateFloat64()
		}
		if b.ScaleUp != nil && b.ScaleUp.Tolerance != nil {
			t.scaleUp = b.ScaleUp.Tolerance.AsApproximateFloat64()
		}
	}
	return t
}

func (t tolerances) within(ratio float64) bool {
	return 1.0-t.scaleDown <= ratio && ratio <= 1.0+t.scaleUp
}

// resourceUtilizationReplicas is the replica count for a target average utilization (a
// percentage of the pods' requests), with the utilization and the raw average use (milli).
func (c replicaCalculator) resourceUtilizationReplicas(currentReplicas, targetUtilization int32, resource corev1.ResourceName, container string,
	pods []*corev1.Pod, metrics podMetrics) (replicas int32, utilization int32, rawAverage int64, err error) {
	ready, unready, missing, ignored := c.groupPods(pods, metrics, resource)
	removeMetrics(metrics, ignored)
	removeMetrics(metrics, unready)
	requests, err := podRequests(pods, container, resource)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(metrics) == 0 {
		return 0, 0, 0, fmt.Errorf("did not receive metrics for targeted pods (pods might be unready)")
	}
	ratio, utilization, rawAverage, err := utilizationRatio(metrics, requests, targetUtilization)
	if err != nil {
		return 0, 0, 0, err
	}
	scaleUpWithUnready := len(unready) > 0 && ratio > 1.0
	if !scaleUpWithUnready && len(missing) == 0 {
		if c.tolerances.within(ratio) {
			return currentReplicas, utilization, rawAverage, nil
		}
		return int32(math.Ceil(ratio * float64(ready))), utilization, rawAverage, nil
	}
	// damp the change: missing pods are assumed at the target when scaling down (no more
	// than 100%) and idle when scaling up, unready ones idle
	if len(missing) > 0 {
		for name := range missing {
			if ratio < 1.0 {
				metrics[name] = podMetric{Value: requests[name] * int64(max(100, targetUtilization)) / 100}
			} else if ratio > 1.0 {
				metrics[name] = podMetric{Value: 0}
			}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			metrics[name] = podMetric{Value: 0}
		}
	}
	newRatio, _, _, err := utilizationRatio(metrics, requests, targetUtilization)
	if err != nil {
		return 0, 0, 0, err
	}
	return c.dampened(currentReplicas, ratio, newRatio, len(metrics)), utilization, rawAverage, nil
}

// averageValueReplicas is the replica count for a target average use (milli) of a resource
// or of a custom metric of the pods (resource ""), with the average use.
func (c replicaCalculator) averageValueReplicas(currentReplicas int32, targetAverage int64, resource corev1.ResourceName,
	pods []*corev1.Pod, metrics podMetrics) (replicas int32, average int64, err error) {
	ready, unready, missing, ignored := c.groupPods(pods, metrics, resource)
	removeMetrics(metrics, ignored)
	removeMetrics(metrics, unready)
	if len(metrics) == 0 {
		return 0, 0, fmt.Errorf("did not receive metrics for targeted pods (pods might be unready)")
	}
	ratio, average := averageRatio(metrics, targetAverage)
	scaleUpWithUnready := len(unready) > 0 && ratio > 1.0
	if !scaleUpWithUnready && len(missing) == 0 {
		if c.tolerances.within(ratio) {
			return currentReplicas, average, nil
		}
		return int32(math.Ceil(ratio * float64(ready))), average, nil
	}
	for name := range missing {
		if ratio < 1.0 {
			metrics[name] = podMetric{Value: targetAverage}
		} else if ratio > 1.0 {
			metrics[name] = podMetric{Value: 0}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			metrics[name] = podMetric{Value: 0}
		}
	}
	newRatio, _ := averageRatio(metrics, targetAverage)
	return c.dampened(currentReplicas, ratio, newRatio, len(metrics)), average, nil
}

// dampened is the replica count of newRatio over n pods, unless assuming what was not
// measured turned the direction around or brought the ratio within tolerance.
func (c replicaCalculator) dampened(currentReplicas int32, ratio, newRatio float64, n int) int32 {
	if c.tolerances.within(newRatio) || (ratio < 1.0 && newRatio > 1.0) || (ratio > 1.0 && newRatio < 1.0) {
		return currentReplicas
	}
	replicas := int32(math.Ceil(newRatio * float64(n)))
	if (newRatio < 1.0 && replicas > currentReplicas) || (newRatio > 1.0 && replicas < currentReplicas) {
		return currentReplicas
	}
	return replicas
}

// groupPods sorts pods into the ready ones with metrics (counted), the unready ones (pending,
// or, for CPU, not yet ready or measured before they became ready in their first minutes),
// those without metrics, and those to ignore (deleted or failed).
func (c replicaCalculator) groupPods(pods []*corev1.Pod, metrics podMetrics, resource corev1.ResourceName) (ready int, unready, missing, ignored sets.Set[string]) {
	unready, missing, ignored = sets.New[string](), sets.New[string](), sets.New[string]()
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodFailed {
			ignored.Insert(pod.Name)
			continue
		}
		if pod.Status.Phase == corev1.PodPending {
			unready.Insert(pod.Name)
			continue
		}
		metric, found := metrics[pod.Name]
		if !found {
			missing.Insert(pod.Name)
			continue
		}
		if resource == corev1.ResourceCPU {
			var condition *corev1.PodCondition
			for i := range pod.Status.Conditions {
				if pod.Status.Conditions[i].Type == corev1.PodReady {
					condition = &pod.Status.Conditions[i]
				}
			}
			isUnready := false
			switch {
			case condition == nil || pod.Status.StartTime == nil:
				isUnready = true
			case pod.Status.StartTime.Add(CPUInitializationPeriod).After(c.now()):
				// starting: its sample counts only if it was ready throughout
				isUnready = condition.Status == corev1.ConditionFalse || metric.Timestamp.Before(condition.LastTransitionTime.Add(metric.Window))
			default:
				// never ready since it started
				isUnready = condition.Status == corev1.ConditionFalse && pod.Status.StartTime.Add(DelayOfInitialReadinessStatus).After(condition.LastTransitionTime.Time)
			}
			if isUnready {
				unready.Insert(pod.Name)
				continue
			}
		}
		ready++
	}
	return ready, unready, missing, ignored
}

func removeMetrics(metrics podMetrics, pods sets.Set[string]) {
	for name := range pods {
		delete(metrics, name)
	}
}

// podRequests are each pod's requests of resource (milli): its pod-level request where it
// sets one, else the sum over its containers and sidecars (restartable init containers), or
// only container's when one is named; with upstream's words when a request is missing.
func podRequests(pods []*corev1.Pod, container string, resource corev1.ResourceName) (map[string]int64, error) {
	requests := make(map[string]int64, len(pods))
	for _, pod := range pods {
		if r := pod.Spec.Resources; container == "" && r != nil {
			if q, ok := r.Requests[resource]; ok {
				requests[pod.Name] = q.MilliValue()
				continue
			}
		}
		containers := pod.Spec.Containers
		for _, c := range pod.Spec.InitContainers {
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				containers = append(containers[:len(containers):len(containers)], c)
			}
		}
		var sum int64
		found := false
		for _, c := range containers {
			if container != "" && c.Name != container {
				continue
			}
			q, ok := c.Resources.Requests[resource]
			if !ok {
				return nil, fmt.Errorf("missing request for %s in container %s of Pod %s", resource, c.Name, pod.Name)
			}
			sum += q.MilliValue()
			found = true
		}
		if container != "" && !found {
			return nil, fmt.Errorf("container %s not found in Pod %s", container, pod.Name)
		}
		requests[pod.Name] = sum
	}
	return requests, nil
}

// utilizationRatio is the measured pods' use over their requests, over the target: the
// ratio, the utilization (percent) and the average use (milli).
func utilizationRatio(metrics podMetrics, requests map[string]int64, targetUtilization int32) (float64, int32, int64, error) {
	var used, requested int64
	n := 0
	for name, m := range metrics {
		request, ok := requests[name]
		if !ok {
			continue // a pod the metrics know and the lister does not
		}
		used += m.Value
		requested += request
		n++
	}
	if requested == 0 {
		return 0, 0, 0, fmt.Errorf("no metrics returned matched known pods")
	}
	utilization := int32(used * 100 / requested)
	return float64(utilization) / float64(targetUtilization), utilization, used / int64(n), nil
}

// averageRatio is the pods' average use over the target, and the average.
func averageRatio(metrics podMetrics, targetAverage int64) (float64, int64) {
	var sum int64
	for _, m := range metrics {
		sum += m.Value
	}
	average := sum / int64(len(metrics))
	return float64(average) / float64(targetAverage), average
}

// usageRatioReplicas is the replica count for an object's or an external metric at ratio
// of its target value: the ready pods scaled by the ratio, unless within the tolerances; a
// target at zero replicas goes to the ratio itself (rounded up), so that it can scale from
// and to zero.
func (c replicaCalculator) usageRatioReplicas(currentReplicas int32, ratio float64, readyPods func() (int64, error)) (int32, error) {
	if currentReplicas == 0 {
		return saturatedInt32(math.Ceil(ratio)), nil
	}
	if c.tolerances.within(ratio) {
		return currentReplicas, nil
	}
	ready, err := readyPods()
	if err != nil {
		return 0, fmt.Errorf("unable to calculate ready pods: %s", err)
	}
	return saturatedInt32(math.Ceil(ratio * float64(ready))), nil
}

// perPodReplicas is the replica count for a total (an object's metric, or the sum of an
// external metric's series) against a target average per pod over the statusReplicas the
// target has, and that average.
func (c replicaCalculator) perPodReplicas(statusReplicas int32, total, targetAverage int64) (int32, int64) {
	replicas := statusReplicas
	if !c.tolerances.within(float64(total) / (float64(targetAverage) * float64(statusReplicas))) {
		replicas = saturatedInt32(math.Ceil(float64(total) / float64(targetAverage)))
	}
	if statusReplicas == 0 || total == math.MaxInt64 {
		return replicas, total
	}
	return replicas, int64(math.Ceil(float64(total) / float64(statusReplicas)))
}

// saturatingSum adds values, stopping at the largest int64 rather than wrapping.
func saturatingSum(values []int64) int64 {
	var sum int64
	for _, v := range values {
		if v > 0 && sum > math.MaxInt64-v {
			return math.MaxInt64
		}
		sum += v
	}
	return sum
}

func saturatedInt32(f float64) int32 {
	if f > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(f)
}

// readyPodCount counts the running, ready pods, with upstream's words when there are none.
func readyPodCount(pods []*corev1.Pod, err error) (int64, error) {
	if err != nil {
		return 0, fmt.Errorf("unable to get pods while calculating replica count: %v", err)
	}
	if len(pods) == 0 {
		return 0, fmt.Errorf("no pods returned by selector while calculating replica count")
	}
	var n int64
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n, nil
}
