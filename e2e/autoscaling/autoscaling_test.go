// Package autoscaling_test proves the horizontal pod autoscaler on real containers: a real
// API server serving metrics.k8s.io from a real kubelet's cgroup CPU figures, the kubelet
// running busybox pods on a containerd of the test's own, and the deployment, replica set
// and autoscaler controllers wired as the controller manager wires them. Pods that burn CPU
// make the autoscaler scale their Deployment up; when they stop, it scales it back down.
//
// The test process runs itself again in a network namespace of its own (TestMain), so that
// the node's pod bridge and kubelet port meet no other test's.
package autoscaling_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/record"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/deployment"
	"github.com/skiff-dev/skiff/controllers/podautoscaler"
	"github.com/skiff-dev/skiff/controllers/replicaset"
	"github.com/skiff-dev/skiff/e2e/netnstest"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Main(m, nil)) }

// Generous bounds: the test asserts what happens, never how fast. The autoscaler acts every
// 15 seconds, and new pods' CPU counts only once they have been ready for a metrics window.
const (
	settle = 5 * time.Minute
	poll   = time.Second
)

// busyScript burns CPU in bursts until /tmp/idle exists, then idles.
const busyScript = `while :; do if [ -e /tmp/idle ]; then sleep 1; else i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; fi; done`

const node = "node-hpa"

// busyRequest and busyLimit are each pod's CPU: a request small enough that one busy
// pod is far above a 50% target, a limit that keeps three of them from taking the machine.
var (
	busyRequest = resource.MustParse("20m")
	busyLimit   = resource.MustParse("100m")
)

func TestAnAutoscalerScalesADeploymentOfBusyContainersUpAndBackDown(t *testing.T) {
	if testing.Short() {
		t.Skip("real containers are skipped with -short")
	}
	if why := netnstest.Why(); why != "" {
		t.Skip(why)
	}
	if m := kubelettest.Missing(); m != "" {
		t.Skipf("real containers cannot run here: %s", m)
	}
	ctx := context.Background()
	s := apiservertest.Start(t)
	client := s.Client
	ctrd, err := kubelettest.StartContainerd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ctrd.Stop(); err != nil {
			t.Errorf("stopping containerd: %v", err)
		}
	})
	n := kubelettest.StartNode(t, client, ctrd, node)
	startControllers(t, s)

	labels := map[string]string{"app": "busy"}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "busy"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				NodeName:                      node, // no scheduler runs here
				TerminationGracePeriodSeconds: ptr.To[int64](1),
				Containers: []corev1.Container{{
					Name: "main", Image: kubelettest.BusyboxImage, ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sh", "-c", busyScript},
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: busyRequest},
						Limits:   corev1.ResourceList{corev1.ResourceCPU: busyLimit},
					},
				}},
			}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitForPods(t, s, 1)

	// the kubelet's cgroup figures reach metrics.k8s.io: a busy pod uses some CPU, and no
	// more than its limit (a unit slip, nanocores for millicores, or the node's figure for
	// the pod's, would show here)
	metrics, err := metricsclient.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	var used resource.Quantity
	if err := wait.PollUntilContextTimeout(ctx, poll, settle, true, func(ctx context.Context) (bool, error) {
		pm, err := metrics.MetricsV1beta1().PodMetricses("default").Get(ctx, pods[0].Name, metav1.GetOptions{})
		if err != nil || len(pm.Containers) != 1 || pm.Containers[0].Name != "main" {
			return false, nil
		}
		used = pm.Containers[0].Usage[corev1.ResourceCPU]
		return used.MilliValue() >= 10, nil
	}); err != nil {
		t.Fatalf("the busy pod's CPU in metrics.k8s.io never reached 10m (last %s)", used.String())
	}
	if used.Cmp(resource.MustParse("150m")) > 0 {
		t.Errorf("the busy pod uses %s of CPU by metrics.k8s.io, more than its limit of %s allows", used.String(), busyLimit.String())
	}
	t.Logf("the busy pod uses %s of CPU by metrics.k8s.io (limit %s)", used.String(), busyLimit.String())
	// and the kubelet's cumulative figure is the container's own cgroup's, read between two
	// readings of that cgroup from inside the container (50ms of CPU either side for the
	// sampling, at a limit of 100m)
	before := cgroupCPUSeconds(t, n, pods[0])
	reported := kubeletCPUSeconds(t, n, pods[0])
	after := cgroupCPUSeconds(t, n, pods[0])
	if reported < before-0.05 || reported > after+0.05 {
		t.Errorf("the kubelet reports %.3fs of CPU for the busy container; its cgroup counted %.3fs before and %.3fs after", reported, before, after)
	}
	t.Logf("the busy container's CPU time: %.3fs by its cgroup, %.3fs by the kubelet, %.3fs by its cgroup", before, reported, after)

	target := int32(50)
	if _, err := client.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "busy"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "busy"},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 3,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target}}}},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](0)},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// busy: far above 50% of 20m, up to the maximum
	waitForReplicas(t, s, 3, "the busy deployment was not scaled up to 3")
	hpa, err := client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "busy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := condition(hpa, autoscalingv2.ScalingActive); got.Status != corev1.ConditionTrue || got.Reason != "ValidMetricFound" {
		t.Errorf("ScalingActive while busy: %+v", got)
	}
	if len(hpa.Status.CurrentMetrics) != 1 || hpa.Status.CurrentMetrics[0].Resource == nil ||
		hpa.Status.CurrentMetrics[0].Resource.Current.AverageUtilization == nil || *hpa.Status.CurrentMetrics[0].Resource.Current.AverageUtilization <= target {
		t.Errorf("current metrics while busy: %+v", hpa.Status.CurrentMetrics)
	} else {
		t.Logf("while busy: %d%% of the pods' CPU requests (target %d%%)", *hpa.Status.CurrentMetrics[0].Resource.Current.AverageUtilization, target)
	}

	// idle: every pod stops burning; all three are there, and no more will come while busy
	for _, p := range waitForPods(t, s, 3) {
		if _, stderr, err := n.Exec(p, "main", "touch", "/tmp/idle"); err != nil {
			t.Fatalf("making %s idle: %v %s", p.Name, err, stderr)
		}
	}
	waitForReplicas(t, s, 1, "the idle deployment was not scaled back down to 1")
	waitForPods(t, s, 1)
	// the autoscaler's events say why it scaled each way
	var rescales string
	if err := wait.PollUntilContextTimeout(ctx, poll, settle, true, func(ctx context.Context) (bool, error) {
		events, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=busy"})
		if err != nil {
			return false, nil
		}
		rescales = ""
		for _, e := range events.Items {
			if e.Reason == "SuccessfulRescale" {
				rescales += e.Message + "\n"
			}
		}
		return strings.Contains(rescales, "New size: 3; reason: cpu resource utilization (percentage of request) above target") &&
			strings.Contains(rescales, "New size: 1; reason: All metrics below target"), nil
	}); err != nil {
		t.Errorf("SuccessfulRescale events:\n%s", rescales)
	}
}

// cgroupCPUSeconds is a container's cumulative CPU time as its own cgroup counts it, read
// from inside the container (cgroup v2's cpu.stat, or v1's cpuacct.usage).
func cgroupCPUSeconds(t *testing.T, n *kubelettest.Node, pod *corev1.Pod) float64 {
	t.Helper()
	out, stderr, err := n.Exec(pod, "main", "sh", "-c",
		"cat /sys/fs/cgroup/cpu.stat 2>/dev/null || cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || cat /sys/fs/cgroup/cpu,cpuacct/cpuacct.usage")
	if err != nil {
		t.Fatalf("reading the container's cgroup: %v %s", err, stderr)
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			usec, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("cpu.stat: %q", out)
			}
			return usec / 1e6
		}
	}
	ns, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
	if err != nil {
		t.Fatalf("the container's cgroup CPU: %q", out)
	}
	return ns / 1e9
}

// kubeletCPUSeconds is a container's cumulative CPU time by the kubelet's /metrics/resource.
func kubeletCPUSeconds(t *testing.T, n *kubelettest.Node, pod *corev1.Pod) float64 {
	t.Helper()
	_, body := n.KubeletGet("/metrics/resource")
	prefix := fmt.Sprintf(`container_cpu_usage_seconds_total{container="main",namespace="default",pod=%q} `, pod.Name)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(strings.Fields(v)[0], 64)
			if err != nil {
				t.Fatalf("/metrics/resource: %q", line)
			}
			return f
		}
	}
	t.Fatalf("no %q in /metrics/resource:\n%s", prefix, body)
	return 0
}

// startControllers runs the deployment, replica set and autoscaler controllers against s
// until the test ends.
func startControllers(t *testing.T, s *apiservertest.Server) {
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
	// events go to the API, as the controller manager sends them
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.Client.CoreV1().Events("")})
	t.Cleanup(broadcaster.Shutdown)
	reporting := controllers.Reporting{Recorder: func(component string) record.EventRecorder {
		return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
	}}
	hpas, err := podautoscaler.New(factory.Autoscaling().V2().HorizontalPodAutoscalers(), factory.Core().V1().Pods(), s.Client, metrics, scales, mapper, reporting)
	if err != nil {
		t.Fatal(err)
	}
	deployments, err := deployment.New(factory.Apps().V1().Deployments(), factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(), s.Client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	replicaSets, err := replicaset.New(factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(), s.Client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	factory.Start(ctx.Done())
	for _, run := range []func(context.Context, int){hpas.Run, deployments.Run, replicaSets.Run} {
		go func() { run(ctx, 1); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
		factory.Shutdown()
	})
}

// waitForPods waits until the deployment's pods are exactly n, all running and ready, and
// none being deleted, and returns them.
func waitForPods(t *testing.T, s *apiservertest.Server, n int) []*corev1.Pod {
	t.Helper()
	var pods []*corev1.Pod
	var last string
	if err := wait.PollUntilContextTimeout(context.Background(), poll, settle, true, func(ctx context.Context) (bool, error) {
		list, err := s.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: labels.Set{"app": "busy"}.String()})
		if err != nil {
			return false, nil
		}
		pods, last = nil, ""
		for i := range list.Items {
			p := &list.Items[i]
			last += fmt.Sprintf("%s %s ready=%t deleting=%t; ", p.Name, p.Status.Phase, kubelettest.PodReady(p), p.DeletionTimestamp != nil)
			if p.DeletionTimestamp != nil || !kubelettest.PodReady(p) {
				return false, nil
			}
			pods = append(pods, p)
		}
		return len(pods) == n, nil
	}); err != nil {
		t.Fatalf("the deployment's pods were not %d running and ready: %s", n, last)
	}
	return pods
}

// waitForReplicas waits until the autoscaler has set the deployment to n replicas.
func waitForReplicas(t *testing.T, s *apiservertest.Server, n int32, failure string) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), poll, settle, true, func(ctx context.Context) (bool, error) {
		d, err := s.Client.AppsV1().Deployments("default").Get(ctx, "busy", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == n, nil
	}); err != nil {
		hpa, _ := s.Client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(context.Background(), "busy", metav1.GetOptions{})
		t.Fatalf("%s; the autoscaler's status: %+v", failure, hpa.Status)
	}
}

func condition(hpa *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType) autoscalingv2.HorizontalPodAutoscalerCondition {
	for _, c := range hpa.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return autoscalingv2.HorizontalPodAutoscalerCondition{}
}
