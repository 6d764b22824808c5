package apiserver

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/registry/storage"
)

// The API server's metrics, named as upstream's so that dashboards carry over.
var (
	metricsRegistry = prometheus.NewRegistry()

	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_request_total",
		Help: "Counter of apiserver requests broken out for each verb, group, version, resource, subresource and HTTP response code.",
	}, []string{"verb", "group", "version", "resource", "subresource", "code"})

	requestLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apiserver_request_duration_seconds",
		Help:    "Response latency distribution in seconds for each verb, group, version, resource and subresource.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60},
	}, []string{"verb", "group", "version", "resource", "subresource"})

	watchesOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiserver_registered_watchers",
		Help: "Number of currently open watches for a given resource.",
	}, []string{"group", "resource"})

	etcdLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "etcd_request_duration_seconds",
		Help:    "Etcd request latency in seconds for each operation and key prefix.",
		Buckets: []float64{0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60},
	}, []string{"operation", "type"})

	metricsHandler = promhttp.HandlerFor(metricsRegistry, promhttp.HandlerOpts{})
)

func init() {
	metricsRegistry.MustRegister(requestsTotal, requestLatency, watchesOpen, etcdLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// instrumentedStorage measures every etcd request the registry makes.
type instrumentedStorage struct {
	inner storage.Interface
}

var _ storage.Interface = &instrumentedStorage{}

func observe(op, key string, start time.Time) {
	etcdLatency.WithLabelValues(op, keyType(key)).Observe(time.Since(start).Seconds())
}

// keyType is the resource segment of a key ("/registry/pods/ns/x" → "pods").
func keyType(key string) string {
	const p = "/registry/"
	if len(key) <= len(p) {
		return key
	}
	rest := key[len(p):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			return rest[:i]
		}
	}
	return rest
}

func (s *instrumentedStorage) Create(ctx context.Context, key string, obj, out runtime.Object) error {
	defer observe("create", key, time.Now())
	return s.inner.Create(ctx, key, obj, out)
}

func (s *instrumentedStorage) Get(ctx context.Context, key string, opts storage.GetOptions, out runtime.Object) error {
	defer observe("get", key, time.Now())
	return s.inner.Get(ctx, key, opts, out)
}

func (s *instrumentedStorage) GetList(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object) error {
	defer observe("list", key, time.Now())
	return s.inner.GetList(ctx, key, opts, listObj)
}

func (s *instrumentedStorage) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool,
	preconditions *storage.Preconditions, tryUpdate storage.UpdateFunc, cachedExisting runtime.Object) error {
	defer observe("update", key, time.Now())
	return s.inner.GuaranteedUpdate(ctx, key, out, ignoreNotFound, preconditions, tryUpdate, cachedExisting)
}

func (s *instrumentedStorage) Delete(ctx context.Context, key string, out runtime.Object, preconditions *storage.Preconditions,
	validateDeletion storage.ValidateDeleteFunc, cachedExisting runtime.Object) error {
	defer observe("delete", key, time.Now())
	return s.inner.Delete(ctx, key, out, preconditions, validateDeletion, cachedExisting)
}

func (s *instrumentedStorage) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	return s.inner.Watch(ctx, key, opts)
}

func (s *instrumentedStorage) CurrentRevision(ctx context.Context) (int64, error) {
	defer observe("get", "/registry/revision", time.Now())
	return s.inner.CurrentRevision(ctx)
}
