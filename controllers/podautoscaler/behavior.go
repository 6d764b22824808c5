package podautoscaler

import (
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// DownscaleStabilizationWindow is how long an autoscaler without a behavior remembers its
// recommendations before scaling down (--horizontal-pod-autoscaler-downscale-stabilization).
const DownscaleStabilizationWindow = 5 * time.Minute

type timestampedRecommendation struct {
	recommendation int32
	timestamp      time.Time
}

// scaleEvent is one change of replicas the autoscaler made; outdated ones are reused.
type scaleEvent struct {
	change    int32
	timestamp time.Time
	outdated  bool
}

// limits is what bounds a recommendation: the spec's range and the current count.
type limits struct {
	minReplicas, maxReplicas, currentReplicas int32
}

// stabilize is the recommendation of an autoscaler without a behavior: the highest of those
// of the last DownscaleStabilizationWindow, this one included, which it records.
func stabilize(recs []timestampedRecommendation, desired int32, now time.Time) (int32, []timestampedRecommendation) {
	max := desired
	cutoff := now.Add(-DownscaleStabilizationWindow)
	reused := false
	for i, r := range recs {
		if r.timestamp.After(cutoff) {
			if r.recommendation > max {
				max = r.recommendation
			}
		} else if !reused {
			recs[i] = timestampedRecommendation{desired, now}
			reused = true
		}
	}
	if !reused {
		recs = append(recs, timestampedRecommendation{desired, now})
	}
	return max, recs
}

// stabilizeWithBehavior brings desired within the lowest recommendation of the scale-up
// window and the highest of the scale-down window, records desired, and says which window
// held it back.
func stabilizeWithBehavior(recs []timestampedRecommendation, desired int32, l limits, b *autoscalingv2.HorizontalPodAutoscalerBehavior, now time.Time) (int32, string, string, []timestampedRecommendation) {
	upCutoff := now.Add(-time.Duration(*b.ScaleUp.StabilizationWindowSeconds) * time.Second)
	downCutoff := now.Add(-time.Duration(*b.ScaleDown.StabilizationWindowSeconds) * time.Second)
	up, down := desired, desired
	old := -1
	for i, r := range recs {
		if r.timestamp.After(upCutoff) {
			up = min(up, r.recommendation)
		}
		if r.timestamp.After(downCutoff) {
			down = max(down, r.recommendation)
		}
		if r.timestamp.Before(upCutoff) && r.timestamp.Before(downCutoff) {
			old = i
		}
	}
	recommendation := l.currentReplicas
	if recommendation < up {
		recommendation = up
	}
	if recommendation > down {
		recommendation = down
	}
	if old >= 0 {
		recs[old] = timestampedRecommendation{desired, now}
	} else {
		recs = append(recs, timestampedRecommendation{desired, now})
	}
	if desired >= l.currentReplicas {
		return recommendation, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation", recs
	}
	return recommendation, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation", recs
}

// limitWithoutBehavior bounds desired by the spec's range and, without a behavior, by
// doubling (at least 4) per scale-up; it returns the ScalingLimited reason and message.
func limitWithoutBehavior(desired int32, l limits) (int32, string, string) {
	scaleUpLimit := max(2*l.currentReplicas, 4)
	maxAllowed, reason, message := l.maxReplicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
	if l.maxReplicas > scaleUpLimit {
		maxAllowed, reason, message = scaleUpLimit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
	}
	minAllowed := max(l.minReplicas, 1)
	if desired < minAllowed {
		return minAllowed, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
	}
	if desired > maxAllowed {
		return maxAllowed, reason, message
	}
	return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

// limitWithBehavior bounds desired by the spec's range and the behavior's policies over the
// scale events of their periods.
func limitWithBehavior(desired int32, l limits, b *autoscalingv2.HorizontalPodAutoscalerBehavior, ups, downs []scaleEvent, now time.Time) (int32, string, string) {
	switch {
	case desired > l.currentReplicas:
		limit := max(scaleUpLimit(l.currentReplicas, ups, downs, b.ScaleUp, now), l.currentReplicas)
		maxAllowed, reason, message := l.maxReplicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
		if maxAllowed > limit {
			maxAllowed, reason, message = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
		}
		if desired > maxAllowed {
			return maxAllowed, reason, message
		}
	case desired < l.currentReplicas:
		limit := min(scaleDownLimit(l.currentReplicas, ups, downs, b.ScaleDown, now), l.currentReplicas)
		minAllowed, reason, message := l.minReplicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
		if minAllowed < limit {
			minAllowed, reason, message = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
		}
		if desired < minAllowed {
			return minAllowed, reason, message
		}
	}
	return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

// changeInPeriod is the replicas events added (or removed) in the last periodSeconds.
func changeInPeriod(periodSeconds int32, events []scaleEvent, now time.Time) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	var sum int32
	for _, e := range events {
		if e.timestamp.After(cutoff) {
			sum += e.change
		}
	}
	return sum
}

// scaleUpLimit is the most replicas the scale-up policies allow now: each policy counts from
// the replicas at the start of its period; selectPolicy picks the largest (Max) or the
// smallest (Min) change, or none (Disabled).
func scaleUpLimit(current int32, ups, downs []scaleEvent, rules *autoscalingv2.HPAScalingRules, now time.Time) int32 {
	if *rules.SelectPolicy == autoscalingv2.DisabledPolicySelect {
		return current
	}
	pick, result := maxOf, int32(math.MinInt32)
	if *rules.SelectPolicy == autoscalingv2.MinChangePolicySelect {
		pick, result = minOf, int32(math.MaxInt32)
	}
	for _, p := range rules.Policies {
		start := current - changeInPeriod(p.PeriodSeconds, ups, now) + changeInPeriod(p.PeriodSeconds, downs, now)
		var proposed int32
		if p.Type == autoscalingv2.PodsScalingPolicy {
			proposed = start + p.Value
		} else {
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		}
		result = pick(result, proposed)
	}
	return result
}

// scaleDownLimit is the fewest replicas the scale-down policies allow now; Max picks the
// largest change, which is the fewest replicas.
func scaleDownLimit(current int32, ups, downs []scaleEvent, rules *autoscalingv2.HPAScalingRules, now time.Time) int32 {
	if *rules.SelectPolicy == autoscalingv2.DisabledPolicySelect {
		return current
	}
	pick, result := minOf, int32(math.MaxInt32)
	if *rules.SelectPolicy == autoscalingv2.MinChangePolicySelect {
		pick, result = maxOf, int32(math.MinInt32)
	}
	for _, p := range rules.Policies {
		start := current - changeInPeriod(p.PeriodSeconds, ups, now) + changeInPeriod(p.PeriodSeconds, downs, now)
		var proposed int32
		if p.Type == autoscalingv2.PodsScalingPolicy {
			proposed = start - p.Value
		} else {
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	return result
}

// recordScaleEvent adds a change to the events of its direction, reusing one older than the
// direction's longest policy period.
func recordScaleEvent(events []scaleEvent, change int32, rules *autoscalingv2.HPAScalingRules, now time.Time) []scaleEvent {
	var longest int32
	for _, p := range rules.Policies {
		longest = max(longest, p.PeriodSeconds)
	}
	cutoff := now.Add(-time.Duration(longest) * time.Second)
	for i := range events {
		if events[i].timestamp.Before(cutoff) {
			events[i] = scaleEvent{change: change, timestamp: now}
			return events
		}
	}
	return append(events, scaleEvent{change: change, timestamp: now})
}

func maxOf(a, b int32) int32 { return max(a, b) }
func minOf(a, b int32) int32 { return min(a, b) }
