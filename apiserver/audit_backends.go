package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Audit backends, as upstream's: the log file (rotated as --audit-log-maxage, -maxbackup
// and -maxsize say, by lumberjack, as upstream) and the webhook (--audit-webhook-config-file,
// a kubeconfig naming where batches of events are POSTed as an audit.k8s.io/v1 EventList).
// The webhook never holds a request up: events wait in a bounded buffer for one goroutine
// that sends them, and when the buffer is full an event is dropped and counted in
// apiserver_audit_error_total{plugin="webhook"}.

// auditBackend receives each recorded stage of a request, as an event it must not change.
type auditBackend interface {
	write(ev *auditv1.Event)
	// close sends or writes what is still buffered, then releases the backend.
	close()
}

// auditBackends sends each event to every backend.
type auditBackends []auditBackend

var _ auditBackend = auditBackends{}

func (b auditBackends) write(ev *auditv1.Event) {
	auditEvents.Inc()
	for _, backend := range b {
		backend.write(ev)
	}
}

func (b auditBackends) close() {
	for _, backend := range b {
		backend.close()
	}
}

// Upstream's audit metrics.
var (
	auditEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "apiserver_audit_event_total",
		Help: "Counter of audit events generated and sent to the audit backend.",
	})
	auditErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_audit_error_total",
		Help: "Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error.",
	}, []string{"plugin"})
	auditLevels = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_audit_level_total",
		Help: "Counter of policy levels for audit events (1 per request).",
	}, []string{"level"})
)

func init() {
	metricsRegistry.MustRegister(auditEvents, auditErrors, auditLevels)
}

// AuditWebhook configures the audit webhook backend, as upstream's --audit-webhook-* flags.
type AuditWebhook struct {
	// ConfigFile is a kubeconfig: its cluster's server is the URL batches are POSTed to, its
	// user the credentials (--audit-webhook-config-file).
	ConfigFile string
	// BufferSize bounds the events waiting to be sent; beyond it events are dropped
	// (--audit-webhook-batch-buffer-size, default 10000).
	BufferSize int
	// MaxBatchSize is the most events one request carries (--audit-webhook-batch-max-size,
	// default 400).
	MaxBatchSize int
	// MaxBatchWait is the longest an event waits for its batch to fill
	// (--audit-webhook-batch-max-wait, default 30s).
	MaxBatchWait time.Duration
	// InitialBackoff is the wait before the first retry of a failed request
	// (--audit-webhook-initial-backoff, default 10s); each retry waits 1.5 times longer, and
	// a batch is dropped (and counted) after five attempts.
	InitialBackoff time.Duration
}

// auditWebhook batches events and POSTs them from one goroutine.
type auditWebhook struct {
	url    string
	client *http.Client
	cfg    AuditWebhook

	buffer chan *auditv1.Event
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	// drainCtx bounds the sends after close (set before stop is closed): a webhook that
	// does not answer cannot hold the server's shutdown for long
	drainCtx    context.Context
	drainCancel context.CancelFunc
}

// webhookDrainTimeout is how long close may spend sending what is buffered.
const webhookDrainTimeout = 10 * time.Second

// webhookAttempts is how many times a batch is sent before it is dropped.
const webhookAttempts = 5

func newAuditWebhook(cfg AuditWebhook) (*auditWebhook, error) {
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = 10000
	}
	if cfg.MaxBatchSize <= 0 {
		cfg.MaxBatchSize = 400
	}
	if cfg.MaxBatchWait <= 0 {
		cfg.MaxBatchWait = 30 * time.Second
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = 10 * time.Second
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", cfg.ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("audit webhook config file %s: %w", cfg.ConfigFile, err)
	}
	client, err := rest.HTTPClientFor(restConfig)
	if err != nil {
		return nil, fmt.Errorf("audit webhook config file %s: %w", cfg.ConfigFile, err)
	}
	client.Timeout = 30 * time.Second
	w := &auditWebhook{
		url: restConfig.Host, client: client, cfg: cfg,
		buffer: make(chan *auditv1.Event, cfg.BufferSize),
		stop:   make(chan struct{}), done: make(chan struct{}),
	}
	go w.run()
	return w, nil
}

// write queues ev, or drops it when the buffer is full: a slow webhook costs events, never
// requests.
func (w *auditWebhook) write(ev *auditv1.Event) {
	select {
	case w.buffer <- ev:
	default:
		auditErrors.WithLabelValues("webhook").Inc()
	}
}

// close stops taking new batches, sends what is buffered once, and returns when done.
func (w *auditWebhook) close() {
	w.once.Do(func() {
		w.drainCtx, w.drainCancel = context.WithTimeout(context.Background(), webhookDrainTimeout)
		close(w.stop)
	})
	<-w.done
	w.drainCancel()
}

func (w *auditWebhook) run() {
	defer close(w.done)
	for {
		batch, stopping := w.collect()
		if len(batch) > 0 {
			w.send(batch, stopping)
		}
		if stopping {
			for len(w.buffer) > 0 {
				batch, _ := w.collect()
				w.send(batch, true)
			}
			return
		}
	}
}

// collect waits for a first event, then for the batch to fill or its time to run out.
// stopping reports that close was called; what is buffered then is collected at once.
func (w *auditWebhook) collect() (batch []*auditv1.Event, stopping bool) {
	select {
	case ev := <-w.buffer:
		batch = append(batch, ev)
	case <-w.stop:
		stopping = true
	}
	var timeout <-chan time.Time
	if !stopping {
		t := time.NewTimer(w.cfg.MaxBatchWait)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < w.cfg.MaxBatchSize {
		if stopping {
			select {
			case ev := <-w.buffer:
				batch = append(batch, ev)
				continue
			default:
				return batch, true
			}
		}
		select {
		case ev := <-w.buffer:
			batch = append(batch, ev)
		case <-timeout:
			return batch, false
		case <-w.stop:
			stopping = true
		}
	}
	return batch, stopping
}

// send POSTs one batch, retrying with back-off unless the server is stopping; a batch that
// cannot be sent is counted as errors.
func (w *auditWebhook) send(batch []*auditv1.Event, stopping bool) {
	list := auditv1.EventList{Items: make([]auditv1.Event, len(batch))}
	list.APIVersion, list.Kind = auditv1.SchemeGroupVersion.String(), "EventList"
	for i, ev := range batch {
		list.Items[i] = *ev
	}
	body, err := json.Marshal(&list)
	if err != nil {
		slog.Error("audit webhook: encoding events", "err", err)
		auditErrors.WithLabelValues("webhook").Add(float64(len(batch)))
		return
	}
	backoff := w.cfg.InitialBackoff
	for attempt := 1; ; attempt++ {
		err = w.post(body, stopping)
		if err == nil {
			return
		}
		var perm permanentError
		if errors.As(err, &perm) || stopping || attempt == webhookAttempts {
			break
		}
		select {
		case <-time.After(backoff):
		case <-w.stop:
			stopping = true
		}
		backoff = backoff * 3 / 2
	}
	slog.Error("audit webhook: events dropped", "events", len(batch), "err", err)
	auditErrors.WithLabelValues("webhook").Add(float64(len(batch)))
}

// permanentError is an answer a retry would not change (a 4xx other than 429).
type permanentError struct{ error }

func (w *auditWebhook) post(body []byte, stopping bool) error {
	parent := context.Background()
	if stopping {
		parent = w.drainCtx
	}
	ctx, cancel := context.WithTimeout(parent, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return permanentError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("%s answered %d: %s", w.url, resp.StatusCode, msg)
	default:
		return permanentError{fmt.Errorf("%s answered %d: %s", w.url, resp.StatusCode, msg)}
	}
}
