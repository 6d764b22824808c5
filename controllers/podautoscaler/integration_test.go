package podautoscaler_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/podautoscaler"
)

// busyKubelet serves /metrics/resource for pods of default whose one container "c" uses
// 200m of CPU: each scrape is ten measured seconds and two core-seconds after the last.
func busyKubelet(t *testing.T, pods ...string) (host string, port int32) {
	var scrapes atomic.Int64
	base := time.Now().Add(-time.Hour).UnixMilli()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := scrapes.Add(1)
		at := base + i*10000
		fmt.Fprintf(w, "# TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total %d %d\n", i*10, at)
		fmt.Fprintf(w, "# TYPE node_memory_working_set_bytes gauge\nnode_memory_working_set_bytes %d %d\n", 1<<30, at)
		fmt.Fprintf(w, "# TYPE container_cpu_usage_seconds_total counter\n")
		for _, p := range pods {
			fmt.Fprintf(w, "container_cpu_usage_seconds_total{container=\"c\",namespace=\"default\",pod=%q} %d %d\n", p, i*2, at)
		}
		fmt.Fprintf(w, "# TYPE container_memory_working_set_bytes gauge\n")
		for _, p := range pods {
			fmt.Fprintf(w, "container_memory_working_set_bytes{container=\"c\",namespace=\"default\",pod=%q} %d %d\n", p, 10<<20, at)
		}
	}))
	t.Cleanup(srv.Close)
	h, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	n, _ := strconv.Atoi(p)
	return h, int32(n)
}

func TestTheAutoscalerScalesADeploymentByItsPodsCPU(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	client := s.Client

	host, port := busyKubelet(t, "web-a", "web-b")
	node, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = port
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	webDeployment(t, client, "n1", "web-a", "web-b")
	startAutoscaler(t, s)

	target := int32(50)
	if _, err := client.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MaxReplicas:    4,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target}}}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// 200% of a 50% target would make 8; maxReplicas holds it at 4
	var hpa *autoscalingv2.HorizontalPodAutoscaler
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || *d.Spec.Replicas != 4 {
			return false, nil
		}
		hpa, err = client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && hpa.Status.DesiredReplicas == 4, nil
	}); err != nil {
		h, _ := client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
		t.Fatalf("the deployment was not scaled to 4: %+v", h)
	}
	if u := hpa.Status.CurrentMetrics[0].Resource.Current.AverageUtilization; u == nil || *u != 200 {
		t.Errorf("current metrics: %+v", hpa.Status.CurrentMetrics)
	}
	for _, cond := range hpa.Status.Conditions {
		if cond.Type == autoscalingv2.ScalingLimited && (cond.Status != corev1.ConditionTrue || cond.Reason != "TooManyReplicas") {
			t.Errorf("ScalingLimited: %+v", cond)
		}
	}
}

// webDeployment makes the Deployment web of 2 replicas (in its status too) whose pods (app=web, one container
// "c" requesting 100m of CPU) are pods, made here on node, running and ready for an hour:
// no deployment controller runs in these tests.
func webDeployment(t *testing.T, client kubernetes.Interface, node string, pods ...string) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": "web"}
	template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}}}
	d, err := client.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Status = appsv1.DeploymentStatus{Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 2}
	if _, err := client.AppsV1().Deployments("default").UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	started := metav1.NewTime(time.Now().Add(-time.Hour))
	for _, name := range pods {
		spec := *template.Spec.DeepCopy()
		spec.NodeName = node
		pod, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: spec}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &started,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: started}}}
		if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// startAutoscaler runs the controller against s, as the controller manager wires it, until
// the test ends.
func startAutoscaler(t *testing.T, s *apiservertest.Server) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(s.Client, 0)
	cached := memory.NewMemCacheClient(s.Client.Discovery())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	scales, err := scale.NewForConfig(s.Config, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(cached))
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := podautoscaler.MetricsClientsForConfig(s.Config, mapper)
	if err != nil {
		t.Fatal(err)
	}
	c, err := podautoscaler.New(factory.Autoscaling().V2().HorizontalPodAutoscalers(), factory.Core().V1().Pods(), s.Client, metrics, scales, mapper, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() { defer close(done); c.Run(ctx, 1) }()
	t.Cleanup(func() { cancel(); <-done; factory.Shutdown() })
}
