// Package kubelettest runs kubelets for tests against a test API server: real ones on a
// containerd of their own running busybox pods (for the kubelet's own tests and for other
// packages that need real pods: services through the proxy, DNS from a pod), and ones on the
// in-memory fake runtime; and the few verbs such tests use (create a pod, wait for it, wait
// for an event, exec in it, read the kubelet API).
//
// Everything it starts stops when the test (or, for a containerd, the caller) ends, leaving
// no sandbox, bridge or mount behind. It must never touch a containerd, sandbox or mount it
// did not make.
package kubelettest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/cri"
	"github.com/skiff-dev/skiff/kubelet/fakeruntime"
	"github.com/skiff-dev/skiff/kubelet/imagevolume"
	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
	"github.com/skiff-dev/skiff/kubelet/ociimage"
)

// BusyboxImage is the image real pods run: a static busybox with every applet (sh, httpd,
// wget, nslookup, ...), imported by StartContainerd.
const BusyboxImage = "skiff.local/busybox:1"

// Missing says why real containers cannot run here ("" when they can), in words a person can
// act on: not root, or a missing package.
func Missing() string {
	if os.Geteuid() != 0 {
		return "real containers need root"
	}
	if m := localcontainerd.Missing(); m != "" {
		return m + "; .ci/kubelet-deps.sh installs them"
	}
	return ""
}

// Containerd is a containerd of the test's own with BusyboxImage imported.
type Containerd struct {
	*localcontainerd.Daemon
}

// StartContainerd starts a containerd in a fresh temporary directory, with the registry
// mirrors given, and imports BusyboxImage. Stop ends it.
func StartContainerd(ctx context.Context, mirrors ...localcontainerd.RegistryMirror) (*Containerd, error) {
	if m := Missing(); m != "" {
		return nil, fmt.Errorf("containerd cannot run here: %s", m)
	}
	// a short path: the socket's path must fit in 107 bytes
	dir, err := os.MkdirTemp("", "skiff-ctrd-")
	if err != nil {
		return nil, err
	}
	d, err := localcontainerd.Start(ctx, dir, mirrors...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Containerd{Daemon: d}
	img, err := ociimage.Busybox(BusyboxImage)
	if err == nil {
		tarball := filepath.Join(dir, "busybox.tar")
		if err = img.WriteFile(tarball); err == nil {
			_, err = localcontainerd.ImportFile(ctx, d.Socket, tarball)
		}
	}
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("import busybox: %w", err)
	}
	return c, nil
}

// Stop shuts the containerd down with its pods (localcontainerd's Shutdown: sandboxes,
// bridge, daemon, mounts) and removes its directory.
func (c *Containerd) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := c.Shutdown(ctx, c.Dir)
	if rmErr := os.RemoveAll(c.Dir); err == nil {
		err = rmErr
	}
	return err
}

// SharedContainerd is one Containerd for every test of a package that asks for it, so that
// each does not pay containerd's start: the first test that asks starts it, the pods each
// test made are removed when that test ends, and the package's TestMain stops it after the
// last test. The zero value is ready to use.
type SharedContainerd struct {
	once sync.Once
	c    *Containerd
	err  error
}

// For returns the shared Containerd, started on the first call, and removes the test's pods
// from it when the test ends. It skips the test under -short, and when containerd cannot run
// here, saying why.
func (s *SharedContainerd) For(t testing.TB) *Containerd {
	t.Helper()
	if testing.Short() {
		t.Skip("real containerd tests are skipped with -short")
	}
	s.once.Do(func() { s.c, s.err = StartContainerd(context.Background()) })
	if s.err != nil {
		t.Skip(s.err)
	}
	t.Cleanup(func() {
		if err := s.c.RemovePods(context.Background()); err != nil {
			t.Errorf("removing the test's pods: %v", err)
		}
	})
	return s.c
}

// Stop stops the shared Containerd, if a test started it.
func (s *SharedContainerd) Stop() error {
	if s.c == nil {
		return nil
	}
	return s.c.Stop()
}

// Node is a kubelet running against a test API server: a real one on a Containerd, with its
// API on a local port (StartNode), or one on the in-memory fake runtime (StartFakeNode).
type Node struct {
	Name   string
	Client kubernetes.Interface
	// KubeletURL is the kubelet API's https:// address; "" on a fake node, which serves none.
	KubeletURL string
	// Fake is a fake node's runtime, through which the test ends containers and fails
	// probes; nil on a real node.
	Fake *fakeruntime.Runtime
	t    testing.TB
	stop func()
}

// Fast makes a kubelet react in test time: short relist, status and back-off periods, as
// upstream's behaviour with its timings scaled down.
func Fast(c *kubelet.Config) {
	c.RelistPeriod = 50 * time.Millisecond
	c.NodeStatusUpdateFrequency = 200 * time.Millisecond
	c.HousekeepingPeriod = 100 * time.Millisecond
	c.BackOffInitial = 300 * time.Millisecond
	c.BackOffMax = 2 * time.Second
}

// StartNode runs a kubelet for the Node name on c (a fresh root dir, pod CIDR 10.244.7.0/24,
// node IP 127.0.0.1, Fast timings, unless adjust says otherwise) with its API on 127.0.0.1 at
// Config.Port, by default a free port, which the Node reports, so that the API server's
// logs, exec and port-forward reach it. It waits until the kubelet is ready, and stops it
// when the test ends.
func StartNode(t testing.TB, client kubernetes.Interface, c *Containerd, name string, adjust ...func(*kubelet.Config)) *Node {
	t.Helper()
	return StartNodeServing(t, client, c, name, nil, adjust...)
}

// StartNodeServing is StartNode whose kubelet API serves as serving adjusts it (nil: a
// self-signed certificate, no client authentication, every request allowed).
func StartNodeServing(t testing.TB, client kubernetes.Interface, c *Containerd, name string, serving func(*kubelet.ServerConfig), adjust ...func(*kubelet.Config)) *Node {
	t.Helper()
	rt, err := cri.Dial(c.Endpoint(), cri.Options{CNIConfDir: c.CNIConfDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	views, err := imagevolume.New(c.Socket, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { views.Close() })
	cfg := kubelet.Config{
		NodeName: name, Client: client, Runtime: rt, RuntimeEndpoint: c.Endpoint(), KubeletVersion: "v1.37.0-test",
		RootDir: t.TempDir(), PodCIDR: "10.244.7.0/24", NodeIPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		ImageVolumes: views,
	}
	Fast(&cfg)
	for _, a := range adjust {
		a(&cfg)
	}
	if cfg.Port == 0 {
		cfg.Port = freePort(t)
	}
	// after the kubelet stops (cleanups run last first), its tmpfs volumes are unmounted so
	// that the root dir can go
	root := cfg.RootDir
	t.Cleanup(func() {
		if err := localcontainerd.UnmountUnder(root); err != nil {
			t.Errorf("the kubelet's volumes: %v", err)
		}
	})
	server := kubelet.ServerConfig{Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port))}
	if serving != nil {
		serving(&server)
	}
	n := &Node{Name: name, Client: client, t: t}
	n.KubeletURL, n.stop = run(t, cfg, &server)
	return n
}

// StartFakeNode runs a kubelet for the Node name on the in-memory runtime fake: a simulated
// machine (4 CPUs, 8 GiB of memory, 100 GiB of disk, "Test OS" on Linux 6.1.0, amd64) at
// 192.0.2.10, with Fast timings, unless adjust says otherwise. It puts no volume on disk and
// serves no API. It waits until the kubelet is ready (unless adjust sets a Config.Prepare,
// which holds readiness back until it returns), and stops it when the test ends.
func StartFakeNode(t testing.TB, client kubernetes.Interface, fake *fakeruntime.Runtime, name string, adjust ...func(*kubelet.Config)) *Node {
	t.Helper()
	cfg := kubelet.Config{
		NodeName: name, Client: client, Runtime: fake, KubeletVersion: "v1.37.0-test",
		Machine: kubelet.MachineInfo{
			CPUs: 4, MemoryBytes: 8 << 30, EphemeralStorageBytes: 100 << 30,
			MachineID: "m1", SystemUUID: "u1", BootID: "b1", KernelVersion: "6.1.0", OSImage: "Test OS",
			OperatingSystem: "linux", Architecture: "amd64",
		},
		NodeIPs: []net.IP{net.ParseIP("192.0.2.10")},
	}
	Fast(&cfg)
	for _, a := range adjust {
		a(&cfg)
	}
	n := &Node{Name: name, Client: client, Fake: fake, t: t}
	_, n.stop = run(t, cfg, nil)
	return n
}

// run runs the kubelet cfg makes, with its API as server says when server is not nil, until
// the test ends or stop is called. It waits until the kubelet is ready, unless cfg.Prepare
// holds readiness back, and returns the API's https:// address ("" without server).
func run(t testing.TB, cfg kubelet.Config, server *kubelet.ServerConfig) (kubeletURL string, stop func()) {
	t.Helper()
	k, err := kubelet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var runErr, serveErr error
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		runErr = k.Run(ctx)
	}()
	// without a server, served and listening stay nil: no select picks them
	var served chan struct{}
	var listening chan string
	if server != nil {
		served, listening = make(chan struct{}), make(chan string, 1)
		go func() {
			defer close(served)
			serveErr = k.Serve(ctx, *server, func(addr string) { listening <- addr })
		}()
	}
	stop = sync.OnceFunc(func() {
		cancel()
		<-ran
		if served != nil {
			<-served
		}
		if runErr != nil {
			t.Errorf("kubelet run: %v", runErr)
		}
		if serveErr != nil {
			t.Errorf("kubelet API: %v", serveErr)
		}
	})
	t.Cleanup(stop)
	if cfg.Prepare == nil {
		select {
		case <-k.Ready():
		case <-ran:
			t.Fatal("kubelet stopped before it was ready")
		case <-served:
			t.Fatal("kubelet API stopped before the kubelet was ready")
		case <-time.After(2 * time.Minute):
			t.Fatal("kubelet not ready after two minutes")
		}
	}
	if server == nil {
		return "", stop
	}
	select {
	case addr := <-listening:
		return "https://" + addr, stop
	case <-served:
		t.Fatal("kubelet API not served")
	}
	return "", stop
}

// freePort is a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Stop stops the kubelet (its containers keep running, as after a kubelet restart).
func (n *Node) Stop() { n.stop() }

// BusyboxPod is a pod in "default" whose one container "main" runs script with sh, with a
// two-second grace period (sh as PID 1 ignores SIGTERM).
func BusyboxPod(name, script string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](2),
			Containers: []v1.Container{{
				Name: "main", Image: BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent,
				Command: []string{"sh", "-c", script},
			}},
		},
	}
}

// CreatePod creates pod bound to this node.
func (n *Node) CreatePod(pod *v1.Pod) *v1.Pod {
	n.t.Helper()
	pod.Spec.NodeName = n.Name
	if pod.Namespace == "" {
		pod.Namespace = "default"
	}
	created, err := n.Client.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		n.t.Fatal(err)
	}
	return created
}

// WaitPod waits up to two minutes until cond holds for the pod, and returns it; otherwise
// the test fails with the pod's last status and events. It looks often enough to see a
// state that lasts a back-off period (ErrImagePull before ImagePullBackOff).
func (n *Node) WaitPod(pod *v1.Pod, what string, cond func(*v1.Pod) bool) *v1.Pod {
	n.t.Helper()
	var last *v1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := n.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		n.t.Fatalf("pod %s never %s; last status: %s\nevents:\n%s", pod.Name, what, DescribeStatus(last), strings.Join(n.Events(pod), "\n"))
	}
	return last
}

// PodReady reports whether the pod's Ready condition is True.
func PodReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// PodNotReady reports whether the pod's Ready condition is False.
func PodNotReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionFalse
		}
	}
	return false
}

// DescribeStatus is a one-line account of a pod's phase, conditions and containers.
func DescribeStatus(p *v1.Pod) string {
	if p == nil {
		return "<none>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s reason=%s ip=%s", p.Status.Phase, p.Status.Reason, p.Status.PodIP)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s(%s)", c.Type, c.Status, c.Reason)
	}
	for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		state := "none"
		switch s := cs.State; {
		case s.Running != nil:
			state = "running"
		case s.Terminated != nil:
			state = fmt.Sprintf("terminated(%d,%s)", s.Terminated.ExitCode, s.Terminated.Reason)
		case s.Waiting != nil:
			state = "waiting(" + s.Waiting.Reason + ")"
		}
		fmt.Fprintf(&b, " [%s restarts=%d ready=%v state=%s]", cs.Name, cs.RestartCount, cs.Ready, state)
	}
	return b.String()
}

// Events lists the Events about the pod as "Type Reason Message" lines.
func (n *Node) Events(pod *v1.Pod) []string {
	list, err := n.Client.CoreV1().Events(pod.Namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", pod.Name).String(),
	})
	if err != nil {
		return []string{"listing events: " + err.Error()}
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Type+" "+e.Reason+" "+e.Message)
	}
	return out
}

// WaitEvent waits up to 30 seconds for an Event about the pod that is exactly
// "Type Reason Message"; otherwise the test fails with the events there are.
func (n *Node) WaitEvent(pod *v1.Pod, want string) {
	n.t.Helper()
	var last []string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		last = n.Events(pod)
		for _, e := range last {
			if e == want {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		n.t.Fatalf("no event %q; events:\n%s", want, strings.Join(last, "\n"))
	}
}

// KubeletGet reads path from the kubelet API (its certificate unverified) and returns the
// status code and body; a request that gets no answer fails the test.
func (n *Node) KubeletGet(path string) (int, string) {
	n.t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get(n.KubeletURL + path)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Exec runs a command in a container through the kubelet's /exec, as the API server's
// pods/exec proxy does, and returns its stdout and stderr; a non-zero exit is an error that
// says "command terminated with non-zero exit code".
func (n *Node) Exec(pod *v1.Pod, container string, cmd ...string) (string, string, error) {
	q := url.Values{"output": {"1"}, "error": {"1"}}
	for _, c := range cmd {
		q.Add("command", c)
	}
	u, err := url.Parse(n.KubeletURL + "/exec/" + pod.Namespace + "/" + pod.Name + "/" + container + "?" + q.Encode())
	if err != nil {
		return "", "", err
	}
	cfg := &rest.Config{Host: n.KubeletURL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		return "", "", err
	}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	return stdout.String(), stderr.String(), err
}
