// Package crashsafety_test proves that `skiff up` survives a kill -9 with running pods and
// leaves nothing on the host once stopped or reset: the real `skiff` binary, its own containerd
// running busybox pods, killed and restarted as a crash and a service manager would.
//
// The test process runs itself again in a network namespace of its own (TestMain): the pods'
// bridge, veths, CNI rules, nftables tables and routes skiff up makes are then the tests'
// alone, and whatever a test asserts gone cannot be another cluster's. Pod network namespaces
// and cgroups are the host's, but named by each pod's sandbox and UID.
//
// The chaos tests (chaos_test.go, componentchaos_test.go) kill skiff up, or one part at a
// time of a cluster run as separate processes, under a client-go load, and check what the
// clients saw and that the cluster converges.
//
// SKIFF_CRASH_PODS sets how many pods run through the kill (default 3; `make crash-safety`
// runs the 20).
package crashsafety_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/e2e/netnstest"
	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
	"github.com/skiff-dev/skiff/kubelet/ociimage"
	"github.com/skiff-dev/skiff/kubelet/podcgroups"
)

// busyboxImage is imported into skiff up's containerd by --image-dir.
const busyboxImage = "skiff.local/busybox:1"

var binDir string

func TestMain(m *testing.M) {
	code := netnstest.Main(m, nodeNetwork)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// nodeNetwork gives the namespace an address that is not loopback, for the node's InternalIP,
// on an empty bridge (the kernel here has no dummy links).
func nodeNetwork() error {
	for _, args := range [][]string{
		{"ip", "link", "add", "node0", "type", "bridge"},
		{"ip", "addr", "add", "172.30.0.1/24", "dev", "node0"},
		{"ip", "link", "set", "node0", "up"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func requireRealNode(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("tests that start skiff up with containerd are skipped with -short")
	}
	if why := netnstest.Why(); why != "" {
		t.Skip(why)
	}
	if m := localcontainerd.Missing(); m != "" {
		t.Skipf("containerd cannot run here: %s; .ci/kubelet-deps.sh installs what it needs", m)
	}
	for _, bin := range []string{"nft", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed", bin)
		}
	}
}

func podCount() int {
	if n, err := strconv.Atoi(os.Getenv("SKIFF_CRASH_PODS")); err == nil && n > 0 {
		return n
	}
	return 3
}

var buildOnce sync.Once

// skiffBinary builds skiff once for the package's tests.
func skiffBinary(t *testing.T) string {
	t.Helper()
	var err error
	var out []byte
	buildOnce.Do(func() {
		if binDir, err = os.MkdirTemp("", "skiff-crash-bin-"); err != nil {
			return
		}
		out, err = exec.Command("go", "build", "-o", filepath.Join(binDir, "skiff"), "github.com/skiff-dev/skiff/cmd/skiff").CombinedOutput()
	})
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bin := filepath.Join(binDir, "skiff")
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("skiff was not built")
	}
	return bin
}

// cluster is one data directory and the skiff up running on it, if any.
type cluster struct {
	t        *testing.T
	bin      string
	dataDir  string
	imageDir string
	// flags are skiff up's beyond --data-dir; default: --image-dir with busybox
	flags  []string
	up     *exec.Cmd
	client kubernetes.Interface
	config *rest.Config
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	bin := skiffBinary(t)
	// short: containerd's socket lives beneath it
	dataDir, err := os.MkdirTemp("", "skiff-crash-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bin: bin, dataDir: dataDir, imageDir: t.TempDir()}
	img, err := ociimage.Busybox(busyboxImage)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(c.imageDir, "busybox.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if err := img.WriteOCI(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// whatever the test did, nothing of its cluster outlives it: skiff reset is the tool
	t.Cleanup(func() {
		c.kill()
		if _, err := os.Stat(dataDir); err == nil {
			if out, err := exec.Command(bin, "reset", "--data-dir", dataDir).CombinedOutput(); err != nil {
				t.Logf("cleanup: skiff reset: %v\n%s", err, out)
			}
		}
		os.RemoveAll(dataDir)
	})
	return c
}

// start starts skiff up and waits until it says it is ready.
func (c *cluster) start() {
	t := c.t
	t.Helper()
	flags := c.flags
	if flags == nil {
		flags = []string{"--image-dir", c.imageDir}
	}
	cmd := exec.Command(c.bin, append([]string{"up", "--data-dir", c.dataDir}, flags...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.OpenFile(filepath.Join(c.dataDir, "..", filepath.Base(c.dataDir)+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("skiff up's log:\n%s", lastLines(string(b), 60))
		}
		os.Remove(log.Name())
	})
	cmd.Stderr = log
	// a killed go test kills skiff up too
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.up = cmd
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "skiff is ready") {
				close(ready)
			}
		}
		log.Close()
	}()
	select {
	case <-ready:
	case <-time.After(3 * time.Minute):
		t.Fatal("skiff up did not say it was ready within 3 minutes")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(c.dataDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	c.config = cfg
	c.client = kubernetes.NewForConfigOrDie(cfg)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kill is kill -9 of skiff up, when it runs.
func (c *cluster) kill() {
	if c.up == nil || c.up.ProcessState != nil {
		return
	}
	_ = c.up.Process.Kill()
	_ = c.up.Wait()
}

// stop is SIGTERM, as a service manager stops skiff up; it must exit 0.
func (c *cluster) stop() {
	t := c.t
	t.Helper()
	if err := c.up.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.up.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("skiff up after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(2 * time.Minute):
		c.kill()
		t.Fatal("skiff up did not stop within 2 minutes of SIGTERM")
	}
}

// runPods creates n busybox pods and waits until every one runs.
func (c *cluster) runPods(n int) []*corev1.Pod {
	t := c.t
	t.Helper()
	ctx := context.Background()
	grace := int64(1)
	for i := range n {
		if _, err := c.client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("sleeper-%d", i), Labels: map[string]string{"app": "sleeper"}},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: &grace,
				Containers: []corev1.Container{{
					Name: "sleep", Image: busyboxImage, ImagePullPolicy: corev1.PullNever,
					Command: []string{"sleep", "3600"},
				}},
			},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return c.waitPodsRunning(n)
}

// waitPodsRunning waits until n pods run with their container ready, and returns them.
func (c *cluster) waitPodsRunning(n int) []*corev1.Pod {
	t := c.t
	t.Helper()
	var pods []*corev1.Pod
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=sleeper"})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		pods = pods[:0]
		running := 0
		for i := range list.Items {
			p := &list.Items[i]
			pods = append(pods, p)
			if p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready {
				running++
			}
		}
		last = fmt.Sprintf("%d of %d pods running", running, len(list.Items))
		return running == n && len(list.Items) == n, nil
	})
	if err != nil {
		t.Fatalf("pods never all ran: %s", last)
	}
	return pods
}

// runtimeState is what skiff up's containerd holds, through CRI, by pod UID.
type runtimeState struct {
	sandboxes  map[types.UID][]*runtimeapi.PodSandbox
	containers map[types.UID][]*runtimeapi.Container
}

func (c *cluster) runtimeState() runtimeState {
	c.t.Helper()
	s, err := c.tryRuntimeState()
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

func (c *cluster) tryRuntimeState() (runtimeState, error) {
	conn, err := grpc.NewClient("unix://"+localcontainerd.SocketIn(filepath.Join(c.dataDir, "containerd")), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return runtimeState{}, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	sandboxes, err := rs.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return runtimeState{}, fmt.Errorf("CRI ListPodSandbox: %w", err)
	}
	containers, err := rs.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return runtimeState{}, fmt.Errorf("CRI ListContainers: %w", err)
	}
	s := runtimeState{sandboxes: map[types.UID][]*runtimeapi.PodSandbox{}, containers: map[types.UID][]*runtimeapi.Container{}}
	for _, sb := range sandboxes.Items {
		uid := types.UID(sb.Metadata.Uid)
		s.sandboxes[uid] = append(s.sandboxes[uid], sb)
	}
	for _, ct := range containers.Containers {
		uid := types.UID(ct.Labels["io.kubernetes.pod.uid"])
		s.containers[uid] = append(s.containers[uid], ct)
	}
	return s, nil
}

// waitOneOfEach waits until the runtime holds one ready sandbox and one running container of
// every pod and nothing else (a restarted skiff up's containerd and kubelet take their time
// after the API already says Running, from before the kill), and returns that state.
func (c *cluster) waitOneOfEach(pods []*corev1.Pod) runtimeState {
	t := c.t
	t.Helper()
	var s runtimeState
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 3*time.Minute, true, func(context.Context) (bool, error) {
		if s, last = c.tryRuntimeState(); last != nil {
			return false, nil
		}
		return len(oneOfEachProblems(pods, s)) == 0, nil
	})
	if err != nil {
		if last != nil {
			t.Fatalf("the runtime never held one sandbox and container per pod: %v", last)
		}
		checkOneOfEach(t, pods, s) // says what is wrong
		t.FailNow()
	}
	return s
}

// checkOneOfEach asserts that every pod has exactly one sandbox, ready, and one container,
// running, and that the runtime holds nothing else.
func checkOneOfEach(t *testing.T, pods []*corev1.Pod, s runtimeState) {
	t.Helper()
	for _, p := range oneOfEachProblems(pods, s) {
		t.Error(p)
	}
}

func oneOfEachProblems(pods []*corev1.Pod, s runtimeState) []string {
	var problems []string
	for _, p := range pods {
		sbs, cts := s.sandboxes[p.UID], s.containers[p.UID]
		if len(sbs) != 1 || sbs[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
			problems = append(problems, fmt.Sprintf("pod %s has %d sandboxes (%v), want one, ready", p.Name, len(sbs), sandboxStates(sbs)))
		}
		if len(cts) != 1 || cts[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			problems = append(problems, fmt.Sprintf("pod %s has %d containers (%v), want one, running", p.Name, len(cts), containerStates(cts)))
		}
	}
	if len(s.sandboxes) != len(pods) {
		problems = append(problems, fmt.Sprintf("the runtime holds sandboxes of %d pods, want %d", len(s.sandboxes), len(pods)))
	}
	if len(s.containers) != len(pods) {
		problems = append(problems, fmt.Sprintf("the runtime holds containers of %d pods, want %d", len(s.containers), len(pods)))
	}
	return problems
}

func sandboxStates(sbs []*runtimeapi.PodSandbox) []string {
	var out []string
	for _, s := range sbs {
		out = append(out, s.Id[:12]+" "+s.State.String())
	}
	return out
}

func containerStates(cts []*runtimeapi.Container) []string {
	var out []string
	for _, c := range cts {
		out = append(out, c.Id[:12]+" "+c.State.String())
	}
	return out
}

// podBridge is the name of the pods' bridge in skiff up's CNI config.
func (c *cluster) podBridge() string {
	t := c.t
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dataDir, "containerd", "cni", "net.d", "10-skiff.conflist"))
	if err != nil {
		t.Fatalf("no pod network config: %v", err)
	}
	var conf struct{ Plugins []struct{ Bridge string } }
	if err := json.Unmarshal(b, &conf); err != nil || len(conf.Plugins) == 0 || conf.Plugins[0].Bridge == "" {
		t.Fatalf("pod network config %s: %v", b, err)
	}
	return conf.Plugins[0].Bridge
}

func (c *cluster) leftovers() localcontainerd.Leftovers {
	c.t.Helper()
	l, err := localcontainerd.FindLeftovers(c.dataDir)
	if err != nil {
		c.t.Fatal(err)
	}
	return l
}

// vethLinks lists the veth links of this network namespace: the host ends of pods' links.
func vethLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show", "type", "veth").Output()
	if err != nil {
		t.Fatalf("ip link show type veth: %v", err)
	}
	var links []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			links = append(links, strings.TrimSuffix(f[1], ":"))
		}
	}
	return links
}

func nftTables(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		t.Fatalf("nft list tables: %v", err)
	}
	return string(out)
}

func natRules(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables", "-t", "nat", "-S").Output()
	if err != nil {
		t.Fatalf("iptables -t nat -S: %v", err)
	}
	return string(out)
}

func TestPodsRunAgainAfterKill9WithNoDuplicatesAndACleanStopLeavesNothing(t *testing.T) {
	requireRealNode(t)
	n := podCount()
	c := newCluster(t)
	c.start()
	pods := c.runPods(n)
	before := c.runtimeState()
	checkOneOfEach(t, pods, before)

	c.kill()
	c.start()
	again := c.waitPodsRunning(n)
	for i, p := range again {
		if p.UID != pods[i].UID {
			t.Fatalf("pod %s is another pod after the restart (uid %s, was %s)", p.Name, p.UID, pods[i].UID)
		}
	}
	c.waitOneOfEach(again)
	// and it stays so: no second sandbox or container comes after a while
	time.Sleep(5 * time.Second)
	after := c.runtimeState()
	checkOneOfEach(t, again, after)
	// a killed skiff up leaves its containerd and containers running: the new one adopts
	// them rather than starting the pods over
	for _, p := range again {
		if b, a := before.containers[p.UID], after.containers[p.UID]; len(b) == 1 && len(a) == 1 && b[0].Id != a[0].Id {
			t.Logf("pod %s's container was started again (%s, was %s)", p.Name, a[0].Id[:12], b[0].Id[:12])
		}
	}
	l := c.leftovers()
	if len(l.NetworkNamespaces) != n {
		t.Errorf("%d pod network namespaces for %d pods: %v", len(l.NetworkNamespaces), n, l.NetworkNamespaces)
	}
	if len(l.PodUIDs) != n {
		t.Errorf("processes in the cgroups of %d pods, want %d: %v", len(l.PodUIDs), n, l.PodUIDs)
	}
	if veths := vethLinks(t); len(veths) != n {
		t.Errorf("veth links after the restart: %v, want one per pod (%d)", veths, n)
	}

	bridge := c.podBridge()
	c.stop()
	if l := c.leftovers(); !l.Empty() {
		t.Errorf("a clean stop left on the host: %+v", l)
	}
	for _, p := range again {
		if left := podcgroups.Exists(p.UID); len(left) > 0 {
			t.Errorf("a clean stop left pod %s's cgroups: %v", p.Name, left)
		}
	}
	if _, err := net.InterfaceByName(bridge); err == nil {
		t.Errorf("a clean stop left the pods' bridge %s", bridge)
	}
	if veths := vethLinks(t); len(veths) > 0 {
		t.Errorf("a clean stop left veth links: %v", veths)
	}
	for _, s := range after.sandboxes {
		if strings.Contains(natRules(t), s[0].Id) {
			t.Errorf("a clean stop left the CNI NAT rules of sandbox %s", s[0].Id[:12])
		}
	}
	for _, table := range []string{"table ip skiff\n", "table ip skiff-netpol\n", "table ip skiff-podnet\n"} {
		if strings.Contains(nftTables(t), table) {
			t.Errorf("a clean stop left nftables %q", strings.TrimSpace(table))
		}
	}
}

func TestResetAfterKill9RemovesEverythingSkiffUpLeftOnTheHost(t *testing.T) {
	requireRealNode(t)
	n := podCount()
	c := newCluster(t)
	c.start()
	pods := c.runPods(n)
	state := c.runtimeState()
	checkOneOfEach(t, pods, state)
	bridge := c.podBridge()

	// refused while skiff up runs, and nothing is touched
	out, err := exec.Command(c.bin, "reset", "--data-dir", c.dataDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is running with data directory "+c.dataDir) {
		t.Errorf("skiff reset while skiff up runs: %v\n%s\nwant a refusal naming the running skiff up", err, out)
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "etcd")); err != nil {
		t.Fatalf("a refused reset touched the data dir: %v", err)
	}
	c.waitPodsRunning(n)
	// the proxy writes its tables (Services; the pod network's masquerade) once its informers
	// have synced, which may come after the pods run: the kill must find them there for the
	// reset to have something to remove
	for _, table := range []string{"table ip skiff\n", "table ip skiff-podnet\n"} {
		for deadline := time.Now().Add(time.Minute); !strings.Contains(nftTables(t), table); {
			if time.Now().After(deadline) {
				t.Fatalf("the proxy never wrote %q:\n%s", strings.TrimSpace(table), nftTables(t))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	c.kill()
	// what a kill -9 leaves: the test would prove nothing if these were not there
	left := c.leftovers()
	if len(left.Processes) == 0 || len(left.NetworkNamespaces) != n || len(left.PodUIDs) != n || len(left.Mounts) == 0 {
		t.Fatalf("after kill -9, want containerd, %d pods' network namespaces and cgroups and their mounts left; found %+v", n, left)
	}
	if _, err := net.InterfaceByName(bridge); err != nil {
		t.Fatalf("after kill -9 the pods' bridge %s is gone already: %v", bridge, err)
	}
	for _, table := range []string{"table ip skiff\n", "table ip skiff-podnet\n"} {
		if !strings.Contains(nftTables(t), table) {
			t.Fatalf("after kill -9 the proxy's %q is gone already:\n%s", strings.TrimSpace(table), nftTables(t))
		}
	}
	// skiff up's pods get no CNI NAT rules (the pod network's masquerade is skiff-podnet's), but
	// a data dir from an older skiff may hold sandboxes that do: none may be left after reset
	var sandboxIDs []string
	for _, sbs := range state.sandboxes {
		sandboxIDs = append(sandboxIDs, sbs[0].Id)
	}

	out, err = exec.Command(c.bin, "reset", "--data-dir", c.dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("skiff reset: %v\n%s", err, out)
	}
	if l, err := localcontainerd.FindLeftovers(c.dataDir); err != nil || !l.Empty() {
		t.Errorf("after reset, still on the host: %+v (%v)", l, err)
	}
	for _, ns := range left.NetworkNamespaces {
		if _, err := os.Stat(ns); err == nil {
			t.Errorf("after reset the pod network namespace %s is still there", ns)
		}
	}
	for _, p := range pods {
		if cg := podcgroups.Exists(p.UID); len(cg) > 0 {
			t.Errorf("after reset pod %s's cgroups are still there: %v", p.Name, cg)
		}
	}
	if _, err := net.InterfaceByName(bridge); err == nil {
		t.Errorf("after reset the pods' bridge %s is still there", bridge)
	}
	if veths := vethLinks(t); len(veths) > 0 {
		t.Errorf("after reset veth links are still there: %v", veths)
	}
	rules := natRules(t)
	for _, id := range sandboxIDs {
		if strings.Contains(rules, id) {
			t.Errorf("after reset the CNI NAT rules of sandbox %s are still there", id[:12])
		}
	}
	tables := nftTables(t)
	for _, table := range []string{"table ip skiff\n", "table ip skiff-netpol\n", "table ip skiff-podnet\n"} {
		if strings.Contains(tables, table) {
			t.Errorf("after reset nftables %q is still there", strings.TrimSpace(table))
		}
	}
	if _, err := os.Stat(c.dataDir); err == nil {
		t.Errorf("after reset the data dir %s is still there", c.dataDir)
	}
}
