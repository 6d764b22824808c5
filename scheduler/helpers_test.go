package scheduler

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// waitTimeout bounds every wait for the cluster to reach a state: generous, because tests
// assert what happens, never how fast.
const waitTimeout = 90 * time.Second

// testLogger logs to stderr only with SKIFF_TEST_LOG set, so that failures can be debugged.
func testLogger() *slog.Logger {
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startScheduler runs a scheduler against srv until the test ends.
func startScheduler(t *testing.T, srv *apiservertest.Server, opts Options) *Scheduler {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
		if os.Getenv("SKIFF_TEST_MEMLOG") != "" {
			var mu sync.Mutex
			var buf bytes.Buffer
			opts.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
			t.Cleanup(func() {
				if t.Failed() {
					mu.Lock()
					t.Log(buf.String())
					mu.Unlock()
				}
			})
		}
	}
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		opts.Verbosity = 4
	}
	s, err := New(srv.Config, opts)
	if err != nil {
		t.Fatalf("new scheduler: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("scheduler Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	stops.Store(s, stop)
	return s
}

// stops holds how to stop each scheduler startScheduler started.
var stops sync.Map

// stopScheduler stops a scheduler startScheduler started and waits for it.
func stopScheduler(t *testing.T, s *Scheduler) {
	t.Helper()
	stop, ok := stops.Load(s)
	if !ok {
		t.Fatal("scheduler not started by startScheduler")
	}
	stop.(func())()
}

// attempts is how many scheduling attempts s made, whatever their result.
func attempts(s *Scheduler) float64 {
	var n float64
	for _, r := range []string{resultScheduled, resultUnschedulable, resultError} {
		n += counterValue(s.metrics.attempts.WithLabelValues(r, s.opts.SchedulerName))
	}
	return n
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// nodeSpec describes a test node.
type nodeSpec struct {
	name          string
	cpu, memory   string
	pods          int
	labels        map[string]string
	taints        []corev1.Taint
	unschedulable bool
}

func newNode(n nodeSpec) *corev1.Node {
	if n.cpu == "" {
		n.cpu = "4"
	}
	if n.memory == "" {
		n.memory = "32Gi"
	}
	if n.pods == 0 {
		n.pods = 110
	}
	lbls := map[string]string{corev1.LabelHostname: n.name}
	for k, v := range n.labels {
		lbls[k] = v
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(n.cpu),
		corev1.ResourceMemory: resource.MustParse(n.memory),
		corev1.ResourcePods:   *resource.NewQuantity(int64(n.pods), resource.DecimalSI),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: lbls},
		Spec:       corev1.NodeSpec{Taints: n.taints, Unschedulable: n.unschedulable},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "kubelet is posting ready status", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
			}},
		},
	}
}

// createNode creates a node and writes its status (capacity, allocatable, Ready), as a kubelet
// registering would.
func createNode(t *testing.T, client kubernetes.Interface, n nodeSpec) *corev1.Node {
	t.Helper()
	ctx := context.Background()
	node := newNode(n)
	created, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %s: %v", n.name, err)
	}
	created.Status = node.Status
	updated, err := client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("node %s status: %v", n.name, err)
	}
	return updated
}

// podSpec describes a test pod.
type podSpec struct {
	name, namespace string
	cpu, memory     string
	labels          map[string]string
	mutate          func(*corev1.Pod)
}

func newPod(p podSpec) *corev1.Pod {
	if p.namespace == "" {
		p.namespace = metav1.NamespaceDefault
	}
	req := corev1.ResourceList{}
	if p.cpu != "" {
		req[corev1.ResourceCPU] = resource.MustParse(p.cpu)
	}
	if p.memory != "" {
		req[corev1.ResourceMemory] = resource.MustParse(p.memory)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: p.namespace, Labels: p.labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.k8s.io/pause:3.10",
				Resources: corev1.ResourceRequirements{Requests: req},
			}},
		},
	}
	if p.mutate != nil {
		p.mutate(pod)
	}
	return pod
}

func createPod(t *testing.T, client kubernetes.Interface, p podSpec) *corev1.Pod {
	t.Helper()
	pod := newPod(p)
	created, err := client.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", p.name, err)
	}
	return created
}

// waitForPod waits until cond holds for the pod and returns it.
func waitForPod(t *testing.T, client kubernetes.Interface, namespace, name string, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		pod, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = pod
		return cond(pod), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: waiting for %s: %v; last seen: nodeName=%q conditions=%+v", namespace, name, what, err, nodeNameOf(last), conditionsOf(last))
	}
	return last
}

func nodeNameOf(p *corev1.Pod) string {
	if p == nil {
		return ""
	}
	return p.Spec.NodeName
}

func conditionsOf(p *corev1.Pod) []corev1.PodCondition {
	if p == nil {
		return nil
	}
	return p.Status.Conditions
}

func waitBound(t *testing.T, client kubernetes.Interface, namespace, name string) *corev1.Pod {
	t.Helper()
	return waitForPod(t, client, namespace, name, "a node", func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
}

func podScheduledCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// waitUnschedulable waits for the PodScheduled=False condition with reason Unschedulable.
func waitUnschedulable(t *testing.T, client kubernetes.Interface, namespace, name string) *corev1.Pod {
	t.Helper()
	return waitForPod(t, client, namespace, name, "PodScheduled=False Unschedulable", func(p *corev1.Pod) bool {
		c := podScheduledCondition(p)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable
	})
}

// pollFor waits for cond, failing the test with what after waitTimeout.
func pollFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var lastErr error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, waitTimeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		if err != nil {
			lastErr = err
			return false, nil
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last error: %v)", what, err, lastErr)
	}
}

func podNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}
