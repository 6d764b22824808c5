package apiserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
	"github.com/skiff-dev/skiff/internal/profiling"
)

// buildHandlerChain wraps routing in the stages every request passes, outermost first:
// panic recovery, metrics and the request log, request parsing, authentication, reading a
// write's body, audit, impersonation, authorization, the in-flight limit and the request timeout.
func (s *Server) buildHandlerChain() http.Handler {
	var h http.Handler = http.HandlerFunc(s.route)
	h = s.withTimeout(h)
	h = s.withPriorityAndFairness(h)
	h = s.withAuthorization(h)
	h = s.withImpersonation(h)
	h = s.withAudit(h)
	h = s.withRequestBodyRead(h)
	h = s.withAuthentication(h)
	h = withRequestInfoParsed(h)
	h = s.withMetricsAndLog(h)
	h = withPanicRecovery(h)
	return h
}

func withPanicRecovery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				slog.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				writeError(w, r, apierrors.NewInternalError(fmt.Errorf("%v", v)))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func withRequestInfoParsed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := parseRequestInfo(r)
		next.ServeHTTP(w, r.WithContext(withRequestInfo(r.Context(), ri)))
	})
}

// publicPaths are the only paths a request without credentials may reach; there it is
// system:anonymous, whom the default policy's system:public-info-viewer allows them. The
// cluster-info ConfigMap is how a joining node finds the cluster's CA before it trusts it
// (kubeadm's token discovery); RBAC still decides, and only a Role the installer makes
// (kubeadm:bootstrap-signer-clusterinfo) lets system:anonymous read it.
var publicPaths = map[string]bool{"/healthz": true, "/livez": true, "/readyz": true, "/version": true,
	"/api/v1/namespaces/kube-public/configmaps/cluster-info": true}

func (s *Server) withAuthentication(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok, err := s.authn.Authenticate(r)
		if err != nil || !ok {
			if !publicPaths[r.URL.Path] {
				if err != nil {
					slog.Debug("authentication failed", "path", r.URL.Path, "err", err)
				}
				writeError(w, r, apierrors.NewUnauthorized("Unauthorized"))
				return
			}
			user = authn.AnonymousUser()
		}
		// credentials are not passed on to anything behind the server
		r.Header.Del("Authorization")
		ctx := authn.WithUser(r.Context(), user)
		if rec, ok := w.(*recordingWriter); ok {
			rec.user = user.Name
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// withAuthorization asks the chain of authorization modes about every request, as upstream's
// filter: Allow serves it (even when a mode also reported an error), an error without Allow is
// a 500, anything else upstream's 403.
func (s *Server) withAuthorization(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := requestInfoFrom(r.Context())
		user, _ := authn.UserFrom(r.Context())
		decision, reason, err := s.authz.chain.Authorize(r.Context(), authorizationAttributes(user, ri, r.URL.Query().Get))
		if ev := auditEventFrom(r.Context()); ev != nil {
			ev.Annotations = map[string]string{"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": reason}
			if decision == authz.DecisionAllow {
				ev.Annotations["authorization.k8s.io/decision"] = "allow"
			}
		}
		if decision == authz.DecisionAllow {
			next.ServeHTTP(w, r)
			return
		}
		if err != nil {
			writeError(w, r, apierrors.NewInternalError(err))
			return
		}
		writeError(w, r, forbidden(user, ri, reason))
	})
}

// forbidden words a denied request the way upstream does:
// `pods is forbidden: User "x" cannot list resource "pods" in API group "" in the namespace "y"`.
func forbidden(user *authn.User, ri *requestInfo, reason string) error {
	var msg string
	if ri.IsResourceRequest {
		resource := ri.Resource
		if ri.Subresource != "" {
			resource += "/" + ri.Subresource
		}
		msg = fmt.Sprintf("User %q cannot %s resource %q in API group %q", user.Name, ri.Verb, resource, ri.APIGroup)
		if ri.Namespace != "" {
			msg += fmt.Sprintf(" in the namespace %q", ri.Namespace)
		} else {
			msg += " at the cluster scope"
		}
	} else {
		msg = fmt.Sprintf("User %q cannot %s path %q", user.Name, ri.Verb, ri.Path)
	}
	if reason != "" {
		msg += ": " + reason
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: ri.APIGroup, Resource: ri.Resource}, ri.Name, errors.New(msg))
}

// withTimeout ends non-streaming requests after the request timeout with upstream's 504,
// whatever the handler is doing; what the handler writes afterwards is discarded.
func (s *Server) withTimeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := requestInfoFrom(r.Context())
		if isLongRunning(ri) {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout(r))
		defer cancel()
		tw := &timeoutWriter{w: w, header: http.Header{}, deadline: ctx}
		done := make(chan struct{})
		panicked := make(chan any, 1)
		handlerPool.run(func() {
			defer close(done)
			defer func() {
				if v := recover(); v != nil {
					panicked <- v
				}
			}()
			next.ServeHTTP(tw, r.WithContext(ctx))
		})
		select {
		case <-done:
			select {
			case v := <-panicked:
				panic(v)
			default:
			}
			// a handler that answered only after the deadline timed out all the same
			if ctx.Err() == context.DeadlineExceeded && tw.timeOut() {
				writeError(w, r, apierrors.NewTimeoutError("request did not complete within requested timeout - context deadline exceeded", 0))
			}
		case <-ctx.Done():
			if tw.timeOut() {
				writeError(w, r, apierrors.NewTimeoutError("request did not complete within requested timeout - context deadline exceeded", 0))
			}
			return
		}
	})
}

// timeoutWriter passes writes through until the request times out, then drops them. A
// write begun after the deadline passed is dropped too, whichever of the handler and the
// timeout filter gets there first.
type timeoutWriter struct {
	mu       sync.Mutex
	w        http.ResponseWriter
	header   http.Header
	deadline context.Context
	wrote    bool
	timedOut bool
}

func (t *timeoutWriter) Header() http.Header { return t.header }

func (t *timeoutWriter) WriteHeader(code int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deadline.Err() == context.DeadlineExceeded {
		t.timedOut = true
	}
	if t.timedOut || t.wrote {
		return
	}
	t.wrote = true
	for k, v := range t.header {
		t.w.Header()[k] = v
	}
	t.w.WriteHeader(code)
}

func (t *timeoutWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	if !t.wrote && !t.timedOut {
		t.mu.Unlock()
		t.WriteHeader(http.StatusOK)
		t.mu.Lock()
	}
	defer t.mu.Unlock()
	if t.timedOut {
		return 0, http.ErrHandlerTimeout
	}
	return t.w.Write(b)
}

func (t *timeoutWriter) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f, ok := t.w.(http.Flusher); ok && !t.timedOut {
		f.Flush()
	}
}

// timeOut marks the request as timed out and reports whether the 504 may still be written
// (nothing was written yet).
func (t *timeoutWriter) timeOut() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.timedOut = true
	return !t.wrote
}

// recordingWriter remembers the status code and size of a response for metrics and logs.
type recordingWriter struct {
	http.ResponseWriter
	code  int
	bytes int
	user  string
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (r *recordingWriter) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recordingWriter) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recordingWriter) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

func (r *recordingWriter) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recordingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := r.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

func (s *Server) withMetricsAndLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recordingWriter{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		elapsed := time.Since(start)
		ri := parseRequestInfo(r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		code := strconv.Itoa(rec.code)
		resource, sub := ri.Resource, ri.Subresource
		if !ri.IsResourceRequest {
			resource = ""
		}
		requestsTotal.WithLabelValues(ri.Verb, ri.APIGroup, ri.APIVersion, resource, sub, code).Inc()
		if ri.Verb != "watch" {
			requestLatency.WithLabelValues(ri.Verb, ri.APIGroup, ri.APIVersion, resource, sub).Observe(elapsed.Seconds())
		}
		if s.cfg.Verbosity >= 2 {
			slog.Info(fmt.Sprintf("%s %s %d %s", r.Method, r.URL.RequestURI(), rec.code, elapsed.Round(time.Microsecond)),
				"verb", ri.Verb, "user", rec.user, "userAgent", r.UserAgent(), "bytes", rec.bytes)
		}
	})
}

// route sends a request to health, version, metrics, discovery or a resource handler.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	ri := requestInfoFrom(r.Context())
	switch {
	case s.health.serve(w, r):
		return
	case s.serveOpenAPI(w, r):
		return
	case s.issuerDiscovery.serve(w, r):
		return
	case r.URL.Path == "/version":
		info := apis.VersionInfo()
		writeRawJSON(w, http.StatusOK, &info)
		return
	case r.URL.Path == "/metrics":
		metricsHandler.ServeHTTP(w, r)
		return
	case strings.HasPrefix(r.URL.Path, "/debug/pprof"):
		// profiling, on by default as upstream's --profiling; authenticated users only
		profiling.Handler().ServeHTTP(w, r)
		return
	case s.aggregation.serveRemote(w, r):
		// a remote APIService's group version goes to its extension server
		return
	case !ri.IsResourceRequest:
		if s.serveDiscovery(w, r, ri) {
			return
		}
		writeError(w, r, apierrors.NewGenericServerResponse(http.StatusNotFound, "get", schema.GroupResource{}, "", "the server could not find the requested resource", 0, true))
		return
	}
	sv := s.current()
	res := sv.set.Lookup(ri.groupVersion(), ri.Resource)
	ri.resource = res
	if res != nil && res.Review {
		s.serveReview(w, r, ri, res)
		return
	}
	if res != nil && res.FromKubelets {
		s.serveResourceMetrics(w, r, ri, res)
		return
	}
	if isKubeletProxy(ri) {
		s.serveKubeletProxy(w, r, ri)
		return
	}
	if isEndpointProxy(ri) {
		s.serveEndpointProxy(w, r, ri)
		return
	}
	h := sv.handler(ri.groupVersion(), ri.Resource)
	if h == nil {
		writeError(w, r, apierrors.NewGenericServerResponse(http.StatusNotFound, ri.Verb, schema.GroupResource{}, "", "the server could not find the requested resource", 0, true))
		return
	}
	if h.res.Namespaced != (ri.Namespace != "") && (ri.Name != "" || ri.Verb == "create") {
		// a namespaced object addressed without a namespace, or a cluster object with one
		writeError(w, r, apierrors.NewGenericServerResponse(http.StatusNotFound, ri.Verb, schema.GroupResource{}, "", "the server could not find the requested resource", 0, true))
		return
	}
	if !h.res.Namespaced && ri.Namespace != "" {
		writeError(w, r, apierrors.NewGenericServerResponse(http.StatusNotFound, ri.Verb, schema.GroupResource{}, "", "the server could not find the requested resource", 0, true))
		return
	}
	h.serve(w, r, ri)
}

// handlerPool runs request handlers on long-lived goroutines. A request's handler runs apart
// from the connection's goroutine so that the timeout can answer while it is still busy; a
// fresh goroutine for each would grow its stack from scratch every time (decoding, managed
// fields and validation recurse deeply), which profiles showed costing a tenth of a write's
// CPU. Idle workers keep their grown stacks; when all are busy a plain goroutine runs it.
type workerPool struct {
	work chan func()
}

var handlerPool = newWorkerPool(64)

func newWorkerPool(workers int) *workerPool {
	p := &workerPool{work: make(chan func())}
	for i := 0; i < workers; i++ {
		go func() {
			for f := range p.work {
				f()
			}
		}()
	}
	return p
}

func (p *workerPool) run(f func()) {
	select {
	case p.work <- f:
	default:
		go f()
	}
}
