// Command skiff-proxy-bench measures the service proxy and the cluster DNS on this machine:
//
//  1. rule sync: how long the proxy takes to program --services Services of --endpoints
//     endpoints each from nothing, and how long an EndpointSlice change takes, from the
//     request that makes it until the nft transaction carrying it has returned (checked by
//     reading the rules back with nft);
//  2. throughput: HTTP requests per second from a client network namespace to a server
//     "pod" in another, straight to the pod's IP and through a cluster IP, keep-alive off and
//     on, so that the difference is what the proxy's rules cost;
//  3. DNS: queries per second for Service names against the dns package's server.
//
// The proxy and the DNS server run in this process as `skiff proxy` and `skiff dns` run them,
// on informers of a real `skiff apiserver` child process. Everything runs in a network
// namespace the bench makes (it runs itself again inside one), so the proxy's nftables table,
// the sysctls it sets and the test links never touch the host's network; the namespaces go
// when the bench ends. It needs root, nft and ip. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/bench/skiffproc"
)

// netnsEnv marks the bench running inside the network namespace it made for itself.
const netnsEnv = "SKIFF_PROXY_BENCH_NETNS"

type options struct {
	services  int
	endpoints int
	changes   int
	duration  time.Duration
	rounds    int
	conns     int
	dnsConns  int
	phases    string
	skiff     string
	log       bool
}

func main() {
	// the helpers the bench runs in other namespaces: the server "pod" and the load generator
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve":
			skiffproc.ExitOn("skiff-proxy-bench", serveHTTP(os.Args[2:]))
			return
		case "load":
			skiffproc.ExitOn("skiff-proxy-bench", generateLoad(os.Args[2:]))
			return
		}
	}
	var o options
	flag.IntVar(&o.services, "services", 1000, "Services for the rule sync phase")
	flag.IntVar(&o.endpoints, "endpoints", 10, "endpoints of each of those Services")
	flag.IntVar(&o.changes, "changes", 200, "EndpointSlice changes timed one at a time")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of one throughput run")
	flag.IntVar(&o.rounds, "rounds", 3, "throughput runs per target and keep-alive setting")
	flag.IntVar(&o.conns, "conns", 8, "concurrent HTTP clients in a throughput run")
	flag.IntVar(&o.dnsConns, "dns-conns", 8, "concurrent DNS clients")
	flag.StringVar(&o.phases, "phases", "sync,throughput,dns", "phases to run, comma-separated")
	flag.StringVar(&o.skiff, "skiff", "", "skiff binary to run instead of building ./cmd/skiff")
	flag.BoolVar(&o.log, "log", false, "copy the API server's and the proxy's logs to standard error")
	flag.Parse()
	if o.services < 1 || o.endpoints < 1 || o.endpoints > 1000 || o.changes < 0 || o.rounds < 1 || o.rounds > 50 || o.conns < 1 || o.dnsConns < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "skiff-proxy-bench: counts must be at least 1 (--endpoints at most 1000, --rounds at most 50), and there are no arguments")
		os.Exit(2)
	}
	if os.Getenv(netnsEnv) == "" {
		skiffproc.ExitOn("skiff-proxy-bench", skiffproc.ReexecInNetns(netnsEnv, "nft", "ip"))
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "skiff-proxy-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	progress := os.Stderr
	var logOut io.Writer = io.Discard
	if o.log {
		logOut = progress
	}
	tmp, err := os.MkdirTemp("", "skiff-proxy-bench-")
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
	server, err := skiffproc.Start(ctx, bin, "apiserver", "--secure-port", filepath.Join(tmp, "data"),
		[]string{"--bind-address", "127.0.0.1"}, logOut, nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, server.Stop(progress)) }()
	cfg, err := clientcmd.BuildConfigFromFlags("", server.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = -1, 0
	cfg.UserAgent = "skiff-proxy-bench"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	b := &bench{o: o, client: client, progress: progress, logOut: logOut}
	defer b.stop()
	for _, phase := range splitPhases(o.phases) {
		switch phase {
		case "sync":
			err = b.syncPhase(ctx)
		case "throughput":
			err = b.throughputPhase(ctx)
		case "dns":
			err = b.dnsPhase(ctx)
		default:
			err = fmt.Errorf("no phase %q (sync, throughput, dns)", phase)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", phase, err)
		}
	}
	b.print(os.Stdout)
	for _, p := range server.Problems() {
		fmt.Fprintln(progress, "apiserver logged:", p)
	}
	return nil
}
