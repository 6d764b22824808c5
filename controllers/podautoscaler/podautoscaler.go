// Package podautoscaler is the horizontal pod autoscaler controller: every SyncPeriod it
// reads each HorizontalPodAutoscaler's target through its scale subresource (any kind that
// has one, custom resources included), computes the replica count its Resource metrics (cpu,
// memory: average utilization of requests or average value, from the metrics API) ask for,
// within upstream's tolerance, range and v2 behavior (stabilization windows, scale-up and
// scale-down policies, selectPolicy), writes it to the scale subresource, and reports it in
// the autoscaler's status with upstream's conditions (AbleToScale, ScalingActive,
// ScalingLimited) and events. It must never write anything but scale subresources and
// autoscalers' status. Pods, Object and External metrics (custom and external metrics APIs)
// are not read: such a metric is reported invalid.
package podautoscaler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	autoscalinginformers "k8s.io/client-go/informers/autoscaling/v2"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned/typed/metrics/v1beta1"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "horizontalpodautoscaling"
	// Component names the controller in the Events it records.
	Component = "horizontal-pod-autoscaler"
	// SyncPeriod is how often each autoscaler is reconciled
	// (--horizontal-pod-autoscaler-sync-period).
	SyncPeriod = 15 * time.Second
)

// Controller is the horizontal pod autoscaler controller.
type Controller struct {
	client    kubernetes.Interface
	metrics   metricsclient.PodMetricsesGetter
	hpaLister autoscalinglisters.HorizontalPodAutoscalerLister
	podLister corelisters.PodLister
	scales    scale.ScalesGetter
	mapper    meta.RESTMapper
	synced    []cache.InformerSynced
	queue     controllers.Queue
	recorder  record.EventRecorder
	reporting *controllers.Metrics
	now       func() time.Time

	mu                   sync.Mutex // guards what follows: what each autoscaler (by key) recommended and did
	recommendations      map[string][]timestampedRecommendation
	scaleUps, scaleDowns map[string][]scaleEvent
}

// New makes the controller on shared informers. metrics reads the metrics API; scales and
// mapper reach the targets' scale subresources (mapper must find kinds added after it was
// made).
func New(hpaInformer autoscalinginformers.HorizontalPodAutoscalerInformer, podInformer coreinformers.PodInformer,
	client kubernetes.Interface, metrics metricsclient.PodMetricsesGetter, scales scale.ScalesGetter, mapper meta.RESTMapper,
	r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client: client, metrics: metrics,
		hpaLister: hpaInformer.Lister(), podLister: podInformer.Lister(),
		scales: scales, mapper: mapper,
		synced:          []cache.InformerSynced{hpaInformer.Informer().HasSynced, podInformer.Informer().HasSynced},
		queue:           controllers.NewQueue(Name, r),
		recorder:        r.EventRecorder(Component),
		reporting:       r.Metrics,
		now:             time.Now,
		recommendations: map[string][]timestampedRecommendation{},
		scaleUps:        map[string][]scaleEvent{}, scaleDowns: map[string][]scaleEvent{},
	}
	if _, err := hpaInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(old, cur any) {
			// our own status writes need no sync of their own: the next period comes anyway
			if !apiequality.Semantic.DeepEqual(old.(*autoscalingv2.HorizontalPodAutoscaler).Spec, cur.(*autoscalingv2.HorizontalPodAutoscaler).Spec) {
				c.enqueue(cur)
			}
		},
		DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run reconciles autoscalers with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.reporting, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) enqueue(obj any) {
	if key, err := controllers.KeyOf(obj); err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	hpa, err := c.hpaLister.HorizontalPodAutoscalers(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.recommendations, key)
		delete(c.scaleUps, key)
		delete(c.scaleDowns, key)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	// as upstream's fixed-interval queue: a failed reconcile (reported in the status and
	// events) comes back after the sync period too, not sooner
	err = c.reconcile(ctx, key, hpa.DeepCopy())
	if err == nil {
		err = errors.New("autoscalers are reconciled every sync period")
	}
	return controllers.RequeueAfter(SyncPeriod, err)
}

// reconcile computes and applies one autoscaler's replica count, and writes its status.
func (c *Controller) reconcile(ctx context.Context, key string, hpa *autoscalingv2.HorizontalPodAutoscaler) error {
	old := hpa.Status.DeepCopy()
	ref := hpa.Spec.ScaleTargetRef
	reference := fmt.Sprintf("%s/%s/%s", ref.Kind, hpa.Namespace, ref.Name)

	sc, gr, err := c.scaleOf(ctx, hpa)
	if err != nil {
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedGetScale", "the HPA controller was unable to get the target's current scale: %v", err)
		c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedGetScale", err.Error())
		c.updateStatusIfNeeded(ctx, old, hpa)
		return fmt.Errorf("failed to query scale subresource for %s: %v", reference, err)
	}
	c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale", "the HPA controller was able to get the target's current scale")
	current := sc.Spec.Replicas
	c.mu.Lock()
	if c.recommendations[key] == nil {
		c.recommendations[key] = []timestampedRecommendation{{current, c.now()}}
	}
	c.mu.Unlock()

	minReplicas := int32(1)
	if hpa.Spec.MinReplicas != nil {
		minReplicas = *hpa.Spec.MinReplicas
	}
	var (
		desired       int32
		rescaleReason string
		statuses      []autoscalingv2.MetricStatus
	)
	rescale := true
	switch {
	case current == 0 && minReplicas != 0:
		// scaling to zero turns the autoscaler off
		desired, rescale = 0, false
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
	case current > hpa.Spec.MaxReplicas:
		rescaleReason, desired = "Current number of replicas above Spec.MaxReplicas", hpa.Spec.MaxReplicas
	case current < minReplicas:
		rescaleReason, desired = "Current number of replicas below Spec.MinReplicas", minReplicas
	default:
		var metricName string
		var metricDesired int32
		metricDesired, metricName, statuses, err = c.replicasForMetrics(ctx, hpa, sc)
		if err != nil && metricDesired == -1 {
			hpa.Status.CurrentReplicas = current
			hpa.Status.CurrentMetrics = statuses
			c.updateStatusIfNeeded(ctx, old, hpa)
			c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedComputeMetricsReplicas", err.Error())
			return fmt.Errorf("failed to compute desired number of replicas based on listed metrics for %s: %v", reference, err)
		}
		rescaleMetric := ""
		if metricDesired > current {
			rescaleMetric = metricName
		}
		rescaleReason = "All metrics below target"
		if rescaleMetric != "" {
			rescaleReason = rescaleMetric + " above target"
		}
		l := limits{minReplicas: minReplicas, maxReplicas: hpa.Spec.MaxReplicas, currentReplicas: current}
		if hpa.Spec.Behavior == nil {
			desired = c.normalize(key, hpa, metricDesired, l)
		} else {
			desired = c.normalizeWithBehavior(key, hpa, metricDesired, l)
		}
		rescale = desired != current
	}

	if rescale {
		sc.Spec.Replicas = desired
		if _, err := c.scales.Scales(hpa.Namespace).Update(ctx, gr, sc, metav1.UpdateOptions{}); err != nil {
			c.recorder.Eventf(hpa, corev1.EventTypeWarning, "FailedRescale", "New size: %d; reason: %s; error: %v", desired, rescaleReason, err)
			c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedUpdateScale", "the HPA controller was unable to update the target scale: %v", err)
			hpa.Status.CurrentReplicas = current
			hpa.Status.CurrentMetrics = statuses
			c.updateStatusIfNeeded(ctx, old, hpa)
			return fmt.Errorf("failed to rescale %s: %v", reference, err)
		}
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale", "the HPA controller was able to update the target scale to %d", desired)
		c.recorder.Eventf(hpa, corev1.EventTypeNormal, "SuccessfulRescale", "New size: %d; reason: %s", desired, rescaleReason)
		c.recordScaleEvent(key, hpa.Spec.Behavior, current, desired)
		now := metav1.NewTime(c.now())
		hpa.Status.LastScaleTime = &now
	} else {
		desired = current
	}
	hpa.Status.CurrentReplicas = current
	hpa.Status.DesiredReplicas = desired
	hpa.Status.CurrentMetrics = statuses
	c.updateStatusIfNeeded(ctx, old, hpa)
	return nil
}

// scaleOf reads the target's scale subresource, trying each resource its kind maps to.
func (c *Controller) scaleOf(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler) (*autoscalingv1.Scale, schema.GroupResource, error) {
	ref := hpa.Spec.ScaleTargetRef
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, schema.GroupResource{}, err
	}
	mappings, err := c.mapper.RESTMappings(schema.GroupKind{Group: gv.Group, Kind: ref.Kind})
	if err != nil {
		return nil, schema.GroupResource{}, err
	}
	var firstErr error
	for _, m := range mappings {
		gr := m.Resource.GroupResource()
		sc, err := c.scales.Scales(hpa.Namespace).Get(ctx, gr, ref.Name, metav1.GetOptions{})
		if err == nil {
			return sc, gr, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("unrecognized resource")
	}
	return nil, schema.GroupResource{}, firstErr
}

// replicasForMetrics is the largest replica count the metrics ask for, the name of the
// metric that asked for it, and every metric's status. It is -1 with an error when no metric
// could be computed, or when some could not and the others would scale down.
func (c *Controller) replicasForMetrics(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, sc *autoscalingv1.Scale) (int32, string, []autoscalingv2.MetricStatus, error) {
	selector, err := labels.Parse(sc.Status.Selector)
	if sc.Status.Selector == "" || err != nil {
		msg := "the HPA target's scale is missing a selector"
		reason := "InvalidSelector"
		if err != nil {
			msg = fmt.Sprintf("couldn't convert selector into a corresponding internal selector object: %v", err)
		}
		c.recorder.Event(hpa, corev1.EventTypeWarning, "SelectorRequired", msg)
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, reason, "%s", msg)
		return -1, "", nil, errors.New(msg)
	}
	statuses := make([]autoscalingv2.MetricStatus, len(hpa.Spec.Metrics))
	replicas := int32(0)
	var name string
	var invalid int
	var firstErr error
	for i, spec := range hpa.Spec.Metrics {
		r, n, status, reason, err := c.replicasForMetric(ctx, hpa, spec, sc.Spec.Replicas, selector)
		if err != nil {
			if invalid == 0 {
				firstErr = err
			}
			invalid++
			c.recorder.Event(hpa, corev1.EventTypeWarning, reason, err.Error())
			c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, reason, "the HPA was unable to compute the replica count: %v", err)
			continue
		}
		statuses[i] = status
		if replicas == 0 || r > replicas {
			replicas, name = r, n
		}
	}
	if invalid >= len(hpa.Spec.Metrics) || (invalid > 0 && replicas < sc.Spec.Replicas) {
		return -1, "", statuses, fmt.Errorf("invalid metrics (%v invalid out of %v), first error is: %v", invalid, len(hpa.Spec.Metrics), firstErr)
	}
	c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound", "the HPA was able to successfully calculate a replica count from %s", name)
	return replicas, name, statuses, nil
}

// replicasForMetric computes one metric: the replica count, the metric's name in messages,
// its status, and on error the reason of the condition and event.
func (c *Controller) replicasForMetric(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, spec autoscalingv2.MetricSpec,
	current int32, selector labels.Selector) (int32, string, autoscalingv2.MetricStatus, string, error) {
	if spec.Type != autoscalingv2.ResourceMetricSourceType || spec.Resource == nil {
		return 0, "", autoscalingv2.MetricStatus{}, "FailedGetMetric", fmt.Errorf("unable to get metric %s: only Resource metrics are served by this cluster", spec.Type)
	}
	res := spec.Resource.Name
	metrics, err := c.podMetrics(ctx, hpa.Namespace, res, selector)
	if err != nil {
		return 0, "", autoscalingv2.MetricStatus{}, "FailedGetResourceMetric", fmt.Errorf("failed to get %s utilization: %v", res, err)
	}
	pods, err := c.podLister.Pods(hpa.Namespace).List(selector)
	if err != nil {
		return 0, "", autoscalingv2.MetricStatus{}, "FailedGetResourceMetric", err
	}
	if len(pods) == 0 {
		return 0, "", autoscalingv2.MetricStatus{}, "FailedGetResourceMetric", fmt.Errorf("failed to get %s utilization: no pods returned by selector while calculating replica count", res)
	}
	calc := replicaCalculator{now: c.now}
	target := spec.Resource.Target
	if target.AverageValue != nil {
		replicas, average, err := calc.resourceAverageValueReplicas(current, target.AverageValue.MilliValue(), res, pods, metrics)
		if err != nil {
			return 0, "", autoscalingv2.MetricStatus{}, "FailedGetResourceMetric", fmt.Errorf("failed to get %s usage: %v", res, err)
		}
		return replicas, fmt.Sprintf("%s resource", res), autoscalingv2.MetricStatus{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricStatus{Name: res,
				Current: autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(average, resource.DecimalSI)}},
		}, "", nil
	}
	if target.AverageUtilization == nil {
		return 0, "", autoscalingv2.MetricStatus{}, "FailedGetResourceMetric", fmt.Errorf("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set")
	}
	replicas, utilization, raw, err := calc.resourceUtilizationReplicas(current, *target.AverageUtilization, res, pods, metrics)
	if err != nil {
		return 0, "", autoscalingv2.MetricStatus{}, "FailedGetResourceMetric", fmt.Errorf("failed to get %s utilization: %v", res, err)
	}
	return replicas, fmt.Sprintf("%s resource utilization (percentage of request)", res), autoscalingv2.MetricStatus{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricStatus{Name: res, Current: autoscalingv2.MetricValueStatus{
			AverageUtilization: &utilization, AverageValue: resource.NewMilliQuantity(raw, resource.DecimalSI)}},
	}, "", nil
}

// podMetrics are the selected pods' use of res (milli, summed over containers) from the
// metrics API.
func (c *Controller) podMetrics(ctx context.Context, ns string, res corev1.ResourceName, selector labels.Selector) (podMetrics, error) {
	list, err := c.metrics.PodMetricses(ns).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, fmt.Errorf("unable to get metrics for resource %s: unable to fetch metrics from resource metrics API: %v", res, err)
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("unable to get metrics for resource %s: no metrics returned from resource metrics API", res)
	}
	out := podMetrics{}
	for _, m := range list.Items {
		var sum int64
		complete := len(m.Containers) > 0
		for _, ctr := range m.Containers {
			q, ok := ctr.Usage[res]
			if !ok {
				complete = false
				break
			}
			sum += q.MilliValue()
		}
		if complete {
			out[m.Name] = podMetric{Value: sum, Timestamp: m.Timestamp.Time, Window: m.Window.Duration}
		}
	}
	return out, nil
}

// normalize applies the stabilization and limits of an autoscaler without a behavior.
func (c *Controller) normalize(key string, hpa *autoscalingv2.HorizontalPodAutoscaler, desired int32, l limits) int32 {
	c.mu.Lock()
	stabilized, recs := stabilize(c.recommendations[key], desired, c.now())
	c.recommendations[key] = recs
	c.mu.Unlock()
	if stabilized != desired {
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation")
	} else {
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "ReadyForNewScale", "recommended size matches current size")
	}
	limited, reason, message := limitWithoutBehavior(stabilized, l)
	c.setLimited(hpa, limited != stabilized, reason, message)
	return limited
}

// normalizeWithBehavior applies the stabilization windows and policies of the behavior.
func (c *Controller) normalizeWithBehavior(key string, hpa *autoscalingv2.HorizontalPodAutoscaler, desired int32, l limits) int32 {
	b := hpa.Spec.Behavior
	c.mu.Lock()
	stabilized, reason, message, recs := stabilizeWithBehavior(c.recommendations[key], desired, l, b, c.now())
	c.recommendations[key] = recs
	ups, downs := c.scaleUps[key], c.scaleDowns[key]
	c.mu.Unlock()
	if stabilized != desired {
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, reason, "%s", message)
	} else {
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "ReadyForNewScale", "recommended size matches current size")
	}
	limited, reason, message := limitWithBehavior(stabilized, l, b, ups, downs, c.now())
	c.setLimited(hpa, limited != stabilized, reason, message)
	return limited
}

func (c *Controller) setLimited(hpa *autoscalingv2.HorizontalPodAutoscaler, limited bool, reason, message string) {
	status := corev1.ConditionFalse
	if limited {
		status = corev1.ConditionTrue
	}
	c.setCondition(hpa, autoscalingv2.ScalingLimited, status, reason, "%s", message)
}

// recordScaleEvent remembers a change for the behavior's policies.
func (c *Controller) recordScaleEvent(key string, b *autoscalingv2.HorizontalPodAutoscalerBehavior, from, to int32) {
	if b == nil || from == to {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if to > from {
		c.scaleUps[key] = recordScaleEvent(c.scaleUps[key], to-from, b.ScaleUp, c.now())
	} else {
		c.scaleDowns[key] = recordScaleEvent(c.scaleDowns[key], from-to, b.ScaleDown, c.now())
	}
}

// setCondition sets a condition, keeping its transition time when its status is unchanged.
func (c *Controller) setCondition(hpa *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType,
	status corev1.ConditionStatus, reason, format string, args ...any) {
	cond := autoscalingv2.HorizontalPodAutoscalerCondition{Type: typ, Status: status, Reason: reason,
		Message: fmt.Sprintf(format, args...), LastTransitionTime: metav1.NewTime(c.now())}
	for i := range hpa.Status.Conditions {
		if hpa.Status.Conditions[i].Type == typ {
			if hpa.Status.Conditions[i].Status == status {
				cond.LastTransitionTime = hpa.Status.Conditions[i].LastTransitionTime
			}
			hpa.Status.Conditions[i] = cond
			return
		}
	}
	hpa.Status.Conditions = append(hpa.Status.Conditions, cond)
}

// updateStatusIfNeeded writes the status when it changed; a failed write is reported and
// left to the next period, as upstream's.
func (c *Controller) updateStatusIfNeeded(ctx context.Context, old *autoscalingv2.HorizontalPodAutoscalerStatus, hpa *autoscalingv2.HorizontalPodAutoscaler) {
	if apiequality.Semantic.DeepEqual(old, &hpa.Status) {
		return
	}
	if _, err := c.client.AutoscalingV2().HorizontalPodAutoscalers(hpa.Namespace).UpdateStatus(ctx, hpa, metav1.UpdateOptions{}); err != nil {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedUpdateStatus", err.Error())
	}
}
