// Package manager is the controller manager: it runs the enabled controllers of controllers/
// against an API server, as kube-controller-manager does, with leader election on the Lease
// kube-system/kube-controller-manager so that of several managers exactly one acts, and serves
// /healthz and /metrics. It only wires controllers together: what a controller does lives in its
// own package.
package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/internal/profiling"
)

// Options configure the controller manager; the zero value of a field means upstream's default.
type Options struct {
	// Controllers is --controllers: "*" enables every controller that is on by default, "name"
	// enables one, "-name" disables one. Empty means "*".
	Controllers []string
	// LeaderElect campaigns for the Lease before running controllers (--leader-elect).
	LeaderElect bool
	// LeaseDuration, RenewDeadline and RetryPeriod are the leader election timings
	// (15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Identity names this manager in the Lease; hostname_uuid by default.
	Identity string

	// ClusterCIDR is --cluster-cidr, the pod network nodes get subnets of (10.244.0.0/16).
	ClusterCIDR string
	// NodeCIDRMaskSize is --node-cidr-mask-size (24 for IPv4, 64 for IPv6).
	NodeCIDRMaskSize int
	// NodeMonitorGracePeriod is --node-monitor-grace-period (40s).
	NodeMonitorGracePeriod time.Duration
	// RootCA is the CA bundle published as kube-root-ca.crt (--root-ca-file's contents); without
	// it the root-ca-certificate-publisher-controller does not run.
	RootCA []byte
	// ClusterSigningCertFile and ClusterSigningKeyFile are the CA the
	// certificatesigningrequest-signing-controller issues certificates with (upstream's
	// --cluster-signing-cert-file and --cluster-signing-key-file); without them it does not run.
	ClusterSigningCertFile, ClusterSigningKeyFile string
	// ClusterSigningDuration is the longest life of an issued certificate
	// (--cluster-signing-duration, a year).
	ClusterSigningDuration time.Duration
	// TerminatedPodGCThreshold is --terminated-pod-gc-threshold (12500).
	TerminatedPodGCThreshold int

	// BindAddress and Port are where /healthz and /metrics are served (127.0.0.1:10257); a
	// negative Port serves nothing.
	BindAddress string
	Port        int
	// Profiling serves the Go runtime's profiles under /debug/pprof/ beside /metrics.
	Profiling bool
	// TolerateServingFailure keeps running without /healthz and /metrics when the port cannot
	// be bound (inside `skiff up`, where another cluster may hold it).
	TolerateServingFailure bool
	// UseServiceAccountCredentials runs each controller as its own ServiceAccount in
	// kube-system (credentials.go), as upstream's --use-service-account-credentials; otherwise
	// every controller uses the manager's credentials.
	UseServiceAccountCredentials bool
	// KubeAPIQPS and KubeAPIBurst limit the manager's requests (200, 400).
	KubeAPIQPS   float32
	KubeAPIBurst int
}

func (o *Options) setDefaults() {
	if len(o.Controllers) == 0 {
		o.Controllers = []string{"*"}
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = 10 * time.Second
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = 2 * time.Second
	}
	if o.Identity == "" {
		host, _ := os.Hostname()
		o.Identity = host + "_" + uuid.NewString()
	}
	if o.ClusterCIDR == "" {
		o.ClusterCIDR = "10.244.0.0/16"
	}
	if o.NodeMonitorGracePeriod == 0 {
		o.NodeMonitorGracePeriod = 40 * time.Second
	}
	if o.TerminatedPodGCThreshold == 0 {
		o.TerminatedPodGCThreshold = 12500
	}
	if o.BindAddress == "" {
		o.BindAddress = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = 10257
	}
	if o.KubeAPIQPS == 0 {
		o.KubeAPIQPS = 200
	}
	if o.KubeAPIBurst == 0 {
		o.KubeAPIBurst = 400
	}
}

// Validate checks the options, --controllers above all.
func (o *Options) Validate() error {
	o.setDefaults()
	_, err := enabledControllers(o.Controllers)
	return err
}

// Run runs the controller manager until ctx is done; it returns nil then, and an error if it
// could not start. With leader election, controllers run only while this manager leads; a
// manager that loses the Lease stops its controllers and campaigns again, building them anew
// (they keep no state the API cannot rebuild).
func Run(ctx context.Context, restConfig *rest.Config, o Options) error {
	o.setDefaults()
	enabled, err := enabledControllers(o.Controllers)
	if err != nil {
		return err
	}
	cfg := rest.CopyConfig(restConfig)
	cfg.QPS, cfg.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	cfg.UserAgent = "skiff-controller-manager"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	metrics := controllers.NewMetrics()
	health := &healthChecks{}
	var electionHealth *leaderelection.HealthzAdaptor
	if o.LeaderElect {
		electionHealth = leaderelection.NewLeaderHealthzAdaptor(20 * time.Second)
		health.add("leaderElection", electionHealth.Check)
	}
	stopServing, err := serve(o, metrics, health)
	if err != nil {
		return err
	}
	defer stopServing()

	runControllers := func(ctx context.Context) {
		if err := runTerm(ctx, cfg, client, o, enabled, metrics); err != nil && ctx.Err() == nil {
			slog.Error("controllers stopped", "err", err)
		}
	}
	if !o.LeaderElect {
		runControllers(ctx)
		return nil
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-controller-manager"},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: o.Identity, EventRecorder: nil},
	}
	for ctx.Err() == nil {
		// the controllers of a term must be gone before the next term can start
		termDone := make(chan struct{})
		var led atomic.Bool
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   o.LeaseDuration,
			RenewDeadline:   o.RenewDeadline,
			RetryPeriod:     o.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            "kube-controller-manager",
			WatchDog:        electionHealth,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					led.Store(true)
					defer close(termDone)
					slog.Info("became leader", "lease", "kube-system/kube-controller-manager", "identity", o.Identity)
					runControllers(ctx)
				},
				OnStoppedLeading: func() {
					slog.Info("stopped leading", "lease", "kube-system/kube-controller-manager", "identity", o.Identity)
				},
				OnNewLeader: func(identity string) {
					if identity != o.Identity {
						slog.Info("another controller manager leads", "identity", identity)
					}
				},
			},
		})
		if err != nil {
			return err
		}
		// Run returns when leadership is lost or ctx is done; the term's context is cancelled
		// then, and its controllers stop
		elector.Run(ctx)
		if led.Load() {
			<-termDone
		}
	}
	return nil
}

// runTerm builds the enabled controllers on fresh informers, runs them until ctx is done and
// waits for them to stop.
func runTerm(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, o Options, enabled []string, metrics *controllers.Metrics) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	reporting := controllers.Reporting{
		Recorder: func(component string) record.EventRecorder {
			return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
		},
		Metrics: metrics,
	}
	b, err := newBuilder(ctx, cfg, client, o, reporting)
	if err != nil {
		return err
	}
	type running struct {
		name    string
		run     func(context.Context, int)
		workers int
	}
	var started []running
	for _, name := range enabled {
		d := descriptorByName(name)
		cb := b
		if o.UseServiceAccountCredentials {
			if cb, err = b.asServiceAccount(d.serviceAccount); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		run, err := d.build(cb)
		if errors.Is(err, errSkipController) {
			slog.Info("controller not started", "controller", name, "why", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		started = append(started, running{name: name, run: run, workers: d.workers})
	}
	b.informers.Start(ctx.Done())
	var wg sync.WaitGroup
	for _, r := range started {
		wg.Go(func() { r.run(ctx, r.workers) })
	}
	slog.Info("controllers started", "controllers", len(started))
	<-ctx.Done()
	wg.Wait()
	b.informers.Shutdown()
	return nil
}

// healthChecks are the named checks of /healthz.
type healthChecks struct {
	mu     sync.Mutex
	checks []namedCheck
}

type namedCheck struct {
	name  string
	check func(*http.Request) error
}

func (h *healthChecks) add(name string, check func(*http.Request) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = append(h.checks, namedCheck{name, check})
}

// ServeHTTP answers as the Kubernetes components' health endpoints: "ok", or with ?verbose one
// line per check.
func (h *healthChecks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	checks := slices.Clone(h.checks)
	h.mu.Unlock()
	var b strings.Builder
	failed := false
	for _, c := range append([]namedCheck{{"ping", func(*http.Request) error { return nil }}}, checks...) {
		if err := c.check(r); err != nil {
			failed = true
			fmt.Fprintf(&b, "[-]%s failed: reason withheld\n", c.name)
			slog.Info("health check failed", "check", c.name, "err", err)
		} else {
			fmt.Fprintf(&b, "[+]%s ok\n", c.name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if failed {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "%shealthz check failed\n", b.String())
		return
	}
	if _, verbose := r.URL.Query()["verbose"]; verbose {
		fmt.Fprintf(w, "%shealthz check passed\n", b.String())
		return
	}
	fmt.Fprint(w, "ok")
}

// serve starts /healthz, /livez, /readyz and /metrics; the returned function stops them.
func serve(o Options, metrics *controllers.Metrics, health *healthChecks) (func(), error) {
	if o.Port < 0 {
		return func() {}, nil
	}
	addr := net.JoinHostPort(o.BindAddress, strconv.Itoa(o.Port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if o.TolerateServingFailure {
			slog.Warn("controller manager serves no /healthz and /metrics", "address", addr, "err", err)
			return func() {}, nil
		}
		return nil, fmt.Errorf("serve /healthz and /metrics: %w", err)
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(prometheus.Gatherers{registry, metrics.Registry}, promhttp.HandlerOpts{}))
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		mux.Handle(p, health)
	}
	if o.Profiling {
		mux.Handle(profiling.Prefix, profiling.Handler())
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	slog.Info("controller manager serving /healthz and /metrics", "address", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
