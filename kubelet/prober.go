package kubelet

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// probeManager runs one goroutine per probe of each running container (upstream's probe
// workers) and keeps their latest results, by container ID. A result that flips wakes the
// pod's worker, which reads the results when it syncs.
type probeManager struct {
	k *Kubelet

	mu      sync.Mutex
	workers map[probeKey]*probeWorker
	results map[probeKey]bool
}

type probeKey struct {
	containerID string
	kind        runtime.ProbeKind
}

type probeWorker struct {
	key    probeKey
	podUID types.UID
	stop   context.CancelFunc
}

func newProbeManager(k *Kubelet) *probeManager {
	return &probeManager{k: k, workers: map[probeKey]*probeWorker{}, results: map[probeKey]bool{}}
}

func probeOf(spec *v1.Container, kind runtime.ProbeKind) *v1.Probe {
	switch kind {
	case runtime.Liveness:
		return spec.LivenessProbe
	case runtime.Readiness:
		return spec.ReadinessProbe
	default:
		return spec.StartupProbe
	}
}

// result is a probe's latest result and whether it has one.
func (m *probeManager) result(id string, kind runtime.ProbeKind) (bool, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.results[probeKey{id, kind}]
	return r, ok
}

// started: the container has no startup probe, or it has succeeded.
func (m *probeManager) started(id string, spec *v1.Container) bool {
	if spec.StartupProbe == nil {
		return true
	}
	ok, known := m.result(id, runtime.Startup)
	return known && ok
}

// ready: the container has started and has no readiness probe, or it succeeds.
func (m *probeManager) ready(id string, spec *v1.Container) bool {
	if spec.ReadinessProbe == nil {
		return true
	}
	ok, known := m.result(id, runtime.Readiness)
	return known && ok
}

// failedToLive reports a container whose liveness or startup probe has failed (its failure
// threshold reached), and which.
func (m *probeManager) failedToLive(id string, spec *v1.Container) (bool, string) {
	if spec.StartupProbe != nil {
		if ok, known := m.result(id, runtime.Startup); known && !ok {
			return true, string(runtime.Startup)
		}
	}
	if spec.LivenessProbe != nil {
		if ok, known := m.result(id, runtime.Liveness); known && !ok {
			return true, string(runtime.Liveness)
		}
	}
	return false, ""
}

// sync starts workers for the probes of the pod's running containers and stops those of
// containers that no longer run.
func (m *probeManager) sync(pod *v1.Pod, rs *podRuntime) {
	running := map[string]bool{}
	podIP := ""
	if ips := rs.podIPs(); len(ips) > 0 {
		podIP = ips[0]
	}
	if pod.Spec.HostNetwork {
		podIP = m.k.cfg.NodeIPs[0].String()
	}
	for _, c := range rs.containers {
		if !c.running() {
			continue
		}
		spec, fieldPath := containerSpec(pod, c.name())
		if spec == nil {
			continue
		}
		running[c.status.Id] = true
		for _, kind := range []runtime.ProbeKind{runtime.Startup, runtime.Liveness, runtime.Readiness} {
			probe := probeOf(spec, kind)
			if probe == nil {
				continue
			}
			key := probeKey{c.status.Id, kind}
			m.mu.Lock()
			_, exists := m.workers[key]
			if !exists {
				ctx, cancel := context.WithCancel(context.Background())
				w := &probeWorker{key: key, podUID: pod.UID, stop: cancel}
				m.workers[key] = w
				go m.run(ctx, w, pod, spec.DeepCopy(), fieldPath, probe.DeepCopy(), podIP, time.Unix(0, c.status.StartedAt))
			}
			m.mu.Unlock()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, w := range m.workers {
		if w.podUID == pod.UID && !running[key.containerID] {
			w.stop()
			delete(m.workers, key)
			delete(m.results, key)
		}
	}
}

// forget stops every probe of the pod.
func (m *probeManager) forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, w := range m.workers {
		if w.podUID == uid {
			w.stop()
			delete(m.workers, key)
			delete(m.results, key)
		}
	}
}

// forgetContainer stops the probes of one container (killed for failing one).
func (m *probeManager) forgetContainer(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, w := range m.workers {
		if key.containerID == id {
			w.stop()
			delete(m.workers, key)
		}
	}
}

func (m *probeManager) stopAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, w := range m.workers {
		w.stop()
		delete(m.workers, key)
	}
}

// run is one probe's worker: after initialDelaySeconds, every periodSeconds, it probes and
// turns successThreshold successes or failureThreshold failures in a row into a result.
func (m *probeManager) run(ctx context.Context, w *probeWorker, pod *v1.Pod, spec *v1.Container, fieldPath string, probe *v1.Probe, podIP string, startedAt time.Time) {
	period := time.Duration(max(probe.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(probe.TimeoutSeconds, 1)) * time.Second
	successThreshold := max(int(probe.SuccessThreshold), 1)
	failureThreshold := max(int(probe.FailureThreshold), 1)
	kind := w.key.kind

	if kind != runtime.Startup {
		// liveness starts out alive; readiness not ready until it succeeds
		m.setResult(w, kind == runtime.Liveness)
	}
	delay := time.Until(startedAt.Add(time.Duration(probe.InitialDelaySeconds) * time.Second))
	select {
	case <-ctx.Done():
		return
	case <-time.After(max(delay, 0)):
	}
	t := time.NewTicker(period)
	defer t.Stop()
	successes, failures := 0, 0
	for {
		if kind == runtime.Startup || m.started(w.key.containerID, spec) {
			ok, output := m.probeOnce(ctx, pod, spec, w.key.containerID, kind, probe, podIP, timeout)
			if ctx.Err() != nil {
				return
			}
			if ok {
				successes, failures = successes+1, 0
				if successes >= successThreshold {
					m.setResult(w, true)
					if kind == runtime.Startup {
						return // a startup probe stops once it has succeeded
					}
				}
			} else {
				successes, failures = 0, failures+1
				m.k.containerEvent(pod, fieldPath, v1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, output)
				if failures >= failureThreshold {
					m.setResult(w, false)
					if kind != runtime.Readiness {
						return // the container is restarted; its successor gets new workers
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *probeManager) setResult(w *probeWorker, ok bool) {
	m.mu.Lock()
	if m.workers[w.key] != w {
		m.mu.Unlock()
		return
	}
	old, known := m.results[w.key]
	m.results[w.key] = ok
	m.mu.Unlock()
	if !known || old != ok {
		m.k.workers.wake(w.podUID)
	}
}

// probeOnce runs the probe one time: through the runtime when it answers probes itself (the
// fake), else as upstream's prober does.
func (m *probeManager) probeOnce(ctx context.Context, pod *v1.Pod, spec *v1.Container, containerID string, kind runtime.ProbeKind, probe *v1.Probe, podIP string, timeout time.Duration) (bool, string) {
	if a, ok := m.k.rt.(runtime.ProbeAnswerer); ok {
		if success, output, handled := a.AnswerProbe(ctx, containerID, kind); handled {
			return success, output
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return m.k.runHandler(ctx, spec, containerID, podIP, probe.ProbeHandler, timeout)
}

// runHandler runs an exec, httpGet, tcpSocket or grpc action against a container.
func (k *Kubelet) runHandler(ctx context.Context, spec *v1.Container, containerID, podIP string, h v1.ProbeHandler, timeout time.Duration) (bool, string) {
	switch {
	case h.Exec != nil:
		stdout, stderr, code, err := k.rt.ExecSync(ctx, containerID, h.Exec.Command, timeout)
		output := string(stdout) + string(stderr)
		if err != nil {
			if ctx.Err() != nil {
				return false, fmt.Sprintf("command %q timed out", strings.Join(h.Exec.Command, " "))
			}
			return false, err.Error()
		}
		if code != 0 {
			if output == "" {
				output = fmt.Sprintf("command %q exited with %d", strings.Join(h.Exec.Command, " "), code)
			}
			return false, output
		}
		return true, output
	case h.HTTPGet != nil:
		g := h.HTTPGet
		host := g.Host
		if host == "" {
			host = podIP
		}
		port, err := resolvePort(g.Port, spec)
		if err != nil {
			return false, err.Error()
		}
		scheme := strings.ToLower(string(g.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
		u, err = u.Parse(path)
		if err != nil {
			return false, err.Error()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return false, err.Error()
		}
		req.Header.Set("User-Agent", "kube-probe/"+strings.TrimPrefix(k.cfg.KubeletVersion, "v"))
		req.Header.Set("Accept", "*/*")
		for _, hv := range g.HTTPHeaders {
			if strings.EqualFold(hv.Name, "host") {
				req.Host = hv.Value
				continue
			}
			req.Header.Add(hv.Name, hv.Value)
		}
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // as upstream's prober
			DisableKeepAlives: true,
		}}
		resp, err := client.Do(req)
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 10*1024))
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return true, string(body)
		}
		return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	case h.TCPSocket != nil:
		host := h.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		port, err := resolvePort(h.TCPSocket.Port, spec)
		if err != nil {
			return false, err.Error()
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case h.GRPC != nil:
		conn, err := grpc.NewClient(net.JoinHostPort(podIP, strconv.Itoa(int(h.GRPC.Port))), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close()
		service := ""
		if h.GRPC.Service != nil {
			service = *h.GRPC.Service
		}
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return false, fmt.Sprintf("timeout: failed to connect service %q within %v: %v", conn.Target(), timeout, err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return false, fmt.Sprintf("service unhealthy (responded with %q)", resp.Status)
		}
		return true, ""
	}
	return false, "missing probe handler"
}

func resolvePort(port intstr.IntOrString, spec *v1.Container) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, p := range spec.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("couldn't find port: %v in %v", port.StrVal, spec.Name)
}

// runHook runs a postStart or preStop handler; for a failure it returns the handler's output.
func (k *Kubelet) runHook(ctx context.Context, pod *v1.Pod, spec *v1.Container, containerID string, h *v1.LifecycleHandler) (string, error) {
	if h.Sleep != nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		}
		return "", nil
	}
	podIP := ""
	if pod.Spec.HostNetwork {
		podIP = k.cfg.NodeIPs[0].String()
	} else if st, err := k.podRuntimeState(ctx, pod.UID); err == nil {
		if ips := st.podIPs(); len(ips) > 0 {
			podIP = ips[0]
		}
	}
	handler := v1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket}
	timeout := time.Duration(k.gracePeriod(pod)) * time.Second
	ok, output := k.runHandler(ctx, spec, containerID, podIP, handler, timeout)
	if !ok {
		return output, fmt.Errorf("hook failed")
	}
	return "", nil
}
