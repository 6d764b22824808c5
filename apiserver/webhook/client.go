package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// ResolveService finds where a Service reference is served: a host:port to dial (a ready
// endpoint of the Service's port), or an error saying why there is none.
type ResolveService func(ctx context.Context, namespace, name string, port int32) (string, error)

// Clients calls webhooks over TLS, trusting each webhook's caBundle (or the system roots
// when it has none), at its url or at its Service resolved at each new connection. Clients
// are kept per distinct configuration, so that connections are reused between calls.
type Clients struct {
	Resolve ResolveService

	mu      sync.Mutex
	clients map[string]*rest.RESTClient
}

// codecs only set the REST clients' content type: bodies are encoded and decoded here.
var codecs = serializer.NewCodecFactory(runtime.NewScheme())

// ErrCallingWebhook is a call that did not get an answer from the webhook: what
// failurePolicy decides about, in upstream's words.
type ErrCallingWebhook struct {
	WebhookName string
	Reason      error
}

func (e *ErrCallingWebhook) Error() string {
	if e.Reason != nil {
		return fmt.Sprintf("failed calling webhook %q: %v", e.WebhookName, e.Reason)
	}
	return fmt.Sprintf("failed calling webhook %q; no further details available", e.WebhookName)
}

func (e *ErrCallingWebhook) Unwrap() error { return e.Reason }

// client returns the REST client of a webhook's clientConfig.
func (c *Clients) client(cc admissionregistrationv1.WebhookClientConfig) (*rest.RESTClient, error) {
	cfg := &rest.Config{
		TLSClientConfig: rest.TLSClientConfig{CAData: cc.CABundle},
		ContentConfig:   rest.ContentConfig{NegotiatedSerializer: codecs.WithoutConversion(), ContentType: "application/json"},
		QPS:             -1, // a webhook call is never rate limited on our side
	}
	switch {
	case cc.URL != nil:
		u, err := url.Parse(*cc.URL)
		if err != nil {
			return nil, fmt.Errorf("invalid url %q: %v", *cc.URL, err)
		}
		cfg.Host, cfg.APIPath = u.Scheme+"://"+u.Host, u.Path
	case cc.Service != nil:
		port := int32(443)
		if cc.Service.Port != nil {
			port = *cc.Service.Port
		}
		svc := *cc.Service
		serverName := svc.Name + "." + svc.Namespace + ".svc"
		cfg.Host = "https://" + net.JoinHostPort(serverName, strconv.Itoa(int(port)))
		if svc.Path != nil {
			cfg.APIPath = *svc.Path
		}
		cfg.TLSClientConfig.ServerName = serverName
		resolve := c.Resolve
		cfg.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			if resolve == nil {
				return nil, fmt.Errorf("services cannot be resolved")
			}
			addr, err := resolve(ctx, svc.Namespace, svc.Name, port)
			if err != nil {
				return nil, err
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	default:
		return nil, fmt.Errorf("neither service nor url is set")
	}
	sum := sha256.Sum256(cc.CABundle)
	key := fmt.Sprintf("%x|%s|%s|%s", sum, cfg.Host, cfg.APIPath, cfg.TLSClientConfig.ServerName)
	c.mu.Lock()
	defer c.mu.Unlock()
	if rc, ok := c.clients[key]; ok {
		return rc, nil
	}
	rc, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		return nil, err
	}
	if c.clients == nil {
		c.clients = map[string]*rest.RESTClient{}
	}
	c.clients[key] = rc
	return rc, nil
}

// Call posts body to the webhook and returns the body of its answer. The call takes at most
// timeout; errors that mean no answer is an *ErrCallingWebhook.
func (c *Clients) Call(ctx context.Context, name string, cc admissionregistrationv1.WebhookClientConfig, timeout time.Duration, body []byte) ([]byte, int, error) {
	rc, err := c.client(cc)
	if err != nil {
		return nil, 0, &ErrCallingWebhook{WebhookName: name, Reason: fmt.Errorf("could not get REST client: %w", err)}
	}
	out, code, err := post(ctx, rc, timeout, body)
	if err != nil {
		return nil, code, &ErrCallingWebhook{WebhookName: name, Reason: fmt.Errorf("failed to call webhook: %w", err)}
	}
	return out, code, nil
}

// post sends body and returns the answer's body and HTTP code; the error is the REST
// client's, in its words.
func post(ctx context.Context, rc *rest.RESTClient, timeout time.Duration, body []byte) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var code int
	out, err := rc.Post().Timeout(timeout).SetHeader("Content-Type", "application/json").Body(body).Do(ctx).StatusCode(&code).Raw()
	return out, code, err
}

// callAdmission sends one AdmissionReview and returns the webhook's response, checked.
func (c *Clients) callAdmission(ctx context.Context, h *hook, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, int, error) {
	review := admissionv1.AdmissionReview{Request: req}
	review.APIVersion, review.Kind = "admission.k8s.io/"+h.reviewVersion, "AdmissionReview"
	// v1beta1's AdmissionReview has v1's fields and JSON names: only apiVersion differs
	body, err := json.Marshal(&review)
	if err != nil {
		return nil, 0, &ErrCallingWebhook{WebhookName: h.name, Reason: fmt.Errorf("could not create admission objects: %w", err)}
	}
	out, code, err := c.Call(ctx, h.name, h.clientConfig, time.Duration(h.timeout)*time.Second, body)
	if err != nil {
		return nil, code, err
	}
	var got admissionv1.AdmissionReview
	if err := json.Unmarshal(out, &got); err != nil {
		return nil, code, &ErrCallingWebhook{WebhookName: h.name, Reason: fmt.Errorf("received invalid webhook response: %w", err)}
	}
	invalid := func(format string, args ...any) error {
		return &ErrCallingWebhook{WebhookName: h.name, Reason: fmt.Errorf("received invalid webhook response: "+format, args...)}
	}
	if h.reviewVersion == "v1" && (got.APIVersion != "admission.k8s.io/v1" || got.Kind != "AdmissionReview") {
		return nil, code, invalid("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got %s, Kind=%s", got.APIVersion, got.Kind)
	}
	if got.Response == nil {
		return nil, code, invalid("webhook response was absent")
	}
	if h.reviewVersion == "v1" && got.Response.UID != req.UID {
		return nil, code, invalid("expected response.uid=%q, got %q", req.UID, got.Response.UID)
	}
	return got.Response, code, nil
}

// The webhooks' metrics, named as upstream's.
var (
	admissionDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apiserver_admission_webhook_admission_duration_seconds",
		Help:    "Admission webhook latency histogram in seconds, identified by name and broken out for each operation and API resource and type (validate or admit).",
		Buckets: []float64{0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10, 25},
	}, []string{"name", "type", "operation", "rejected"})
	requestTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_admission_webhook_request_total",
		Help: "Admission webhook request total, identified by name and broken out for each admission type (validating or mutating) and operation. Additional labels specify whether the request was rejected or not and an HTTP status code. Codes greater than 600 are truncated to 600, to keep the metrics cardinality bounded.",
	}, []string{"name", "type", "operation", "code", "rejected"})
	rejectionCount = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_admission_webhook_rejection_count",
		Help: "Admission webhook rejection count, identified by name and broken out for each admission type (validating or admit) and operation. Additional labels specify an error type (calling_webhook_error or apiserver_internal_error if an error occurred; no_error otherwise) and optionally a non-zero rejection code if the webhook rejects the request with an HTTP status code (honored by the apiserver when the code is greater or equal to 400). Codes greater than 600 are truncated to 600, to keep the metrics cardinality bounded.",
	}, []string{"name", "type", "operation", "error_type", "rejection_code"})
	failOpenCount = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_admission_webhook_fail_open_count",
		Help: "Admission webhook fail open count, identified by name and broken out for each admission type (validating or admit).",
	}, []string{"name", "type"})
)

// Collectors are the webhooks' metrics, for the server's /metrics.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{admissionDuration, requestTotal, rejectionCount, failOpenCount}
}

// observe records one call: its latency, its HTTP code and whether it refused the request.
func observe(h *hook, kind string, op admissionv1.Operation, start time.Time, code int, err error) {
	rejected := err != nil
	admissionDuration.WithLabelValues(h.name, kind, string(op), strconv.FormatBool(rejected)).Observe(time.Since(start).Seconds())
	if code > 600 {
		code = 600
	}
	requestTotal.WithLabelValues(h.name, kind, string(op), strconv.Itoa(code), strconv.FormatBool(rejected)).Inc()
	if !rejected {
		return
	}
	errType, rejectionCode := "no_error", 0
	var se apierrors.APIStatus
	switch e := err.(type) {
	case *ErrCallingWebhook:
		errType = "calling_webhook_error"
	case apierrors.APIStatus:
		se = e
		rejectionCode = int(se.Status().Code)
	default:
		errType = "apiserver_internal_error"
	}
	if rejectionCode > 600 {
		rejectionCode = 600
	}
	rejectionCount.WithLabelValues(h.name, kind, string(op), errType, strconv.Itoa(rejectionCode)).Inc()
}
