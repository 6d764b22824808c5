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
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/bench/skiffproc"
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
	// the authorization scenario's RBAC bindings, and runs per mode
	bindings, rounds int
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
	flag.StringVar(&o.scenario, "scenario", "pods", "pods (the load above), customresources (CRD create to served, and CR creates beside ConfigMap creates) webhook (ConfigMap creates without and with one no-op validating webhook) or quota (pod creates without and with a ResourceQuota, --rounds rounds)")
	flag.IntVar(&o.crds, "crds", 5, "with --scenario customresources: CustomResourceDefinitions to create and time, one at a time")
	flag.IntVar(&o.bindings, "bindings", 500, "with --scenario authorization: RoleBindings and ClusterRoleBindings of other subjects")
	flag.IntVar(&o.rounds, "rounds", 2, "with --scenario authorization: servers started per authorization mode; with --scenario quota: rounds of creates in each namespace")
	flag.Parse()
	if o.scenario != "pods" && o.scenario != "customresources" && o.scenario != "webhook" && o.scenario != "authorization" && o.scenario != "quota" {
		fmt.Fprintln(os.Stderr, "skiff-bench: --scenario is pods, customresources, webhook, authorization or quota")
		os.Exit(2)
	}
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
		Updates: o.updates, ListRepeats: o.listRepeats, Scenario: o.scenario,
	}
	if o.scenario == "customresources" {
		res.CRDs = o.crds
	}
	if o.scenario == "quota" {
		res.Rounds = o.rounds
	}
	if o.scenario == "authorization" {
		if o.kubeconfig != "" {
			return errors.New("--scenario authorization starts its own servers: no --kubeconfig")
		}
		res.Bindings, res.Rounds = o.bindings, o.rounds
		loadErr := runAuthorization(ctx, o, res)
		if len(res.Rows) > 0 {
			if o.json {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return errors.Join(loadErr, err)
				}
			} else {
				res.printTable(os.Stdout)
			}
		}
		return loadErr
	}
	kubeconfig, pid := o.kubeconfig, o.pid
	var server *skiffproc.Process
	if kubeconfig == "" {
		tmp, err := os.MkdirTemp("", "skiff-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		bin := o.skiff
		if bin == "" {
			if bin, err = skiffproc.Build(ctx, tmp, progress); err != nil {
				return err
			}
		}
		// the API server alone on embedded etcd, as the upstream figures were measured
		server, err = skiffproc.Start(ctx, bin, "apiserver", "--secure-port", filepath.Join(tmp, "data"),
			[]string{"--bind-address", "127.0.0.1"}, progress, nil)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, server.Stop(progress)) }()
		kubeconfig, pid = server.Kubeconfig, server.Cmd.Process.Pid
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
		if res.IdleRSSMiB, _, err = skiffproc.ReadRSS(pid); err != nil {
			return err
		}
	}

	l := &load{client: client, config: cfg, opts: o, progress: progress, res: res, pid: pid}
	loadErr := l.run(ctx)
	if pid > 0 {
		if res.RSSMiB, res.PeakRSSMiB, err = skiffproc.ReadRSS(pid); err != nil {
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
		if err := l.deleteCRDs(cleanup); err != nil {
			fmt.Fprintf(progress, "warning: deleting the bench's CustomResourceDefinitions: %v\n", err)
		}
	}
	if server != nil {
		res.ServerLog = server.Problems()
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
