// Package ha_test proves that three servers make one highly available cluster: `skiff up
// --cluster-init` on the first machine, `skiff up --server --token --ca-cert-hash` (from
// `skiff token create --server`) on two more, each a network namespace of its own with a host
// name of its own, all on one bridge. The three serve one API from one etcd cluster; after a
// kill -9 of the server whose scheduler leads, the other two go on answering, another
// scheduler takes the lead, the kubernetes Service drops the dead server, and no write that
// was acknowledged is lost. Cluster DNS goes on through the survivors' DNS servers, and an
// agent (a fourth namespace) that joined through the dead server keeps its node Ready and
// runs a new pod through its load balancer's other servers.
//
// The test process runs itself again in a network namespace of its own (netnstest), which
// holds the bridge; the servers' namespaces are made and removed by the test.
package ha_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/e2e/netnstest"
)

// The machines: a bridge in the test's namespace (10.79.0.254/24), and per server i a
// namespace skiff-ha-PID-i with eth0 10.79.0.i/24 and host name ha-i.
const bridgeIP = "10.79.0.254"

func serverIP(i int) string { return fmt.Sprintf("10.79.0.%d", i) }

func TestMain(m *testing.M) { os.Exit(netnstest.Main(m, nil)) }

// machines makes the bridge and n namespaces on it, removed when the test ends (after the
// servers have stopped: cleanups run last-in first-out), and returns the namespaces' names.
func machines(t *testing.T, n int) []string {
	t.Helper()
	netnstest.Run(t, "ip", "link", "add", "br-ha", "type", "bridge")
	netnstest.Run(t, "ip", "addr", "add", bridgeIP+"/24", "dev", "br-ha")
	netnstest.Run(t, "ip", "link", "set", "br-ha", "up")
	var names []string
	for i := 1; i <= n; i++ {
		ns := fmt.Sprintf("skiff-ha-%d-%d", os.Getpid(), i)
		netnstest.Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		host := fmt.Sprintf("ha%d", i)
		netnstest.Run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
		netnstest.Run(t, "ip", "link", "set", host, "master", "br-ha")
		netnstest.Run(t, "ip", "link", "set", host, "up")
		netnstest.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		netnstest.Run(t, "ip", "-n", ns, "addr", "add", serverIP(i)+"/24", "dev", "eth0")
		netnstest.Run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		netnstest.Run(t, "ip", "-n", ns, "route", "add", "default", "via", bridgeIP)
		names = append(names, ns)
	}
	return names
}

// onMachine is the command line that runs args in namespace ns under host name host.
func onMachine(ns, host string, args ...string) []string {
	return append([]string{"nsenter", "--net=/run/netns/" + ns, "unshare", "--uts", "--",
		"sh", "-c", `hostname "$0" && exec "$@"`, host}, args...)
}

// clientOf reaches server i's API server from the test's namespace as the admin.
func clientOf(t *testing.T, dataDir string, i int) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Host = "https://" + serverIP(i) + ":6443"
	cfg.Timeout = 10 * time.Second
	return kubernetes.NewForConfigOrDie(cfg)
}

const agentNode = "ha-agent"

var agentJoinCommand = regexp.MustCompile(`skiff agent --server (\S+) --token (\S+) --ca-cert-hash (sha256:[0-9a-f]{64})`)

var serverJoinCommand = regexp.MustCompile(`skiff up --server (\S+) --token (\S+) --ca-cert-hash (sha256:[0-9a-f]{64})`)

func TestThreeServersServeOneClusterAndSurviveTheLossOfOne(t *testing.T) {
	if testing.Short() {
		t.Skip("processes in network namespaces are skipped with -short")
	}
	if why := netnstest.Why(); why != "" {
		t.Skip(why)
	}
	for _, tool := range []string{"nft", "ip", "nsenter", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the test needs %s on PATH (apt-get install nftables iproute2 util-linux)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "skiff-ha-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "skiff")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/skiff-dev/skiff/cmd/skiff").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ns := machines(t, 4) // the fourth is the agent's
	dataDir := func(i int) string { return filepath.Join(dir, fmt.Sprintf("server%d", i)) }
	upArgs := func(i int, extra ...string) []string {
		return onMachine(ns[i-1], fmt.Sprintf("ha-%d", i), append([]string{bin, "up", "--data-dir", dataDir(i),
			"--advertise-address", serverIP(i), "--container-runtime-endpoint=fake", "--disable-ingress"}, extra...)...)
	}
	ready := regexp.MustCompile(`skiff is ready at `)

	servers := map[int]*netnstest.Process{}
	servers[1] = netnstest.Start(t, dir, "server1", upArgs(1, "--cluster-init")...)
	servers[1].WaitLog(t, ready, 3*time.Minute)

	tokenCreate := onMachine(ns[0], "ha-1", bin, "token", "create", "--server", "--kubeconfig", filepath.Join(dataDir(1), "kubeconfig"))
	out, err := exec.Command(tokenCreate[0], tokenCreate[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("skiff token create --server: %v: %s", err, out)
	}
	m := serverJoinCommand.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("skiff token create --server printed %q, want a 'skiff up --server' command", out)
	}
	if want := "https://" + serverIP(1) + ":6443"; m[1] != want {
		t.Errorf("the server join command names %s, want the first server's %s", m[1], want)
	}
	for i := 2; i <= 3; i++ {
		servers[i] = netnstest.Start(t, dir, fmt.Sprintf("server%d", i), upArgs(i, "--server", m[1], "--token", m[2], "--ca-cert-hash", m[3])...)
	}
	for i := 2; i <= 3; i++ {
		servers[i].WaitLog(t, ready, 4*time.Minute)
	}

	clients := map[int]kubernetes.Interface{}
	for i := 1; i <= 3; i++ {
		clients[i] = clientOf(t, dataDir(1), i)
	}
	ctx := context.Background()
	// one cluster: what one server writes, the others read; every server's node is there
	if _, err := clients[2].CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "from-2"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := clients[3].CoreV1().ConfigMaps("default").Get(ctx, "from-2", metav1.GetOptions{}); err != nil {
		t.Errorf("server 3 does not see what server 2 wrote: %v", err)
	}
	nodes, err := clients[1].CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"ha-1", "ha-2", "ha-3"}) {
		t.Errorf("nodes %v, want each server's", names)
	}
	waitEndpoints(t, clients[1], serverIP(1), serverIP(2), serverIP(3))
	// every server's DNS serves the cluster, and a name resolves through kube-dns's cluster IP
	waitDNSEndpoints(t, clients[1], serverIP(1), serverIP(2), serverIP(3))
	kubernetesIP := serviceIP(t, clients[1], "default", "kubernetes")
	resolveThroughClusterDNS(t, ns[0], clients[1], kubernetesIP)

	// the server whose scheduler leads is the one to lose
	leader := schedulerLeader(t, clients[1], "")
	victim := 0
	for i := 1; i <= 3; i++ {
		if strings.HasPrefix(leader, fmt.Sprintf("ha-%d_", i)) {
			victim = i
		}
	}
	if victim == 0 {
		t.Fatalf("the scheduler's lease is held by %q, none of the servers", leader)
	}
	var survivors []int
	for i := 1; i <= 3; i++ {
		if i != victim {
			survivors = append(survivors, i)
		}
	}

	// an agent joins through the server that is to die, and learns the others
	agentDir := filepath.Join(dir, "agent")
	tokenCreate = onMachine(ns[0], "ha-1", bin, "token", "create", "--kubeconfig", filepath.Join(dataDir(1), "kubeconfig"))
	out, err = exec.Command(tokenCreate[0], tokenCreate[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("skiff token create: %v: %s", err, out)
	}
	join := agentJoinCommand.FindStringSubmatch(string(out))
	if join == nil {
		t.Fatalf("skiff token create printed %q, want a 'skiff agent' command", out)
	}
	agent := netnstest.Start(t, dir, "agent", onMachine(ns[3], agentNode, bin, "agent", "--server", "https://"+serverIP(victim)+":6443",
		"--token", join[2], "--ca-cert-hash", join[3], "--data-dir", agentDir, "--node-name", agentNode,
		"--node-ip", serverIP(4), "--container-runtime-endpoint=fake")...)
	waitNodeReady(t, clients[1], agentNode)
	waitAgentKnowsServers(t, filepath.Join(agentDir, "api-servers.json"), serverIP(1), serverIP(2), serverIP(3))

	// writes through both survivors before, during and after the kill
	var (
		mu      sync.Mutex
		acked   []string
		stop    = make(chan struct{})
		writers sync.WaitGroup
	)
	for _, i := range survivors {
		writers.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("write-%d-%d", i, n)
				if _, err := clients[i].CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
					time.Sleep(100 * time.Millisecond) // not acknowledged: it may or may not be in
					continue
				}
				mu.Lock()
				acked = append(acked, name)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(2 * time.Second)
	if err := servers[victim].Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-servers[victim].Exited()
	killed := time.Now()
	t.Logf("killed server %d, whose scheduler (%s) led", victim, leader)

	newLeader := schedulerLeader(t, clients[survivors[0]], leader)
	t.Logf("the scheduler's lease moved to %s", newLeader)
	waitEndpoints(t, clients[survivors[0]], serverIP(survivors[0]), serverIP(survivors[1]))
	// the dead server's DNS leaves kube-dns, and names go on resolving on the survivors
	waitDNSEndpoints(t, clients[survivors[0]], serverIP(survivors[0]), serverIP(survivors[1]))
	for _, i := range survivors {
		resolveThroughClusterDNS(t, ns[i-1], clients[i], kubernetesIP)
	}

	// the agent's load balancer sees the dead server fail its health check
	agent.WaitLog(t, regexp.MustCompile(`API server failed its health check.* server=`+regexp.QuoteMeta(serverIP(victim)+":6443")), time.Minute)

	// the agent's kubelet goes on through another server: its node's Lease is renewed after
	// the kill, it stays Ready, and it runs a new pod
	waitNodeLeaseRenewedAfter(t, clients[survivors[0]], agentNode, killed)
	agentPod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "on-the-agent", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{"kubernetes.io/hostname": agentNode},
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []corev1.Container{{Name: "main", Image: "skiff.local/busybox:1", ImagePullPolicy: corev1.PullNever}},
		},
	}
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := clients[survivors[0]].CoreV1().Pods("default").Create(ctx, agentPod, metav1.CreateOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("no pod could be created for the agent after the kill: %v", err)
	}
	var phase corev1.PodPhase
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := clients[survivors[1]].CoreV1().Pods("default").Get(ctx, agentPod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		phase = p.Status.Phase
		return phase == corev1.PodRunning, nil
	}); err != nil {
		t.Errorf("the agent's pod created after the kill is %q, want Running", phase)
	}
	if n, err := clients[survivors[1]].CoreV1().Nodes().Get(ctx, agentNode, metav1.GetOptions{}); err != nil || !controllers.IsNodeReady(n) {
		t.Errorf("the agent's node after the kill: %v, Ready %v", err, n != nil && controllers.IsNodeReady(n))
	}

	// the new leader schedules: a pod gets a node
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "after-the-kill", Namespace: "default"},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []corev1.Container{{Name: "main", Image: "skiff.local/busybox:1", ImagePullPolicy: corev1.PullNever}},
		},
	}
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := clients[survivors[1]].CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("no pod could be created after the kill: %v", err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := clients[survivors[0]].CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && p.Spec.NodeName != "", nil
	}); err != nil {
		t.Errorf("the pod created after the kill was never scheduled")
	}

	close(stop)
	writers.Wait()
	for _, i := range survivors {
		list, err := clients[i].CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("listing through server %d: %v", i, err)
		}
		have := map[string]bool{}
		for _, cm := range list.Items {
			have[cm.Name] = true
		}
		var lost []string
		for _, name := range acked {
			if !have[name] {
				lost = append(lost, name)
			}
		}
		if len(lost) > 0 {
			t.Errorf("server %d lacks %d of %d acknowledged writes: %v", i, len(lost), len(acked), lost)
		}
	}
	t.Logf("%d writes acknowledged across the kill", len(acked))

	// the dead server's reset takes it out of the etcd cluster; the others snapshot it
	survivor := survivors[0]
	skiffOn := func(i int, args ...string) string {
		t.Helper()
		line := onMachine(ns[i-1], fmt.Sprintf("ha-%d", i), append([]string{bin}, args...)...)
		out, err := exec.Command(line[0], line[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("skiff %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := skiffOn(victim, "reset", "--data-dir", dataDir(victim)); !strings.Contains(out, fmt.Sprintf("removed etcd member ha-%d", victim)) {
		t.Errorf("skiff reset of the dead server said:\n%s\nwant its etcd member removed", out)
	}
	members := skiffOn(survivor, "etcd-member", "list", "--data-dir", dataDir(survivor))
	if strings.Count(strings.TrimSpace(members), "\n") != 1 || strings.Contains(members, fmt.Sprintf("ha-%d ", victim)) {
		t.Errorf("etcd members after removing ha-%d:\n%s", victim, members)
	}
	snapshot := strings.TrimSpace(skiffOn(survivor, "etcd-snapshot", "save", "--data-dir", dataDir(survivor)))
	if fi, err := os.Stat(snapshot); err != nil || fi.Size() == 0 {
		t.Errorf("etcd-snapshot save of an HA server printed %q: %v", snapshot, err)
	}
}

// schedulerLeader waits until kube-system/kube-scheduler's Lease is held by someone other
// than not (and not expired), and returns the holder.
func schedulerLeader(t *testing.T, client kubernetes.Interface, not string) string {
	t.Helper()
	var holder string
	if err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-scheduler", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return false, nil
		}
		holder = *l.Spec.HolderIdentity
		return holder != "" && holder != not, nil
	}); err != nil {
		t.Fatalf("no scheduler leader other than %q; last holder %q", not, holder)
	}
	return holder
}

// waitEndpoints waits until the kubernetes Service's endpoints are exactly ips.
func waitEndpoints(t *testing.T, client kubernetes.Interface, ips ...string) {
	t.Helper()
	var got []string
	if err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		ep, err := client.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = nil
		for _, ss := range ep.Subsets {
			for _, a := range ss.Addresses {
				got = append(got, a.IP)
			}
		}
		return slices.Equal(got, ips), nil
	}); err != nil {
		t.Fatalf("the kubernetes service's endpoints are %v, want %v", got, ips)
	}
}

// waitDNSEndpoints waits until kube-system/kube-dns's Endpoints, and the addresses of its
// EndpointSlices, are exactly ips.
func waitDNSEndpoints(t *testing.T, client kubernetes.Interface, ips ...string) {
	t.Helper()
	var fromEndpoints, fromSlices []string
	if err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		ep, err := client.CoreV1().Endpoints("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		fromEndpoints = nil
		for _, ss := range ep.Subsets {
			for _, a := range ss.Addresses {
				fromEndpoints = append(fromEndpoints, a.IP)
			}
		}
		list, err := client.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kube-dns"})
		if err != nil {
			return false, nil
		}
		fromSlices = nil
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if ptr.Deref(e.Conditions.Ready, true) {
					fromSlices = append(fromSlices, e.Addresses...)
				}
			}
		}
		slices.Sort(fromEndpoints)
		slices.Sort(fromSlices)
		return slices.Equal(fromEndpoints, ips) && slices.Equal(fromSlices, ips), nil
	}); err != nil {
		t.Fatalf("kube-dns's endpoints are %v and its slices' %v, want %v", fromEndpoints, fromSlices, ips)
	}
}

// serviceIP is the cluster IP of the Service ns/name.
func serviceIP(t *testing.T, client kubernetes.Interface, ns, name string) string {
	t.Helper()
	svc, err := client.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc.Spec.ClusterIP
}

// resolveThroughClusterDNS asks kube-dns's cluster IP, from the machine of network namespace
// netns, for kubernetes.default's address a number of times, each from a socket of its own
// (so the proxy picks an endpoint for each), once the machine's proxy routes the cluster IP
// to the endpoints kube-dns has now; every answer must be want.
func resolveThroughClusterDNS(t *testing.T, netns string, client kubernetes.Interface, want string) {
	t.Helper()
	dnsIP := serviceIP(t, client, "kube-system", "kube-dns")
	query := func() (string, error) {
		var c net.Conn
		if err := netnstest.InNetns(netns, func() (err error) {
			c, err = net.Dial("udp", net.JoinHostPort(dnsIP, "53"))
			return err
		}); err != nil {
			return "", err
		}
		defer c.Close()
		m := new(dns.Msg)
		m.SetQuestion("kubernetes.default.svc.cluster.local.", dns.TypeA)
		r, _, err := (&dns.Client{Timeout: 5 * time.Second}).ExchangeWithConn(m, &dns.Conn{Conn: c})
		if err != nil {
			return "", err
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				return a.A.String(), nil
			}
		}
		return "", fmt.Errorf("answer %s without an address", dns.RcodeToString[r.Rcode])
	}
	// the proxy may lag behind the slices: wait for a run of answers first
	var last error
	answered := 0
	if err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		if _, last = query(); last != nil {
			answered = 0
		} else {
			answered++
		}
		return answered == 6, nil
	}); err != nil {
		t.Fatalf("%s: kubernetes.default does not resolve through %s: %v", netns, dnsIP, last)
	}
	for range 12 {
		got, err := query()
		if err != nil {
			t.Errorf("%s: resolving kubernetes.default through %s: %v", netns, dnsIP, err)
		} else if got != want {
			t.Errorf("%s: kubernetes.default resolves to %s, want %s", netns, got, want)
		}
	}
}

// waitNodeReady waits until the Node name is Ready.
func waitNodeReady(t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		return err == nil && controllers.IsNodeReady(n), nil
	}); err != nil {
		t.Fatalf("node %s never became Ready", name)
	}
}

// waitAgentKnowsServers waits until the agent's load balancer has kept exactly the servers
// at ips (port 6443) in file.
func waitAgentKnowsServers(t *testing.T, file string, ips ...string) {
	t.Helper()
	var want []string
	for _, ip := range ips {
		want = append(want, ip+":6443")
	}
	var got []string
	if err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return false, nil
		}
		got = nil
		if err := json.Unmarshal(b, &got); err != nil {
			return false, nil
		}
		return slices.Equal(got, want), nil
	}); err != nil {
		t.Fatalf("the agent knows the API servers %v, want %v", got, want)
	}
}

// waitNodeLeaseRenewedAfter waits until the Lease of node name is renewed after after (the
// test and the kubelet share a clock).
func waitNodeLeaseRenewedAfter(t *testing.T, client kubernetes.Interface, name string, after time.Time) {
	t.Helper()
	var renewed time.Time
	if err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := client.CoordinationV1().Leases("kube-node-lease").Get(ctx, name, metav1.GetOptions{})
		if err != nil || l.Spec.RenewTime == nil {
			return false, nil
		}
		renewed = l.Spec.RenewTime.Time
		return renewed.After(after), nil
	}); err != nil {
		t.Fatalf("node %s's lease was last renewed at %s, not after the kill at %s", name, renewed, after)
	}
}
