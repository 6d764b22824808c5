// Command skiff-sched-bench measures how fast `skiff up` schedules pods, end to end, modelled on
// upstream's scheduler_perf SchedulingBasic: it creates Ready nodes, then creates pods from
// many client-go workers and times from the first create until an informer has seen every pod
// bound. Each node count runs on a fresh `skiff up`. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skiff-dev/skiff/bench/skiffproc"
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
		if bin, err = skiffproc.Build(ctx, tmp, os.Stderr); err != nil {
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
	server, err := startUp(ctx, bin, dataDir, logOut)
	if err != nil {
		return result{}, err
	}
	defer func() { err = errors.Join(err, server.Stop(os.Stderr)) }()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	l, err := newLoad(server.Kubeconfig, o)
	if err != nil {
		return result{}, err
	}
	res, err = l.run(ctx, n, server)
	res.ServerIssues = server.Problems()
	return res, err
}

// upProcess is skiff up as this bench runs it: the child process, and where its scheduler
// serves its metrics (read from the scheduler's log line).
type upProcess struct {
	*skiffproc.Process

	mu              sync.Mutex
	schedulerHealth string
}

// startUp runs `skiff up` on a free port with its data in dataDir, ready when it says so.
func startUp(ctx context.Context, bin, dataDir string, logOut io.Writer) (*upProcess, error) {
	u := &upProcess{}
	// the bench's nodes are made-up Node objects; skiff up's own kubelet is cordoned, so a
	// real container runtime would only cost time
	p, err := skiffproc.Start(ctx, bin, "up", "--port", dataDir, []string{"--container-runtime-endpoint=fake"}, logOut, u.noteSchedulerAddress)
	if err != nil {
		return nil, err
	}
	u.Process = p
	return u, nil
}

func (u *upProcess) noteSchedulerAddress(line string) {
	if !strings.Contains(line, "Serving healthz and metrics") {
		return
	}
	if _, addr, ok := strings.Cut(line, "address="); ok {
		u.mu.Lock()
		u.schedulerHealth = strings.Fields(addr)[0]
		u.mu.Unlock()
	}
}

func (u *upProcess) metricsURL() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.schedulerHealth == "" {
		return ""
	}
	return "http://" + u.schedulerHealth + "/metrics"
}

// cpuSeconds is the CPU time the server process has used so far, user and system.
func (u *upProcess) cpuSeconds() float64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", u.Cmd.Process.Pid))
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
