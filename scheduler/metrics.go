package scheduler

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Attempt results, as upstream's scheduler_schedule_attempts_total labels them.
const (
	resultScheduled     = "scheduled"
	resultUnschedulable = "unschedulable"
	resultError         = "error"
)

// schedulerMetrics are the scheduler's Prometheus metrics, named as upstream's. They live in
// their own registry: `skiff up` runs the API server's metrics in the same process.
type schedulerMetrics struct {
	registry *prometheus.Registry
	profile  string

	attempts           *prometheus.CounterVec
	attemptDuration    *prometheus.HistogramVec
	podSchedulingSLI   *prometheus.HistogramVec
	bindErrors         prometheus.Counter
	preemptionAttempts prometheus.Counter
	preemptionVictims  prometheus.Histogram
}

func newSchedulerMetrics(profile string, queue *schedulingQueue) *schedulerMetrics {
	m := &schedulerMetrics{
		registry: prometheus.NewRegistry(),
		profile:  profile,
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scheduler_schedule_attempts_total",
			Help: "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
		}, []string{"result", "profile"}),
		attemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scheduler_scheduling_attempt_duration_seconds",
			Help:    "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"result", "profile"}),
		podSchedulingSLI: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scheduler_pod_scheduling_sli_duration_seconds",
			Help:    "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue until it is bound, which may span several attempts.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 20),
		}, []string{"attempts"}),
		bindErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scheduler_binding_errors_total",
			Help: "Number of bindings the API server refused or that failed on the way.",
		}),
		preemptionAttempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scheduler_preemption_attempts_total",
			Help: "Total preemption attempts in the cluster till now",
		}),
		preemptionVictims: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scheduler_preemption_victims",
			Help:    "Number of selected preemption victims",
			Buckets: prometheus.LinearBuckets(5, 5, 10),
		}),
	}
	m.registry.MustRegister(m.attempts, m.attemptDuration, m.podSchedulingSLI, m.bindErrors,
		m.preemptionAttempts, m.preemptionVictims, &pendingPodsCollector{queue: queue},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *schedulerMetrics) observeAttempt(result string, d time.Duration) {
	m.attempts.WithLabelValues(result, m.profile).Inc()
	m.attemptDuration.WithLabelValues(result, m.profile).Observe(d.Seconds())
}

// observeScheduled records the end-to-end latency of a pod bound now.
func (m *schedulerMetrics) observeScheduled(qp *queuedPod, now time.Time) {
	attempts := qp.attempts
	label := strconv.Itoa(attempts)
	if attempts >= 15 {
		label = "15+"
	}
	m.podSchedulingSLI.WithLabelValues(label).Observe(now.Sub(qp.initialTimestamp).Seconds())
}

// pendingPodsCollector reports scheduler_pending_pods from the queue at each scrape.
type pendingPodsCollector struct {
	queue *schedulingQueue
}

var pendingPodsDesc = prometheus.NewDesc("scheduler_pending_pods",
	"Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the scheduler never attempted to schedule because they are gated.",
	[]string{"queue"}, nil)

func (c *pendingPodsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- pendingPodsDesc }

func (c *pendingPodsCollector) Collect(ch chan<- prometheus.Metric) {
	active, backoff, unschedulable, gated := c.queue.lengths()
	for _, q := range []struct {
		name string
		n    int
	}{{"active", active}, {"backoff", backoff}, {"unschedulable", unschedulable}, {"gated", gated}} {
		ch <- prometheus.MustNewConstMetric(pendingPodsDesc, prometheus.GaugeValue, float64(q.n), q.name)
	}
}
