// Command skiff-ha-bench measures what three servers of one cluster cost and buy, on this
// machine, in network namespaces (as e2e/ha runs them): `skiff up --cluster-init` and two
// `skiff up --server` each in a namespace of its own on one bridge.
//
//   - failover: --kills times, kill -9 of the server whose scheduler holds the kube-scheduler
//     Lease; the time until another scheduler holds it, and until a pod created right after
//     the kill is bound to a node. The killed server is started again on its data directory
//     before the next kill.
//   - writes: skiff-bench's pods load (--pods creates by --workers workers, then its other
//     phases, kept short) against one `skiff up` on embedded etcd (in a fourth namespace,
//     up beside the three) and against one of the three servers on their three etcd
//     members, alternating for --rounds rounds; the create phases' throughputs, their
//     medians and the medians' ratio. Alternating spreads the machine's other load over both.
//
// It runs itself again in a network namespace of its own, which holds the bridge, and removes
// the servers' namespaces and data when it ends.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/bench/skiffproc"
	"github.com/skiff-dev/skiff/bench/stats"
)

const netnsEnv = "SKIFF_HA_BENCH_NETNS"

type options struct {
	kills   int
	rounds  int
	pods    int
	workers int
	phases  string
	skiff   string
	log     bool
}

func main() {
	var o options
	flag.IntVar(&o.kills, "kills", 5, "kill -9s of the scheduling leader in the failover phase")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of the writes phase, each against both clusters")
	flag.IntVar(&o.pods, "pods", 2000, "pods skiff-bench creates in the writes phase")
	flag.IntVar(&o.workers, "workers", 32, "skiff-bench's concurrent workers")
	flag.StringVar(&o.phases, "phases", "failover,writes", "phases to run, comma-separated")
	flag.StringVar(&o.skiff, "skiff", "", "skiff binary to run instead of building ./cmd/skiff")
	flag.BoolVar(&o.log, "log", false, "copy the servers' logs to standard error")
	flag.Parse()
	if o.kills < 1 || o.rounds < 1 || o.pods < 1 || o.workers < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "skiff-ha-bench: counts must be at least 1, and there are no arguments")
		os.Exit(2)
	}
	if os.Getenv(netnsEnv) == "" {
		skiffproc.ExitOn("skiff-ha-bench", skiffproc.ReexecInNetns(netnsEnv, "nft", "ip", "nsenter", "unshare"))
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	skiffproc.ExitOn("skiff-ha-bench", run(ctx, o))
}

// bench holds the machines: a bridge (10.78.0.254/24) and per server i a namespace with eth0
// 10.78.0.i and host name hab-i.
type bench struct {
	dir      string
	bin      string
	progress io.Writer
	netns    []string
	servers  map[int]*skiffproc.Process
	cleanups []func()
}

func serverIP(i int) string { return fmt.Sprintf("10.78.0.%d", i) }
func hostName(i int) string { return fmt.Sprintf("hab-%d", i) }

func run(ctx context.Context, o options) (err error) {
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	dir, err := os.MkdirTemp("", "skiff-ha-bench-")
	if err != nil {
		return err
	}
	b := &bench{dir: dir, progress: io.Discard, servers: map[int]*skiffproc.Process{}}
	if o.log {
		b.progress = os.Stderr
	}
	defer func() {
		for i := len(b.cleanups) - 1; i >= 0; i-- {
			b.cleanups[i]()
		}
		os.RemoveAll(dir)
	}()
	b.bin = o.skiff
	if b.bin == "" {
		if b.bin, err = skiffproc.Build(ctx, dir, os.Stderr); err != nil {
			return err
		}
	}
	benchBin := filepath.Join(dir, "skiff-bench")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", benchBin, "github.com/skiff-dev/skiff/bench/cmd/skiff-bench").CombinedOutput(); err != nil {
		return fmt.Errorf("go build skiff-bench: %v: %s", err, out)
	}
	if err := b.machines(4); err != nil {
		return err
	}
	has := func(p string) bool { return strings.Contains(","+o.phases+",", ","+p+",") }
	fmt.Printf("skiff-ha-bench: phases %s\n", o.phases)
	if err := b.startHA(ctx); err != nil {
		return err
	}
	if has("failover") {
		if err := b.failover(ctx, o.kills); err != nil {
			return err
		}
	}
	if !has("writes") {
		return nil
	}
	// one server on embedded etcd, on the fourth machine
	if _, err := b.start(4, "single"); err != nil {
		return err
	}
	var single, ha []float64
	for r := range o.rounds {
		s, err := b.creates(ctx, benchBin, filepath.Join(b.dataDir(4, "single"), "kubeconfig"), 4, o)
		if err != nil {
			return err
		}
		h, err := b.creates(ctx, benchBin, filepath.Join(b.dataDir(1, "ha"), "kubeconfig"), 1, o)
		if err != nil {
			return err
		}
		single, ha = append(single, s), append(ha, h)
		fmt.Printf("round %d: creates/s 1 server %.0f, 3 servers %.0f\n", r+1, s, h)
	}
	median := func(xs []float64) float64 {
		xs = slices.Sorted(slices.Values(xs))
		return xs[len(xs)/2]
	}
	fmt.Printf("\ncreates/s (skiff-bench, %d pods, %d workers), median of %d rounds\n", o.pods, o.workers, o.rounds)
	fmt.Printf("  1 server, embedded etcd:               %.0f  %v\n", median(single), single)
	fmt.Printf("  3 servers, 3 etcd members (server 1):  %.0f  %v\n", median(ha), ha)
	fmt.Printf("  ratio (3 servers / 1 server):          %.2f\n", median(ha)/median(single))
	return nil
}

// machines makes the bridge and n namespaces on it, each removed when the bench ends.
func (b *bench) machines(n int) error {
	run := func(args ...string) error {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, args := range [][]string{
		{"ip", "link", "add", "br-hab", "type", "bridge"},
		{"ip", "addr", "add", "10.78.0.254/24", "dev", "br-hab"},
		{"ip", "link", "set", "br-hab", "up"},
	} {
		if err := run(args...); err != nil {
			return err
		}
	}
	for i := 1; i <= n; i++ {
		ns := fmt.Sprintf("skiff-hab-%d-%d", os.Getpid(), i)
		if err := run("ip", "netns", "add", ns); err != nil {
			return err
		}
		b.cleanups = append(b.cleanups, func() { exec.Command("ip", "netns", "del", ns).Run() })
		veth := fmt.Sprintf("hab%d", i)
		for _, args := range [][]string{
			{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"ip", "link", "set", veth, "master", "br-hab"},
			{"ip", "link", "set", veth, "up"},
			{"ip", "-n", ns, "link", "set", "lo", "up"},
			{"ip", "-n", ns, "addr", "add", serverIP(i) + "/24", "dev", "eth0"},
			{"ip", "-n", ns, "link", "set", "eth0", "up"},
			{"ip", "-n", ns, "route", "add", "default", "via", "10.78.0.254"},
		} {
			if err := run(args...); err != nil {
				return err
			}
		}
		b.netns = append(b.netns, ns)
	}
	return nil
}

func (b *bench) dataDir(i int, cluster string) string {
	return filepath.Join(b.dir, fmt.Sprintf("%s-server%d", cluster, i))
}

// onMachine is the command line that runs skiff args on machine i under its host name.
func (b *bench) onMachine(i int, args ...string) []string {
	return append([]string{"nsenter", "--net=/run/netns/" + b.netns[i-1], "unshare", "--uts", "--",
		"sh", "-c", `hostname "$0" && exec "$@"`, hostName(i), b.bin}, args...)
}

// start runs skiff up on machine i for cluster ("single" or "ha") with extra flags, and waits
// until it is ready; it is stopped when the bench ends.
func (b *bench) start(i int, cluster string, extra ...string) (*skiffproc.Process, error) {
	line := b.onMachine(i, append([]string{"up", "--data-dir", b.dataDir(i, cluster), "--advertise-address", serverIP(i),
		"--container-runtime-endpoint=fake", "--disable-ingress"}, extra...)...)
	p, err := skiffproc.Run(fmt.Sprintf("%s-%d", cluster, i), line[0], line[1:], b.progress)
	if err != nil {
		return nil, err
	}
	b.servers[i] = p
	b.cleanups = append(b.cleanups, func() {
		select {
		case <-p.Exited():
		default:
			p.Stop(b.progress)
		}
	})
	if err := p.WaitReady(context.Background(), 5*time.Minute); err != nil {
		return nil, err
	}
	return p, nil
}

var serverJoin = regexp.MustCompile(`skiff up --server (\S+) --token (\S+) --ca-cert-hash (sha256:[0-9a-f]{64})`)

// startHA starts the three servers: the first with --cluster-init, the others joining it.
func (b *bench) startHA(ctx context.Context) error {
	start := time.Now()
	if _, err := b.start(1, "ha", "--cluster-init"); err != nil {
		return err
	}
	line := b.onMachine(1, "token", "create", "--server", "--kubeconfig", filepath.Join(b.dataDir(1, "ha"), "kubeconfig"))
	out, err := exec.CommandContext(ctx, line[0], line[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("skiff token create --server: %v: %s", err, out)
	}
	m := serverJoin.FindStringSubmatch(string(out))
	if m == nil {
		return fmt.Errorf("skiff token create --server printed %q", out)
	}
	for i := 2; i <= 3; i++ {
		if _, err := b.start(i, "ha", "--server", m[1], "--token", m[2], "--ca-cert-hash", m[3]); err != nil {
			return err
		}
	}
	fmt.Printf("three servers ready in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// client reaches server i of the HA cluster as the admin.
func (b *bench) client(i int) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(b.dataDir(1, "ha"), "kubeconfig"))
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Host = "https://" + serverIP(i) + ":6443"
	cfg.Timeout = 5 * time.Second
	cfg.QPS, cfg.Burst = -1, 0
	return kubernetes.NewForConfig(cfg)
}

// failover kills the scheduling leader kills times and times the new leader and a new pod's
// binding.
func (b *bench) failover(ctx context.Context, kills int) error {
	var toLeader, toBound []time.Duration
	for k := range kills {
		leader, holder, err := b.schedulerLeader(ctx)
		if err != nil {
			return err
		}
		survivor := leader%3 + 1
		c, err := b.client(survivor)
		if err != nil {
			return err
		}
		if err := b.servers[leader].Cmd.Process.Kill(); err != nil {
			return err
		}
		killed := time.Now()
		<-b.servers[leader].Exited()
		// a pod, created as soon as a survivor takes it, waits for the new leader to bind it
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("after-kill-%d", k), Namespace: "default"},
			Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To[int64](0),
				Containers: []corev1.Container{{Name: "main", Image: "skiff.local/busybox:1", ImagePullPolicy: corev1.PullNever}}},
		}
		for {
			if _, err := c.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(50 * time.Millisecond)
		}
		var leaderAt, boundAt time.Duration
		for leaderAt == 0 || boundAt == 0 {
			if time.Since(killed) > 3*time.Minute {
				return fmt.Errorf("kill %d: no new leader (%s) or binding (%s) within 3 minutes", k+1, leaderAt, boundAt)
			}
			if leaderAt == 0 {
				if l, err := c.CoordinationV1().Leases("kube-system").Get(ctx, "kube-scheduler", metav1.GetOptions{}); err == nil &&
					l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != holder && *l.Spec.HolderIdentity != "" {
					leaderAt = time.Since(killed)
				}
			}
			if boundAt == 0 {
				if p, err := c.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{}); err == nil && p.Spec.NodeName != "" {
					boundAt = time.Since(killed)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		toLeader, toBound = append(toLeader, leaderAt), append(toBound, boundAt)
		fmt.Printf("kill %d of %s: new scheduling leader after %s, the new pod bound after %s\n",
			k+1, hostName(leader), leaderAt.Round(10*time.Millisecond), boundAt.Round(10*time.Millisecond))
		_ = c.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		// the killed server comes back on its data dir, a member already: no token
		if _, err := b.start(leader, "ha"); err != nil {
			return fmt.Errorf("restarting %s: %w", hostName(leader), err)
		}
	}
	fmt.Printf("\nkill -9 of the scheduling leader, %d times\n", kills)
	for _, x := range []struct {
		what string
		ds   []time.Duration
	}{{"to a new leader", toLeader}, {"to the new pod bound", toBound}} {
		sorted := slices.Sorted(slices.Values(x.ds))
		fmt.Printf("  %-22s min %s  p50 %s  max %s\n", x.what, sorted[0].Round(10*time.Millisecond),
			stats.Percentile(sorted, 50).Round(10*time.Millisecond), sorted[len(sorted)-1].Round(10*time.Millisecond))
	}
	return nil
}

// schedulerLeader is the server whose scheduler holds the kube-scheduler Lease, and the
// holder's identity.
func (b *bench) schedulerLeader(ctx context.Context) (int, string, error) {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		for i := 1; i <= 3; i++ {
			c, err := b.client(i)
			if err != nil {
				return 0, "", err
			}
			l, err := c.CoordinationV1().Leases("kube-system").Get(ctx, "kube-scheduler", metav1.GetOptions{})
			if err != nil || l.Spec.HolderIdentity == nil {
				continue
			}
			for j := 1; j <= 3; j++ {
				if strings.HasPrefix(*l.Spec.HolderIdentity, hostName(j)+"_") {
					return j, *l.Spec.HolderIdentity, nil
				}
			}
		}
		time.Sleep(time.Second)
	}
	return 0, "", errors.New("no server's scheduler holds the kube-scheduler lease")
}

// creates runs skiff-bench's pods load against server i through kubeconfig and returns its
// create phase's throughput.
func (b *bench) creates(ctx context.Context, benchBin, kubeconfig string, i int, o options) (float64, error) {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return 0, err
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + serverIP(i) + ":6443"
	}
	through := filepath.Join(b.dir, "bench.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, through); err != nil {
		return 0, err
	}
	// the phases after the creates are kept short: only the creates are compared
	cmd := exec.CommandContext(ctx, benchBin, "--kubeconfig", through, "--pods", fmt.Sprint(o.pods), "--workers", fmt.Sprint(o.workers),
		"--watchers", "10", "--updates", "50", "--list-repeats", "1", "--json")
	cmd.Stderr = b.progress
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("skiff-bench: %w", err)
	}
	var res struct {
		Rows []struct {
			Phase     string  `json:"phase"`
			Errors    int     `json:"errors"`
			OpsPerSec float64 `json:"ops_per_sec"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("skiff-bench's results: %w", err)
	}
	for _, r := range res.Rows {
		if r.Phase == "create" {
			// failed creates (timeouts of a loaded etcd) are part of the result, not the end
			// of the bench: the throughput counts only the successful ones
			if r.Errors > 0 {
				fmt.Printf("  (%d of %d creates through %s failed)\n", r.Errors, o.pods, serverIP(i))
			}
			return r.OpsPerSec, nil
		}
	}
	return 0, errors.New("skiff-bench printed no create phase")
}
