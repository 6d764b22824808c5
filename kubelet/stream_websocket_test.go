package kubelet_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

// streamLog records the kubelet's "stream over WebSocket" and "stream over SPDY" lines, the
// server log a reader checks for a client's fallback to SPDY.
type streamLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *streamLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *streamLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *streamLog) WithGroup(string) slog.Handler            { return l }
func (l *streamLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "stream over ") {
		return nil
	}
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "protocol" {
			line += " " + a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	return nil
}

func (l *streamLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	l.lines = nil
	return lines
}

// captureStreamLog sends the process's log to a streamLog until the test ends.
func captureStreamLog(t *testing.T) *streamLog {
	l := &streamLog{}
	previous := slog.Default()
	slog.SetDefault(slog.New(l))
	t.Cleanup(func() { slog.SetDefault(previous) })
	return l
}

// websocketKubectls are the stock kubectl builds that stream over WebSocket by default (1.31
// and later) that this machine has: kubectl.1.33 beside the one on PATH, and 1.37 from
// `make kubectl`.
func websocketKubectls(t *testing.T) map[string]string {
	found := map[string]string{}
	if path, err := exec.LookPath("kubectl"); err == nil {
		if real, err := filepath.EvalSymlinks(path); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(real), "kubectl.1.33")); err == nil {
				found["1.33"] = filepath.Join(filepath.Dir(real), "kubectl.1.33")
			}
		}
	}
	if built, err := filepath.Abs(filepath.Join("..", "bin", "kubectl-1.37")); err == nil {
		if _, err := os.Stat(built); err == nil {
			found["1.37"] = built
		}
	}
	if len(found) == 0 {
		t.Skip("no kubectl 1.33 or 1.37 on this machine (make kubectl builds 1.37)")
	}
	return found
}

// streamPod serves /index.html on 8080 and ticks on its stdout, for exec, attach and
// port-forward alike.
func streamPod(n *secureRealNode) {
	pod := n.CreatePod(kubelettest.BusyboxPod("streams",
		"mkdir -p /www && echo forwarded > /www/index.html && httpd -p 8080 -h /www; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"))
	n.WaitPod(pod, "ready", kubelettest.PodReady)
}

func TestRealStockKubectlStreamsOverWebSocketWithoutSPDYFallback(t *testing.T) {
	kubectls := websocketKubectls(t)
	n := newSecureRealNode(t)
	streamPod(n)
	log := captureStreamLog(t)

	for version, kubectl := range kubectls {
		t.Run(version, func(t *testing.T) {
			run := func(stdin string, args ...string) (string, string, error) {
				cmd := exec.Command(kubectl, append([]string{"--kubeconfig", n.kubeconfig, "-v=4"}, args...)...)
				cmd.Stdin = strings.NewReader(stdin)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				return stdout.String(), stderr.String(), err
			}
			noFallback := func(what, stderr string) {
				if strings.Contains(strings.ToLower(stderr), "fallback") {
					t.Errorf("%s: kubectl fell back to SPDY:\n%s", what, stderr)
				}
			}

			// stdin ends with the v5 CLOSE signal, so cat sees its end and exits
			out, stderr, err := run("typed into stdin\n", "exec", "-i", "streams", "--", "cat")
			if err != nil || out != "typed into stdin\n" {
				t.Errorf("kubectl exec -i cat: %q %v\n%s", out, err, stderr)
			}
			noFallback("exec -i", stderr)

			out, stderr, err = run("", "exec", "streams", "--", "sh", "-c", "echo to stdout; echo to stderr >&2; exit 3")
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 || out != "to stdout\n" || !strings.Contains(stderr, "to stderr\n") {
				t.Errorf("kubectl exec exit 3: %q %v\n%s", out, err, stderr)
			}
			noFallback("exec exit 3", stderr)

			attach := n.startKubectlBinary(t, kubectl, "attach", "streams")
			line := waitLine(t, attach, "a tick", func(l string) bool { return strings.HasPrefix(l, "tick ") })
			if !strings.HasPrefix(line, "tick ") {
				t.Errorf("attach printed %q", line)
			}

			pf := n.startKubectlBinary(t, kubectl, "port-forward", "pod/streams", "--address", "127.0.0.1", ":8080")
			line = waitLine(t, pf, "the forwarded port", func(l string) bool { return strings.HasPrefix(l, "Forwarding from 127.0.0.1:") })
			local := strings.Fields(strings.TrimPrefix(line, "Forwarding from "))[0]
			if body := getUntilOK(t, "http://"+local+"/index.html"); body != "forwarded\n" {
				t.Errorf("GET through kubectl %s port-forward: %q", version, body)
			}

			// the kubelet's log: every stream came over WebSocket, in the newest protocols
			want := map[string]bool{"stream over WebSocket v5.channel.k8s.io": false, "stream over WebSocket SPDY/3.1+portforward.k8s.io": false}
			for _, l := range waitStreamLines(log, 4) {
				if _, ok := want[l]; !ok {
					t.Errorf("kubelet logged %q", l)
				}
				want[l] = true
			}
			for l, seen := range want {
				if !seen {
					t.Errorf("kubelet never logged %q", l)
				}
			}
		})
	}
}

// waitStreamLines waits for at least n stream lines (the last stream's line may come after
// the client's output) and returns them.
func waitStreamLines(log *streamLog, n int) []string {
	var lines []string
	_ = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		lines = append(lines, log.take()...)
		return len(lines) >= n, nil
	})
	return lines
}

func getUntilOK(t *testing.T, u string) string {
	t.Helper()
	var body string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Errorf("GET %s: %v", u, err)
	}
	return body
}

// terminalSize is a TerminalSizeQueue of one size: 123 columns, 45 rows.
type terminalSize struct{ sent bool }

func (q *terminalSize) Next() *remotecommand.TerminalSize {
	if q.sent {
		return nil // no more resizes
	}
	q.sent = true
	return &remotecommand.TerminalSize{Width: 123, Height: 45}
}

func TestRealClientGoWebSocketExecutorTerminalAndV4ExitCode(t *testing.T) {
	n := newSecureRealNode(t)
	streamPod(n)
	log := captureStreamLog(t)
	execURL := func(tty bool, command ...string) string {
		q := url.Values{"stdout": {"true"}, "command": command}
		if tty {
			q.Set("tty", "true")
			q.Set("stdin", "true") // stty asks its stdin
		} else {
			q.Set("stderr", "true")
		}
		return n.server.URL + "/api/v1/namespaces/default/pods/streams/exec?" + q.Encode()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// a terminal of the size the client set: the resize channel reached the runtime. The
	// command prints the size until the client has seen it and goes away: it may start
	// before the first size arrives (until then the terminal is 0x0), and containerd 1.6
	// drops a terminal's output now and then, over SPDY as well.
	ex, err := remotecommand.NewWebSocketExecutor(n.server.Config, http.MethodGet, execURL(true, "sh", "-c", "while true; do stty size 2>/dev/null; sleep 0.2; done"))
	if err != nil {
		t.Fatal(err)
	}
	seen, stop := context.WithCancel(ctx)
	out := &watchedOutput{want: "45 123\r\n", seen: stop}
	_ = ex.StreamWithContext(seen, remotecommand.StreamOptions{Stdin: blockingReader{seen}, Stdout: out, Tty: true, TerminalSizeQueue: &terminalSize{}})
	if seen.Err() == nil || ctx.Err() != nil {
		t.Errorf("stty size in a terminal: %q", out.String())
	}

	// v4.channel.k8s.io has no CLOSE signal but the same exit status
	ex, err = remotecommand.NewWebSocketExecutorForProtocols(n.server.Config, http.MethodGet, execURL(false, "sh", "-c", "echo v4; exit 2"), "v4.channel.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	var v4 bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &v4, Stderr: io.Discard})
	var exitErr utilexec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 2 || v4.String() != "v4\n" {
		t.Errorf("exec over v4.channel.k8s.io: %q %v", v4.String(), err)
	}
	if lines := waitStreamLines(log, 2); strings.Join(lines, ",") != "stream over WebSocket v5.channel.k8s.io,stream over WebSocket v4.channel.k8s.io" {
		t.Errorf("kubelet logged %q", lines)
	}
}

// watchedOutput is a stdout that calls seen once want was written to it.
type watchedOutput struct {
	mu   sync.Mutex
	b    bytes.Buffer
	want string
	seen func()
}

func (o *watchedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.Write(p)
	if strings.Contains(o.b.String(), o.want) {
		o.seen()
	}
	return len(p), nil
}

func (o *watchedOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// blockingReader is a stdin that sends nothing until ctx ends.
type blockingReader struct{ ctx context.Context }

func (r blockingReader) Read([]byte) (int, error) {
	<-r.ctx.Done()
	return 0, io.EOF
}

// rawWebSocket dials path on the API server as the admin with one subprotocol.
func rawWebSocket(t *testing.T, n *secureRealNode, path, protocol string) *websocket.Conn {
	t.Helper()
	tlsConfig, err := rest.TLSConfigFor(n.server.Config)
	if err != nil {
		t.Fatal(err)
	}
	config, err := websocket.NewConfig(strings.Replace(n.server.URL, "https://", "wss://", 1)+path, n.server.URL)
	if err != nil {
		t.Fatal(err)
	}
	config.TlsConfig = tlsConfig
	config.Protocol = []string{protocol}
	ws, err := websocket.DialConfig(config)
	if err != nil {
		t.Fatalf("dial %s with %s: %v", path, protocol, err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// channelMessages reads ws until it closes: what each channel received, base64 decoded when
// the protocol is.
func channelMessages(t *testing.T, ws *websocket.Conn, base64Codec bool) map[byte]string {
	t.Helper()
	got := map[byte]string{}
	for {
		var msg []byte
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			return got
		}
		if len(msg) == 0 {
			continue
		}
		channel, data := msg[0], msg[1:]
		if base64Codec {
			channel -= '0'
			decoded, err := base64.StdEncoding.DecodeString(string(data))
			if err != nil {
				t.Fatalf("channel %d: %q is not base64", channel, data)
			}
			data = decoded
		}
		got[channel] += string(data)
	}
}

func TestRealOlderWebSocketProtocolsForExecAndPortForward(t *testing.T) {
	n := newSecureRealNode(t)
	streamPod(n)

	// base64.channel.k8s.io: before v4 the error channel carries the failure's text
	q := url.Values{"stdout": {"true"}, "command": {"sh", "-c", "echo old; exit 4"}}
	ws := rawWebSocket(t, n, "/api/v1/namespaces/default/pods/streams/exec?"+q.Encode(), "base64.channel.k8s.io")
	got := channelMessages(t, ws, true)
	if got[1] != "old\n" || !strings.Contains(got[3], "exit code 4") {
		t.Errorf("exec over base64.channel.k8s.io: stdout %q, error %q", got[1], got[3])
	}

	// port-forward in channels: data and error for the one port, each opened with the port
	ws = rawWebSocket(t, n, "/api/v1/namespaces/default/pods/streams/portforward?ports=8080", "v4.channel.k8s.io")
	port := binary.LittleEndian.AppendUint16(nil, 8080)
	if err := websocket.Message.Send(ws, append([]byte{0}, "GET /index.html HTTP/1.0\r\n\r\n"...)); err != nil {
		t.Fatal(err)
	}
	got = channelMessages(t, ws, false)
	if !strings.HasPrefix(got[0], string(port)) || !strings.HasSuffix(got[0], "\r\n\r\nforwarded\n") {
		t.Errorf("data channel: %q", got[0])
	}
	if got[1] != string(port) {
		t.Errorf("error channel: %q, want only the port", got[1])
	}
}
