package podautoscaler

import (
	"context"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned/typed/metrics/v1beta1"
	custommetrics "k8s.io/metrics/pkg/client/custom_metrics"
	externalmetrics "k8s.io/metrics/pkg/client/external_metrics"
)

// customMetricWindow is the window a custom metric is taken as measured over when its
// server does not say (metrics-server's default, as upstream assumes).
const customMetricWindow = time.Minute

// MetricsClients are the three metrics APIs an autoscaler's metrics come from.
type MetricsClients struct {
	// Resource is metrics.k8s.io, for Resource metrics.
	Resource metricsclient.PodMetricsesGetter
	// Custom is custom.metrics.k8s.io, for Pods and Object metrics.
	Custom custommetrics.CustomMetricsClient
	// External is external.metrics.k8s.io, for External metrics.
	External externalmetrics.ExternalMetricsClient
	// CustomVersions, when set, is the cache of Custom's preferred version; Run forgets it
	// every SyncPeriod, so that a custom metrics server registered or upgraded later is found.
	CustomVersions custommetrics.AvailableAPIsGetter
}

// MetricsClientsForConfig reaches the three APIs through the API server at cfg, which
// serves metrics.k8s.io itself and the other two through the APIServices that extension
// servers (prometheus-adapter, KEDA, ...) register. mapper finds the resources of Object
// metrics' kinds.
func MetricsClientsForConfig(cfg *rest.Config, mapper meta.RESTMapper) (MetricsClients, error) {
	resource, err := metricsclient.NewForConfig(cfg)
	if err != nil {
		return MetricsClients{}, err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return MetricsClients{}, err
	}
	external, err := externalmetrics.NewForConfig(cfg)
	if err != nil {
		return MetricsClients{}, err
	}
	versions := custommetrics.NewAvailableAPIsGetter(disco)
	return MetricsClients{
		Resource: resource, External: external, CustomVersions: versions,
		Custom: custommetrics.NewForConfig(cfg, mapper, versions),
	}, nil
}

// The readers below answer in upstream's words, which users match in the autoscaler's
// events and conditions.

// resourcePodMetrics are the selected pods' use of a resource (milli) from the resource
// metrics API: container's alone when one is named, else the sum over each pod's containers
// (a pod that misses one container's figure has none).
func (m MetricsClients) resourcePodMetrics(ctx context.Context, ns string, res corev1.ResourceName, container string, selector labels.Selector) (podMetrics, error) {
	list, err := m.Resource.PodMetricses(ns).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, fmt.Errorf("unable to fetch metrics from resource metrics API: %v", err)
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no metrics returned from resource metrics API")
	}
	out := podMetrics{}
	for _, pm := range list.Items {
		var sum int64
		complete, found := len(pm.Containers) > 0, false
		for _, ctr := range pm.Containers {
			if container != "" && ctr.Name != container {
				continue
			}
			found = true
			q, ok := ctr.Usage[res]
			if !ok {
				complete = false
				break
			}
			sum += q.MilliValue()
		}
		if container != "" && !found {
			return nil, fmt.Errorf("failed to get container metrics: container %s not present in metrics for pod %s/%s", container, pm.Namespace, pm.Name)
		}
		if complete {
			out[pm.Name] = podMetric{Value: sum, Timestamp: pm.Timestamp.Time, Window: pm.Window.Duration}
		}
	}
	return out, nil
}

// rawPodMetrics is a custom metric of each selected pod (milli).
func (m MetricsClients) rawPodMetrics(metricName, ns string, selector, metricSelector labels.Selector) (podMetrics, error) {
	if m.Custom == nil {
		return nil, errNoCustomMetrics
	}
	list, err := m.Custom.NamespacedMetrics(ns).GetForObjects(schema.GroupKind{Kind: "Pod"}, selector, metricName, metricSelector)
	if err != nil {
		return nil, fmt.Errorf("unable to fetch metrics from custom metrics API: %v", err)
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no metrics returned from custom metrics API")
	}
	out := make(podMetrics, len(list.Items))
	for _, v := range list.Items {
		window := customMetricWindow
		if v.WindowSeconds != nil {
			window = time.Duration(*v.WindowSeconds) * time.Second
		}
		out[v.DescribedObject.Name] = podMetric{Value: v.Value.MilliValue(), Timestamp: v.Timestamp.Time, Window: window}
	}
	return out, nil
}

// objectMetric is a custom metric of one object of the autoscaler's namespace (milli). A
// Namespace is asked about as the autoscaler's own, whatever name the reference gives: a
// reference must not reach out of its namespace.
func (m MetricsClients) objectMetric(metricName, ns string, ref *autoscalingv2.CrossVersionObjectReference, metricSelector labels.Selector) (int64, error) {
	if m.Custom == nil {
		return 0, errNoCustomMetrics
	}
	gk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind).GroupKind()
	var err error
	var value int64
	if gk == (schema.GroupKind{Kind: "Namespace"}) {
		v, e := m.Custom.RootScopedMetrics().GetForObject(gk, ns, metricName, metricSelector)
		if err = e; e == nil {
			value = v.Value.MilliValue()
		}
	} else {
		v, e := m.Custom.NamespacedMetrics(ns).GetForObject(gk, ref.Name, metricName, metricSelector)
		if err = e; e == nil {
			value = v.Value.MilliValue()
		}
	}
	if err != nil {
		return 0, fmt.Errorf("unable to fetch metrics from custom metrics API: %v", err)
	}
	return value, nil
}

// externalMetric is every series of an external metric the selector matches (milli).
func (m MetricsClients) externalMetric(metricName, ns string, selector labels.Selector) ([]int64, error) {
	if m.External == nil {
		return nil, fmt.Errorf("unable to fetch metrics from external metrics API: no external metrics API (external.metrics.k8s.io) registered")
	}
	list, err := m.External.NamespacedMetrics(ns).List(metricName, selector)
	if err != nil {
		return nil, fmt.Errorf("unable to fetch metrics from external metrics API: %v", err)
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no metrics returned from external metrics API")
	}
	out := make([]int64, 0, len(list.Items))
	for _, v := range list.Items {
		out = append(out, v.Value.MilliValue())
	}
	return out, nil
}

// errNoCustomMetrics is what a controller given no custom metrics client answers, in the
// words of the discovery-backed client when no server is registered.
var errNoCustomMetrics = fmt.Errorf("unable to fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered")
