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
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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
	// ClientCAs, when set, are required to have signed every client's certificate (the API
	// server's); nil: any client is served (tests, simulated nodes).
	ClientCAs *x509.CertPool
}

// Serve runs the kubelet API until ctx is done: /healthz, /pods, /metrics,
// /containerLogs/{namespace}/{pod}/{container} and /exec/{namespace}/{pod}/{container}.
// ready receives the address it listens on.
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
	if cfg.ClientCAs != nil {
		tlsConfig.ClientCAs = cfg.ClientCAs
		tlsConfig.ClientAuth = tls.RequireAndVerifyClientCert
	}
	l, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(l.Addr().String())
	}
	srv := &http.Server{Handler: k.Handler(), TLSConfig: tlsConfig, ReadHeaderTimeout: 30 * time.Second}
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

// Handler is the kubelet API's routes.
func (k *Kubelet) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /pods", k.servePods)
	mux.Handle("GET /metrics", k.metricsHandler())
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", k.serveContainerLogs)
	mux.HandleFunc("/exec/{namespace}/{pod}/{container}", k.serveExec)
	mux.HandleFunc("/exec/{namespace}/{pod}/{uid}/{container}", k.serveExec)
	return mux
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
	w.Header().Set("Content-Type", "text/plain")
	out := &limitedWriter{w: w, left: opts.limit}
	if lr, ok := k.rt.(runtime.LogReader); ok {
		b, err := lr.ContainerLog(r.Context(), c.status.Id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeLogLines(out, parseFakeLog(b), opts)
		return
	}
	path := c.status.LogPath
	if path == "" {
		http.Error(w, "the container has no log", http.StatusNotFound)
		return
	}
	k.streamLogFile(r.Context(), out, path, c.status.Id, opts)
}

type logOptions struct {
	timestamps, follow bool
	tail               int
	limit              int64
	since              time.Time
}

type logLine struct {
	at      time.Time
	content []byte
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
// partial is true for a "P" line, whose content continues on the next.
func parseCRILine(line []byte) (logLine, bool, bool) {
	parts := bytes.SplitN(line, []byte(" "), 4)
	if len(parts) < 3 {
		return logLine{}, false, false
	}
	at, err := time.Parse(time.RFC3339Nano, string(parts[0]))
	if err != nil {
		return logLine{}, false, false
	}
	content := []byte{}
	if len(parts) == 4 {
		content = parts[3]
	}
	return logLine{at: at, content: content}, string(parts[2]) == "P", true
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
	b = append(b, '\n')
	_, err := w.Write(b)
	return err
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
	var partial []byte
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
			l, isPartial, ok := parseCRILine(bytes.TrimSuffix(raw, []byte("\n")))
			if !ok {
				continue
			}
			if isPartial {
				partial = append(partial, l.content...)
				continue
			}
			l.content = append(partial, l.content...)
			partial = nil
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

// serveExec answers upstream's /exec: it asks the runtime for a streaming exec and hands the
// client's upgraded connection (SPDY or WebSocket) to the runtime's stream server.
func (k *Kubelet) serveExec(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	_, c, code, msg := k.findContainer(r.Context(), r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container"), false)
	if code != 0 {
		http.Error(w, msg, code)
		return
	}
	flag := func(names ...string) bool {
		for _, n := range names {
			if v, err := strconv.ParseBool(q.Get(n)); err == nil && v {
				return true
			}
		}
		return false
	}
	req := &runtimeapi.ExecRequest{
		ContainerId: c.status.Id,
		Cmd:         q["command"],
		Tty:         flag("tty"),
		Stdin:       flag("input", "stdin"),
		Stdout:      flag("output", "stdout"),
		Stderr:      flag("error", "stderr"),
	}
	if len(req.Cmd) == 0 {
		http.Error(w, "you must specify at least 1 command", http.StatusBadRequest)
		return
	}
	if req.Tty {
		req.Stderr = false
	}
	resp, err := k.rt.Exec(r.Context(), req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	target, err := url.Parse(resp.Url)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Authorization")
		},
		ErrorLog: nil,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			slog.Debug("exec stream", "err", err)
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	proxy.ServeHTTP(w, r)
}
