package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/bench/stats"
)

// The throughput phase's network, inside the bench's namespace (the node):
//
//	client netns (10.244.2.10) ── veth ── node (10.244.2.1 | 10.244.1.1) ── veth ── pod netns (10.244.1.10:8080)
//
// Both paths are routed by the node, so the only difference between asking the pod's IP and
// asking the cluster IP is the proxy's rules: the DNAT, and conntrack's NAT on every packet.
const (
	podAddr    = "10.244.1.10"
	clientAddr = "10.244.2.10"
	podPort    = 8080
)

// body is what the server "pod" answers: a small page, as a health check or an API call.
var body = []byte(strings.Repeat("skiff-proxy-bench\n", 8))

type throughputRow struct {
	Target    string  `json:"target"`
	KeepAlive bool    `json:"keep_alive"`
	Round     int     `json:"round"`
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	PerSecond float64 `json:"per_second"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
}

// serveHTTP is the server "pod": `serve ADDR` answers every request with body.
func serveHTTP(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("serve ADDR")
	}
	l, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	fmt.Println("serving")
	return http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))
}

// generateLoad is the load generator: `load -url URL -duration D -conns N -keep-alive`
// prints one throughputRow as JSON.
func generateLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	url := fs.String("url", "", "")
	duration := fs.Duration("duration", 5*time.Second, "")
	conns := fs.Int("conns", 8, "")
	keepAlive := fs.Bool("keep-alive", false, "")
	source := fs.String("source", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if *source != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(*source)}
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:       dialer.DialContext,
		DisableKeepAlives: !*keepAlive, MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns,
	}}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      int
		wg        sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(*duration)
	for range *conns {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for time.Now().Before(end) {
				t := time.Now()
				resp, err := client.Get(*url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	wall := time.Since(start)
	slices.Sort(latencies)
	return json.NewEncoder(os.Stdout).Encode(throughputRow{
		KeepAlive: *keepAlive, Requests: len(latencies), Errors: errs,
		PerSecond: float64(len(latencies)) / wall.Seconds(),
		P50Ms:     ms(stats.Percentile(latencies, 50)), P99Ms: ms(stats.Percentile(latencies, 99)),
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// testNetwork is the two namespaces of the throughput phase; remove deletes them.
type testNetwork struct {
	pod, client string
	created     []string
}

func sh(args ...string) error {
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func newTestNetwork() (*testNetwork, error) {
	id := fmt.Sprint(os.Getpid())
	n := &testNetwork{pod: "skpb-pod-" + id, client: "skpb-client-" + id}
	steps := [][]string{
		{"ip", "link", "add", "vpod", "type", "veth", "peer", "name", "eth0", "netns", n.pod},
		{"ip", "addr", "add", "10.244.1.1/24", "dev", "vpod"},
		{"ip", "link", "set", "vpod", "up"},
		{"ip", "-n", n.pod, "link", "set", "lo", "up"},
		{"ip", "-n", n.pod, "addr", "add", podAddr + "/24", "dev", "eth0"},
		{"ip", "-n", n.pod, "link", "set", "eth0", "up"},
		{"ip", "-n", n.pod, "route", "add", "default", "via", "10.244.1.1"},
		{"ip", "link", "add", "vclient", "type", "veth", "peer", "name", "eth0", "netns", n.client},
		{"ip", "addr", "add", "10.244.2.1/24", "dev", "vclient"},
		{"ip", "link", "set", "vclient", "up"},
		{"ip", "-n", n.client, "link", "set", "lo", "up"},
		{"ip", "-n", n.client, "addr", "add", clientAddr + "/24", "dev", "eth0"},
		{"ip", "-n", n.client, "link", "set", "eth0", "up"},
		{"ip", "-n", n.client, "route", "add", "default", "via", "10.244.2.1"},
		// connections closed by the thousand: let the client reuse ports in TIME_WAIT
		{"ip", "netns", "exec", n.client, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65000"},
		{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
		// and forget finished connections soon, so that runs without keep-alive do not fill
		// the (host-wide) conntrack table; this namespace's setting only
		{"sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=2"},
	}
	for _, ns := range []string{n.pod, n.client} {
		if err := sh("ip", "netns", "add", ns); err != nil {
			n.remove()
			return nil, err
		}
		n.created = append(n.created, ns)
	}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			n.remove()
			return nil, err
		}
	}
	return n, nil
}

func (n *testNetwork) remove() {
	for _, ns := range n.created {
		_ = sh("ip", "netns", "del", ns)
	}
}

func (b *bench) throughputPhase(ctx context.Context) error {
	if err := b.ensureNamespace(ctx); err != nil {
		return err
	}
	if _, _, err := b.startProxy(ctx); err != nil {
		return err
	}
	n, err := newTestNetwork()
	if err != nil {
		return err
	}
	defer n.remove()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	server := exec.Command("ip", "netns", "exec", n.pod, self, "serve", fmt.Sprintf("%s:%d", podAddr, podPort))
	server.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	server.Stderr = b.progress
	ready, err := server.StdoutPipe()
	if err != nil {
		return err
	}
	if err := server.Start(); err != nil {
		return err
	}
	defer func() {
		server.Process.Kill()
		server.Wait()
	}()
	if _, err := io.ReadFull(ready, make([]byte, len("serving"))); err != nil {
		return fmt.Errorf("the server pod did not start: %w", err)
	}

	svc, err := b.client.CoreV1().Services(namespace).Create(ctx, service("echo"), metav1.CreateOptions{})
	if err != nil {
		return err
	}
	if _, err := b.client.DiscoveryV1().EndpointSlices(namespace).Create(ctx, endpointSlice("echo", []string{podAddr}), metav1.CreateOptions{}); err != nil {
		return err
	}
	targets := []struct{ name, url string }{
		{"pod IP", fmt.Sprintf("http://%s:%d/", podAddr, podPort)},
		{"cluster IP", fmt.Sprintf("http://%s:80/", svc.Spec.ClusterIP)},
	}
	// the rules are in place once the cluster IP answers from the client
	deadline := time.Now().Add(time.Minute)
	for {
		row, err := b.load(n, targets[1].url, clientAddr, false, 200*time.Millisecond)
		if err == nil && row.Requests > 0 && row.Errors == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster IP %s never answered: %+v %v", svc.Spec.ClusterIP, row, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	runs := 0
	for _, keepAlive := range []bool{false, true} {
		for round := range b.o.rounds {
			// alternate which goes first, so that neither always runs on a warmer machine
			order := []int{0, 1}
			if round%2 == 1 {
				order = []int{1, 0}
			}
			for _, t := range order {
				// each run from a source address of its own: a run without keep-alive goes
				// through most of the client's ports, and a port reused towards the same
				// server would meet the last run's TIME_WAIT there and in conntrack
				runs++
				source := fmt.Sprintf("10.244.2.%d", 10+runs)
				if err := sh("ip", "-n", n.client, "addr", "add", source+"/24", "dev", "eth0"); err != nil {
					return err
				}
				fmt.Fprintf(b.progress, "throughput: %s, keep-alive %v, round %d\n", targets[t].name, keepAlive, round+1)
				row, err := b.load(n, targets[t].url, source, keepAlive, b.o.duration)
				if err != nil {
					return err
				}
				row.Target, row.Round = targets[t].name, round+1
				b.throughput = append(b.throughput, row)
			}
		}
	}
	if err := b.client.CoreV1().Services(namespace).Delete(ctx, "echo", metav1.DeleteOptions{}); err != nil {
		return err
	}
	return b.client.DiscoveryV1().EndpointSlices(namespace).DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=echo"})
}

// load runs the load generator in the client namespace against url.
func (b *bench) load(n *testNetwork, url, source string, keepAlive bool, d time.Duration) (throughputRow, error) {
	self, err := os.Executable()
	if err != nil {
		return throughputRow{}, err
	}
	cmd := exec.Command("ip", "netns", "exec", n.client, self, "load", "-url", url, "-duration", d.String(),
		"-conns", fmt.Sprint(b.o.conns), "-source", source, fmt.Sprintf("-keep-alive=%v", keepAlive))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = b.progress
	out, err := cmd.Output()
	if err != nil {
		return throughputRow{}, fmt.Errorf("load generator: %w", err)
	}
	var row throughputRow
	if err := json.Unmarshal(out, &row); err != nil {
		return throughputRow{}, fmt.Errorf("load generator said %q: %w", out, err)
	}
	return row, nil
}
