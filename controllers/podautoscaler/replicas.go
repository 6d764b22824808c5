package podautoscaler

import (
	"fmt"
	"math"
	"time"

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
	now func() time.Time
}

// resourceUtilizationReplicas is the replica count for a target average utilization (a
// percentage of the pods' requests), with the utilization and the raw average use (milli).
func (c replicaCalculator) resourceUtilizationReplicas(currentReplicas, targetUtilization int32, resource corev1.ResourceName,
	pods []*corev1.Pod, metrics podMetrics) (replicas int32, utilization int32, rawAverage int64, err error) {
	ready, unready, missing, ignored := c.groupPods(pods, metrics, resource)
	removeMetrics(metrics, ignored)
	removeMetrics(metrics, unready)
	requests, err := podRequests(pods, resource)
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
		if math.Abs(1.0-ratio) <= Tolerance {
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
	return dampened(currentReplicas, ratio, newRatio, len(metrics)), utilization, rawAverage, nil
}

// resourceAverageValueReplicas is the replica count for a target average use (milli), with
// the average use.
func (c replicaCalculator) resourceAverageValueReplicas(currentReplicas int32, targetAverage int64, resource corev1.ResourceName,
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
		if math.Abs(1.0-ratio) <= Tolerance {
			return currentReplicas, average, nil
		}
		return int32(math.Ceil(ratio * float64(ready))), average, nil
	}
	for name := range missing {
		if ratio < 1.0 {
			metrics[name] = podMetric{Value: targetAverage}
		} else {
			metrics[name] = podMetric{Value: 0}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			metrics[name] = podMetric{Value: 0}
		}
	}
	newRatio, _ := averageRatio(metrics, targetAverage)
	return dampened(currentReplicas, ratio, newRatio, len(metrics)), average, nil
}

// dampened is the replica count of newRatio over n pods, unless assuming what was not
// measured turned the direction around or brought the ratio within tolerance.
func dampened(currentReplicas int32, ratio, newRatio float64, n int) int32 {
	if math.Abs(1.0-newRatio) <= Tolerance || (ratio < 1.0 && newRatio > 1.0) || (ratio > 1.0 && newRatio < 1.0) {
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

// podRequests are each pod's requests of resource (milli), with upstream's words when a
// container has none.
func podRequests(pods []*corev1.Pod, resource corev1.ResourceName) (map[string]int64, error) {
	requests := make(map[string]int64, len(pods))
	for _, pod := range pods {
		var sum int64
		for _, c := range pod.Spec.Containers {
			q, ok := c.Resources.Requests[resource]
			if !ok {
				return nil, fmt.Errorf("missing request for %s in container %s of Pod %s", resource, c.Name, pod.ObjectMeta.Name)
			}
			sum += q.MilliValue()
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
