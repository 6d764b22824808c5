package conformance

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/e2e/netnstest"
	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
	"github.com/skiff-dev/skiff/kubelet/ociimage"
)

var (
	kubeconfigFlag = flag.String("kubeconfig", "", "kubeconfig of the cluster under test; default $KUBECONFIG, else the suite starts `skiff up` itself")
	kubectlFlag    = flag.String("kubectl", "", "kubectl binary for the kubectl specs; default the kubectl on PATH")
)

// Images the specs run. pauseImage only has to start and keep running; busyboxImage runs
// shell commands in specs that need a real container runtime. Against skiff up the suite
// builds them here (buildImages); another cluster pulls the first two from their registries.
const (
	pauseImage   = "registry.k8s.io/pause:3.10"
	busyboxImage = "docker.io/library/busybox:1.36"
	// inClusterClientImage is busybox with conformance/inclusterclient, built for the skiff up
	// the suite starts; no registry has it, so its spec skips on another cluster.
	inClusterClientImage = "skiff.local/conformance/inclusterclient:1"
)

// inClusterClientBuilt says the suite built inClusterClientImage for its skiff up.
var inClusterClientBuilt bool

// The Aggregator spec's images, named as upstream's e2e framework v1.37.2 names them
// (test/utils/image/manifest.go: APIServer, Etcd), so that another cluster pulls the real ones.
// For its skiff up the suite builds them (buildAggregatorImages) from k8s.io/sample-apiserver
// v0.37.2 (tools/sample-apiserver) and the etcd server skiff embeds.
const (
	sampleAPIServerImage = "registry.k8s.io/e2e-test-images/sample-apiserver:1.29.2"
	etcdImage            = "registry.k8s.io/etcd:3.7.0-0"
)

// aggregatorImagesMissing says why the suite could not build the Aggregator spec's images for
// its skiff up, "" when it did (or did not have to).
var aggregatorImagesMissing string

// Generous bounds: the suite asserts behaviour, never speed.
const (
	shortWait = 30 * time.Second
	longWait  = 2 * time.Minute
	poll      = 250 * time.Millisecond
)

// cluster is the cluster under test, set up once in BeforeSuite.
var cluster struct {
	kubeconfig string
	config     *rest.Config
	client     kubernetes.Interface
	dynamic    dynamic.Interface
	skiff      *skiffUp // nil when the suite was given a cluster
}

var _ = BeforeSuite(func(ctx SpecContext) {
	kubeconfig := *kubeconfigFlag
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	// a failure before the end of setup is the suite's: AfterSuite keeps skiff up's log
	suiteFailed.Store(true)
	if kubeconfig == "" {
		kubeconfig = startSkiffUp(ctx).kubeconfig
	}
	cluster.kubeconfig = kubeconfig
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	cfg.QPS, cfg.Burst = 100, 200
	cluster.config = cfg
	cluster.client = kubernetes.NewForConfigOrDie(cfg)
	cluster.dynamic = dynamic.NewForConfigOrDie(cfg)
	// Wait until the default namespace has its service account: pods cannot be created before.
	Eventually(func(g Gomega) {
		_, err := cluster.client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	suiteFailed.Store(false)
}, NodeTimeout(5*time.Minute))

var _ = AfterSuite(func() {
	if cluster.skiff != nil {
		cluster.skiff.stop()
	}
})

// skiffUp is `skiff up` run as its own process, as a user runs it.
type skiffUp struct {
	cmd        *exec.Cmd
	dir        string
	kubeconfig string
	exited     chan struct{}
}

// suiteFailed is set when the suite's setup or any spec fails: stop then keeps skiff up's log.
var suiteFailed atomic.Bool

var _ = ReportAfterEach(func(r SpecReport) {
	if r.Failed() {
		suiteFailed.Store(true)
	}
})

// startSkiffUp builds skiff and starts `skiff up` in a temporary dir. Where this host can run
// skiff up's own containerd it does, with the specs' images built here from busybox-static and
// imported by --image-dir (the suite never needs a registry); elsewhere skiff up runs the fake
// runtime, and the specs that need real containers skip.
func startSkiffUp(ctx context.Context) *skiffUp {
	dir, err := os.MkdirTemp("", "skiff-conformance-")
	Expect(err).NotTo(HaveOccurred())
	bin := filepath.Join(dir, "skiff")
	By("building skiff into " + bin)
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/skiff-dev/skiff/cmd/skiff").CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "go build: %s", out)

	dataDir := filepath.Join(dir, "data")
	// free ports for the API server and the kubelet API, lest another skiff up on this host
	// hold the defaults
	args := []string{"up", "--data-dir", dataDir, "--port", freePort(), "--kubelet-port", freePort()}
	if why := netnstest.Why(); why != "" {
		fmt.Printf("conformance: skiff up shares the host's network (its kubelet, proxy and DNS may meet another skiff up's): %s\n", why)
	}
	if why := realContainersMissing(); why != "" {
		fmt.Printf("conformance: skiff up runs the fake runtime, the real-container specs skip: %s\n", why)
		args = append(args, "--container-runtime-endpoint=fake")
	} else {
		imageDir := filepath.Join(dir, "images")
		By("building the specs' images into " + imageDir)
		Expect(buildImages(ctx, imageDir)).To(Succeed())
		args = append(args, "--image-dir", imageDir)
	}
	By("starting skiff " + strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	// its own process group (a Ctrl-C to go test is not one to skiff up: stop decides), and a
	// SIGTERM when the test process dies, so that a killed go test leaves no skiff up, nor
	// the containerd it runs, behind
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	// stdout too goes to the log, not to a pipe: a skiff up whose pipe's reader died with the
	// test process would die of SIGPIPE in the middle of its shutdown, leaving its containerd
	logPath := filepath.Join(dir, "skiff-up.log")
	logFile, err := os.Create(logPath)
	Expect(err).NotTo(HaveOccurred())
	cmd.Stdout, cmd.Stderr = logFile, logFile
	s := &skiffUp{cmd: cmd, dir: dir, kubeconfig: filepath.Join(dataDir, "kubeconfig"), exited: make(chan struct{})}
	started := make(chan error)
	go func() {
		// Pdeathsig fires when the thread that started the child ends, not the process: this
		// goroutine holds that thread for as long as the child runs
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(s.exited)
	}()
	err = <-started
	logFile.Close() // the child has its own copy
	Expect(err).NotTo(HaveOccurred())
	cluster.skiff = s // from here AfterSuite stops it, whatever happens below

	deadline := time.After(2 * time.Minute)
	for {
		if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte("skiff is ready at ")) {
			return s
		}
		select {
		case <-s.exited:
			Fail("skiff up exited before it was ready")
		case <-deadline:
			Fail("skiff up did not print that it was ready within 2m")
		case <-time.After(poll):
		}
	}
}

// freePort is a TCP port nothing listens on now.
func freePort() string {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// realContainersMissing says why skiff up cannot run real containers here, "" when it can.
func realContainersMissing() string {
	if m := localcontainerd.Missing(); m != "" {
		return m
	}
	if os.Geteuid() != 0 {
		return "skiff up's containerd needs root"
	}
	return ""
}

// buildImages writes pauseImage, busyboxImage and inClusterClientImage as OCI tarballs into
// dir, all from this host's busybox-static, and the Aggregator spec's two where it can build
// them. The pause image's shell exits on SIGTERM, as the real pause does, so that deleting a
// pod does not wait out its grace period.
func buildImages(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pause, err := ociimage.Busybox(pauseImage, "sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait")
	if err != nil {
		return err
	}
	busybox, err := ociimage.Busybox(busyboxImage)
	if err != nil {
		return err
	}
	client, err := inClusterClient(ctx, dir)
	if err != nil {
		return err
	}
	images := map[string]*ociimage.Image{"pause.tar": pause, "busybox.tar": busybox, "inclusterclient.tar": client}
	// the rest of the suite runs without them: only the Aggregator spec skips, saying why
	if sampleAPIServer, etcd, err := buildAggregatorImages(ctx, dir); err != nil {
		aggregatorImagesMissing = err.Error()
		fmt.Printf("conformance: the Aggregator spec will skip: %v\n", err)
	} else {
		images["sample-apiserver.tar"], images["etcd.tar"] = sampleAPIServer, etcd
	}
	for file, img := range images {
		if err := img.WriteFile(filepath.Join(dir, file)); err != nil {
			return fmt.Errorf("%s: %w", img.Name, err)
		}
	}
	inClusterClientBuilt = true
	return nil
}

// buildAggregatorImages makes sampleAPIServerImage and etcdImage: upstream's sample API server
// as /sample-apiserver, the image's entrypoint as upstream's, and the etcd server as
// /usr/local/bin/etcd, where the spec runs it. Both are built static (the images have no C
// library) in the modules that pin them; `make sample-apiserver` builds the first with the
// same flags, so with its build cache this is two links.
func buildAggregatorImages(ctx context.Context, dir string) (sampleAPIServer, etcd *ociimage.Image, err error) {
	sampleAPIServerBin, err := staticBinary(ctx, filepath.Join("..", "tools", "sample-apiserver"), "k8s.io/sample-apiserver")
	if err != nil {
		return nil, nil, err
	}
	if sampleAPIServer, err = ociimage.Busybox(sampleAPIServerImage); err != nil {
		return nil, nil, err
	}
	sampleAPIServer.Entrypoint, sampleAPIServer.Cmd = []string{"/sample-apiserver"}, nil
	if err := sampleAPIServer.Add("sample-apiserver", ociimage.File{Data: sampleAPIServerBin, Mode: 0o755}); err != nil {
		return nil, nil, err
	}
	etcdBin, err := staticBinary(ctx, ".", "go.etcd.io/etcd/server/v3")
	if err != nil {
		return nil, nil, err
	}
	if etcd, err = ociimage.Busybox(etcdImage, "/usr/local/bin/etcd"); err != nil {
		return nil, nil, err
	}
	if err := etcd.Add("usr/local/bin/etcd", ociimage.File{Data: etcdBin, Mode: 0o755}); err != nil {
		return nil, nil, err
	}
	return sampleAPIServer, etcd, nil
}

// staticBinary builds the main package pkg in the module of moduleDir without cgo and returns
// the program.
func staticBinary(ctx context.Context, moduleDir, pkg string) ([]byte, error) {
	out, err := os.CreateTemp("", "conformance-bin-")
	if err != nil {
		return nil, err
	}
	out.Close()
	defer os.Remove(out.Name())
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out.Name(), pkg)
	build.Dir = moduleDir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w: %s", pkg, err, b)
	}
	return os.ReadFile(out.Name())
}

// inClusterClient builds conformance/inclusterclient as a static program (no cgo: the image
// has no C library) and makes inClusterClientImage of it, with the program as entrypoint.
func inClusterClient(ctx context.Context, dir string) (*ociimage.Image, error) {
	bin := filepath.Join(dir, "inclusterclient")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "github.com/skiff-dev/skiff/conformance/inclusterclient")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build inclusterclient: %w: %s", err, out)
	}
	defer os.Remove(bin) // the image holds it; skiff up imports every file of --image-dir
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	img, err := ociimage.Busybox(inClusterClientImage)
	if err != nil {
		return nil, err
	}
	img.Entrypoint, img.Cmd = []string{"/usr/local/bin/inclusterclient"}, nil
	if err := img.Add("usr/local/bin/inclusterclient", ociimage.File{Data: data, Mode: 0o755}); err != nil {
		return nil, err
	}
	return img, nil
}

// stop interrupts skiff up, waits for it to exit and removes its dir; after a failed suite it
// first keeps skiff up's and its containerd's logs (see keepLogs).
func (s *skiffUp) stop() {
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		fmt.Fprintln(GinkgoWriter, "skiff up did not exit a minute after SIGINT; killing it")
		s.cmd.Process.Kill()
		<-s.exited
	}
	if suiteFailed.Load() {
		s.keepLogs()
	}
	// what a killed skiff up left mounted goes first: RemoveAll would descend into it
	if err := localcontainerd.UnmountUnder(s.dir); err != nil {
		fmt.Fprintf(GinkgoWriter, "unmounting under %s: %v\n", s.dir, err)
	}
	os.RemoveAll(s.dir)
}

// keepLogs copies skiff up's log (and its containerd's, if it ran one) out of the dir stop
// removes, into go test's -test.outputdir or else the temp dir, and prints the log's tail.
func (s *skiffUp) keepLogs() {
	out := os.TempDir()
	if f := flag.Lookup("test.outputdir"); f != nil && f.Value.String() != "" {
		out = f.Value.String()
	}
	prefix := filepath.Base(s.dir)
	for _, log := range []struct{ from, to string }{
		{filepath.Join(s.dir, "skiff-up.log"), prefix + "-skiff-up.log"},
		{filepath.Join(s.dir, "data", "containerd", "containerd.log"), prefix + "-containerd.log"},
	} {
		b, err := os.ReadFile(log.from)
		if err != nil {
			continue
		}
		to := filepath.Join(out, log.to)
		if err := os.WriteFile(to, b, 0o644); err != nil {
			fmt.Printf("conformance: keeping %s: %v\n", log.from, err)
			continue
		}
		fmt.Printf("conformance: the suite failed; kept %s\n", to)
		if log.to == prefix+"-skiff-up.log" {
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			lines = lines[max(0, len(lines)-40):]
			fmt.Printf("its last %d lines:\n%s\n", len(lines), strings.Join(lines, "\n"))
		}
	}
}

// newNamespace creates a fresh namespace for one spec, waits for its default service account
// (pods cannot be created before it exists) and deletes the namespace when the spec ends.
func newNamespace(ctx context.Context) string {
	ns, err := cluster.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "conformance-", Labels: map[string]string{"e2e-framework": "skiff-conformance"}},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		err := cluster.client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	})
	// as upstream's e2e framework: the ServiceAccount admission plugin refuses pods until the
	// serviceaccount controller has made the namespace's default account
	waitForServiceAccount(ctx, ns.Name)
	return ns.Name
}

// waitForServiceAccount waits for the namespace's default service account, which admission
// requires before any pod can be created in it.
func waitForServiceAccount(ctx context.Context, ns string) {
	Eventually(func(g Gomega) {
		_, err := cluster.client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
}

// pausePod is a pod that only needs to start and keep running.
func pausePod(name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []corev1.Container{{Name: "pause", Image: pauseImage}},
		},
	}
}

// nodesSettled makes the first schedulableNode wait, at most shortWait, for a usable node, as
// upstream's e2e framework waits for schedulable nodes before its specs: a node that has just
// registered is not-ready:NoSchedule (TaintNodesByCondition) until the node lifecycle
// controller has seen it Ready.
var nodesSettled sync.Once

// schedulableNode returns a Ready node that accepts ordinary pods, or skips the spec.
func schedulableNode(ctx context.Context) *corev1.Node {
	nodesSettled.Do(func() {
		for deadline := time.Now().Add(shortWait); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(poll) {
			nodes, err := cluster.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err == nil && usableNode(nodes.Items) != nil {
				return
			}
		}
	})
	nodes, err := cluster.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	if n := usableNode(nodes.Items); n != nil {
		return n
	}
	Skip(fmt.Sprintf("needs a Ready, untainted node (the cluster has %d nodes, none usable)", len(nodes.Items)))
	return nil
}

// usableNode is the first of nodes that is Ready, not cordoned and without NoSchedule or
// NoExecute taints; nil when none is.
func usableNode(nodes []corev1.Node) *corev1.Node {
	for i := range nodes {
		n := &nodes[i]
		if n.Spec.Unschedulable || !controllers.IsNodeReady(n) {
			continue
		}
		tainted := false
		for _, t := range n.Spec.Taints {
			if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
				tainted = true
			}
		}
		if !tainted {
			return n
		}
	}
	return nil
}

// requireRealContainers skips the spec when a node runs skiff's fake runtime, whose containers
// never execute their commands.
func requireRealContainers(ctx context.Context) {
	nodes, err := cluster.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	if len(nodes.Items) == 0 {
		Skip("needs a node with a container runtime; the cluster has no nodes")
	}
	for _, n := range nodes.Items {
		if v := n.Status.NodeInfo.ContainerRuntimeVersion; strings.HasPrefix(v, "fake") {
			Skip(fmt.Sprintf("needs a real container runtime; node %s runs %s", n.Name, v))
		}
	}
}

var scheduler struct {
	once   sync.Once
	active bool
	reason string
}

// requireScheduler skips the spec unless a scheduler binds a plain pod within shortWait. The
// probe runs once per suite.
func requireScheduler(ctx context.Context) {
	scheduler.once.Do(func() {
		ns := "default"
		pod, err := cluster.client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "conformance-scheduler-probe-"},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: ptr.To[int64](1),
				Containers:                    []corev1.Container{{Name: "pause", Image: pauseImage}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		defer cluster.client.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{})
		deadline := time.Now().Add(shortWait)
		for time.Now().Before(deadline) {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			if err == nil && p.Spec.NodeName != "" {
				scheduler.active = true
				return
			}
			time.Sleep(poll)
		}
		scheduler.reason = fmt.Sprintf("needs a scheduler: a plain pod was not bound to a node within %s", shortWait)
	})
	if !scheduler.active {
		Skip(scheduler.reason)
	}
}

// nextEvent returns the next event on w, failing the spec if none arrives within shortWait.
func nextEvent(w watch.Interface) watch.Event {
	GinkgoHelper()
	select {
	case ev, ok := <-w.ResultChan():
		Expect(ok).To(BeTrue(), "watch closed early")
		return ev
	case <-time.After(shortWait):
		Fail(fmt.Sprintf("no watch event within %s", shortWait))
	}
	return watch.Event{}
}

// kubectl runs the stock kubectl against the cluster under test and returns its stdout. It
// skips the spec when no kubectl binary is available.
func kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	bin := *kubectlFlag
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("kubectl"); err != nil {
			Skip("needs kubectl: none on PATH and no --kubectl given")
		}
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", cluster.kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	fmt.Fprintf(GinkgoWriter, "$ kubectl %s\n%s%s", strings.Join(args, " "), stdout.String(), stderr.String())
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), err
}

// mustKubectl is kubectl that fails the spec on a non-zero exit.
func mustKubectl(ctx context.Context, args ...string) string {
	GinkgoHelper()
	out, err := kubectl(ctx, "", args...)
	Expect(err).NotTo(HaveOccurred())
	return out
}
