// Command skiff-cluster-bench measures the cluster as a whole on simulated nodes: pod startup
// latency as SIG Scalability defines it, a ReplicaSet scaled from 0 to many replicas until all
// run, a Deployment created and rolled out, and how many nodes and pods `skiff sim` holds in
// how much memory.
//
// It builds skiff, runs `skiff apiserver`, `skiff controller-manager`, `skiff scheduler` and
// `skiff sim --nodes N` as separate processes (so each one's memory is its own), waits for the
// N nodes to be Ready and schedulable, runs the scenarios, prints the results and stops
// everything. With --runtime=real it runs `skiff up` instead (one node, real containers in
// its own containerd, a busybox image built here and imported with --image-dir) for the
// startup scenario. The figures and the machine go into bench/README.md.
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
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/skiff-dev/skiff/bench/skiffproc"
	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
	"github.com/skiff-dev/skiff/kubelet/ociimage"
)

type options struct {
	skiff      string
	runtime    string
	nodes      int
	replicas   int
	startup    int
	startupQPS int
	scale      int
	scenarios  string
	logFile    string
	timeout    time.Duration
}

func main() {
	o := options{}
	flag.StringVar(&o.skiff, "skiff", "", "skiff binary to run; default: build ./cmd/skiff into a temporary directory")
	flag.StringVar(&o.runtime, "runtime", "sim", "sim: simulated nodes; real: skiff up's one node with real containers (startup scenario only)")
	flag.IntVar(&o.nodes, "nodes", 100, "simulated nodes (skiff sim --nodes)")
	flag.IntVar(&o.replicas, "replicas", 1000, "replicas of the ReplicaSet and Deployment scenarios")
	flag.IntVar(&o.startup, "startup-pods", 100, "pods of the startup-latency scenario")
	flag.IntVar(&o.startupQPS, "startup-qps", 20, "pods created per second in the startup-latency scenario")
	flag.IntVar(&o.scale, "scale-pods", 30000, "pods of the scale scenario, in ReplicaSets of --replicas")
	flag.StringVar(&o.scenarios, "scenarios", "startup,replicaset,deployment",
		"comma-separated scenarios to run, in order: startup, replicaset, deployment, scale")
	flag.StringVar(&o.logFile, "log", "", "file for the components' logs; default standard error")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	flag.Parse()
	scenariosSet := false
	flag.Visit(func(f *flag.Flag) { scenariosSet = scenariosSet || f.Name == "scenarios" })
	if o.runtime == "real" && !scenariosSet {
		o.scenarios = "startup"
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "skiff-cluster-bench:", err)
		os.Exit(1)
	}
}

// cluster is the set of skiff processes under test: the parts on their own over simulated
// nodes, or skiff up alone.
type cluster struct {
	apiserver, controllers, scheduler, sim *skiffproc.Process
	up                                     *skiffproc.Process
}

// processes are the running parts by name, in the order they started.
func (c *cluster) processes() []namedProcess {
	var out []namedProcess
	for _, p := range []namedProcess{{"apiserver", c.apiserver}, {"controller-manager", c.controllers},
		{"scheduler", c.scheduler}, {"sim", c.sim}, {"up", c.up}} {
		if p.p != nil {
			out = append(out, p)
		}
	}
	return out
}

type namedProcess struct {
	name string
	p    *skiffproc.Process
}

func run(ctx context.Context, o options) (err error) {
	scenarios := strings.Split(o.scenarios, ",")
	for _, s := range scenarios {
		if !slices.Contains([]string{"startup", "replicaset", "deployment", "scale"}, s) {
			return fmt.Errorf("unknown scenario %q", s)
		}
		if o.runtime == "real" && s != "startup" {
			return fmt.Errorf("--runtime=real runs one node: only the startup scenario fits it, not %q", s)
		}
	}
	if o.runtime != "sim" && o.runtime != "real" {
		return fmt.Errorf("--runtime is sim or real, not %q", o.runtime)
	}
	if o.startupQPS <= 0 {
		return fmt.Errorf("--startup-qps must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	tmp, err := os.MkdirTemp("", "skiff-cluster-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logOut := io.Writer(os.Stderr)
	if o.logFile != "" {
		f, err := os.Create(o.logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		logOut = f
	}
	bin := o.skiff
	if bin == "" {
		if bin, err = skiffproc.Build(ctx, tmp, os.Stderr); err != nil {
			return err
		}
	}

	c := &cluster{}
	defer func() {
		// stop in the reverse order of start: the nodes first, the API server last
		procs := c.processes()
		for i := len(procs) - 1; i >= 0; i-- {
			if stopErr := procs[i].p.Stop(logOut); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}
	}()
	var kc string
	if o.runtime == "real" {
		if kc, err = c.startUp(ctx, bin, tmp, logOut); err != nil {
			return err
		}
		o.nodes = 1
	} else if kc, err = c.startParts(ctx, bin, tmp, o.nodes, logOut); err != nil {
		return err
	}

	b, err := newBench(kc, o)
	if err != nil {
		return err
	}
	started := time.Now()
	if err := b.waitNodes(ctx, c); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d nodes Ready and schedulable after %s\n", o.nodes, time.Since(started).Round(time.Millisecond))

	var rows []row
	for _, s := range scenarios {
		fmt.Fprintf(os.Stderr, "== %s\n", s)
		var r []row
		switch s {
		case "startup":
			r, err = b.startupLatency(ctx, c)
		case "replicaset":
			r, err = b.replicaSetScaleUp(ctx, c)
		case "deployment":
			r, err = b.deploymentRollout(ctx, c)
		case "scale":
			r, err = b.scaleHeld(ctx, c)
		}
		rows = append(rows, r...)
		if err != nil {
			printRows(os.Stdout, o, rows)
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	printRows(os.Stdout, o, rows)
	printMemory(os.Stdout, c)
	for _, p := range c.processes() {
		if issues := p.p.Problems(); len(issues) > 0 {
			fmt.Printf("\n%s logged %d warnings or errors; the first:\n  %s\n", p.name, len(issues), strings.Join(issues, "\n  "))
		}
	}
	return nil
}

// startParts runs the API server, the controller manager, the scheduler and n simulated
// nodes, each its own process, and returns the admin kubeconfig.
func (c *cluster) startParts(ctx context.Context, bin, tmp string, n int, logOut io.Writer) (string, error) {
	var err error
	c.apiserver, err = skiffproc.Start(ctx, bin, "apiserver", "--secure-port", tmp+"/data",
		[]string{"--bind-address", "127.0.0.1"}, logOut, nil)
	if err != nil {
		return "", err
	}
	kc := c.apiserver.Kubeconfig
	if c.controllers, err = skiffproc.StartClient(bin, "controller-manager",
		[]string{"--kubeconfig", kc, "--leader-elect=false", "--port", "-1"}, logOut); err != nil {
		return "", err
	}
	if c.scheduler, err = skiffproc.StartClient(bin, "scheduler",
		[]string{"--kubeconfig", kc, "--leader-elect=false", "--port", "0"}, logOut); err != nil {
		return "", err
	}
	if c.sim, err = skiffproc.StartClient(bin, "sim", []string{"--kubeconfig", kc, "--nodes", fmt.Sprint(n)}, logOut); err != nil {
		return "", err
	}
	return kc, nil
}

// startUp runs skiff up with its own containerd and the bench's image imported, and returns
// the admin kubeconfig.
func (c *cluster) startUp(ctx context.Context, bin, tmp string, logOut io.Writer) (string, error) {
	if m := localcontainerd.Missing(); m != "" {
		return "", fmt.Errorf("--runtime=real needs a local containerd: %s", m)
	}
	images := filepath.Join(tmp, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		return "", err
	}
	img, err := ociimage.Busybox(realImage, "sleep", "3600")
	if err != nil {
		return "", err
	}
	if err := img.WriteFile(filepath.Join(images, "bench.tar")); err != nil {
		return "", err
	}
	c.up, err = skiffproc.Start(ctx, bin, "up", "--port", tmp+"/data", []string{"--image-dir", images}, logOut, nil)
	if err != nil {
		return "", err
	}
	return c.up.Kubeconfig, nil
}

// row is one line of the results.
type row struct {
	scenario string
	count    int
	wall     time.Duration
	p50, p99 time.Duration
	note     string
}

func printRows(w io.Writer, o options, rows []row) {
	if o.runtime == "real" {
		fmt.Fprintln(w, "\nskiff up: one node, real containers")
	} else {
		fmt.Fprintf(w, "\n%d simulated nodes\n", o.nodes)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tpods\twall\tpods/s\tp50\tp99\t\tnote")
	for _, r := range rows {
		rate := "-"
		if r.wall > 0 {
			rate = fmt.Sprintf("%.0f", float64(r.count)/r.wall.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\t%s\n", r.scenario, r.count, round(r.wall), rate, round(r.p50), round(r.p99), r.note)
	}
	tw.Flush()
}

func printMemory(w io.Writer, c *cluster) {
	fmt.Fprintln(w, "\nmemory (MiB)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\tRSS\tpeak\t")
	for _, p := range c.processes() {
		rss, peak, err := skiffproc.ReadRSS(p.p.Cmd.Process.Pid)
		if err != nil {
			fmt.Fprintf(tw, "%s\t%v\t\t\n", p.name, err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t\n", p.name, rss, peak)
	}
	tw.Flush()
}

func round(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(10 * time.Millisecond).String()
	}
}
