// Package podautoscaler is the horizontal pod autoscaler controller: every SyncPeriod it
// reads each HorizontalPodAutoscaler's target through its scale subresource (any kind that
// has one, custom resources included), computes the replica count its metrics ask for, within
// upstream's tolerance, range and v2 behavior (stabilization windows, scale-up and scale-down
// policies, selectPolicy), writes it to the scale subresource, and reports it in the
// autoscaler's status with upstream's conditions (AbleToScale, ScalingActive, ScalingLimited)
// and events. Its metrics are all of autoscaling/v2's: Resource and ContainerResource (cpu,
// memory: average utilization of requests or average value, from metrics.k8s.io), Pods and
// Object (from custom.metrics.k8s.io) and External (from external.metrics.k8s.io), the last
// two served by extension API servers registered through APIService aggregation. It must
// never write anything but scale subresources and autoscalers' status.
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
	custommetrics "k8s.io/metrics/pkg/client/custom_metrics"

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
	metrics   MetricsClients
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
	// selectors are the pod selectors of each autoscaler's target, as last read, to find pods
	// that more than one autoscaler controls
	selectors map[string]labels.Selector
}

// New makes the controller on shared informers. metrics reads the metrics APIs
// (MetricsClientsForConfig); scales and mapper reach the targets' scale subresources (mapper
// must find kinds added after it was made).
func New(hpaInformer autoscalinginformers.HorizontalPodAutoscalerInformer, podInformer coreinformers.PodInformer,
	client kubernetes.Interface, metrics MetricsClients, scales scale.ScalesGetter, mapper meta.RESTMapper,
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
		selectors: map[string]labels.Selector{},
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
	if v := c.metrics.CustomVersions; v != nil {
		go custommetrics.PeriodicallyInvalidate(v, SyncPeriod, ctx.Done())
	}
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
		delete(c.selectors, key)
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
		metricsErr    error
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
		// some metrics failed, the others scale: scale, and say so
		metricsErr = err
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
	return metricsErr
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
