// Command skiff-bench puts a fixed load on a skiff API server through client-go and prints
// throughput and latency: pod creates, gets, lists, watch delivery, and the server's memory.
// By default it builds skiff, runs `skiff apiserver` (embedded etcd) on a fresh data directory and stops it at the end;
// with --kubeconfig it loads an existing cluster instead. See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/bench/skiffproc"
	"github.com/skiff-dev/skiff/bench/upstream"
)

type options struct {
	pods, workers, watchers, updates, listRepeats int

	kubeconfig  string
	pid         int
	skiff       string
	json        bool
	contentType string
	formats     bool
	scenario    string
	crds        int
	// the authorization scenario's RBAC bindings, rounds per mode, and its two modes
	bindings, rounds   int
	authorizationModes string
	// plane is skiff, upstream or both; upstream is where upstream's binaries are
	plane, upstream string
	// the listflood scenario's listing clients, the users they are, and how long each mode lasts
	clients, floodUsers int
	duration            time.Duration
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
	flag.StringVar(&o.scenario, "scenario", "pods", "pods (the load above), customresources (CRD create to served, and CR creates beside ConfigMap creates) webhook (ConfigMap creates without and with one no-op validating webhook) quota (pod creates without and with a ResourceQuota, --rounds rounds) or listflood (--clients clients LISTing --pods pods while another user GETs one)")
	flag.IntVar(&o.crds, "crds", 5, "with --scenario customresources: CustomResourceDefinitions to create and time, one at a time")
	flag.IntVar(&o.bindings, "bindings", 500, "with --scenario authorization: RoleBindings and ClusterRoleBindings of other subjects")
	flag.StringVar(&o.authorizationModes, "authorization-modes", defaultAuthorizationModes, "with --scenario authorization: the baseline's and the measured server's --authorization-mode, separated by ';'")
	flag.IntVar(&o.rounds, "rounds", 8, "with --scenario authorization: rounds of --pods creates and gets per authorization mode, alternating between the modes' servers; with --scenario quota: rounds of creates in each namespace")
	flag.IntVar(&o.clients, "clients", 500, "with --scenario listflood: concurrent clients LISTing all the pods, each on its own connection")
	flag.IntVar(&o.floodUsers, "flood-users", 5, "with --scenario listflood: distinct ordinary users the clients impersonate")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "with --scenario listflood: how long each resourceVersion mode's flood lasts")
	flag.StringVar(&o.plane, "control-plane", "skiff", "skiff (skiff apiserver), upstream (kube-apiserver 1.37.2 on etcd 3.7.3) or both, back to back with their ratios")
	flag.StringVar(&o.upstream, "upstream-bin", upstream.DefaultBinDir(), "upstream's binaries, from bench/upstream/build.sh")
	upstream.ServeEtcdIfAsked()
	flag.Parse()
	if o.plane != "skiff" && o.plane != "upstream" && o.plane != "both" {
		fmt.Fprintln(os.Stderr, "skiff-bench: --control-plane is skiff, upstream or both")
		os.Exit(2)
	}
	if o.plane != "skiff" && (o.kubeconfig != "" || (o.scenario != "pods" && o.scenario != "listflood")) {
		fmt.Fprintln(os.Stderr, "skiff-bench: --control-plane upstream or both starts its own servers, for --scenario pods or listflood")
		os.Exit(2)
	}
	if o.scenario != "pods" && o.scenario != "customresources" && o.scenario != "webhook" && o.scenario != "authorization" && o.scenario != "quota" && o.scenario != "listflood" {
		fmt.Fprintln(os.Stderr, "skiff-bench: --scenario is pods, customresources, webhook, authorization, quota or listflood")
		os.Exit(2)
	}
	if o.pods < 1 || o.workers < 1 || o.watchers < 1 || o.updates < 1 || o.listRepeats < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "skiff-bench: --pods, --workers, --watchers, --updates and --list-repeats must be at least 1, and there are no arguments")
		os.Exit(2)
	}
	if o.scenario == "listflood" && (o.clients < 1 || o.floodUsers < 1 || o.duration <= 0) {
		fmt.Fprintln(os.Stderr, "skiff-bench: --clients and --flood-users must be at least 1, and --duration more than 0")
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
	res := &results{
		ContentType: o.contentType, Pods: o.pods, Workers: o.workers, Watchers: o.watchers,
		Updates: o.updates, ListRepeats: o.listRepeats, Scenario: o.scenario,
	}
	if o.scenario == "customresources" {
		res.CRDs = o.crds
	}
	if o.scenario == "quota" {
		res.Rounds = o.rounds
	}
	if o.scenario == "listflood" {
		res.Clients, res.FloodUsers, res.DurationSeconds = o.clients, o.floodUsers, o.duration.Seconds()
	}
	if o.scenario == "authorization" {
		if o.kubeconfig != "" {
			return errors.New("--scenario authorization starts its own servers: no --kubeconfig")
		}
		res.Bindings, res.Rounds = o.bindings, o.rounds
		loadErr := runAuthorization(ctx, o, res)
		return errors.Join(loadErr, res.print(os.Stdout, o.json))
	}
	planes := map[string][]string{"skiff": {"skiff"}, "upstream": {"upstream"}, "both": {"skiff", "upstream"}}[o.plane]
	var all []*results
	for _, plane := range planes {
		r := *res
		if err := runPlane(ctx, o, plane, &r); err != nil {
			return fmt.Errorf("%s: %w", plane, err)
		}
		all = append(all, &r)
	}
	if len(all) == 2 && !o.json {
		printSideBySide(os.Stdout, all[0], all[1])
	}
	return nil
}

// runPlane starts a server of plane unless told of one, loads it, and prints the results.
func runPlane(ctx context.Context, o options, plane string, res *results) (err error) {
	progress := os.Stderr
	kubeconfig := o.kubeconfig
	var pids []int
	if o.pid > 0 {
		pids = []int{o.pid}
	}
	var servers []skiffproc.Named
	if kubeconfig == "" {
		tmp, err := os.MkdirTemp("", "skiff-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if plane == "upstream" {
			// kube-apiserver alone on its etcd; both processes' memory counts, as skiff's
			// API server holds its etcd inside
			cp, err := upstream.Start(ctx, upstream.Options{BinDir: o.upstream, Dir: tmp, Log: progress})
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, cp.Stop(progress)) }()
			servers, kubeconfig = cp.Processes, cp.Kubeconfig
			res.Server = "kube-apiserver 1.37.2 and etcd 3.7.3 (" + o.upstream + ")"
		} else {
			bin := o.skiff
			if bin == "" {
				if bin, err = skiffproc.Build(ctx, tmp, progress); err != nil {
					return err
				}
			}
			// the API server alone on embedded etcd, as the upstream figures were measured
			server, err := skiffproc.Start(ctx, bin, "apiserver", "--secure-port", filepath.Join(tmp, "data"),
				[]string{"--bind-address", "127.0.0.1"}, progress, nil)
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, server.Stop(progress)) }()
			servers, kubeconfig = []skiffproc.Named{{Name: "apiserver", P: server}}, server.Kubeconfig
			res.Server = "skiff apiserver (" + bin + ")"
		}
		for _, s := range servers {
			pids = append(pids, s.P.Cmd.Process.Pid)
		}
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
	if len(pids) > 0 {
		if res.IdleRSSMiB, _, err = readRSS(pids); err != nil {
			return err
		}
	}

	l := &load{client: client, config: cfg, opts: o, progress: progress, res: res}
	if len(pids) > 0 {
		l.pid, l.pids = pids[0], pids // the API server's own process, or kube-apiserver's below
	}
	for _, s := range servers {
		if s.Name == "kube-apiserver" {
			l.pid = s.P.Cmd.Process.Pid
		}
	}
	loadErr := l.run(ctx)
	if len(pids) > 0 {
		if res.RSSMiB, res.PeakRSSMiB, err = readRSS(pids); err != nil {
			return errors.Join(loadErr, err)
		}
	}
	if servers == nil && l.ns != "" {
		// An existing cluster keeps running: take the pods and the namespace away.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := deleteNamespace(cleanup, client, l.ns); err != nil {
			fmt.Fprintf(progress, "warning: cleaning up namespace %s: %v\n", l.ns, err)
		}
		if err := l.deleteCRDs(cleanup); err != nil {
			fmt.Fprintf(progress, "warning: deleting the bench's CustomResourceDefinitions: %v\n", err)
		}
	}
	for _, s := range servers {
		res.ServerLog = append(res.ServerLog, s.P.Problems()...)
	}
	return errors.Join(loadErr, res.print(os.Stdout, o.json))
}

// print writes the results, if any, as a table or as JSON.
func (r *results) print(w io.Writer, asJSON bool) error {
	if len(r.Rows) == 0 {
		return nil
	}
	if !asJSON {
		r.printTable(w)
		return nil
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// readRSS sums the resident memory of the server's processes, and their peaks, in MiB.
func readRSS(pids []int) (rss, peak float64, err error) {
	for _, pid := range pids {
		r, p, err := skiffproc.ReadRSS(pid)
		if err != nil {
			return 0, 0, err
		}
		rss, peak = rss+r, peak+p
	}
	return rss, peak, nil
}

// printSideBySide puts skiff's figures beside upstream's from the same load, back to back:
// the ratio is skiff's advantage (above 1: skiff is faster or smaller).
func printSideBySide(w io.Writer, skiff, up *results) {
	fmt.Fprintln(w, "\nside by side (ratio above 1: skiff is faster or smaller)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tskiff\tupstream\tratio\t")
	find := func(r *results, phase string) (row, bool) {
		for _, x := range r.Rows {
			if x.Phase == phase {
				return x, true
			}
		}
		return row{}, false
	}
	for _, phase := range []string{"create", "get"} {
		if s, ok := find(skiff, phase); ok {
			if u, ok := find(up, phase); ok && u.OpsPerSec > 0 {
				fmt.Fprintf(tw, "%ss/s\t%.0f\t%.0f\t%.2f\t\n", phase, s.OpsPerSec, u.OpsPerSec, s.OpsPerSec/u.OpsPerSec)
			}
		}
	}
	for _, x := range []struct{ phase, what string }{
		{listConsistent, "LIST p50 ms"}, {listAny, "LIST p50 ms"}, {"watch delivery", "p99 ms"},
	} {
		s, ok1 := find(skiff, x.phase)
		u, ok2 := find(up, x.phase)
		value := func(r row) float64 {
			if strings.HasSuffix(x.what, "p99 ms") {
				return r.P99Ms
			}
			return r.P50Ms
		}
		if ok1 && ok2 && value(s) > 0 {
			fmt.Fprintf(tw, "%s %s\t%.1f\t%.1f\t%.2f\t\n", x.phase, x.what, value(s), value(u), value(u)/value(s))
		}
	}
	if skiff.RSSMiB > 0 && up.RSSMiB > 0 {
		fmt.Fprintf(tw, "RSS after the load, MiB\t%.0f\t%.0f\t%.2f\t\n", skiff.RSSMiB, up.RSSMiB, up.RSSMiB/skiff.RSSMiB)
	}
	tw.Flush()
}
