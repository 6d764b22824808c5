// Command skiff-cluster-bench measures the cluster as a whole on simulated nodes: pod startup
// latency as SIG Scalability defines it, a ReplicaSet scaled from 0 to many replicas until all
// run, a Deployment created and rolled out, and how many nodes and pods `skiff sim` holds in
// how much memory.
//
// It builds skiff, runs `skiff apiserver`, `skiff controller-manager`, `skiff scheduler` and
// `skiff sim --nodes N` as separate processes (so each one's memory is its own), waits for the
// N nodes to be Ready and schedulable, runs the scenarios, prints the results and stops
// everything. The figures and the machine go into bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/skiff-dev/skiff/bench/skiffproc"
)

type options struct {
	skiff     string
	nodes     int
	replicas  int
	startup   int
	scale     int
	scenarios string
	logFile   string
	timeout   time.Duration
}

func main() {
	o := options{}
	flag.StringVar(&o.skiff, "skiff", "", "skiff binary to run; default: build ./cmd/skiff into a temporary directory")
	flag.IntVar(&o.nodes, "nodes", 100, "simulated nodes (skiff sim --nodes)")
	flag.IntVar(&o.replicas, "replicas", 1000, "replicas of the ReplicaSet and Deployment scenarios")
	flag.IntVar(&o.startup, "startup-pods", 100, "pods of the startup-latency scenario")
	flag.IntVar(&o.scale, "scale-pods", 30000, "pods of the scale scenario, in ReplicaSets of --replicas")
	flag.StringVar(&o.scenarios, "scenarios", "startup,replicaset,deployment",
		"comma-separated scenarios to run, in order: startup, replicaset, deployment, scale")
	flag.StringVar(&o.logFile, "log", "", "file for the components' logs; default standard error")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "skiff-cluster-bench:", err)
		os.Exit(1)
	}
}

// cluster is the set of skiff processes under test.
type cluster struct {
	apiserver, controllers, scheduler, sim *skiffproc.Process
}

func (c *cluster) processes() map[string]*skiffproc.Process {
	return map[string]*skiffproc.Process{
		"apiserver": c.apiserver, "controller-manager": c.controllers, "scheduler": c.scheduler, "sim": c.sim,
	}
}

func run(ctx context.Context, o options) (err error) {
	scenarios := strings.Split(o.scenarios, ",")
	for _, s := range scenarios {
		if !slices.Contains([]string{"startup", "replicaset", "deployment", "scale"}, s) {
			return fmt.Errorf("unknown scenario %q", s)
		}
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
		for _, p := range []*skiffproc.Process{c.sim, c.scheduler, c.controllers, c.apiserver} {
			if p != nil {
				if stopErr := p.Stop(logOut); stopErr != nil {
					err = errors.Join(err, stopErr)
				}
			}
		}
	}()
	c.apiserver, err = skiffproc.Start(ctx, bin, "apiserver", "--secure-port", tmp+"/data",
		[]string{"--bind-address", "127.0.0.1"}, logOut, nil)
	if err != nil {
		return err
	}
	kc := c.apiserver.Kubeconfig
	if c.controllers, err = skiffproc.StartClient(bin, "controller-manager",
		[]string{"--kubeconfig", kc, "--leader-elect=false", "--port", "-1"}, logOut); err != nil {
		return err
	}
	if c.scheduler, err = skiffproc.StartClient(bin, "scheduler",
		[]string{"--kubeconfig", kc, "--leader-elect=false", "--port", "0"}, logOut); err != nil {
		return err
	}
	if c.sim, err = skiffproc.StartClient(bin, "sim", []string{"--kubeconfig", kc, "--nodes", fmt.Sprint(o.nodes)}, logOut); err != nil {
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
	for name, p := range c.processes() {
		if issues := p.Problems(); len(issues) > 0 {
			fmt.Printf("\n%s logged %d warnings or errors; the first:\n  %s\n", name, len(issues), strings.Join(issues, "\n  "))
		}
	}
	return nil
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
	fmt.Fprintf(w, "\n%d simulated nodes\n", o.nodes)
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
	names := []string{"apiserver", "controller-manager", "scheduler", "sim"}
	procs := c.processes()
	for _, n := range names {
		rss, peak, err := skiffproc.ReadRSS(procs[n].Cmd.Process.Pid)
		if err != nil {
			fmt.Fprintf(tw, "%s\t%v\t\t\n", n, err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t\n", n, rss, peak)
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
