package scheduler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestUnschedulablePodGetsConditionEventAndFitsOnceANodeAppears(t *testing.T) {
	srv := apiservertest.Start(t)
	createNode(t, srv.Client, nodeSpec{name: "node1", cpu: "4"})
	notReady := []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}}
	createNode(t, srv.Client, nodeSpec{name: "node2", taints: notReady})
	createNode(t, srv.Client, nodeSpec{name: "node3", taints: notReady})
	startScheduler(t, srv, Options{})

	createPod(t, srv.Client, podSpec{name: "big", cpu: "3"})
	if got := waitBound(t, srv.Client, "default", "big").Spec.NodeName; got != "node1" {
		t.Fatalf("big went to %s, want node1", got)
	}
	createPod(t, srv.Client, podSpec{name: "x", cpu: "2"})
	pod := waitUnschedulable(t, srv.Client, "default", "x")

	want := "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. " +
		"no new claims to deallocate, preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
	c := podScheduledCondition(pod)
	if c.Message != want {
		t.Errorf("condition message:\n got %q\nwant %q", c.Message, want)
	}
	if c.LastTransitionTime.IsZero() || c.ObservedGeneration != pod.Generation {
		t.Errorf("condition: lastTransitionTime %v, observedGeneration %d (pod generation %d)", c.LastTransitionTime, c.ObservedGeneration, pod.Generation)
	}
	if pod.Status.NominatedNodeName != "" {
		t.Errorf("nominatedNodeName = %q, want none: nothing was preempted", pod.Status.NominatedNodeName)
	}
	ev := waitForEvent(t, srv, "default", "x", "FailedScheduling")
	if ev.Note != want || ev.Type != corev1.EventTypeWarning || ev.Action != "Scheduling" || ev.ReportingController != "default-scheduler" {
		t.Errorf("FailedScheduling event: type %q action %q controller %q note %q", ev.Type, ev.Action, ev.ReportingController, ev.Note)
	}

	// a node with room: the pod is placed without any other change
	createNode(t, srv.Client, nodeSpec{name: "node4", cpu: "4"})
	if got := waitBound(t, srv.Client, "default", "x").Spec.NodeName; got != "node4" {
		t.Errorf("x went to %s, want node4", got)
	}
}

func TestUnschedulablePodFitsOnceARunningPodGoes(t *testing.T) {
	srv := apiservertest.Start(t)
	createNode(t, srv.Client, nodeSpec{name: "node1", cpu: "2"})
	startScheduler(t, srv, Options{})
	createPod(t, srv.Client, podSpec{name: "first", cpu: "2"})
	waitBound(t, srv.Client, "default", "first")
	createPod(t, srv.Client, podSpec{name: "second", cpu: "2"})
	waitUnschedulable(t, srv.Client, "default", "second")

	if err := srv.Client.CoreV1().Pods("default").Delete(context.Background(), "first", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
	if got := waitBound(t, srv.Client, "default", "second").Spec.NodeName; got != "node1" {
		t.Errorf("second went to %s, want node1", got)
	}
}

func TestPodsOfOtherSchedulersAndGatedPodsAreLeftAlone(t *testing.T) {
	srv := apiservertest.Start(t)
	createNode(t, srv.Client, nodeSpec{name: "node1"})
	startScheduler(t, srv, Options{})
	createPod(t, srv.Client, podSpec{name: "other", mutate: func(p *corev1.Pod) { p.Spec.SchedulerName = "someone-else" }})
	createPod(t, srv.Client, podSpec{name: "gated", mutate: func(p *corev1.Pod) {
		p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}}
	}})
	createPod(t, srv.Client, podSpec{name: "mine"})
	waitBound(t, srv.Client, "default", "mine")
	// "mine" was created last: by now the scheduler has seen the other two
	for _, name := range []string{"other", "gated"} {
		pod, err := srv.Client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod.Spec.NodeName != "" {
			t.Errorf("%s was bound to %s", name, pod.Spec.NodeName)
		}
	}
	if _, err := srv.Client.CoreV1().Pods("default").Patch(context.Background(), "gated", "application/json-patch+json",
		[]byte(`[{"op":"remove","path":"/spec/schedulingGates"}]`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBound(t, srv.Client, "default", "gated")
}

// createPriorityClass creates a PriorityClass, or skips the test when the server does not
// serve them.
func createPriorityClass(t *testing.T, srv *apiservertest.Server, name string, value int32) {
	t.Helper()
	_, err := srv.Client.SchedulingV1().PriorityClasses().Create(context.Background(),
		&schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value}, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) {
		t.Skip("the API server does not serve scheduling.k8s.io/v1 priorityclasses yet")
	}
	if err != nil {
		t.Fatalf("create PriorityClass %s: %v", name, err)
	}
}

func withPriorityClass(class string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.PriorityClassName = class }
}

func TestPreemptionEvictsTheFewestLowestPriorityPods(t *testing.T) {
	srv := apiservertest.Start(t)
	for name, value := range map[string]int32{"p100": 100, "p200": 200, "p300": 300, "p500": 500, "high": 1000} {
		createPriorityClass(t, srv, name, value)
	}
	createNode(t, srv.Client, nodeSpec{name: "node1", cpu: "4"})
	createNode(t, srv.Client, nodeSpec{name: "node2", cpu: "4"})
	s := startScheduler(t, srv, Options{})

	// node1: a (100, 1 cpu), b (200, 1 cpu), c (300, 2 cpu); node2: d (500, 4 cpu)
	place := func(name, cpu, class, node string) {
		createPod(t, srv.Client, podSpec{name: name, cpu: cpu, mutate: func(p *corev1.Pod) {
			p.Spec.PriorityClassName = class
			p.Spec.NodeSelector = map[string]string{corev1.LabelHostname: node}
		}})
		waitBound(t, srv.Client, "default", name)
	}
	place("a", "1", "p100", "node1")
	place("b", "1", "p200", "node1")
	place("c", "2", "p300", "node1")
	place("d", "4", "p500", "node2")

	// The high pod needs 2 cpu. On node2 it would evict d (priority 500); on node1 a and b
	// (at most 200), keeping c: upstream picks the node whose most important victim matters
	// least, then removes only what it must.
	createPod(t, srv.Client, podSpec{name: "high", cpu: "2", mutate: withPriorityClass("high")})
	pod := waitForPod(t, srv.Client, "default", "high", "nominatedNodeName", func(p *corev1.Pod) bool {
		return p.Status.NominatedNodeName != ""
	})
	if pod.Status.NominatedNodeName != "node1" {
		t.Fatalf("nominated %s, want node1", pod.Status.NominatedNodeName)
	}
	for _, victim := range []string{"a", "b"} {
		v := waitForPod(t, srv.Client, "default", victim, "graceful deletion", func(p *corev1.Pod) bool { return p.DeletionTimestamp != nil })
		var cond *corev1.PodCondition
		for i := range v.Status.Conditions {
			if v.Status.Conditions[i].Type == corev1.DisruptionTarget {
				cond = &v.Status.Conditions[i]
			}
		}
		if cond == nil || cond.Status != corev1.ConditionTrue || cond.Reason != corev1.PodReasonPreemptionByScheduler ||
			cond.Message != "default-scheduler: preempting to accommodate a higher priority pod" {
			t.Errorf("victim %s DisruptionTarget condition = %+v", victim, cond)
		}
		ev := waitForEvent(t, srv, "default", victim, "Preempted")
		if want := fmt.Sprintf("Preempted by pod %s on node node1", pod.UID); ev.Note != want {
			t.Errorf("Preempted event note = %q, want %q", ev.Note, want)
		}
	}
	for _, spared := range []string{"c", "d"} {
		p, err := srv.Client.CoreV1().Pods("default").Get(context.Background(), spared, metav1.GetOptions{})
		if err != nil || p.DeletionTimestamp != nil {
			t.Errorf("%s should be spared: err %v, deletionTimestamp %v", spared, err, p.DeletionTimestamp)
		}
	}
	if n := counterValue(s.metrics.preemptionAttempts); n < 1 {
		t.Errorf("scheduler_preemption_attempts_total = %v, want at least 1", n)
	}

	// No kubelet finishes the victims' graceful deletion: do it for it.
	for _, victim := range []string{"a", "b"} {
		if err := srv.Client.CoreV1().Pods("default").Delete(context.Background(), victim, *metav1.NewDeleteOptions(0)); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	if got := waitBound(t, srv.Client, "default", "high").Spec.NodeName; got != "node1" {
		t.Errorf("high went to %s, want node1", got)
	}
}

func TestPodWithPreemptionPolicyNeverDoesNotPreempt(t *testing.T) {
	srv := apiservertest.Start(t)
	createPriorityClass(t, srv, "low", 10)
	_, err := srv.Client.SchedulingV1().PriorityClasses().Create(context.Background(), &schedulingv1.PriorityClass{
		ObjectMeta: metav1.ObjectMeta{Name: "polite"}, Value: 1000, PreemptionPolicy: ptr.To(corev1.PreemptNever),
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	createNode(t, srv.Client, nodeSpec{name: "node1", cpu: "1"})
	startScheduler(t, srv, Options{})
	createPod(t, srv.Client, podSpec{name: "low", cpu: "1", mutate: withPriorityClass("low")})
	waitBound(t, srv.Client, "default", "low")
	createPod(t, srv.Client, podSpec{name: "polite", cpu: "1", mutate: withPriorityClass("polite")})
	pod := waitUnschedulable(t, srv.Client, "default", "polite")
	want := "0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate, preemption: not eligible due to preemptionPolicy=Never."
	if got := podScheduledCondition(pod).Message; got != want {
		t.Errorf("message:\n got %q\nwant %q", got, want)
	}
	low, _ := srv.Client.CoreV1().Pods("default").Get(context.Background(), "low", metav1.GetOptions{})
	if low.DeletionTimestamp != nil {
		t.Error("the low pod was preempted by a pod with preemptionPolicy Never")
	}
}

func TestLeaderElectionLetsOneSchedulerActAndHandsOver(t *testing.T) {
	srv := apiservertest.Start(t)
	for i := 0; i < 3; i++ {
		createNode(t, srv.Client, nodeSpec{name: fmt.Sprintf("node%d", i)})
	}
	le := func(id string) *LeaderElection {
		return &LeaderElection{Identity: id, LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond}
	}
	a := startScheduler(t, srv, Options{LeaderElection: le("a")})
	pollFor(t, "scheduler a to hold the lease", func() (bool, error) {
		lease, err := srv.Client.CoordinationV1().Leases("kube-system").Get(context.Background(), "kube-scheduler", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity == "a", nil
	})
	b, err := New(srv.Config, Options{LeaderElection: le("b"), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	bCtx, stopB := context.WithCancel(context.Background())
	bDone := make(chan error, 1)
	go func() { bDone <- b.Run(bCtx) }()
	t.Cleanup(func() {
		stopB()
		<-bDone
	})

	createAll := func(prefix string, n int) []string {
		names := podNames(prefix, n)
		var wg sync.WaitGroup
		for _, name := range names {
			wg.Go(func() {
				pod := newPod(podSpec{name: name, cpu: "10m"})
				if _, err := srv.Client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
					t.Errorf("create %s: %v", name, err)
				}
			})
		}
		wg.Wait()
		return names
	}
	first := createAll("first", 30)
	for _, name := range first {
		waitBound(t, srv.Client, "default", name)
	}
	if n := attempts(b); n != 0 {
		t.Errorf("the standby scheduler made %v scheduling attempts while the other led", n)
	}

	// a stops (releasing the lease); b takes over and schedules what comes next
	aStats := attempts(a)
	stopScheduler(t, a)
	second := createAll("second", 30)
	for _, name := range second {
		waitBound(t, srv.Client, "default", name)
	}
	if attempts(a) != aStats {
		t.Errorf("the stopped scheduler kept scheduling")
	}
	pollFor(t, "the new leader to count its attempts", func() (bool, error) {
		if n := attempts(b); n < float64(len(second)) {
			return false, fmt.Errorf("the new leader made %v attempts, want at least %d", n, len(second))
		}
		return true, nil
	})

	// every pod was bound exactly once: one Scheduled event each
	events, err := srv.Client.EventsV1().Events("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scheduled := map[string]int{}
	for _, e := range events.Items {
		if e.Reason == "Scheduled" {
			scheduled[e.Regarding.Name]++
			if e.Series != nil {
				scheduled[e.Regarding.Name] += int(e.Series.Count) - 1
			}
		}
	}
	for _, name := range append(first, second...) {
		if scheduled[name] != 1 {
			t.Errorf("pod %s has %d Scheduled events, want 1", name, scheduled[name])
		}
	}
	if counterValue(a.metrics.bindErrors)+counterValue(b.metrics.bindErrors) != 0 {
		t.Errorf("bindings failed: %v by a, %v by b", counterValue(a.metrics.bindErrors), counterValue(b.metrics.bindErrors))
	}
}

func TestHealthzAndMetricsAreServed(t *testing.T) {
	srv := apiservertest.Start(t)
	createNode(t, srv.Client, nodeSpec{name: "node1"})
	l := listen(t)
	startScheduler(t, srv, Options{HealthzListener: l, Profiling: true})
	createPod(t, srv.Client, podSpec{name: "x"})
	waitBound(t, srv.Client, "default", "x")
	base := "http://" + l.Addr().String()
	for _, path := range []string{"/healthz", "/livez", "/readyz"} {
		if body := httpGet(t, base+path); body != "ok" {
			t.Errorf("%s = %q, want ok", path, body)
		}
	}
	if body := httpGet(t, base+"/debug/pprof/goroutine?debug=1"); !strings.Contains(body, "scheduler.(*Scheduler)") {
		t.Errorf("/debug/pprof/goroutine with Profiling shows no scheduler goroutine:\n%.500s", body)
	}
	wants := []string{
		`scheduler_schedule_attempts_total{profile="default-scheduler",result="scheduled"} 1`,
		`scheduler_pending_pods{queue="active"} 0`,
		`scheduler_pending_pods{queue="unschedulable"} 0`,
		`scheduler_pod_scheduling_sli_duration_seconds_count{attempts="1"} 1`,
		`scheduler_scheduling_attempt_duration_seconds_count{profile="default-scheduler",result="scheduled"} 1`,
	}
	// the binding's answer reaches the scheduler a moment after the pod shows bound
	pollFor(t, "the attempt in /metrics", func() (bool, error) {
		metrics := httpGet(t, base+"/metrics")
		for _, want := range wants {
			if !strings.Contains(metrics, want) {
				return false, fmt.Errorf("/metrics lacks %s", want)
			}
		}
		return true, nil
	})
}
