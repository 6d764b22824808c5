package flowcontrol

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The metrics named as upstream's apiserver_flowcontrol_* so that dashboards carry over.
var (
	inqueueRequests = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiserver_flowcontrol_current_inqueue_requests",
		Help: "Number of requests currently pending in queues of the API Priority and Fairness subsystem",
	}, []string{"priority_level", "flow_schema"})
	executingSeats = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiserver_flowcontrol_current_executing_seats",
		Help: "Concurrency (number of seats) occupied by the currently executing (initial stage for a WATCH, any stage otherwise) requests in the API Priority and Fairness subsystem",
	}, []string{"priority_level", "flow_schema"})
	rejectedRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_flowcontrol_rejected_requests_total",
		Help: "Number of requests rejected by API Priority and Fairness subsystem",
	}, []string{"priority_level", "flow_schema", "reason"})
	dispatchedRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_flowcontrol_dispatched_requests_total",
		Help: "Number of requests executed by API Priority and Fairness subsystem",
	}, []string{"priority_level", "flow_schema"})
	requestWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apiserver_flowcontrol_request_wait_duration_seconds",
		Help:    "Length of time a request spent waiting in its queue",
		Buckets: []float64{0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30},
	}, []string{"priority_level", "flow_schema", "execute"})
	nominalLimitSeats = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiserver_flowcontrol_nominal_limit_seats",
		Help: "Nominal number of execution seats configured for each priority level",
	}, []string{"priority_level"})
	lowerLimitSeats = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiserver_flowcontrol_lower_limit_seats",
		Help: "Configured lower bound on number of execution seats available to each priority level",
	}, []string{"priority_level"})
	upperLimitSeats = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiserver_flowcontrol_upper_limit_seats",
		Help: "Configured upper bound on number of execution seats available to each priority level",
	}, []string{"priority_level"})
	currentLimitSeats = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiserver_flowcontrol_current_limit_seats",
		Help: "current derived number of execution seats available to each priority level",
	}, []string{"priority_level"})
)

// Collectors are the metrics to register with the server's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{inqueueRequests, executingSeats, rejectedRequests, dispatchedRequests, requestWait,
		nominalLimitSeats, lowerLimitSeats, upperLimitSeats, currentLimitSeats}
}

type recorder struct{}

var metrics recorder

func (recorder) inqueue(level, schema string, delta int) {
	inqueueRequests.WithLabelValues(level, schema).Add(float64(delta))
}

func (recorder) executing(level, schema string, delta int) {
	executingSeats.WithLabelValues(level, schema).Add(float64(delta))
}

func (recorder) dispatched(level, schema string, waited time.Duration) {
	dispatchedRequests.WithLabelValues(level, schema).Inc()
	requestWait.WithLabelValues(level, schema, "true").Observe(waited.Seconds())
}

func (recorder) rejected(level, schema, reason string) {
	rejectedRequests.WithLabelValues(level, schema, reason).Inc()
	requestWait.WithLabelValues(level, schema, "false").Observe(0)
}

func (recorder) nominal(level string, nominal, lower, upper int) {
	nominalLimitSeats.WithLabelValues(level).Set(float64(nominal))
	lowerLimitSeats.WithLabelValues(level).Set(float64(lower))
	upperLimitSeats.WithLabelValues(level).Set(float64(upper))
}

func (recorder) limit(level string, seats int) {
	currentLimitSeats.WithLabelValues(level).Set(float64(seats))
}
