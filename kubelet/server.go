package kubelet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// ServerConfig is the kubelet API's listener: upstream's port 10250 endpoints.
type ServerConfig struct {
	// Address is host:port to listen on (":10250").
	Address string
	// Certificate serves TLS; nil: a self-signed one for the node's name and IPs, as
	// upstream's kubelet makes without --tls-cert-file.
	Certificate *tls.Certificate
	// ServingCertificate, when set, is asked for the certificate of each connection (one
	// rotated by CertificateSigningRequest); nil from it means Certificate (or the
	// self-signed one) for now.
	ServingCertificate func() *tls.Certificate
	// ClientCAs, when set, verify client certificates, and every request must present one
	// they signed (401 without, refused at TLS with any other), as upstream's --client-ca-file
	// with --anonymous-auth=false; nil: requests are the anonymous user's.
	ClientCAs *x509.CertPool
	// TokenAuthenticator, when set, authenticates requests without a client certificate by
	// their bearer token (upstream's --authentication-token-webhook with
	// WebhookTokenAuthenticator); nil: bearer tokens are not accepted.
	TokenAuthenticator TokenAuthenticator
	// Authorizer decides each request (upstream's --authorization-mode=Webhook with
	// WebhookAuthorizer); nil allows every authenticated request (AlwaysAllow).
	Authorizer Authorizer
}

// Serve runs the kubelet API until ctx is done, every request authenticated and authorized as
// cfg says. ready receives the address it listens on.
func (k *Kubelet) Serve(ctx context.Context, cfg ServerConfig, ready func(addr string)) error {
	cert := cfg.Certificate
	if cert == nil {
		c, err := selfSignedCertificate(k.cfg.NodeName, k.cfg.NodeIPs)
		if err != nil {
			return err
		}
		cert = c
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	if cfg.ServingCertificate != nil {
		// crypto/tls asks GetCertificate only without Certificates (or with SNI, which a
		// client dialling an IP does not send)
		tlsConfig.Certificates = nil
		tlsConfig.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := cfg.ServingCertificate(); c != nil {
				return c, nil
			}
			return cert, nil
		}
	}
	if cfg.ClientCAs != nil {
		tlsConfig.ClientCAs = cfg.ClientCAs
		// a certificate from another CA fails the handshake; none at all is answered 401
		tlsConfig.ClientAuth = tls.VerifyClientCertIfGiven
	}
	l, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(l.Addr().String())
	}
	handler := withAuth(k.Handler(), k.cfg.NodeName, cfg.ClientCAs != nil, cfg.TokenAuthenticator, cfg.Authorizer)
	srv := &http.Server{Handler: handler, TLSConfig: tlsConfig, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	err = srv.ServeTLS(l, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Handler is the kubelet API's routes, as upstream's on port 10250: /healthz, /pods, /metrics,
// /metrics/resource, /stats/summary, /containerLogs/{namespace}/{pod}/{container}, and the streams /exec and
// /attach/{namespace}/{pod}[/{uid}]/{container} and /portForward/{namespace}/{pod}[/{uid}]
// (stream.go). It authenticates and authorizes nothing: Serve puts withAuth in front.
func (k *Kubelet) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /pods", k.servePods)
	mux.Handle("GET /metrics", k.metricsHandler())
	mux.Handle("GET /metrics/resource", k.resourceMetricsHandler())
	mux.HandleFunc("GET /stats/summary", k.serveStatsSummary)
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", k.serveContainerLogs)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		mux.HandleFunc(method+" /exec/{namespace}/{pod}/{container}", k.serveExec)
		mux.HandleFunc(method+" /exec/{namespace}/{pod}/{uid}/{container}", k.serveExec)
		mux.HandleFunc(method+" /attach/{namespace}/{pod}/{container}", k.serveAttach)
		mux.HandleFunc(method+" /attach/{namespace}/{pod}/{uid}/{container}", k.serveAttach)
		mux.HandleFunc(method+" /portForward/{namespace}/{pod}", k.servePortForward)
		mux.HandleFunc(method+" /portForward/{namespace}/{pod}/{uid}", k.servePortForward)
	}
	return mux
}

// ServingAddresses are the node name and IPs the kubelet API's serving certificate must name:
// the ones the API server dials it by.
func (k *Kubelet) ServingAddresses() (nodeName string, ips []net.IP) {
	return k.cfg.NodeName, slices.Clone(k.cfg.NodeIPs)
}

func selfSignedCertificate(name string, ips []net.IP) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name + "@" + strconv.FormatInt(now.Unix(), 10)},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{name, "localhost"},
		IPAddresses: append(append([]net.IP{}, ips...), net.IPv4(127, 0, 0, 1)),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func (k *Kubelet) servePods(w http.ResponseWriter, _ *http.Request) {
	list := &v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
	if k.podLister != nil {
		pods, _ := k.podLister.List(labels.Everything())
		for _, p := range pods {
			list.Items = append(list.Items, *p)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

// metricsHandler serves the kubelet's Prometheus metrics, computed when scraped.
func (k *Kubelet) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kubelet_running_pods", Help: "Number of pods that have a running pod sandbox",
	}, func() float64 {
		sandboxes, err := k.rt.ListPodSandbox(context.Background(), &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
		if err != nil {
			return 0
		}
		return float64(len(sandboxes))
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kubelet_running_containers", Help: "Number of containers currently running", ConstLabels: prometheus.Labels{"container_state": "running"},
	}, func() float64 {
		cs, err := k.rt.ListContainers(context.Background(), &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
		if err != nil {
			return 0
		}
		return float64(len(cs))
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kubelet_pod_workers", Help: "Number of pods with a pod worker",
	}, func() float64 { return float64(k.workers.count()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kubelet_node_name", Help: "The node's name. The count is always 1.", ConstLabels: prometheus.Labels{"node": k.cfg.NodeName},
	}, func() float64 { return 1 }))
	reg.MustRegister(volumeStatsCollector{k})
	if k.images != nil {
		reg.MustRegister(k.images.collected)
	}
	if k.eviction != nil {
		reg.MustRegister(k.eviction.evictions)
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// findContainer finds the newest container (previous: the one before it) of a pod's
// container by namespace, pod name and container name.
func (k *Kubelet) findContainer(ctx context.Context, namespace, podName, container string, previous bool) (*v1.Pod, *containerRecord, int, string) {
	if k.podLister == nil {
		return nil, nil, http.StatusServiceUnavailable, "kubelet is starting"
	}
	pod, err := k.podLister.Pods(namespace).Get(podName)
	if err != nil {
		return nil, nil, http.StatusNotFound, fmt.Sprintf("pod %q not found", namespace+"/"+podName)
	}
	if spec, _ := containerSpec(pod, container); spec == nil {
		return nil, nil, http.StatusNotFound, fmt.Sprintf("container %s is not valid for pod %s", container, podName)
	}
	rs, err := k.podRuntimeState(ctx, pod.UID)
	if err != nil {
		return nil, nil, http.StatusInternalServerError, err.Error()
	}
	c := rs.latest(container)
	if previous {
		c = rs.previous(container)
		if c == nil {
			return nil, nil, http.StatusBadRequest, fmt.Sprintf("previous terminated container %q in pod %q not found", container, podName)
		}
	}
	if c == nil {
		return nil, nil, http.StatusBadRequest, fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", container, podName)
	}
	return pod, c, 0, ""
}

// serveContainerLogs answers upstream's /containerLogs with the container's log as the runtime
// wrote it (CRI log format), honouring follow, previous, tailLines, sinceSeconds, sinceTime,
// timestamps and limitBytes.
func (k *Kubelet) serveContainerLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	boolean := func(name string) bool { v, _ := strconv.ParseBool(q.Get(name)); return v }
	_, c, code, msg := k.findContainer(r.Context(), r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container"), boolean("previous"))
	if code != 0 {
		http.Error(w, msg, code)
		return
	}
	opts := logOptions{timestamps: boolean("timestamps"), follow: boolean("follow"), tail: -1, limit: -1}
	if v := q.Get("tailLines"); v != "" {
		opts.tail, _ = strconv.Atoi(v)
	}
	if v := q.Get("limitBytes"); v != "" {
		opts.limit, _ = strconv.ParseInt(v, 10, 64)
	}
	if v := q.Get("sinceSeconds"); v != "" {
		if s, err := strconv.Atoi(v); err == nil {
			opts.since = time.Now().Add(-time.Duration(s) * time.Second)
		}
	}
	if v := q.Get("sinceTime"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			opts.since = t
		}
	}
	var fakeLog []byte
	lr, inMemory := k.rt.(runtime.LogReader)
	if inMemory {
		var err error
		if fakeLog, err = lr.ContainerLog(r.Context(), c.status.Id); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	} else if c.status.LogPath == "" {
		http.Error(w, "the container has no log", http.StatusNotFound)
		return
	}
	write := func(ctx context.Context, out io.Writer) {
		out = &limitedWriter{w: out, left: opts.limit}
		if inMemory {
			writeLogLines(out, parseFakeLog(fakeLog), opts)
			return
		}
		k.streamLogFile(ctx, out, c.status.LogPath, c.status.Id, opts)
	}
	if wsstream.IsWebSocketRequest(r) {
		// a WebSocket client (binary.k8s.io or base64.binary.k8s.io) gets the log as messages,
		// as upstream's API server serves pods/log to one
		pr, pw := io.Pipe()
		go func() {
			write(r.Context(), pw)
			pw.Close()
		}()
		_ = wsstream.NewReader(pr, true, wsstream.NewDefaultReaderProtocols()).Copy(w, r)
		pr.Close()
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	write(r.Context(), w)
}

type logOptions struct {
	timestamps, follow bool
	tail               int
	limit              int64
	since              time.Time
}

// logLine is one line of a CRI log. A partial one is a piece of a longer line, or the end of
// the output when it does not end with a newline: it is written without a newline, as upstream.
type logLine struct {
	at      time.Time
	content []byte
	partial bool
}

// limitedWriter writes at most left bytes (left < 0: no limit) and flushes as it goes.
type limitedWriter struct {
	w    io.Writer
	left int64
}

var errLimit = errors.New("limit reached")

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.left == 0 {
		return 0, errLimit
	}
	if l.left > 0 && int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.w.Write(p)
	if l.left > 0 {
		l.left -= int64(n)
	}
	if f, ok := l.w.(http.Flusher); ok {
		f.Flush()
	}
	return n, err
}

// parseCRILine reads one CRI log line: "2016-10-06T00:17:09.669794202Z stdout F content".
// A "P" line's content continues on the next one, if any.
func parseCRILine(line []byte) (logLine, bool) {
	parts := bytes.SplitN(line, []byte(" "), 4)
	if len(parts) < 3 {
		return logLine{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, string(parts[0]))
	if err != nil {
		return logLine{}, false
	}
	content := []byte{}
	if len(parts) == 4 {
		content = parts[3]
	}
	return logLine{at: at, content: content, partial: string(parts[2]) == "P"}, true
}

func parseFakeLog(b []byte) []logLine {
	var out []logLine
	for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		ts, content, _ := bytes.Cut(line, []byte(" "))
		at, _ := time.Parse(time.RFC3339Nano, string(ts))
		out = append(out, logLine{at: at, content: content})
	}
	return out
}

func writeLogLines(w io.Writer, lines []logLine, opts logOptions) {
	if !opts.since.IsZero() {
		kept := lines[:0]
		for _, l := range lines {
			if !l.at.Before(opts.since) {
				kept = append(kept, l)
			}
		}
		lines = kept
	}
	if opts.tail >= 0 && len(lines) > opts.tail {
		lines = lines[len(lines)-opts.tail:]
	}
	for _, l := range lines {
		if err := writeLogLine(w, l, opts); err != nil {
			return
		}
	}
}

func writeLogLine(w io.Writer, l logLine, opts logOptions) error {
	var b []byte
	if opts.timestamps {
		b = append(b, l.at.UTC().Format(time.RFC3339Nano)...)
		b = append(b, ' ')
	}
	b = append(b, l.content...)
	if !l.partial {
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}

// Upstream's limits on a termination message: what the container wrote to its file, or the end
// of its log.
const (
	maxTerminationMessageLength    = 4096
	maxTerminationMessageLogLength = 2048
	maxTerminationMessageLogLines  = 80
)

// lastLogString is the end of an exited container's log, its termination message under
// FallbackToLogsOnError: the last 2048 bytes of its last 80 lines.
func (k *Kubelet) lastLogString(st *runtimeapi.ContainerStatus) string {
	var buf bytes.Buffer
	opts := logOptions{tail: maxTerminationMessageLogLines, limit: -1}
	if lr, ok := k.rt.(runtime.LogReader); ok {
		b, err := lr.ContainerLog(context.Background(), st.Id)
		if err != nil {
			return fmt.Sprintf("Error on reading termination message from logs: %v", err)
		}
		writeLogLines(&buf, parseFakeLog(b), opts)
	} else if st.LogPath != "" {
		if _, err := os.Stat(st.LogPath); err != nil {
			return fmt.Sprintf("Error on reading termination message from logs: %v", err)
		}
		k.streamLogFile(context.Background(), &buf, st.LogPath, st.Id, opts)
	}
	b := buf.Bytes()
	if len(b) > maxTerminationMessageLogLength {
		b = b[len(b)-maxTerminationMessageLogLength:]
	}
	return string(b)
}

// streamLogFile writes the lines of a CRI log file, then with follow keeps writing what is
// appended while the container runs.
func (k *Kubelet) streamLogFile(ctx context.Context, w io.Writer, path, containerID string, opts logOptions) {
	f, err := os.Open(path)
	if err != nil {
		io.WriteString(w, err.Error())
		return
	}
	defer f.Close()
	reader := bufio.NewReader(f)
	var lines []logLine
	readAvailable := func(emit func(logLine) error) error {
		for {
			raw, err := reader.ReadBytes('\n')
			if err != nil {
				// an unfinished line is read again once it is whole
				if len(raw) > 0 {
					if _, serr := f.Seek(-int64(len(raw)), io.SeekCurrent); serr == nil {
						reader.Reset(f)
					}
				}
				return nil
			}
			l, ok := parseCRILine(bytes.TrimSuffix(raw, []byte("\n")))
			if !ok {
				continue
			}
			if err := emit(l); err != nil {
				return err
			}
		}
	}
	_ = readAvailable(func(l logLine) error { lines = append(lines, l); return nil })
	writeLogLines(w, lines, opts)
	if !opts.follow {
		return
	}
	emit := func(l logLine) error {
		if !opts.since.IsZero() && l.at.Before(opts.since) {
			return nil
		}
		return writeLogLine(w, l, opts)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		if err := readAvailable(emit); err != nil {
			return
		}
		st, err := k.rt.ContainerStatus(ctx, containerID)
		if err != nil || st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			_ = readAvailable(emit)
			return
		}
	}
}

// resourceMetricsHandler serves /metrics/resource as upstream's kubelet does, for
// metrics-server and `kubectl top`: the node's, each pod's and each container's cumulative CPU
// time and memory working set, with the time each was measured, and resource_scrape_error 1
// when some of them could not be read.
func (k *Kubelet) resourceMetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&resourceMetrics{k: k})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

var (
	nodeCPUUsageDesc = prometheus.NewDesc("node_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the node in core-seconds", nil, nil)
	nodeMemoryWorkingSetDesc = prometheus.NewDesc("node_memory_working_set_bytes",
		"Current working set of the node in bytes", nil, nil)
	containerCPUUsageDesc = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the container in core-seconds", []string{"container", "pod", "namespace"}, nil)
	containerMemoryWorkingSetDesc = prometheus.NewDesc("container_memory_working_set_bytes",
		"Current working set of the container in bytes", []string{"container", "pod", "namespace"}, nil)
	containerStartTimeDesc = prometheus.NewDesc("container_start_time_seconds",
		"Start time of the container since unix epoch in seconds", []string{"container", "pod", "namespace"}, nil)
	podCPUUsageDesc = prometheus.NewDesc("pod_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the pod in core-seconds", []string{"pod", "namespace"}, nil)
	podMemoryWorkingSetDesc = prometheus.NewDesc("pod_memory_working_set_bytes",
		"Current working set of the pod in bytes", []string{"pod", "namespace"}, nil)
	resourceScrapeErrorDesc = prometheus.NewDesc("resource_scrape_error",
		"1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
)

// resourceMetrics reads the runtime's statistics (CRI ListContainerStats and
// ListPodSandboxStats) and the host's each time it is scraped.
type resourceMetrics struct{ k *Kubelet }

var _ prometheus.Collector = (*resourceMetrics)(nil)

func (m *resourceMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodeCPUUsageDesc, nodeMemoryWorkingSetDesc, containerCPUUsageDesc,
		containerMemoryWorkingSetDesc, containerStartTimeDesc, podCPUUsageDesc, podMemoryWorkingSetDesc, resourceScrapeErrorDesc} {
		ch <- d
	}
}

// podMetricsKey names a pod in the metrics: namespace and name.
type podMetricsKey struct{ namespace, name string }

// podUsage is a pod's CPU time (nanoseconds) and working set, and when they were measured.
type podUsage struct {
	cpuNanos, workingSet uint64
	at                   int64
}

func (m *resourceMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	scrapeError := 0.0
	timed := func(at int64, metric prometheus.Metric) {
		ch <- prometheus.NewMetricWithTimestamp(time.Unix(0, at), metric)
	}

	if cpu, mem, err := readNodeUsage(); err != nil {
		slog.Debug("node resource usage", "err", err)
		scrapeError = 1
	} else {
		now := time.Now().UnixNano()
		timed(now, prometheus.MustNewConstMetric(nodeCPUUsageDesc, prometheus.CounterValue, cpu))
		timed(now, prometheus.MustNewConstMetric(nodeMemoryWorkingSetDesc, prometheus.GaugeValue, mem))
	}

	summed := map[podMetricsKey]*podUsage{}
	stats, err := m.k.rt.ListContainerStats(ctx, nil)
	if err != nil {
		slog.Debug("container stats", "err", err)
		scrapeError = 1
	}
	for _, s := range stats {
		labels := s.GetAttributes().GetLabels()
		name, pod := labels[runtime.LabelContainerName], podMetricsKey{labels[runtime.LabelPodNamespace], labels[runtime.LabelPodName]}
		if name == "" || pod.name == "" {
			continue // not the kubelet's
		}
		sum := summed[pod]
		if sum == nil {
			sum = &podUsage{}
			summed[pod] = sum
		}
		if cpu := s.GetCpu(); cpu.GetUsageCoreNanoSeconds() != nil {
			timed(cpu.Timestamp, prometheus.MustNewConstMetric(containerCPUUsageDesc, prometheus.CounterValue,
				float64(cpu.UsageCoreNanoSeconds.Value)/1e9, name, pod.name, pod.namespace))
			sum.cpuNanos += cpu.UsageCoreNanoSeconds.Value
			sum.at = max(sum.at, cpu.Timestamp)
		}
		if mem := s.GetMemory(); mem.GetWorkingSetBytes() != nil {
			timed(mem.Timestamp, prometheus.MustNewConstMetric(containerMemoryWorkingSetDesc, prometheus.GaugeValue,
				float64(mem.WorkingSetBytes.Value), name, pod.name, pod.namespace))
			sum.workingSet += mem.WorkingSetBytes.Value
			sum.at = max(sum.at, mem.Timestamp)
		}
		if st, err := m.k.rt.ContainerStatus(ctx, s.GetAttributes().GetId()); err == nil && st.StartedAt > 0 {
			timed(st.StartedAt, prometheus.MustNewConstMetric(containerStartTimeDesc, prometheus.GaugeValue,
				float64(st.StartedAt)/1e9, name, pod.name, pod.namespace))
		}
	}

	// A pod's own figures (sandbox overhead included) where the runtime keeps them, else the
	// sum of its containers'.
	pods := summed
	if sandboxes, err := m.k.rt.ListPodSandboxStats(ctx, nil); err == nil && len(sandboxes) > 0 {
		pods = map[podMetricsKey]*podUsage{}
		for _, s := range sandboxes {
			labels := s.GetAttributes().GetLabels()
			pod := podMetricsKey{labels[runtime.LabelPodNamespace], labels[runtime.LabelPodName]}
			linux := s.GetLinux()
			if pod.name == "" || linux.GetCpu().GetUsageCoreNanoSeconds() == nil || linux.GetMemory().GetWorkingSetBytes() == nil {
				continue
			}
			pods[pod] = &podUsage{
				cpuNanos: linux.Cpu.UsageCoreNanoSeconds.Value, workingSet: linux.Memory.WorkingSetBytes.Value,
				at: max(linux.Cpu.Timestamp, linux.Memory.Timestamp),
			}
		}
	}
	for pod, u := range pods {
		if u.at == 0 {
			continue
		}
		timed(u.at, prometheus.MustNewConstMetric(podCPUUsageDesc, prometheus.CounterValue, float64(u.cpuNanos)/1e9, pod.name, pod.namespace))
		timed(u.at, prometheus.MustNewConstMetric(podMemoryWorkingSetDesc, prometheus.GaugeValue, float64(u.workingSet), pod.name, pod.namespace))
	}
	ch <- prometheus.MustNewConstMetric(resourceScrapeErrorDesc, prometheus.GaugeValue, scrapeError)
}

// readNodeUsage is the host's cumulative CPU time in core-seconds and its memory working set
// (memory in use less inactive page cache), from the root cgroup where cgroup v1 keeps them,
// else from /proc.
func readNodeUsage() (cpuSeconds, workingSet float64, err error) {
	if b, err := os.ReadFile("/sys/fs/cgroup/cpuacct/cpuacct.usage"); err == nil {
		ns, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("cpuacct.usage: %w", err)
		}
		cpuSeconds = float64(ns) / 1e9
	} else {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0, err
		}
		line, _, _ := bytes.Cut(b, []byte("\n"))
		f := strings.Fields(string(line))
		if len(f) < 8 || f[0] != "cpu" {
			return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
		}
		var ticks uint64
		for _, i := range []int{1, 2, 3, 6, 7} { // user nice system irq softirq
			v, _ := strconv.ParseUint(f[i], 10, 64)
			ticks += v
		}
		cpuSeconds = float64(ticks) / 100 // USER_HZ
	}
	if usage, err := os.ReadFile("/sys/fs/cgroup/memory/memory.usage_in_bytes"); err == nil {
		used, err := strconv.ParseUint(string(bytes.TrimSpace(usage)), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("memory.usage_in_bytes: %w", err)
		}
		inactive := memStat("/sys/fs/cgroup/memory/memory.stat", "total_inactive_file")
		return cpuSeconds, float64(used - min(used, inactive)), nil
	}
	total, free, inactive := memStat("/proc/meminfo", "MemTotal:"), memStat("/proc/meminfo", "MemFree:"), memStat("/proc/meminfo", "Inactive(file):")
	if total == 0 {
		return 0, 0, fmt.Errorf("no memory usage in /proc/meminfo")
	}
	used := total - min(total, free+inactive)
	return cpuSeconds, float64(used) * 1024, nil // /proc/meminfo counts kB
}

// memStat is the number after key in a "key value" file, 0 when absent.
func memStat(path, key string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == key {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			return v
		}
	}
	return 0
}
