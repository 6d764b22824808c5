package encryption

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Upstream's transformation metrics, by the same names and labels, so that its alerts on
// failed decryption carry over. The API server registers Collectors in its registry.
var (
	transformationOperations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_storage_transformation_operations_total",
		Help: "Total number of transformations. Successful transformation will have a status 'OK' and a varied status string when the transformation fails.",
	}, []string{"resource", "transformation_type", "transformer_prefix", "status"})

	transformationLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apiserver_storage_transformation_duration_seconds",
		Help:    "Latencies in seconds of value transformation operations.",
		Buckets: prometheus.ExponentialBuckets(5e-6, 2, 25),
	}, []string{"transformation_type", "transformer_prefix"})
)

// Collectors are the package's metrics.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{transformationOperations, transformationLatency}
}

func recordTransformation(resource, op, prefix string, start time.Time, err error) {
	status := "OK"
	if err != nil {
		// upstream reports a gRPC code; a local cipher's failure is Unknown there too
		status = "Unknown"
	}
	transformationOperations.WithLabelValues(resource, op, prefix, status).Inc()
	transformationLatency.WithLabelValues(op, prefix).Observe(time.Since(start).Seconds())
}
