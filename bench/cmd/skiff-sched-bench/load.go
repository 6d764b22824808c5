package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const benchNamespace = "sched-bench"

// result is what one run measured.
type result struct {
	Nodes, Pods, Workers int
	NodeSetup            time.Duration
	// PodCreates is the time the workers took to create every pod.
	PodCreates time.Duration
	// EndToEnd runs from the first pod create until the informer has seen every pod bound.
	EndToEnd time.Duration
	// Attempts are the scheduler's scheduling attempts by result, from its /metrics.
	Attempts map[string]float64
	// MeanSLI is the scheduler's mean queue-to-bound latency per pod, from its /metrics.
	MeanSLI time.Duration
	// EventsWritten runs from the first create until every pod has its Scheduled event; 0
	// when they were not all there within a minute of the last binding.
	EventsWritten time.Duration
	// ServerCPU is the CPU time skiff up used during the end-to-end phase.
	ServerCPU    time.Duration
	CreateErrors int64
	ServerIssues []string
}

func (r result) podsPerSecond() float64 { return float64(r.Pods) / r.EndToEnd.Seconds() }

type load struct {
	client kubernetes.Interface
	opts   options
}

func newLoad(kubeconfig string, o options) (*load, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limit
	cfg.UserAgent = "skiff-sched-bench"
	if o.contentType == "protobuf" {
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &load{client: client, opts: o}, nil
}

func (l *load) run(ctx context.Context, nodes int, server *upProcess) (result, error) {
	res := result{Nodes: nodes, Pods: l.opts.pods, Workers: l.opts.workers}
	start := time.Now()
	if err := l.cordonExistingNodes(ctx); err != nil {
		return res, err
	}
	if err := l.createNodes(ctx, nodes); err != nil {
		return res, err
	}
	if _, err := l.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace}}, metav1.CreateOptions{}); err != nil {
		return res, err
	}
	res.NodeSetup = time.Since(start)
	fmt.Fprintf(os.Stderr, "%d nodes ready in %v\n", nodes, res.NodeSetup.Round(time.Millisecond))

	// the informer that judges: it sees every pod of the namespace and counts the bound ones
	var bound atomic.Int64
	allBound := make(chan struct{})
	var seen sync.Map
	onPod := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Spec.NodeName == "" {
			return
		}
		if _, dup := seen.LoadOrStore(pod.Name, true); !dup && bound.Add(1) == int64(l.opts.pods) {
			close(allBound)
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(l.client, 0, informers.WithNamespace(benchNamespace))
	podInformer := factory.Core().V1().Pods().Informer()
	if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onPod,
		UpdateFunc: func(_, obj any) { onPod(obj) },
	}); err != nil {
		return res, err
	}
	infCtx, stopInformer := context.WithCancel(ctx)
	defer func() {
		stopInformer()
		factory.Shutdown()
	}()
	factory.Start(infCtx.Done())
	factory.WaitForCacheSync(infCtx.Done())
	// give the scheduler's node informer a moment to hold every node
	time.Sleep(2 * time.Second)

	var created atomic.Int64
	cpuBefore := server.cpuSeconds()
	t0 := time.Now()
	createsDone := make(chan struct{})
	go func() {
		defer close(createsDone)
		res.CreateErrors = l.createPods(ctx, &created)
		res.PodCreates = time.Since(t0)
	}()
	progress := time.NewTicker(2 * time.Second)
	defer progress.Stop()
	for done := false; !done; {
		select {
		case <-allBound:
			done = true
		case <-progress.C:
			fmt.Fprintf(os.Stderr, "  %v: %d created, %d bound\n", time.Since(t0).Round(time.Second), created.Load(), bound.Load())
		case <-ctx.Done():
			return res, fmt.Errorf("%d of %d pods bound when the run gave up: %w", bound.Load(), l.opts.pods, ctx.Err())
		}
	}
	res.EndToEnd = time.Since(t0)
	res.ServerCPU = time.Duration((server.cpuSeconds() - cpuBefore) * float64(time.Second))
	<-createsDone
	res.EventsWritten = l.waitForScheduledEvents(ctx, t0)
	// after the events: by then every binding's answer has been counted
	if url := server.metricsURL(); url != "" {
		res.Attempts, res.MeanSLI = scrapeScheduler(ctx, url)
	}
	fmt.Fprintf(os.Stderr, "%d nodes: %d pods bound in %v: %.0f pods/s\n", nodes, l.opts.pods, res.EndToEnd.Round(time.Millisecond), res.podsPerSecond())
	return res, nil
}

// cordonExistingNodes marks the nodes skiff up brought (its own kubelet's) unschedulable, so
// that every bench pod goes to a bench node and no container is started.
func (l *load) cordonExistingNodes(ctx context.Context) error {
	list, err := l.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, n := range list.Items {
		if _, err := l.client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType,
			[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("cordoning node %s: %w", n.Name, err)
		}
	}
	return nil
}

// waitForScheduledEvents waits, for at most a minute, until every pod has its Scheduled event,
// and returns when that was, counted from t0.
func (l *load) waitForScheduledEvents(ctx context.Context, t0 time.Time) time.Duration {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		list, err := l.client.EventsV1().Events(benchNamespace).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err == nil {
			n := 0
			for _, e := range list.Items {
				if e.Reason == "Scheduled" {
					n++
				}
			}
			if n >= l.opts.pods {
				return time.Since(t0)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return 0
}

// benchNodeLabel marks the nodes the bench creates, apart from skiff up's own.
const benchNodeLabel = "skiff.dev/sched-bench"

// createNodes creates Ready nodes as upstream's scheduler_perf node template (4 cpu, 32Gi, 110
// pods), status and all in the create, and waits until skiff up's node lifecycle controller has
// lifted the not-ready taint its TaintNodesByCondition admission gave each: from then on they
// are what a kubelet's node is once Ready, and the clock can start.
func (l *load) createNodes(ctx context.Context, n int) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	err := l.parallel(ctx, n, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, benchNodeLabel: "true"}},
			Status: corev1.NodeStatus{
				Capacity:    capacity,
				Allocatable: capacity,
				Phase:       corev1.NodeRunning,
				Conditions: []corev1.NodeCondition{{
					Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
					LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
				}},
			},
		}
		_, err := l.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return err
	}
	return l.waitForNotReadyTaintsLifted(ctx, n)
}

// waitForNotReadyTaintsLifted waits until n bench nodes are without the not-ready:NoSchedule
// taint.
func (l *load) waitForNotReadyTaintsLifted(ctx context.Context, n int) error {
	notReady := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	for {
		list, err := l.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0", LabelSelector: benchNodeLabel})
		if err == nil {
			lifted := 0
			for _, node := range list.Items {
				if !slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.MatchTaint(&notReady) }) {
					lifted++
				}
			}
			if lifted >= n {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the node lifecycle controller to lift the not-ready taints: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// createPods creates the pods (10m cpu, 10Mi each) and returns how many creates failed.
func (l *load) createPods(ctx context.Context, created *atomic.Int64) int64 {
	var failed atomic.Int64
	requests := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("10m"),
		corev1.ResourceMemory: resource.MustParse("10Mi"),
	}
	_ = l.parallel(ctx, l.opts.pods, func(ctx context.Context, i int) error {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%d", i), Namespace: benchNamespace},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "pause", Image: "registry.k8s.io/pause:3.10",
				Resources: corev1.ResourceRequirements{Requests: requests},
			}}},
		}
		if _, err := l.client.CoreV1().Pods(benchNamespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			if failed.Add(1) <= 3 {
				fmt.Fprintf(os.Stderr, "create pod-%d: %v\n", i, err)
			}
			return nil
		}
		created.Add(1)
		return nil
	})
	return failed.Load()
}

// parallel runs fn for 0..n-1 on the bench's workers and returns the first error.
func (l *load) parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < l.opts.workers; w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// scrapeScheduler reads the scheduler's attempts by result and its mean e2e latency.
func scrapeScheduler(ctx context.Context, url string) (map[string]float64, time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0
	}
	defer resp.Body.Close()
	attempts := map[string]float64{}
	var sliSum, sliCount float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(name, "scheduler_schedule_attempts_total{"):
			if _, r, ok := strings.Cut(name, `result="`); ok {
				attempts[strings.TrimSuffix(r[:strings.IndexByte(r, '"')], `"`)] += v
			}
		case strings.HasPrefix(name, "scheduler_pod_scheduling_sli_duration_seconds_sum"):
			sliSum += v
		case strings.HasPrefix(name, "scheduler_pod_scheduling_sli_duration_seconds_count"):
			sliCount += v
		}
	}
	var mean time.Duration
	if sliCount > 0 {
		mean = time.Duration(sliSum / sliCount * float64(time.Second))
	}
	return attempts, mean
}

func printResults(w io.Writer, o options, results []result) {
	fmt.Fprintf(w, "skiff-sched-bench: %d pods (10m cpu, 10Mi) per run from %d workers, client %s, no client rate limit\n\n",
		o.pods, o.workers, o.contentType)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "nodes\tpods\tend to end\tpods/s\tcreates\tcreates/s\tmean queue-to-bound\tattempts (scheduled/unschedulable/error)\tserver CPU\tall Scheduled events\t")
	for _, r := range results {
		events := "not within a minute"
		if r.EventsWritten > 0 {
			events = r.EventsWritten.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%d\t%d\t%v\t%.0f\t%v\t%.0f\t%v\t%.0f/%.0f/%.0f\t%v\t%s\t\n",
			r.Nodes, r.Pods, r.EndToEnd.Round(time.Millisecond), r.podsPerSecond(),
			r.PodCreates.Round(time.Millisecond), float64(r.Pods)/r.PodCreates.Seconds(),
			r.MeanSLI.Round(time.Millisecond),
			r.Attempts["scheduled"], r.Attempts["unschedulable"], r.Attempts["error"],
			r.ServerCPU.Round(100*time.Millisecond), events)
	}
	tw.Flush()
	for _, r := range results {
		if r.CreateErrors > 0 {
			fmt.Fprintf(w, "\n%d nodes: %d pod creates failed\n", r.Nodes, r.CreateErrors)
		}
		if len(r.ServerIssues) > 0 {
			fmt.Fprintf(w, "\n%d nodes: the server logged:\n", r.Nodes)
			for _, l := range r.ServerIssues {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
	}
}
