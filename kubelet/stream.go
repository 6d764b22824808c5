package kubelet

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet API's streams, as upstream's: /exec, /attach and /portForward. For each the
// kubelet asks the runtime (CRI Exec, Attach, PortForward) for a one-time URL on the runtime's
// own streaming server. A SPDY request is handed to it unchanged, upgrade headers and all, and
// the kubelet never reads that stream; a WebSocket request is answered by the kubelet itself,
// which speaks SPDY to the runtime (stream_websocket.go).

// streamFlag reads a boolean query parameter under any of its names ("input" or "stdin").
func streamFlag(q url.Values, names ...string) bool {
	for _, n := range names {
		if v, err := strconv.ParseBool(q.Get(n)); err == nil && v {
			return true
		}
	}
	return false
}

// streamStdio are the stdin/stdout/stderr/tty choices of an exec or attach, under upstream's
// parameter names and the ones clients send the API server.
type streamStdio struct{ stdin, stdout, stderr, tty bool }

func parseStreamStdio(q url.Values) (streamStdio, error) {
	s := streamStdio{
		stdin:  streamFlag(q, "input", "stdin"),
		stdout: streamFlag(q, "output", "stdout"),
		stderr: streamFlag(q, "error", "stderr"),
		tty:    streamFlag(q, "tty"),
	}
	if s.tty {
		s.stderr = false // a terminal merges stderr into stdout
	}
	if !s.stdin && !s.stdout && !s.stderr {
		return s, fmt.Errorf("you must specify at least 1 of stdin, stdout, stderr")
	}
	return s, nil
}

// streamContainer finds the container a stream request names, or answers the error itself.
func (k *Kubelet) streamContainer(w http.ResponseWriter, r *http.Request) (*containerRecord, bool) {
	pod, c, code, msg := k.findContainer(r.Context(), r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container"), false)
	if code == 0 && r.PathValue("uid") != "" && string(pod.UID) != r.PathValue("uid") {
		code, msg = http.StatusNotFound, fmt.Sprintf("pod %q with UID %s not found", r.PathValue("namespace")+"/"+r.PathValue("pod"), r.PathValue("uid"))
	}
	if code != 0 {
		http.Error(w, msg, code)
		return nil, false
	}
	return c, true
}

// serveExec answers /exec/{namespace}/{pod}[/{uid}]/{container}?command=...
func (k *Kubelet) serveExec(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if len(q["command"]) == 0 {
		http.Error(w, "you must specify at least 1 command", http.StatusBadRequest)
		return
	}
	stdio, err := parseStreamStdio(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c, ok := k.streamContainer(w, r)
	if !ok {
		return
	}
	k.proxyStream(w, r, func(w http.ResponseWriter, r *http.Request, target *url.URL) {
		serveRemoteCommandWebSocket(w, r, target, stdio, q["command"])
	}, func(ctx context.Context) (string, error) {
		resp, err := k.rt.Exec(ctx, &runtimeapi.ExecRequest{
			ContainerId: c.status.Id, Cmd: q["command"],
			Tty: stdio.tty, Stdin: stdio.stdin, Stdout: stdio.stdout, Stderr: stdio.stderr,
		})
		return resp.GetUrl(), err
	})
}

// serveAttach answers /attach/{namespace}/{pod}[/{uid}]/{container}: the running container's
// own stdio.
func (k *Kubelet) serveAttach(w http.ResponseWriter, r *http.Request) {
	stdio, err := parseStreamStdio(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c, ok := k.streamContainer(w, r)
	if !ok {
		return
	}
	k.proxyStream(w, r, func(w http.ResponseWriter, r *http.Request, target *url.URL) {
		serveRemoteCommandWebSocket(w, r, target, stdio, nil)
	}, func(ctx context.Context) (string, error) {
		resp, err := k.rt.Attach(ctx, &runtimeapi.AttachRequest{
			ContainerId: c.status.Id,
			Tty:         stdio.tty, Stdin: stdio.stdin, Stdout: stdio.stdout, Stderr: stdio.stderr,
		})
		return resp.GetUrl(), err
	})
}

// servePortForward answers /portForward/{namespace}/{pod}[/{uid}]: connections to the pod's
// ports inside its network namespace. The ports come with the streams (SPDY headers) or as
// port= parameters (WebSocket).
func (k *Kubelet) servePortForward(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("pod")
	if k.podLister == nil {
		http.Error(w, "kubelet is starting", http.StatusServiceUnavailable)
		return
	}
	pod, err := k.podLister.Pods(ns).Get(name)
	if err != nil || r.PathValue("uid") != "" && string(pod.UID) != r.PathValue("uid") {
		http.Error(w, "pod does not exist", http.StatusNotFound)
		return
	}
	var ports []int32
	for _, v := range append(r.URL.Query()["port"], r.URL.Query()["ports"]...) {
		for _, p := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
			if err != nil || n == 0 {
				http.Error(w, fmt.Sprintf("invalid port %q", p), http.StatusBadRequest)
				return
			}
			ports = append(ports, int32(n))
		}
	}
	rs, err := k.podRuntimeState(r.Context(), pod.UID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sandbox := rs.readySandbox()
	if sandbox == nil {
		http.Error(w, fmt.Sprintf("pod %q has no running sandbox", ns+"/"+name), http.StatusBadRequest)
		return
	}
	k.proxyStream(w, r, func(w http.ResponseWriter, r *http.Request, target *url.URL) {
		servePortForwardWebSocket(w, r, target, ports)
	}, func(ctx context.Context) (string, error) {
		resp, err := k.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sandbox.Id, Port: ports})
		return resp.GetUrl(), err
	})
}

// proxyStream asks the runtime for a stream's URL and passes the client's SPDY request to it,
// or gives a WebSocket request to serveWebSocket with that URL. The
// runtime's refusal is answered in plain text, as upstream's kubelet does, with the code its
// gRPC status suggests (404 for NotFound, 501 for a runtime without streaming) and without the
// "rpc error: code = ..." wrapping: a client that fails to upgrade shows the body ("unable to
// upgrade connection: the fake runtime has no streaming exec").
func (k *Kubelet) proxyStream(w http.ResponseWriter, r *http.Request, serveWebSocket func(http.ResponseWriter, *http.Request, *url.URL), prepare func(context.Context) (string, error)) {
	raw, err := prepare(r.Context())
	if err != nil {
		code := http.StatusInternalServerError
		switch status.Code(err) {
		case codes.NotFound:
			code = http.StatusNotFound
		case codes.Unimplemented:
			code = http.StatusNotImplemented
		}
		http.Error(w, status.Convert(err).Message(), code)
		return
	}
	target, err := url.Parse(raw)
	if err != nil {
		http.Error(w, fmt.Sprintf("the runtime's stream URL %q: %v", raw, err), http.StatusInternalServerError)
		return
	}
	if target.Scheme == "" {
		// a bare path is on a streaming server the runtime expects the kubelet to serve;
		// upstream's kubelet has one, skiff's runtimes always name their own
		http.Error(w, fmt.Sprintf("the runtime's stream URL %q names no server", raw), http.StatusInternalServerError)
		return
	}
	if wsstream.IsWebSocketRequest(r) {
		serveWebSocket(w, r, target)
		return
	}
	slog.Info("stream over SPDY", "path", r.URL.Path, "protocol", strings.Join(r.Header.Values(httpstream.HeaderProtocolVersion), ","))
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Authorization")
		},
		// streams are interactive: write what arrives at once
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			slog.Debug("stream to the runtime", "url", target.Redacted(), "err", err)
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	proxy.ServeHTTP(w, r)
}
