package apiserver_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// metricsKubelet serves /metrics/resource as a kubelet whose node uses half a core and whose
// pod's container a fifth of one: every scrape is ten (measured) seconds after the one
// before, with 5 and 2 more core-seconds.
func metricsKubelet(t *testing.T) (host string, port int32) {
	var scrapes atomic.Int64
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics/resource" {
			http.NotFound(w, r)
			return
		}
		i := scrapes.Add(1)
		at := base + i*10000
		fmt.Fprintf(w, "# TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total %d %d\n", i*5, at)
		fmt.Fprintf(w, "# TYPE node_memory_working_set_bytes gauge\nnode_memory_working_set_bytes %d %d\n", 100<<20, at)
		fmt.Fprintf(w, "# TYPE container_cpu_usage_seconds_total counter\ncontainer_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"measured\"} %d %d\n", i*2, at)
		fmt.Fprintf(w, "# TYPE container_memory_working_set_bytes gauge\ncontainer_memory_working_set_bytes{container=\"app\",namespace=\"default\",pod=\"measured\"} %d %d\n", 50<<20, at)
	}))
	t.Cleanup(srv.Close)
	h, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	n, _ := strconv.Atoi(p)
	return h, int32(n)
}

// measuredNode is a node whose kubelet is metricsKubelet, running the pod "measured".
func measuredNode(t *testing.T, s *apiservertest.Server) {
	ctx := context.Background()
	host, port := metricsKubelet(t)
	node, err := s.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = port
	node.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	node.Status.Allocatable = node.Status.Capacity
	if _, err := s.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := testPod("measured")
	pod.Labels = map[string]string{"app": "measured"}
	pod.Spec.Containers[0].Name = "app"
	pod.Spec.NodeName = "n1"
	pod, err = s.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	if _, err := s.Client.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestTheMetricsAPIReadsTheKubelets(t *testing.T) {
	s := apiservertest.Start(t)
	measuredNode(t, s)
	ctx := context.Background()
	client := metricsclient.NewForConfigOrDie(s.Config).MetricsV1beta1()

	nm, err := client.NodeMetricses().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cpu, mem := nm.Usage[corev1.ResourceCPU], nm.Usage[corev1.ResourceMemory]; cpu.MilliValue() != 500 || mem.Value() != 100<<20 || nm.Window.Duration != 10*time.Second {
		t.Errorf("node metrics: %v window %v", nm.Usage, nm.Window)
	}
	if list, err := client.NodeMetricses().List(ctx, metav1.ListOptions{LabelSelector: "zone=b"}); err != nil || len(list.Items) != 0 {
		t.Errorf("nodes of another zone: %v %v", list, err)
	}
	if _, err := client.NodeMetricses().Get(ctx, "missing", metav1.GetOptions{}); !apierrors.IsNotFound(err) || err.Error() != `nodes.metrics.k8s.io "missing" not found` {
		t.Errorf("missing node: %v", err)
	}

	pods, err := client.PodMetricses("default").List(ctx, metav1.ListOptions{LabelSelector: "app=measured"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pod metrics: %v %v", pods, err)
	}
	pm := pods.Items[0]
	if len(pm.Containers) != 1 || pm.Containers[0].Name != "app" {
		t.Fatalf("containers: %+v", pm.Containers)
	}
	if cpu, mem := pm.Containers[0].Usage[corev1.ResourceCPU], pm.Containers[0].Usage[corev1.ResourceMemory]; cpu.MilliValue() != 200 || mem.Value() != 50<<20 {
		t.Errorf("container usage: %v", pm.Containers[0].Usage)
	}
	if list, err := client.PodMetricses("other").List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Errorf("another namespace: %v %v", list, err)
	}
	// read-only
	if err := s.Client.CoreV1().RESTClient().Delete().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/measured").Do(ctx).Error(); !apierrors.IsMethodNotSupported(err) {
		t.Errorf("delete: %v", err)
	}
}

func TestStockKubectlTop(t *testing.T) {
	s := apiservertest.Start(t)
	measuredNode(t, s)
	kubeconfig := adminKubeconfig(t, s)
	for _, bin := range kubectlBinaries(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			run := kubectlRunner(t, bin, kubeconfig, nil)
			out := run("top", "nodes")
			if f := strings.Fields(out); len(f) < 10 || f[5] != "n1" || f[6] != "500m" || f[7] != "25%" || f[8] != "100Mi" {
				t.Errorf("top nodes:\n%s", out)
			}
			out = run("top", "pods")
			if f := strings.Fields(out); len(f) != 6 || f[3] != "measured" || f[4] != "200m" || f[5] != "50Mi" {
				t.Errorf("top pods:\n%s", out)
			}
			if out := run("top", "pod", "measured", "--containers"); !strings.Contains(out, "app") {
				t.Errorf("top pod --containers:\n%s", out)
			}
		})
	}
}

func TestStockKubectlGetsNodeMetricsAsATable(t *testing.T) {
	s := apiservertest.Start(t)
	measuredNode(t, s)
	run := kubectlRunner(t, kubectlOnPath(t), adminKubeconfig(t, s), nil)
	out := run("get", "nodes.metrics.k8s.io")
	if f := strings.Fields(out); len(f) != 8 || strings.Join(f[:4], " ") != "NAME CPU MEMORY WINDOW" || f[4] != "n1" || f[5] != "500m" || f[6] != "100Mi" || f[7] != "10s" {
		t.Errorf("get nodes.metrics.k8s.io:\n%s", out)
	}
}
