package conformance

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
)

var (
	kubeconfigFlag = flag.String("kubeconfig", "", "kubeconfig of the cluster under test; default $KUBECONFIG, else the suite starts `skiff up` itself")
	kubectlFlag    = flag.String("kubectl", "", "kubectl binary for the kubectl specs; default the kubectl on PATH")
)

// Images the specs run. pauseImage only has to start and keep running; busyboxImage runs
// shell commands in specs that need a real container runtime.
const (
	pauseImage   = "registry.k8s.io/pause:3.10"
	busyboxImage = "docker.io/library/busybox:1.36"
)

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
	if kubeconfig == "" {
		cluster.skiff = startSkiffUp(ctx)
		kubeconfig = cluster.skiff.kubeconfig
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

func startSkiffUp(ctx context.Context) *skiffUp {
	dir, err := os.MkdirTemp("", "skiff-conformance-")
	Expect(err).NotTo(HaveOccurred())
	bin := filepath.Join(dir, "skiff")
	By("building skiff into " + bin)
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/skiff-dev/skiff/cmd/skiff").CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "go build: %s", out)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	dataDir := filepath.Join(dir, "data")
	By(fmt.Sprintf("starting skiff up --data-dir %s --port %d", dataDir, port))
	// the in-memory runtime: these specs' images come from registries this machine cannot
	// reach, and the specs that need real containers skip on it (requireRealContainers)
	cmd := exec.Command(bin, "up", "--data-dir", dataDir, "--port", strconv.Itoa(port), "--container-runtime-endpoint=fake")
	logFile, err := os.Create(filepath.Join(dir, "skiff-up.log"))
	Expect(err).NotTo(HaveOccurred())
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	Expect(err).NotTo(HaveOccurred())
	Expect(cmd.Start()).To(Succeed())
	s := &skiffUp{cmd: cmd, dir: dir, kubeconfig: filepath.Join(dataDir, "kubeconfig"), exited: make(chan struct{})}

	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			if strings.Contains(sc.Text(), "ready") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() { cmd.Wait(); close(s.exited) }()
	select {
	case <-ready:
	case <-s.exited:
		Fail("skiff up exited before it was ready; its log is in " + logFile.Name())
	case <-time.After(2 * time.Minute):
		s.stop()
		Fail("skiff up did not print a ready line within 2m; its log is in " + logFile.Name())
	}
	return s
}

// stop interrupts skiff up, waits for it to exit and removes its data dir.
func (s *skiffUp) stop() {
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		fmt.Fprintln(GinkgoWriter, "skiff up did not exit 30s after SIGINT; killing it")
		s.cmd.Process.Kill()
		<-s.exited
	}
	os.RemoveAll(s.dir)
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
		if n.Spec.Unschedulable || !nodeReady(n) {
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

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
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
