package podautoscaler_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregatorclient "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	custommetricsv1beta2 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta2"
	externalmetricsv1beta1 "k8s.io/metrics/pkg/apis/external_metrics/v1beta1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// metricsAdapter is a small custom and external metrics server, as prometheus-adapter is one:
// requests_per_second of every pod of default, requests of the Service web, and the external
// queue_messages of the queue "jobs" in two series. It answers only the API server's front
// proxy (a client certificate of its CA), and what it does not have as a real adapter does.
func metricsAdapter(t *testing.T, s *apiservertest.Server) (port int32) {
	t.Helper()
	const (
		custom   = "/apis/custom.metrics.k8s.io/v1beta2"
		external = "/apis/external.metrics.k8s.io/v1beta1"
	)
	discovery := map[string]metav1.APIResourceList{
		custom: {TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "custom.metrics.k8s.io/v1beta2",
			APIResources: []metav1.APIResource{
				{Name: "pods/requests_per_second", Namespaced: true, Kind: "MetricValueList", Verbs: []string{"get"}},
				{Name: "services/requests", Namespaced: true, Kind: "MetricValueList", Verbs: []string{"get"}},
			}},
		external: {TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "external.metrics.k8s.io/v1beta1",
			APIResources: []metav1.APIResource{{Name: "queue_messages", Namespaced: true, Kind: "ExternalMetricValueList", Verbs: []string{"get"}}}},
	}
	now := metav1.NewTime(time.Now())
	customValue := func(kind, name, metric, value string) custommetricsv1beta2.MetricValue {
		return custommetricsv1beta2.MetricValue{DescribedObject: corev1.ObjectReference{Kind: kind, Namespace: "default", Name: name, APIVersion: "/v1"},
			Metric: custommetricsv1beta2.MetricIdentifier{Name: metric}, Timestamp: now, WindowSeconds: ptr.To[int64](30), Value: resource.MustParse(value)}
	}
	notFound := func(w http.ResponseWriter, msg string) {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
			Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound, Message: msg})
	}
	frontProxy := x509.NewCertPool()
	frontProxy.AppendCertsFromPEM(s.PKI.FrontProxy.CAPEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if doc, ok := discovery[r.URL.Path]; ok {
			json.NewEncoder(w).Encode(doc)
			return
		}
		// .../namespaces/default/<resource>/<name>/<metric> and .../namespaces/default/<metric>
		var parts []string
		for _, p := range strings.Split(r.URL.EscapedPath(), "/") {
			u, _ := url.PathUnescape(p)
			parts = append(parts, u)
		}
		switch {
		case strings.HasPrefix(r.URL.Path, custom+"/namespaces/default/") && len(parts) == 9:
			resource, name, metric := parts[6], parts[7], parts[8]
			list := custommetricsv1beta2.MetricValueList{TypeMeta: metav1.TypeMeta{Kind: "MetricValueList", APIVersion: "custom.metrics.k8s.io/v1beta2"}}
			switch {
			case resource == "pods" && name == "*" && metric == "requests_per_second" && r.URL.Query().Get("labelSelector") == "app=web":
				list.Items = append(list.Items, customValue("Pod", "web-a", metric, "20"), customValue("Pod", "web-b", metric, "20"))
			case resource == "services" && name == "web" && metric == "requests":
				list.Items = append(list.Items, customValue("Service", "web", metric, "30"))
			default:
				notFound(w, fmt.Sprintf("the server could not find the metric %s for %s", metric, resource))
				return
			}
			json.NewEncoder(w).Encode(list)
		case r.URL.Path == external+"/namespaces/default/queue_messages" && r.URL.Query().Get("labelSelector") == "queue=jobs":
			json.NewEncoder(w).Encode(externalmetricsv1beta1.ExternalMetricValueList{
				TypeMeta: metav1.TypeMeta{Kind: "ExternalMetricValueList", APIVersion: "external.metrics.k8s.io/v1beta1"},
				Items: []externalmetricsv1beta1.ExternalMetricValue{
					{MetricName: "queue_messages", MetricLabels: map[string]string{"queue": "jobs", "shard": "1"}, Timestamp: now, Value: resource.MustParse("30")},
					{MetricName: "queue_messages", MetricLabels: map[string]string{"queue": "jobs", "shard": "2"}, Timestamp: now, Value: resource.MustParse("20")},
				}})
		default:
			notFound(w, "the server could not find the requested resource")
		}
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: frontProxy}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	fmt.Sscan(p, &port)
	return port
}

// registerMetricsAdapter registers the adapter at port as prometheus-adapter's manifests do:
// a Service in custom-metrics (its EndpointSlice naming this host) and the two APIServices,
// and waits until both are Available.
func registerMetricsAdapter(t *testing.T, s *apiservertest.Server, port int32) {
	t.Helper()
	ctx := context.Background()
	cs := s.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "custom-metrics"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services("custom-metrics").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "adapter"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(port)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("custom-metrics").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "adapter-1", Labels: map[string]string{discoveryv1.LabelServiceName: "adapter"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port)}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	agg := aggregatorclient.NewForConfigOrDie(s.Config)
	for _, gv := range [][2]string{{"custom.metrics.k8s.io", "v1beta2"}, {"external.metrics.k8s.io", "v1beta1"}} {
		name := gv[1] + "." + gv[0]
		if _, err := agg.ApiregistrationV1().APIServices().Create(ctx, &apiregistrationv1.APIService{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: apiregistrationv1.APIServiceSpec{Group: gv[0], Version: gv[1], GroupPriorityMinimum: 100, VersionPriority: 200,
				Service: &apiregistrationv1.ServiceReference{Namespace: "custom-metrics", Name: "adapter"}, InsecureSkipTLSVerify: true},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			svc, err := agg.ApiregistrationV1().APIServices().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, c := range svc.Status.Conditions {
				if c.Type == apiregistrationv1.Available && c.Status == apiregistrationv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			t.Fatalf("APIService %s never became Available", name)
		}
	}
}

func TestTheAutoscalerReadsCustomAndExternalMetricsThroughAggregation(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	client := s.Client
	registerMetricsAdapter(t, s, metricsAdapter(t, s))
	webDeployment(t, client, "n1", "web-a", "web-b")
	startAutoscaler(t, s)

	quantity := func(q string) *resource.Quantity { v := resource.MustParse(q); return &v }
	// requests_per_second at 20 against 10 asks for 4 pods, 50 queued messages at 10 a pod for
	// 5, the Service's 30 requests against 10 for 3 times the 2 ready pods: 6 wins
	metrics := []autoscalingv2.MetricSpec{
		{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "requests_per_second"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: quantity("10")}}},
		{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "queue_messages", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"queue": "jobs"}}},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: quantity("10")}}},
		{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricSource{
			DescribedObject: autoscalingv2.CrossVersionObjectReference{APIVersion: "v1", Kind: "Service", Name: "web"},
			Metric:          autoscalingv2.MetricIdentifier{Name: "requests"},
			Target:          autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: quantity("10")}}},
	}
	if _, err := client.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MaxReplicas:    10, Metrics: metrics,
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{}, // upstream's default policies: 2 may become 6 at once
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var hpa *autoscalingv2.HorizontalPodAutoscaler
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || *d.Spec.Replicas != 6 {
			return false, nil
		}
		hpa, err = client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && hpa.Status.DesiredReplicas == 6, nil
	}); err != nil {
		h, _ := client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
		t.Fatalf("the deployment was not scaled to 6: %+v", h)
	}
	current := hpa.Status.CurrentMetrics
	if len(current) != 3 || current[0].Pods == nil || current[0].Pods.Current.AverageValue.Cmp(resource.MustParse("20")) != 0 ||
		current[1].External == nil || current[1].External.Current.AverageValue.Cmp(resource.MustParse("25")) != 0 ||
		current[2].Object == nil || current[2].Object.Current.Value.Cmp(resource.MustParse("30")) != 0 {
		t.Errorf("current metrics: %+v", current)
	}
	for _, c := range hpa.Status.Conditions {
		if c.Type == autoscalingv2.ScalingActive && (c.Status != corev1.ConditionTrue || c.Message != "the HPA was able to successfully calculate a replica count from Service metric requests") {
			t.Errorf("ScalingActive: %+v", c)
		}
	}

	// a metric the adapter does not have: the autoscaler says so in the adapter's words
	hpa.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: "absent"},
		Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: quantity("10")}}}}
	if _, err := client.AutoscalingV2().HorizontalPodAutoscalers("default").Update(ctx, hpa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "the HPA was unable to compute the replica count: unable to get metric absent: unable to fetch metrics from custom metrics API: the server could not find the metric absent for pods"
	var got autoscalingv2.HorizontalPodAutoscalerCondition
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		h, err := client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range h.Status.Conditions {
			if c.Type == autoscalingv2.ScalingActive {
				got = c
			}
		}
		return got.Status == corev1.ConditionFalse, nil
	}); err != nil || got.Reason != "FailedGetPodsMetric" || got.Message != want {
		t.Errorf("ScalingActive %+v, want False FailedGetPodsMetric %q", got, want)
	}
}
