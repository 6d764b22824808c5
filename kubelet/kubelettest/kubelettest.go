// Package kubelettest runs real kubelets on a containerd of their own, for the tests of other
// packages that need real pods (services through the proxy, DNS from a pod): a containerd
// with a busybox image, a kubelet with its API on a local port, and the few verbs such tests
// use (create a pod, wait for it, exec in it).
//
// Everything it starts stops when the test (or, for the containerd, the caller) ends. It must
// never touch a containerd, sandbox or mount it did not make.
package kubelettest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	return localcontainerd.Missing()
}

// Containerd is a containerd of the test's own with BusyboxImage imported.
type Containerd struct {
	*localcontainerd.Daemon
	dir string
}

// StartContainerd starts a containerd in a fresh temporary directory and imports
// BusyboxImage. Stop removes its sandboxes, stops it and removes the directory.
func StartContainerd(ctx context.Context) (*Containerd, error) {
	if m := Missing(); m != "" {
		return nil, fmt.Errorf("containerd cannot run here: %s", m)
	}
	// a short path: the socket's path must fit in 107 bytes
	dir, err := os.MkdirTemp("", "skiff-ctrd-")
	if err != nil {
		return nil, err
	}
	d, err := localcontainerd.Start(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Containerd{Daemon: d, dir: dir}
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

// RemoveSandboxes stops and removes every pod sandbox this containerd holds, and with them
// their containers and network.
func (c *Containerd) RemoveSandboxes() {
	rt, err := cri.Dial(c.Endpoint(), cri.Options{})
	if err != nil {
		return
	}
	defer rt.Close()
	ctx := context.Background()
	sandboxes, _ := rt.ListPodSandbox(ctx, nil)
	for _, s := range sandboxes {
		_ = rt.StopPodSandbox(ctx, s.Id)
		_ = rt.RemovePodSandbox(ctx, s.Id)
	}
}

// Stop removes the sandboxes, stops containerd and removes its directory.
func (c *Containerd) Stop() error {
	c.RemoveSandboxes()
	err := c.Daemon.Stop()
	unmountUnder(c.dir)
	if rmErr := os.RemoveAll(c.dir); err == nil {
		err = rmErr
	}
	return err
}

// Node is a real kubelet on a Containerd, with its API on a local port.
type Node struct {
	Name   string
	Client kubernetes.Interface
	// KubeletURL is the kubelet API's https:// address.
	KubeletURL string
	t          testing.TB
	stop       func()
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

// StartNode runs a kubelet for the Node name on c (pod CIDR 10.244.7.0/24, node IP
// 127.0.0.1, API on 127.0.0.1:10250, Fast timings, unless adjust says otherwise), waits until
// it is ready, and stops it when the test ends.
func StartNode(t testing.TB, client kubernetes.Interface, c *Containerd, name string, adjust ...func(*kubelet.Config)) *Node {
	t.Helper()
	root := t.TempDir()
	// after the kubelet stops (cleanups run last first), its tmpfs volumes are unmounted so
	// that the root dir can go
	t.Cleanup(func() { unmountUnder(root) })
	rt, err := cri.Dial(c.Endpoint(), cri.Options{CNIConfDir: c.CNIConfDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	cfg := kubelet.Config{
		NodeName: name, Client: client, Runtime: rt, RuntimeEndpoint: c.Endpoint(), KubeletVersion: "v1.37.0-test",
		RootDir: root, PodCIDR: "10.244.7.0/24", NodeIPs: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	Fast(&cfg)
	for _, a := range adjust {
		a(&cfg)
	}
	k, err := kubelet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	port := cfg.Port
	if port == 0 {
		port = 10250
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	addr := make(chan string, 1)
	go func() { done <- k.Run(ctx) }()
	go func() {
		err := k.Serve(ctx, kubelet.ServerConfig{Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}, func(a string) { addr <- a })
		if err != nil {
			addr <- ""
		}
		done <- err
	}()
	select {
	case <-k.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("kubelet stopped: %v", err)
	case <-time.After(2 * time.Minute):
		cancel()
		t.Fatal("kubelet not ready")
	}
	a := <-addr
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		<-done
	}
	t.Cleanup(stop)
	return &Node{Name: name, Client: client, KubeletURL: "https://" + a, t: t, stop: stop}
}

// Stop stops the kubelet (its containers keep running, as after a kubelet restart).
func (n *Node) Stop() { n.stop() }

// unmountUnder unmounts every mount below dir.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			_ = unix.Unmount(f[1], unix.MNT_DETACH)
		}
	}
}

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
// the test fails with the pod's last status and events.
func (n *Node) WaitPod(pod *v1.Pod, what string, cond func(*v1.Pod) bool) *v1.Pod {
	n.t.Helper()
	var last *v1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
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
