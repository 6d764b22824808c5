package ingress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// waitTime is how long Serve lets requests in flight finish when stopping.
const waitTime = 5 * time.Second

// targetKey carries the chosen endpoint from ServeHTTP to the reverse proxy's Rewrite, and
// upstreamKey the backend's endpoints to the transport, for another try.
type (
	targetKey   struct{}
	upstreamKey struct{}
)

// ServeHTTP routes one request by its Host and URL path to a ready endpoint of the backend:
// 404 when no route matches, 503 when the backend has no ready endpoint (or is a resource
// backend), 502 when the endpoint does not answer.
func (c *Controller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := c.current.Load()
	if st == nil {
		http.Error(w, "the ingress controller has not synced yet", http.StatusServiceUnavailable)
		return
	}
	route := st.table.Route(r.Host, r.URL.Path)
	if route == nil {
		c.metrics.requests.WithLabelValues("", "", "", "404").Inc()
		http.NotFound(w, r)
		return
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	defer func() {
		ns, ing := splitKey(route.Ingress)
		c.metrics.requests.WithLabelValues(ns, ing, route.Backend.Service, strconv.Itoa(rec.code)).Inc()
		c.metrics.duration.WithLabelValues(ns, ing, route.Backend.Service).Observe(time.Since(start).Seconds())
	}()
	target, ok := st.upstreams[route.Backend].pick()
	if !ok {
		why := "no ready endpoints"
		if u := st.upstreams[route.Backend]; u != nil && u.why != "" {
			why = u.why
		}
		http.Error(rec, fmt.Sprintf("503 Service Unavailable: %s: %s", route.Backend, why), http.StatusServiceUnavailable)
		return
	}
	ctx := context.WithValue(context.WithValue(r.Context(), targetKey{}, target), upstreamKey{}, st.upstreams[route.Backend])
	c.proxy.ServeHTTP(rec, r.WithContext(ctx))
}

func splitKey(key string) (namespace, name string) {
	namespace, name, _ = strings.Cut(key, "/")
	return namespace, name
}

// newReverseProxy forwards to the endpoint ServeHTTP chose, keeping the client's Host header
// (as Traefik passes it on) and adding the X-Forwarded-* headers.
func (c *Controller) newReverseProxy() http.Handler {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil // endpoints are pod IPs: never through an HTTP proxy of the environment
	transport.MaxIdleConnsPerHost = 32
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			target := pr.In.Context().Value(targetKey{}).(netip.AddrPort)
			pr.SetURL(&url.URL{Scheme: "http", Host: target.String()})
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: otherEndpointOnRefusal{transport},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			target, _ := r.Context().Value(targetKey{}).(netip.AddrPort)
			slog.Debug("ingress: endpoint did not answer", "endpoint", target, "host", r.Host, "path", r.URL.Path, "err", err)
			http.Error(w, "502 Bad Gateway: the endpoint did not answer", http.StatusBadGateway)
		},
	}
}

// otherEndpointOnRefusal tries the backend's other endpoints when one cannot be connected to:
// a pod that has just gone stays in its EndpointSlice until its kubelet says so, and its
// share of requests should not fail meanwhile. Only a request without a body is tried again
// (a body is consumed by the first try); nothing of it reached the endpoint that refused.
type otherEndpointOnRefusal struct{ next http.RoundTripper }

func (t otherEndpointOnRefusal) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	u, _ := req.Context().Value(upstreamKey{}).(*upstream)
	if u == nil || (req.Body != nil && req.Body != http.NoBody) {
		return resp, err
	}
	for tries := 1; err != nil && isDialError(err) && tries < len(u.addrs); tries++ {
		target, _ := u.pick()
		slog.Debug("ingress: endpoint refused, trying another", "endpoint", req.URL.Host, "next", target, "err", err)
		again := req.Clone(req.Context())
		again.URL.Host = target.String()
		resp, err = t.next.RoundTrip(again)
	}
	return resp, err
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// statusRecorder notes the status code written, for metrics; Unwrap lets the reverse proxy
// flush and hijack (WebSocket upgrades) through it.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	// 1xx answers are interim, but 101 is the last a WebSocket upgrade gets
	if !s.wroteHeader && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// TLSConfig picks each connection's certificate by SNI from the Ingresses' spec.tls.
func (c *Controller) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: c.certificate,
	}
}

// Serve answers HTTP on plain and HTTPS on secure (either may be nil) until ctx is done, then
// lets requests in flight finish for a few seconds. It returns the first listener's failure.
func (c *Controller) Serve(ctx context.Context, plain, secure net.Listener) error {
	var servers []*http.Server
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for _, s := range []struct {
		l   net.Listener
		tls bool
	}{{plain, false}, {secure, true}} {
		if s.l == nil {
			continue
		}
		srv := &http.Server{Handler: c, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 3 * time.Minute,
			ErrorLog: slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug)}
		l := s.l
		if s.tls {
			srv.TLSConfig = c.TLSConfig()
			l = tls.NewListener(l, srv.TLSConfig)
		}
		servers = append(servers, srv)
		wg.Go(func() {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		})
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	for _, srv := range servers {
		if srv.Shutdown(shutdown) != nil {
			srv.Close()
		}
	}
	wg.Wait()
	return err
}

// Metrics are the ingress controller's series for /metrics.
type Metrics struct {
	// Registry holds every series.
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	routes   prometheus.Gauge
	lastSync prometheus.Gauge
}

func newMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "skiff", Subsystem: "ingress", Name: "requests_total",
			Help: "Requests answered, by Ingress (empty when no route matched), backend Service and status code.",
		}, []string{"namespace", "ingress", "service", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "skiff", Subsystem: "ingress", Name: "request_duration_seconds",
			Help:    "Time from a request's routing to the end of its answer, by Ingress and backend Service.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"namespace", "ingress", "service"}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "skiff", Subsystem: "ingress", Name: "routes",
			Help: "Host and path routes (and default backends) being served.",
		}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "skiff", Subsystem: "ingress", Name: "last_sync_timestamp_seconds",
			Help: "When the routing table was last rebuilt.",
		}),
	}
	m.Registry.MustRegister(m.requests, m.duration, m.routes, m.lastSync)
	return m
}
