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
// startup scenario. With --control-plane=upstream it runs upstream's kube-apiserver,
// kube-controller-manager and kube-scheduler 1.37.2 instead, with kwok keeping the simulated
// nodes (bench/upstream); with --control-plane=both, skiff and then upstream, back to back on
// the same scenarios, and prints their ratios. The figures and the machine go into
// bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/skiff-dev/skiff/bench/skiffproc"
	"github.com/skiff-dev/skiff/bench/upstream"
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
	plane      string
	upstream   string
	kwok       bool
	// holdOnStall keeps the cluster up after a stalled rollout, for a look at it
	holdOnStall bool
	// heapProfiles is where skiff's parts' heap profiles are written at the end of a run
	heapProfiles string

	jobParallelism, statefulSetReplicas int
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
	flag.StringVar(&o.scenarios, "scenarios", "startup,replicaset,deployment,job,daemonset,statefulset",
		"comma-separated scenarios to run, in order: startup, replicaset, deployment, job, daemonset, statefulset, scale")
	flag.IntVar(&o.jobParallelism, "job-parallelism", 100, "parallelism of the job scenario's Job (its completions are --replicas)")
	flag.IntVar(&o.statefulSetReplicas, "statefulset-replicas", 100, "replicas of the statefulset scenario (OrderedReady)")
	flag.StringVar(&o.logFile, "log", "", "file for the components' logs; default standard error")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	flag.StringVar(&o.plane, "control-plane", "skiff", "skiff; upstream: kube-apiserver, kube-controller-manager, kube-scheduler 1.37.2 on etcd, with kwok's nodes; both: skiff then upstream, back to back, and their ratios")
	flag.StringVar(&o.upstream, "upstream-bin", upstream.DefaultBinDir(), "upstream's binaries, from bench/upstream/build.sh")
	flag.BoolVar(&o.kwok, "kwok", false, "skiff's simulated nodes are kwok's too (as upstream's always are), instead of skiff sim: the same nodes on both sides")
	flag.StringVar(&o.heapProfiles, "heap-profiles", "", "with skiff's parts: write the API server's, controller manager's and scheduler's heap profiles (after a GC) and goroutines into this directory once memory is measured")
	flag.BoolVar(&o.holdOnStall, "hold-on-stall", false, "after a stalled DaemonSet rollout, keep the cluster up until interrupted (to look at it) instead of going on")
	upstream.ServeEtcdIfAsked()
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

// cluster is the set of processes under test: skiff's parts on their own over simulated
// nodes, skiff up alone, or upstream's control plane with kwok's nodes.
type cluster struct {
	name  string
	procs []skiffproc.Named
	// pprof maps a part's name to the base URL of its plain-HTTP /debug/pprof/ (the API
	// server's is reached through the bench's client)
	pprof map[string]string
	// kwok says the bench creates the Nodes (kwok only keeps them), where skiff sim registers
	// its own
	kwok bool
}

func (c *cluster) add(name string, p *skiffproc.Process) {
	c.procs = append(c.procs, skiffproc.Named{Name: name, P: p})
}

// stop stops the processes in the reverse order of start: the nodes first, the API server last.
func (c *cluster) stop(logOut io.Writer) error {
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		errs = append(errs, c.procs[i].P.Stop(logOut))
	}
	c.procs = nil
	return errors.Join(errs...)
}

// result is what one run measured.
type result struct {
	plane  string
	rows   []row
	memory []memory
}

func run(ctx context.Context, o options) error {
	scenarios := strings.Split(o.scenarios, ",")
	for _, s := range scenarios {
		if !slices.Contains([]string{"startup", "replicaset", "deployment", "job", "daemonset", "statefulset", "scale"}, s) {
			return fmt.Errorf("unknown scenario %q", s)
		}
		if o.runtime == "real" && s != "startup" {
			return fmt.Errorf("--runtime=real runs one node: only the startup scenario fits it, not %q", s)
		}
	}
	if o.runtime != "sim" && o.runtime != "real" {
		return fmt.Errorf("--runtime is sim or real, not %q", o.runtime)
	}
	planes := map[string][]string{"skiff": {"skiff"}, "upstream": {"upstream"}, "both": {"skiff", "upstream"}}[o.plane]
	if planes == nil {
		return fmt.Errorf("--control-plane is skiff, upstream or both, not %q", o.plane)
	}
	if o.runtime == "real" && o.plane != "skiff" {
		return fmt.Errorf("--runtime=real runs skiff up; upstream's control plane runs on kwok's simulated nodes only")
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
	if bin == "" && slices.Contains(planes, "skiff") {
		if bin, err = skiffproc.Build(ctx, tmp, os.Stderr); err != nil {
			return err
		}
	}
	var results []result
	for _, plane := range planes {
		fmt.Fprintf(os.Stderr, "==== %s\n", plane)
		r, err := runOne(ctx, o, plane, bin, filepath.Join(tmp, plane), logOut, scenarios)
		printResult(os.Stdout, o, r)
		if err != nil {
			return fmt.Errorf("%s: %w", plane, err)
		}
		results = append(results, r)
	}
	if len(results) == 2 {
		printRatios(os.Stdout, results[0], results[1])
	}
	return nil
}

// runOne starts one control plane and its nodes, runs the scenarios on it, measures its
// memory and stops it.
func runOne(ctx context.Context, o options, plane, bin, dir string, logOut io.Writer, scenarios []string) (r result, err error) {
	r.plane = plane
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	c := &cluster{name: plane}
	defer func() {
		if stopErr := c.stop(logOut); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()
	var kc string
	switch {
	case plane == "upstream":
		kc, err = c.startUpstream(ctx, o.upstream, dir, logOut)
	case o.runtime == "real":
		kc, err = c.startUp(ctx, bin, dir, logOut)
		o.nodes = 1
	default:
		kc, err = c.startParts(ctx, bin, dir, o, logOut)
	}
	if err != nil {
		return r, err
	}

	b, err := newBench(kc, o)
	if err != nil {
		return r, err
	}
	started := time.Now()
	if err := b.waitNodes(ctx, c); err != nil {
		return r, err
	}
	fmt.Fprintf(os.Stderr, "%d nodes Ready and schedulable after %s\n", o.nodes, time.Since(started).Round(time.Millisecond))

	for _, s := range scenarios {
		fmt.Fprintf(os.Stderr, "== %s\n", s)
		var rows []row
		switch s {
		case "startup":
			rows, err = b.startupLatency(ctx, c)
		case "replicaset":
			rows, err = b.replicaSetScaleUp(ctx, c)
		case "deployment":
			rows, err = b.deploymentRollout(ctx, c)
		case "job":
			rows, err = b.jobCompletions(ctx, c)
		case "daemonset":
			rows, err = b.daemonSetRollout(ctx, c)
		case "statefulset":
			rows, err = b.statefulSetOrdered(ctx, c)
		case "scale":
			rows, err = b.scaleHeld(ctx, c)
		}
		r.rows = append(r.rows, rows...)
		if err != nil {
			// what the control plane holds when a scenario gives up (at the run's bound, say)
			// is still a figure: a lower bound on what it would hold at the end
			r.memory = measureMemory(c)
			b.writeHeapProfiles(ctx, c)
			return r, fmt.Errorf("%s: %w", s, err)
		}
	}
	r.memory = measureMemory(c)
	b.writeHeapProfiles(ctx, c)
	for _, p := range c.procs {
		if issues := p.P.Problems(); len(issues) > 0 {
			fmt.Fprintf(os.Stderr, "\n%s logged %d warnings or errors; the first:\n  %s\n", p.Name, len(issues), strings.Join(issues, "\n  "))
		}
	}
	return r, nil
}

// startParts runs the API server, the controller manager, the scheduler and n simulated
// nodes, each its own process, and returns the admin kubeconfig.
func (c *cluster) startParts(ctx context.Context, bin, tmp string, o options, logOut io.Writer) (string, error) {
	apiserver, err := skiffproc.Start(ctx, bin, "apiserver", "--secure-port", tmp+"/data",
		[]string{"--bind-address", "127.0.0.1"}, logOut, nil)
	if err != nil {
		return "", err
	}
	c.add("apiserver", apiserver)
	kc := apiserver.Kubeconfig
	cmPort, schedPort := "-1", "0"
	if o.heapProfiles != "" {
		c.pprof = map[string]string{}
		for _, port := range []*string{&cmPort, &schedPort} {
			free, err := skiffproc.FreePort()
			if err != nil {
				return "", err
			}
			*port = fmt.Sprint(free)
		}
		c.pprof["controller-manager"] = "http://127.0.0.1:" + cmPort
		c.pprof["scheduler"] = "http://127.0.0.1:" + schedPort
	}
	for _, part := range []struct {
		name string
		args []string
	}{
		{"controller-manager", []string{"--kubeconfig", kc, "--leader-elect=false", "--port", cmPort}},
		{"scheduler", []string{"--kubeconfig", kc, "--leader-elect=false", "--bind-address", "127.0.0.1", "--port", schedPort}},
		{"sim", []string{"--kubeconfig", kc, "--nodes", fmt.Sprint(o.nodes)}},
	} {
		if part.name == "sim" && o.kwok {
			continue
		}
		if c.pprof[part.name] != "" {
			part.args = append(part.args, "--profiling")
		}
		p, err := skiffproc.StartClient(bin, part.name, part.args, logOut)
		if err != nil {
			return "", err
		}
		c.add(part.name, p)
	}
	if o.kwok {
		p, err := upstream.StartKwok(o.upstream, kc, logOut)
		if err != nil {
			return "", err
		}
		c.add("kwok", p)
		c.kwok = true
	}
	return kc, nil
}

// startUpstream runs upstream's control plane with kwok for the nodes the bench creates, and
// returns the admin kubeconfig.
func (c *cluster) startUpstream(ctx context.Context, binDir, dir string, logOut io.Writer) (string, error) {
	cp, err := upstream.Start(ctx, upstream.Options{BinDir: binDir, Dir: dir, Log: logOut,
		ControllerManager: true, Scheduler: true, Kwok: true})
	if err != nil {
		return "", err
	}
	c.procs = append(c.procs, cp.Processes...)
	c.kwok = true
	return cp.Kubeconfig, nil
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
	up, err := skiffproc.Start(ctx, bin, "up", "--port", tmp+"/data", []string{"--image-dir", images}, logOut, nil)
	if err != nil {
		return "", err
	}
	c.add("up", up)
	return up.Kubeconfig, nil
}

// row is one line of the results.
type row struct {
	scenario string
	count    int
	wall     time.Duration
	p50, p99 time.Duration
	note     string
}

func printResult(w io.Writer, o options, r result) {
	switch {
	case o.runtime == "real":
		fmt.Fprintln(w, "\nskiff up: one node, real containers")
	case r.plane == "upstream":
		fmt.Fprintf(w, "\nupstream 1.37.2, %d kwok nodes\n", o.nodes)
	case o.kwok:
		fmt.Fprintf(w, "\nskiff, %d kwok nodes\n", o.nodes)
	default:
		fmt.Fprintf(w, "\nskiff, %d simulated nodes (skiff sim)\n", o.nodes)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tpods\twall\tpods/s\tp50\tp99\t\tnote")
	for _, r := range r.rows {
		rate := "-"
		if r.wall > 0 {
			rate = fmt.Sprintf("%.0f", float64(r.count)/r.wall.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\t%s\n", r.scenario, r.count, round(r.wall), rate, round(r.p50), round(r.p99), r.note)
	}
	tw.Flush()
	if len(r.memory) == 0 {
		return
	}
	fmt.Fprintln(w, "\nmemory (MiB)")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\tRSS\tpeak\tof RSS, files\tPSS\t")
	for _, m := range r.memory {
		if m.err != nil {
			fmt.Fprintf(tw, "%s\t%v\t\t\t\t\n", m.name, m.err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t\n", m.name, m.rss, m.peak, m.file, m.pss)
	}
	fmt.Fprintf(tw, "control plane\t%.0f\t\t\t%.0f\t\n", controlPlane(r, rssOf), controlPlane(r, pssOf))
	tw.Flush()
}

// memory is one process's resident memory at the end of a run.
type memory struct {
	name      string
	rss, peak float64
	// file is the part of rss that maps files (etcd's database)
	file float64
	// pss is rss with pages shared between processes (one binary's code) counted by share
	pss float64
	err error
}

func measureMemory(c *cluster) []memory {
	var out []memory
	for _, p := range c.procs {
		m := memory{name: p.Name}
		var mem skiffproc.Memory
		mem, m.err = skiffproc.ReadMemory(p.P.Cmd.Process.Pid)
		m.rss, m.peak, m.file, m.pss = mem.RSS, mem.Peak, mem.File, mem.PSS
		out = append(out, m)
	}
	return out
}

// nodeSide names the processes that stand in for the nodes, not part of the control plane.
var nodeSide = []string{"sim", "kwok"}

func rssOf(m memory) float64 { return m.rss }
func pssOf(m memory) float64 { return m.pss }

// controlPlane sums what of (rss or pss) a run's control-plane processes hold (etcd included:
// skiff embeds it in its API server).
func controlPlane(r result, of func(memory) float64) float64 {
	var sum float64
	for _, m := range r.memory {
		if !slices.Contains(nodeSide, m.name) {
			sum += of(m)
		}
	}
	return sum
}

// printRatios puts the two runs side by side: each scenario's wall time and the control
// plane's memory, with upstream's over skiff's (above 1: skiff is faster or smaller).
func printRatios(w io.Writer, skiff, up result) {
	fmt.Fprintln(w, "\nside by side (upstream / skiff: above 1 means skiff is faster or smaller)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tskiff\tupstream\tratio\t")
	for _, s := range skiff.rows {
		for _, u := range up.rows {
			if u.scenario != s.scenario {
				continue
			}
			if s.p99 == 0 || u.p99 == 0 {
				ratio := "-" // one side did not finish
				if s.wall > 0 && u.wall > 0 {
					ratio = fmt.Sprintf("%.2f", u.wall.Seconds()/s.wall.Seconds())
				}
				fmt.Fprintf(tw, "%s wall\t%s\t%s\t%s\t\n", s.scenario, round(s.wall), round(u.wall), ratio)
				continue
			}
			// a paced scenario: its wall time is the pace's, its latencies are what differs
			fmt.Fprintf(tw, "%s p50\t%s\t%s\t%.2f\t\n", s.scenario, round(s.p50), round(u.p50), u.p50.Seconds()/s.p50.Seconds())
			fmt.Fprintf(tw, "%s p99\t%s\t%s\t%.2f\t\n", s.scenario, round(s.p99), round(u.p99), u.p99.Seconds()/s.p99.Seconds())
		}
	}
	for _, total := range []struct {
		name string
		of   func(memory) float64
	}{{"RSS", rssOf}, {"PSS", pssOf}} {
		sm, um := controlPlane(skiff, total.of), controlPlane(up, total.of)
		if sm > 0 && um > 0 {
			fmt.Fprintf(tw, "control plane %s (MiB)\t%.0f\t%.0f\t%.2f\t\n", total.name, sm, um, um/sm)
		}
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

// heapProfiles are what --heap-profiles writes of each part, by file suffix: the heap after a
// GC (for go tool pprof); the same as text, which ends with the runtime's memory statistics
// (what the heap holds beside its live objects); the goroutines' stacks, which show what
// holds a watch.
var heapProfiles = map[string]string{".heap": "heap?gc=1", ".heap.txt": "heap?debug=1", ".goroutines": "goroutine?debug=1"}

// writeHeapProfiles writes each profiled part's heapProfiles into --heap-profiles as
// <part><suffix>. Failures are reported, not fatal: the profiles are a look inside, not a
// figure of the run.
func (b *bench) writeHeapProfiles(ctx context.Context, c *cluster) {
	if b.o.heapProfiles == "" || c.pprof == nil {
		return
	}
	if err := os.MkdirAll(b.o.heapProfiles, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "heap profiles: %v\n", err)
		return
	}
	// fetch reads /debug/pprof/<path> of a part: the API server's through the bench's client,
	// the others' over their plain HTTP
	fetch := func(name, path string) ([]byte, error) {
		base, ok := c.pprof[name]
		if !ok {
			return b.client.CoreV1().RESTClient().Get().RequestURI("/debug/pprof/" + path).DoRaw(ctx)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/pprof/"+path, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s", resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
	names := append([]string{"apiserver"}, slices.Sorted(maps.Keys(c.pprof))...)
	for suffix, path := range heapProfiles {
		for _, name := range names {
			data, err := fetch(name, path)
			file := filepath.Join(b.o.heapProfiles, name+suffix)
			if err == nil {
				err = os.WriteFile(file, data, 0o644)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s of %s: %v\n", path, name, err)
				continue
			}
			fmt.Fprintf(os.Stderr, "%s of %s: %s\n", path, name, file)
		}
	}
}
