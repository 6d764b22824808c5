// Command skiff-sched-bench measures how fast `skiff up` schedules pods, end to end, modelled on
// upstream's scheduler_perf SchedulingBasic: it creates Ready nodes, then creates pods from
// many client-go workers and times from the first create until an informer has seen every pod
// bound. Each node count runs on a fresh `skiff up`. See bench/README.md.
package main

import (
	"bytes"
	"context"
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
)

type options struct {
	nodes       []int
	pods        int
	workers     int
	skiff       string
	contentType string
	timeout     time.Duration
	keepLog     bool
}

func main() {
	var o options
	var nodes string
	flag.StringVar(&nodes, "nodes", "1000,5000", "node counts to run, comma-separated; each runs on a fresh skiff up")
	flag.IntVar(&o.pods, "pods", 10000, "pods to create and have scheduled per run")
	flag.IntVar(&o.workers, "workers", 32, "concurrent client-go workers creating nodes and pods")
	flag.StringVar(&o.skiff, "skiff", "", "skiff binary to run instead of building ./cmd/skiff")
	flag.StringVar(&o.contentType, "content-type", "json", "what the bench's client sends and asks for: json or protobuf")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on a run after this long")
	flag.BoolVar(&o.keepLog, "log", false, "copy the server's log to standard error")
	flag.Parse()
	for _, f := range strings.Split(nodes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "skiff-sched-bench: --nodes %q: want positive counts\n", nodes)
			os.Exit(2)
		}
		o.nodes = append(o.nodes, n)
	}
	if o.pods < 1 || o.workers < 1 || flag.NArg() > 0 || (o.contentType != "json" && o.contentType != "protobuf") {
		fmt.Fprintln(os.Stderr, "skiff-sched-bench: --pods and --workers must be at least 1, --content-type json or protobuf, and there are no arguments")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "skiff-sched-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp("", "skiff-sched-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := o.skiff
	if bin == "" {
		if bin, err = buildSkiff(ctx, tmp); err != nil {
			return err
		}
	}
	var results []result
	for i, n := range o.nodes {
		res, err := runOne(ctx, o, bin, filepath.Join(tmp, fmt.Sprintf("data-%d", i)), n)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
		results = append(results, res)
	}
	printResults(os.Stdout, o, results)
	return nil
}

// runOne starts a fresh skiff up, loads it with n nodes and o.pods pods, and stops it.
func runOne(ctx context.Context, o options, bin, dataDir string, n int) (res result, err error) {
	var logOut io.Writer = io.Discard
	if o.keepLog {
		logOut = os.Stderr
	}
	server, err := startSkiff(ctx, bin, dataDir, logOut)
	if err != nil {
		return result{}, err
	}
	defer func() { err = errors.Join(err, server.stop()) }()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	l, err := newLoad(server.kubeconfig, o)
	if err != nil {
		return result{}, err
	}
	res, err = l.run(ctx, n, server)
	res.ServerIssues = server.problems()
	return res, err
}

// buildSkiff builds ./cmd/skiff of the module the bench runs in into dir.
func buildSkiff(ctx context.Context, dir string) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(dir, "skiff")
	fmt.Fprintf(os.Stderr, "building skiff from %s\n", root)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/skiff")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/skiff: %w\n%s", err, out)
	}
	return bin, nil
}

// skiffProcess is `skiff up` running as a child process.
type skiffProcess struct {
	cmd        *exec.Cmd
	kubeconfig string
	exited     chan struct{}
	waitErr    error

	mu              sync.Mutex
	ready           chan struct{}
	isReady         bool
	schedulerHealth string
	logIssue        []string
}

// startSkiff runs `skiff up` on a free port with its data in dataDir and returns once it has
// said it is ready.
func startSkiff(ctx context.Context, bin, dataDir string, logOut io.Writer) (*skiffProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &skiffProcess{
		kubeconfig: filepath.Join(dataDir, "kubeconfig"),
		exited:     make(chan struct{}),
		ready:      make(chan struct{}),
	}
	p.cmd = exec.Command(bin, "up", "--data-dir", dataDir, "--port", strconv.Itoa(port))
	p.cmd.Stdout = &lineWriter{out: logOut, onLine: p.stdoutLine}
	p.cmd.Stderr = &lineWriter{out: logOut, onLine: p.stderrLine}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	fmt.Fprintf(os.Stderr, "starting %s up --data-dir %s --port %d\n", bin, dataDir, port)
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
		return nil, fmt.Errorf("skiff up exited before it was ready: %v", p.waitErr)
	case <-time.After(2 * time.Minute):
		err = errors.New("skiff up was not ready within 2 minutes")
	case <-ctx.Done():
		err = ctx.Err()
	}
	return nil, errors.Join(err, p.stop())
}

func (p *skiffProcess) stdoutLine(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isReady && strings.Contains(line, "ready") && !strings.HasPrefix(line, "export ") {
		p.isReady = true
		close(p.ready)
	}
}

// stderrLine notes where the scheduler serves its metrics, and keeps the first warnings and
// errors.
func (p *skiffProcess) stderrLine(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if strings.Contains(line, "Serving healthz and metrics") {
		if _, addr, ok := strings.Cut(line, "address="); ok {
			p.schedulerHealth = strings.Fields(addr)[0]
		}
	}
	lower := strings.ToLower(line)
	for _, level := range []string{"level=warn", "level=error", "panic"} {
		if strings.Contains(lower, level) && len(p.logIssue) < 20 {
			p.logIssue = append(p.logIssue, line)
			return
		}
	}
}

func (p *skiffProcess) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logIssue...)
}

func (p *skiffProcess) metricsURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.schedulerHealth == "" {
		return ""
	}
	return "http://" + p.schedulerHealth + "/metrics"
}

// cpuSeconds is the CPU time the server process has used so far, user and system.
func (p *skiffProcess) cpuSeconds() float64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// the fields after the command name, which is in parentheses
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// stop interrupts the server and waits for it to exit, killing it after 30 seconds.
func (p *skiffProcess) stop() error {
	select {
	case <-p.exited:
		return fmt.Errorf("skiff up had exited on its own: %v", p.waitErr)
	default:
	}
	fmt.Fprintln(os.Stderr, "stopping skiff up")
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		return err
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			return fmt.Errorf("skiff up after SIGINT: %w", p.waitErr)
		}
		return nil
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		return errors.New("skiff up did not stop within 30s of SIGINT; killed it")
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
