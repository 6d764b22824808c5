package controllers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

// Metrics is the controllers' half of /metrics: upstream's workqueue series (depth, adds,
// queueing and work latency, retries, unfinished work) per queue name, and the latency of each
// controller's syncs by result. One Metrics serves every controller of a process; a nil
// *Metrics records nothing.
type Metrics struct {
	// Registry holds every series; the controller manager serves it on /metrics.
	Registry *prometheus.Registry

	depth                   *prometheus.GaugeVec
	adds                    *prometheus.CounterVec
	queueLatency            *prometheus.HistogramVec
	workDuration            *prometheus.HistogramVec
	unfinishedWork          *prometheus.GaugeVec
	longestRunningProcessor *prometheus.GaugeVec
	retries                 *prometheus.CounterVec
	syncDuration            *prometheus.HistogramVec
}

var _ workqueue.MetricsProvider = &Metrics{}

// NewMetrics makes the series and registers them in a new registry.
func NewMetrics() *Metrics {
	const ns = "workqueue"
	buckets := prometheus.ExponentialBuckets(10e-9, 10, 12) // 10ns .. 1000s, as upstream
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Subsystem: ns, Name: "depth", Help: "Current depth of workqueue",
		}, []string{"name"}),
		adds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Subsystem: ns, Name: "adds_total", Help: "Total number of adds handled by workqueue",
		}, []string{"name"}),
		queueLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Subsystem: ns, Name: "queue_duration_seconds",
			Help:    "How long in seconds an item stays in workqueue before being requested.",
			Buckets: buckets,
		}, []string{"name"}),
		workDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Subsystem: ns, Name: "work_duration_seconds",
			Help:    "How long in seconds processing an item from workqueue takes.",
			Buckets: buckets,
		}, []string{"name"}),
		unfinishedWork: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Subsystem: ns, Name: "unfinished_work_seconds",
			Help: "How many seconds of work has done that is in progress and hasn't been observed by work_duration. " +
				"Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.",
		}, []string{"name"}),
		longestRunningProcessor: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Subsystem: ns, Name: "longest_running_processor_seconds",
			Help: "How many seconds has the longest running processor for workqueue been running.",
		}, []string{"name"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Subsystem: ns, Name: "retries_total", Help: "Total number of retries handled by workqueue",
		}, []string{"name"}),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Subsystem: "controller", Name: "sync_duration_seconds",
			Help:    "How long in seconds one sync of one key takes, by controller and result (success, error, requeue).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18), // 0.5ms .. ~65s
		}, []string{"controller", "result"}),
	}
	m.Registry.MustRegister(m.depth, m.adds, m.queueLatency, m.workDuration, m.unfinishedWork,
		m.longestRunningProcessor, m.retries, m.syncDuration)
	return m
}

func (m *Metrics) NewDepthMetric(name string) workqueue.GaugeMetric {
	return m.depth.WithLabelValues(name)
}

func (m *Metrics) NewAddsMetric(name string) workqueue.CounterMetric {
	return m.adds.WithLabelValues(name)
}

func (m *Metrics) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return m.queueLatency.WithLabelValues(name)
}

func (m *Metrics) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return m.workDuration.WithLabelValues(name)
}

func (m *Metrics) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return m.unfinishedWork.WithLabelValues(name)
}

func (m *Metrics) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return m.longestRunningProcessor.WithLabelValues(name)
}

func (m *Metrics) NewRetriesMetric(name string) workqueue.CounterMetric {
	return m.retries.WithLabelValues(name)
}

// observeSync records how long one sync of a controller took and how it ended.
func (m *Metrics) observeSync(controller, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.syncDuration.WithLabelValues(controller, result).Observe(d.Seconds())
}
