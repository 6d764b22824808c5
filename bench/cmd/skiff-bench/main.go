// Command skiff-bench puts a fixed load on a skiff API server through client-go and prints
// throughput and latency: pod creates, gets, lists, watch delivery, and the server's memory.
// By default it builds skiff, runs `skiff apiserver` (embedded etcd) on a fresh data directory and stops it at the end;
// with --kubeconfig it loads an existing cluster instead. See bench/README.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

type options struct {
	pods, workers, watchers, updates, listRepeats int

	kubeconfig  string
	pid         int
	skiff       string
	json        bool
	contentType string
	formats     bool
}

func main() {
	var o options
	flag.IntVar(&o.pods, "pods", 5000, "pods to create, and gets to make")
	flag.IntVar(&o.workers, "workers", 32, "concurrent workers for creates and gets")
	flag.IntVar(&o.watchers, "watchers", 100, "watches on the one patched pod")
	flag.IntVar(&o.updates, "updates", 500, "patches of the watched pod, one at a time")
	flag.IntVar(&o.listRepeats, "list-repeats", 5, "LISTs of all the pods per resourceVersion mode")
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "load this existing cluster instead of starting skiff apiserver")
	flag.IntVar(&o.pid, "pid", 0, "with --kubeconfig: the server's process id, to measure its RSS")
	flag.StringVar(&o.skiff, "skiff", "", "skiff binary to run instead of building ./cmd/skiff")
	flag.BoolVar(&o.json, "json", false, "print the results as JSON")
	flag.StringVar(&o.contentType, "content-type", "json", "what the client sends and asks for: json or protobuf")
	flag.BoolVar(&o.formats, "formats", false, "also LIST the pods as JSON, protobuf, Table and metadata, and fetch OpenAPI v3")
	flag.Parse()
	if o.pods < 1 || o.workers < 1 || o.watchers < 1 || o.updates < 1 || o.listRepeats < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "skiff-bench: --pods, --workers, --watchers, --updates and --list-repeats must be at least 1, and there are no arguments")
		os.Exit(2)
	}
	if o.contentType != "json" && o.contentType != "protobuf" {
		fmt.Fprintln(os.Stderr, "skiff-bench: --content-type is json or protobuf")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "skiff-bench:", err)
		os.Exit(1)
	}
}

// run starts the server unless told of one, loads it, and prints the results.
func run(ctx context.Context, o options) (err error) {
	progress := os.Stderr
	res := &results{
		ContentType: o.contentType, Pods: o.pods, Workers: o.workers, Watchers: o.watchers,
		Updates: o.updates, ListRepeats: o.listRepeats,
	}
	kubeconfig, pid := o.kubeconfig, o.pid
	var server *skiffProcess
	if kubeconfig == "" {
		tmp, err := os.MkdirTemp("", "skiff-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		bin := o.skiff
		if bin == "" {
			if bin, err = buildSkiff(ctx, tmp, progress); err != nil {
				return err
			}
		}
		server, err = startSkiff(ctx, bin, filepath.Join(tmp, "data"), progress)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, server.stop(progress)) }()
		kubeconfig, pid = server.kubeconfig, server.cmd.Process.Pid
		res.Server = "skiff apiserver (" + bin + ")"
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limiter
	cfg.UserAgent = "skiff-bench"
	if o.contentType == "protobuf" {
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if res.Server == "" {
		res.Server = cfg.Host
	}
	if pid > 0 {
		if res.IdleRSSMiB, _, err = readRSS(pid); err != nil {
			return err
		}
	}

	l := &load{client: client, opts: o, progress: progress, res: res}
	loadErr := l.run(ctx)
	if pid > 0 {
		if res.RSSMiB, res.PeakRSSMiB, err = readRSS(pid); err != nil {
			return errors.Join(loadErr, err)
		}
	}
	if server == nil && l.ns != "" {
		// An existing cluster keeps running: take the pods and the namespace away.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := deleteNamespace(cleanup, client, l.ns); err != nil {
			fmt.Fprintf(progress, "warning: cleaning up namespace %s: %v\n", l.ns, err)
		}
	}
	if server != nil {
		res.ServerLog = server.problems()
	}
	if len(res.Rows) > 0 {
		if o.json {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(res); err != nil {
				return err
			}
		} else {
			res.printTable(os.Stdout)
		}
	}
	return loadErr
}

// buildSkiff builds ./cmd/skiff of the module skiff-bench runs in into dir.
func buildSkiff(ctx context.Context, dir string, progress io.Writer) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(dir, "skiff")
	fmt.Fprintf(progress, "building skiff from %s\n", root)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/skiff")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/skiff: %w\n%s", err, out)
	}
	return bin, nil
}

// skiffProcess is `skiff apiserver` running as a child process. Its output is copied to ours, each
// line prefixed with "skiff| ".
type skiffProcess struct {
	cmd        *exec.Cmd
	kubeconfig string
	exited     chan struct{}
	waitErr    error

	mu       sync.Mutex
	ready    chan struct{}
	isReady  bool
	logIssue []string
}

// startSkiff runs `skiff apiserver` (the API server alone on embedded etcd, as the upstream
// figures were measured) on a free loopback port with its data in dataDir and returns once it
// has said it is ready.
func startSkiff(ctx context.Context, bin, dataDir string, progress io.Writer) (*skiffProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &skiffProcess{
		kubeconfig: filepath.Join(dataDir, "kubeconfig"),
		exited:     make(chan struct{}),
		ready:      make(chan struct{}),
	}
	p.cmd = exec.Command(bin, "apiserver", "--data-dir", dataDir, "--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(port))
	p.cmd.Stdout = &lineWriter{out: progress, onLine: p.stdoutLine}
	p.cmd.Stderr = &lineWriter{out: progress, onLine: p.stderrLine}
	// Its own process group, so that a Ctrl-C reaches only us and we stop it in order; and
	// stopped should we die first.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	fmt.Fprintf(progress, "starting %s apiserver --data-dir %s --secure-port %d\n", bin, dataDir, port)
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case <-p.ready:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("skiff apiserver exited before it was ready: %v", p.waitErr)
	case <-time.After(2 * time.Minute):
		err = errors.New("skiff apiserver was not ready within 2 minutes")
	case <-ctx.Done():
		err = ctx.Err()
	}
	return nil, errors.Join(err, p.stop(progress))
}

func (p *skiffProcess) stdoutLine(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isReady && strings.Contains(line, "ready") && !strings.HasPrefix(line, "export ") {
		p.isReady = true
		close(p.ready)
	}
}

// stderrLine keeps the first log lines that are warnings or errors.
func (p *skiffProcess) stderrLine(line string) {
	lower := strings.ToLower(line)
	for _, level := range []string{"level=warn", "level=error", `"level":"warn"`, `"level":"error"`, "panic"} {
		if strings.Contains(lower, level) {
			p.mu.Lock()
			if len(p.logIssue) < 20 {
				p.logIssue = append(p.logIssue, line)
			}
			p.mu.Unlock()
			return
		}
	}
}

func (p *skiffProcess) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logIssue...)
}

// stop interrupts the server and waits for it to exit, killing it after 30 seconds.
func (p *skiffProcess) stop(progress io.Writer) error {
	select {
	case <-p.exited:
		return fmt.Errorf("skiff apiserver had exited on its own: %v", p.waitErr)
	default:
	}
	fmt.Fprintln(progress, "stopping skiff apiserver")
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		return err
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			return fmt.Errorf("skiff apiserver after SIGINT: %w", p.waitErr)
		}
		return nil
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		return errors.New("skiff apiserver did not stop within 30s of SIGINT; killed it")
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// readRSS returns the resident set size of a process and its peak, in MiB.
func readRSS(pid int) (rss, peak float64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the server's memory: %w", err)
	}
	for line := range strings.Lines(string(status)) {
		key, value, _ := strings.Cut(line, ":")
		var kib float64
		if _, err := fmt.Sscanf(strings.TrimSpace(value), "%g kB", &kib); err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			rss = kib / 1024
		case "VmHWM":
			peak = kib / 1024
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, peak, nil
}

// lineWriter copies what is written to out line by line, prefixed, and hands each line to
// onLine. exec.Cmd writes to it from one goroutine.
type lineWriter struct {
	out    io.Writer
	onLine func(string)
	buf    []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		fmt.Fprintf(w.out, "skiff| %s\n", line)
		w.onLine(line)
	}
}
