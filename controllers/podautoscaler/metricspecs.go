package podautoscaler

import (
	"context"
	"fmt"
	"slices"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// scaleTarget is what the metrics of one reconcile are computed against.
type scaleTarget struct {
	namespace string
	// specReplicas is the count the scale asks for, statusReplicas the count it has.
	specReplicas, statusReplicas int32
	// selector selects the target's pods.
	selector labels.Selector
}

// metricProposal is the replica count one metric asks for, the metric's name in events and
// conditions, and its status.
type metricProposal struct {
	replicas int32
	name     string
	status   autoscalingv2.MetricStatus
}

// metricFailure is a metric that could not be computed: reason and cause make its event
// and the ScalingActive condition, err (cause with the metric's context) the autoscaler's
// error.
type metricFailure struct {
	reason string
	cause  error
	err    error
}

// failed is a metricFailure whose err is cause wrapped in the format's words (whose last
// verb takes the cause).
func failed(reason string, cause error, format string, args ...any) *metricFailure {
	return &metricFailure{reason: reason, cause: cause, err: fmt.Errorf(format, append(args, cause)...)}
}

// wrapped is f with its err wrapped again in the format's words.
func (f *metricFailure) wrapped(format string, args ...any) *metricFailure {
	return &metricFailure{reason: f.reason, cause: f.cause, err: fmt.Errorf(format, append(args, f.err)...)}
}

// replicasForMetrics is the largest replica count the metrics ask for, the name of the
// metric that asked for it, and every metric's status. It is -1 with an error when no metric
// could be computed, or when some could not and the others would scale down; when some could
// not and the others scale up, it is their count with the error.
func (c *Controller) replicasForMetrics(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, sc *autoscalingv1.Scale) (int32, string, []autoscalingv2.MetricStatus, error) {
	if sc.Status.Selector == "" {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "SelectorRequired", "selector is required")
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", "the HPA target's scale is missing a selector")
		return -1, "", nil, fmt.Errorf("selector is required")
	}
	selector, err := labels.Parse(sc.Status.Selector)
	if err != nil {
		msg := fmt.Sprintf("couldn't convert selector into a corresponding internal selector object: %v", err)
		c.recorder.Event(hpa, corev1.EventTypeWarning, "InvalidSelector", msg)
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", "%s", msg)
		return -1, "", nil, fmt.Errorf("%s", msg)
	}
	if others := c.controllingHPAs(hpa, selector); len(others) > 1 {
		msg := fmt.Sprintf("pods by selector %v are controlled by more than one HPA (e.g. %v)", sc.Status.Selector, others)
		c.recorder.Event(hpa, corev1.EventTypeWarning, "AmbiguousSelector", msg)
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "AmbiguousSelector", "%s", msg)
		return -1, "", nil, fmt.Errorf("%s", msg)
	}
	t := scaleTarget{namespace: hpa.Namespace, specReplicas: sc.Spec.Replicas, statusReplicas: sc.Status.Replicas, selector: selector}
	calc := replicaCalculator{now: c.now, tolerances: tolerancesOf(hpa)}
	statuses := make([]autoscalingv2.MetricStatus, len(hpa.Spec.Metrics))
	var (
		replicas int32
		name     string
		invalid  int
		first    *metricFailure
	)
	for i, spec := range hpa.Spec.Metrics {
		p, f := c.replicasForMetric(ctx, calc, hpa, spec, t)
		if f != nil {
			c.recorder.Event(hpa, corev1.EventTypeWarning, f.reason, f.cause.Error())
			if first == nil {
				first = f
			}
			invalid++
			continue
		}
		statuses[i] = p.status
		if replicas == 0 || p.replicas > replicas {
			replicas, name = p.replicas, p.name
		}
	}
	if first == nil {
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound", "the HPA was able to successfully calculate a replica count from %s", name)
		return replicas, name, statuses, nil
	}
	err = fmt.Errorf("invalid metrics (%v invalid out of %v), first error is: %v", invalid, len(hpa.Spec.Metrics), first.err)
	if invalid >= len(hpa.Spec.Metrics) || replicas < t.specReplicas {
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, first.reason, "the HPA was unable to compute the replica count: %v", first.cause)
		return -1, "", statuses, err
	}
	c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound", "the HPA was able to successfully calculate a replica count from %s", name)
	return replicas, name, statuses, err
}

// replicasForMetric computes one metric of the autoscaler.
func (c *Controller) replicasForMetric(ctx context.Context, calc replicaCalculator, hpa *autoscalingv2.HorizontalPodAutoscaler,
	spec autoscalingv2.MetricSpec, t scaleTarget) (metricProposal, *metricFailure) {
	switch {
	case spec.Type == autoscalingv2.ResourceMetricSourceType && spec.Resource != nil:
		p, f := c.resourceReplicas(ctx, calc, spec.Resource.Name, "", spec.Resource.Target, t, "FailedGetResourceMetric")
		if f != nil {
			return p, f.wrapped("failed to get %s resource metric value: %v", spec.Resource.Name)
		}
		p.status = autoscalingv2.MetricStatus{Type: spec.Type, Resource: &autoscalingv2.ResourceMetricStatus{Name: spec.Resource.Name, Current: p.status.Resource.Current}}
		return p, nil
	case spec.Type == autoscalingv2.ContainerResourceMetricSourceType && spec.ContainerResource != nil:
		cr := spec.ContainerResource
		p, f := c.resourceReplicas(ctx, calc, cr.Name, cr.Container, cr.Target, t, "FailedGetContainerResourceMetric")
		if f != nil {
			return p, f.wrapped("failed to get %s container metric value: %v", cr.Container)
		}
		p.status = autoscalingv2.MetricStatus{Type: spec.Type, ContainerResource: &autoscalingv2.ContainerResourceMetricStatus{
			Name: cr.Name, Container: cr.Container, Current: p.status.Resource.Current}}
		return p, nil
	case spec.Type == autoscalingv2.PodsMetricSourceType && spec.Pods != nil:
		return c.podsReplicas(calc, spec.Pods, t)
	case spec.Type == autoscalingv2.ObjectMetricSourceType && spec.Object != nil:
		return c.objectReplicas(calc, spec.Object, t)
	case spec.Type == autoscalingv2.ExternalMetricSourceType && spec.External != nil:
		return c.externalReplicas(calc, spec.External, t)
	}
	err := fmt.Errorf("unknown metric source type %q", string(spec.Type))
	return metricProposal{}, &metricFailure{reason: "InvalidMetricSourceType", cause: err, err: err}
}

// resourceReplicas computes a Resource or ContainerResource metric (the status it returns is
// a Resource one, which the caller recasts); its failure's err is its cause.
func (c *Controller) resourceReplicas(ctx context.Context, calc replicaCalculator, res corev1.ResourceName, container string,
	target autoscalingv2.MetricTarget, t scaleTarget, reason string) (metricProposal, *metricFailure) {
	fail := func(format string, args ...any) (metricProposal, *metricFailure) {
		err := fmt.Errorf(format, args...)
		return metricProposal{}, &metricFailure{reason: reason, cause: err, err: err}
	}
	if target.AverageValue == nil && target.AverageUtilization == nil {
		return fail("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set")
	}
	what := "utilization"
	if target.AverageValue != nil {
		what = "usage"
	}
	metrics, err := c.metrics.resourcePodMetrics(ctx, t.namespace, res, container, t.selector)
	if err != nil {
		return fail("failed to get %s %s: unable to get metrics for resource %s: %v", res, what, res, err)
	}
	pods, err := c.podLister.Pods(t.namespace).List(t.selector)
	if err != nil {
		return fail("failed to get %s %s: unable to get pods while calculating replica count: %v", res, what, err)
	}
	if len(pods) == 0 {
		return fail("failed to get %s %s: no pods returned by selector while calculating replica count", res, what)
	}
	if target.AverageValue != nil {
		replicas, average, err := calc.averageValueReplicas(t.specReplicas, target.AverageValue.MilliValue(), res, pods, metrics)
		if err != nil {
			return fail("failed to get %s usage: %v", res, err)
		}
		return metricProposal{replicas: replicas, name: fmt.Sprintf("%s resource", res),
			status: autoscalingv2.MetricStatus{Resource: &autoscalingv2.ResourceMetricStatus{
				Current: autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(average, resource.DecimalSI)}}}}, nil
	}
	replicas, utilization, raw, err := calc.resourceUtilizationReplicas(t.specReplicas, *target.AverageUtilization, res, container, pods, metrics)
	if err != nil {
		return fail("failed to get %s utilization: %v", res, err)
	}
	name := fmt.Sprintf("%s resource utilization (percentage of request)", res)
	if container != "" {
		name = fmt.Sprintf("%s container resource utilization (percentage of request)", res)
	}
	return metricProposal{replicas: replicas, name: name, status: autoscalingv2.MetricStatus{Resource: &autoscalingv2.ResourceMetricStatus{
		Current: autoscalingv2.MetricValueStatus{AverageUtilization: &utilization, AverageValue: resource.NewMilliQuantity(raw, resource.DecimalSI)}}}}, nil
}

// podsReplicas computes a Pods metric: a custom metric of each of the target's pods against
// a target average, as a Resource metric's average value.
func (c *Controller) podsReplicas(calc replicaCalculator, src *autoscalingv2.PodsMetricSource, t scaleTarget) (metricProposal, *metricFailure) {
	const reason, wrap = "FailedGetPodsMetric", "failed to get pods metric value: %v"
	metricSelector, err := metav1.LabelSelectorAsSelector(src.Metric.Selector)
	if err != nil {
		return metricProposal{}, failed(reason, err, wrap)
	}
	if src.Target.AverageValue == nil {
		return metricProposal{}, failed(reason, fmt.Errorf("invalid pods metric source: the average value target was not set"), wrap)
	}
	metrics, err := c.metrics.rawPodMetrics(src.Metric.Name, t.namespace, t.selector, metricSelector)
	if err != nil {
		return metricProposal{}, failed(reason, fmt.Errorf("unable to get metric %s: %v", src.Metric.Name, err), wrap)
	}
	pods, err := c.podLister.Pods(t.namespace).List(t.selector)
	if err != nil {
		return metricProposal{}, failed(reason, fmt.Errorf("unable to get pods while calculating replica count: %v", err), wrap)
	}
	if len(pods) == 0 {
		return metricProposal{}, failed(reason, fmt.Errorf("no pods returned by selector while calculating replica count"), wrap)
	}
	// no resource: a custom metric is not skewed by start-up as CPU is
	replicas, average, err := calc.averageValueReplicas(t.specReplicas, src.Target.AverageValue.MilliValue(), "", pods, metrics)
	if err != nil {
		return metricProposal{}, failed(reason, err, wrap)
	}
	return metricProposal{replicas: replicas, name: "pods metric " + src.Metric.Name, status: autoscalingv2.MetricStatus{
		Type: autoscalingv2.PodsMetricSourceType,
		Pods: &autoscalingv2.PodsMetricStatus{Metric: src.Metric,
			Current: autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(average, resource.DecimalSI)}},
	}}, nil
}

// objectReplicas computes an Object metric: a custom metric of one object (an Ingress's
// requests per second, a queue's length) against a target value, which scales the ready
// pods by its ratio, or a target average per pod.
func (c *Controller) objectReplicas(calc replicaCalculator, src *autoscalingv2.ObjectMetricSource, t scaleTarget) (metricProposal, *metricFailure) {
	const reason, wrap = "FailedGetObjectMetric", "failed to get object metric value: %v"
	metricSelector, err := metav1.LabelSelectorAsSelector(src.Metric.Selector)
	if err != nil {
		return metricProposal{}, failed(reason, err, wrap)
	}
	ref := &src.DescribedObject
	value := func() (int64, error) {
		v, err := c.metrics.objectMetric(src.Metric.Name, t.namespace, ref, metricSelector)
		if err != nil {
			// sic: upstream's words put the kind where the error goes and the error last
			return 0, fmt.Errorf("unable to get metric %s: %v on %s %s/%s", src.Metric.Name, ref.Kind, t.namespace, ref.Name, err)
		}
		return v, nil
	}
	target := src.Target
	switch {
	case target.Type == autoscalingv2.ValueMetricType && target.Value != nil:
		usage, err := value()
		if err != nil {
			return metricProposal{}, failed(reason, err, wrap)
		}
		replicas, err := calc.usageRatioReplicas(t.specReplicas, float64(usage)/float64(target.Value.MilliValue()), c.readyPods(t))
		if err != nil {
			return metricProposal{}, failed(reason, err, wrap)
		}
		return metricProposal{replicas: replicas, name: fmt.Sprintf("%s metric %s", ref.Kind, src.Metric.Name), status: autoscalingv2.MetricStatus{
			Type: autoscalingv2.ObjectMetricSourceType,
			Object: &autoscalingv2.ObjectMetricStatus{DescribedObject: src.DescribedObject, Metric: src.Metric,
				Current: autoscalingv2.MetricValueStatus{Value: resource.NewMilliQuantity(usage, resource.DecimalSI)}},
		}}, nil
	case target.Type == autoscalingv2.AverageValueMetricType && target.AverageValue != nil:
		usage, err := value()
		if err != nil {
			return metricProposal{}, failed(reason, err, "failed to get %s object metric: %v", src.Metric.Name).wrapped(wrap)
		}
		replicas, average := calc.perPodReplicas(t.statusReplicas, usage, target.AverageValue.MilliValue())
		return metricProposal{
			// upstream v1.37 names an Object metric with an average value target so
			replicas: replicas, name: fmt.Sprintf("external metric %s(%+v)", src.Metric.Name, src.Metric.Selector),
			status: autoscalingv2.MetricStatus{Type: autoscalingv2.ObjectMetricSourceType,
				Object: &autoscalingv2.ObjectMetricStatus{DescribedObject: src.DescribedObject, Metric: src.Metric,
					Current: autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(average, resource.DecimalSI)}}},
		}, nil
	}
	return metricProposal{}, failed(reason, fmt.Errorf("invalid object metric source: neither a value target nor an average value target was set"), wrap)
}

// externalReplicas computes an External metric: the sum of an external metric's series (a
// cloud queue's length) against a target value, which scales the ready pods by its ratio, or
// a target average per pod.
func (c *Controller) externalReplicas(calc replicaCalculator, src *autoscalingv2.ExternalMetricSource, t scaleTarget) (metricProposal, *metricFailure) {
	const reason = "FailedGetExternalMetric"
	const wrap = "failed to get %s external metric value: %v"
	name := fmt.Sprintf("external metric %s(%+v)", src.Metric.Name, src.Metric.Selector)
	usage := func() (int64, error) {
		metricSelector, err := metav1.LabelSelectorAsSelector(src.Metric.Selector)
		if err != nil {
			return 0, err
		}
		values, err := c.metrics.externalMetric(src.Metric.Name, t.namespace, metricSelector)
		if err != nil {
			return 0, fmt.Errorf("unable to get external metric %s/%s/%+v: %s", t.namespace, src.Metric.Name, src.Metric.Selector, err)
		}
		return saturatingSum(values), nil
	}
	status := func(v autoscalingv2.MetricValueStatus) autoscalingv2.MetricStatus {
		return autoscalingv2.MetricStatus{Type: autoscalingv2.ExternalMetricSourceType,
			External: &autoscalingv2.ExternalMetricStatus{Metric: src.Metric, Current: v}}
	}
	target := src.Target
	switch {
	case target.AverageValue != nil:
		total, err := usage()
		if err != nil {
			return metricProposal{}, failed(reason, err, "failed to get %s external metric: %v", src.Metric.Name).wrapped(wrap, src.Metric.Name)
		}
		replicas, average := calc.perPodReplicas(t.statusReplicas, total, target.AverageValue.MilliValue())
		return metricProposal{replicas: replicas, name: name,
			status: status(autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(average, resource.DecimalSI)})}, nil
	case target.Value != nil:
		total, err := usage()
		if err == nil {
			var replicas int32
			replicas, err = calc.usageRatioReplicas(t.specReplicas, float64(total)/float64(target.Value.MilliValue()), c.readyPods(t))
			if err == nil {
				return metricProposal{replicas: replicas, name: name,
					status: status(autoscalingv2.MetricValueStatus{Value: resource.NewMilliQuantity(total, resource.DecimalSI)})}, nil
			}
		}
		return metricProposal{}, failed(reason, err, "failed to get external metric %s: %v", src.Metric.Name).wrapped(wrap, src.Metric.Name)
	}
	return metricProposal{}, failed(reason, fmt.Errorf("invalid external metric source: neither a value target nor an average value target was set"), wrap, src.Metric.Name)
}

// readyPods counts the target's running, ready pods when asked.
func (c *Controller) readyPods(t scaleTarget) func() (int64, error) {
	return func() (int64, error) {
		return readyPodCount(c.podLister.Pods(t.namespace).List(t.selector))
	}
}

// controllingHPAs records selector as hpa's and returns the autoscalers of its namespace (by
// key, sorted, at most two) whose selectors select one of the pods selector selects: two are
// one too many, as upstream refuses to scale pods that two autoscalers would fight over.
func (c *Controller) controllingHPAs(hpa *autoscalingv2.HorizontalPodAutoscaler, selector labels.Selector) []string {
	key := hpa.Namespace + "/" + hpa.Name
	c.mu.Lock()
	c.selectors[key] = selector
	others := map[string]labels.Selector{}
	for k, s := range c.selectors {
		if strings.HasPrefix(k, hpa.Namespace+"/") {
			others[k] = s
		}
	}
	c.mu.Unlock()
	pods, err := c.podLister.Pods(hpa.Namespace).List(selector)
	if err != nil || len(others) < 2 {
		return nil
	}
	var keys []string
	for k, s := range others {
		for _, p := range pods {
			if s.Matches(labels.Set(p.Labels)) {
				keys = append(keys, k)
				break
			}
		}
	}
	slices.Sort(keys)
	return keys[:min(len(keys), 2)]
}
