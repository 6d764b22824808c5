package kubelet_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/apiserver/certs"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/cri"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

// sharedContainerd is the one containerd of the package's real-runtime tests; TestMain stops
// it after the last test.
var sharedContainerd kubelettest.SharedContainerd

func TestMain(m *testing.M) {
	code := m.Run()
	if err := sharedContainerd.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the tests' containerd: %v\n", err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// newRealNode starts an API server and a kubelet "node-real" on the package's containerd.
func newRealNode(t *testing.T) (*apiservertest.Server, *kubelettest.Node) {
	d := sharedContainerd.For(t)
	s := apiservertest.Start(t)
	return s, kubelettest.StartNode(t, s.Client, d, "node-real")
}

func TestRealPodRunsBecomesReadyAndLogs(t *testing.T) {
	s, n := newRealNode(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"greeting": "hello from a configmap"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := kubelettest.BusyboxPod("hello", `echo "$GREETING"; echo "pod $POD_NAME"; cat /config/greeting; echo; hostname; sleep 3600`)
	pod.Spec.Containers[0].Env = []v1.EnvVar{
		{Name: "GREETING", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}, Key: "greeting"}}},
		{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	pod.Spec.Volumes = []v1.Volume{{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "config", MountPath: "/config"}}
	pod = n.CreatePod(pod)
	got := n.WaitPod(pod, "ready", kubelettest.PodReady)
	if !strings.HasPrefix(got.Status.PodIP, "10.244.7.") {
		t.Errorf("pod IP %q is not from the node's pod CIDR", got.Status.PodIP)
	}
	cs := containerStatus(got, "main")
	if !strings.HasPrefix(cs.ContainerID, "containerd://") || !strings.HasPrefix(cs.ImageID, "sha256:") && !strings.Contains(cs.ImageID, "@sha256:") {
		t.Errorf("container %s image %s", cs.ContainerID, cs.ImageID)
	}
	want := "hello from a configmap\npod hello\nhello from a configmap\nhello\n"
	var logs string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, logs = n.KubeletGet("/containerLogs/default/hello/main")
		return logs == want, nil
	})
	if err != nil {
		t.Errorf("logs %q, want %q", logs, want)
	}
	if _, tail := n.KubeletGet("/containerLogs/default/hello/main?tailLines=1"); tail != "hello\n" {
		t.Errorf("tailLines=1: %q", tail)
	}
	if code, _ := n.KubeletGet("/containerLogs/default/nope/main"); code != http.StatusNotFound {
		t.Errorf("logs of a missing pod: %d", code)
	}
	if code, body := n.KubeletGet("/healthz"); code != 200 || body != "ok" {
		t.Errorf("healthz %d %q", code, body)
	}
	if _, metrics := n.KubeletGet("/metrics"); !strings.Contains(metrics, "kubelet_running_pods 1") {
		t.Errorf("metrics:\n%s", metrics)
	}
	n.WaitEvent(pod, `Normal Pulled Container image "skiff.local/busybox:1" already present on machine and can be accessed by the pod`)
	n.WaitEvent(pod, "Normal Started Started container main")
}

func TestRealExecRunsCommandInContainer(t *testing.T) {
	_, n := newRealNode(t)
	pod := n.CreatePod(kubelettest.BusyboxPod("exec", "sleep 3600"))
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	stdout, stderr, err := n.Exec(pod, "main", "sh", "-c", "echo out; echo err >&2; hostname")
	if err != nil {
		t.Fatalf("exec: %v (stderr %q)", err, stderr)
	}
	if stdout != "out\nexec\n" || stderr != "err\n" {
		t.Errorf("stdout %q stderr %q", stdout, stderr)
	}
	_, _, err = n.Exec(pod, "main", "sh", "-c", "exit 7")
	if err == nil || !strings.Contains(err.Error(), "exit code 7") {
		t.Errorf("exit 7: %v", err)
	}
}

func TestRealCrashingContainerGoesToCrashLoopBackOff(t *testing.T) {
	_, n := newRealNode(t)
	pod := n.CreatePod(kubelettest.BusyboxPod("crash", "echo dying; exit 3"))
	got := n.WaitPod(pod, "in CrashLoopBackOff", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.RestartCount >= 2 && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
	})
	last := containerStatus(got, "main").LastTerminationState.Terminated
	if last == nil || last.ExitCode != 3 || last.Reason != "Error" {
		t.Errorf("lastState %+v", last)
	}
	if _, logs := n.KubeletGet("/containerLogs/default/crash/main?previous=true"); logs != "dying\n" {
		t.Errorf("previous logs %q", logs)
	}
}

func TestRealLivenessFailureRestartsContainer(t *testing.T) {
	_, n := newRealNode(t)
	pod := kubelettest.BusyboxPod("live", "touch /tmp/healthy; sleep 3600")
	pod.Spec.Containers[0].LivenessProbe = &v1.Probe{
		ProbeHandler:  v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}},
		PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 5,
	}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	if _, stderr, err := n.Exec(pod, "main", "rm", "/tmp/healthy"); err != nil {
		t.Fatalf("rm: %v %s", err, stderr)
	}
	n.WaitPod(pod, "restarted", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.RestartCount >= 1
	})
	n.WaitEvent(pod, "Normal Killing Container main failed liveness probe, will be restarted")
}

func TestRealContainersShareLocalhostAndEmptyDir(t *testing.T) {
	_, n := newRealNode(t)
	pod := kubelettest.BusyboxPod("pair", "mkdir -p /www && echo served > /www/index.html && httpd -f -p 8080 -h /www")
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "shared", MountPath: "/data"}}
	pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{
		Name: "client", Image: kubelettest.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent,
		Command:      []string{"sh", "-c", "echo written > /data/note; sleep 3600"},
		VolumeMounts: []v1.VolumeMount{{Name: "shared", MountPath: "/data"}},
	})
	pod.Spec.Volumes = []v1.Volume{{Name: "shared", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	var out, stderr string
	var err error
	_ = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		out, stderr, err = n.Exec(pod, "client", "wget", "-qO-", "http://127.0.0.1:8080/index.html")
		return err == nil, nil
	})
	if err != nil || out != "served\n" {
		t.Errorf("client over localhost: %q %v %s", out, err, stderr)
	}
	out, stderr, err = n.Exec(pod, "main", "cat", "/data/note")
	if err != nil || out != "written\n" {
		t.Errorf("emptyDir: %q %v %s", out, err, stderr)
	}
}

func TestRealMemoryLimitKillsWithOOMKilled(t *testing.T) {
	_, n := newRealNode(t)
	pod := kubelettest.BusyboxPod("oom", "dd if=/dev/zero of=/dev/null bs=128M count=1")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	pod.Spec.Containers[0].Resources = v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("32Mi")}}
	pod = n.CreatePod(pod)
	got := n.WaitPod(pod, "failed", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	term := containerStatus(got, "main").State.Terminated
	if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Errorf("terminated %+v", term)
	}
}

func TestRealDeletionStopsWithinGracePeriod(t *testing.T) {
	d := sharedContainerd.For(t)
	s := apiservertest.Start(t)
	n := kubelettest.StartNode(t, s.Client, d, "node-real")
	// sh as PID 1 ignores SIGTERM: only the SIGKILL at the end of the grace period stops it
	pod := n.CreatePod(kubelettest.BusyboxPod("stop", "sleep 3600"))
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	if err := n.Client.CoreV1().Pods("default").Delete(context.Background(), "stop", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](2)}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := n.Client.CoreV1().Pods("default").Get(ctx, "stop", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal("pod not removed after its grace period")
	}
	rt, err := cri.Dial(d.Endpoint(), cri.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	running, _ := rt.ListContainers(context.Background(), &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if len(running) != 0 {
		t.Errorf("%d containers still running", len(running))
	}
}

func TestRealKubeletRestartRestartsNothing(t *testing.T) {
	d := sharedContainerd.For(t)
	s := apiservertest.Start(t)
	root := t.TempDir()
	sameRoot := func(c *kubelet.Config) { c.RootDir = root }
	n := kubelettest.StartNode(t, s.Client, d, "node-real", sameRoot)
	pod := n.CreatePod(kubelettest.BusyboxPod("steady", "sleep 3600"))
	before := containerStatus(n.WaitPod(pod, "ready", kubelettest.PodReady), "main")
	n.Stop()
	n2 := kubelettest.StartNode(t, s.Client, d, "node-real", sameRoot)
	// a fresh pass of the new kubelet has happened once its status shows it up to date
	after := containerStatus(n2.WaitPod(pod, "ready", kubelettest.PodReady), "main")
	time.Sleep(500 * time.Millisecond) // let the new kubelet's first passes run; not a timing assertion
	after = containerStatus(n2.WaitPod(pod, "ready", kubelettest.PodReady), "main")
	if after.ContainerID != before.ContainerID || after.RestartCount != 0 {
		t.Errorf("after restart %s restarts=%d, before %s", after.ContainerID, after.RestartCount, before.ContainerID)
	}
}

func TestRealKubectlLogsAndExecThroughAPIServer(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	s, n := newRealNode(t)
	pod := n.CreatePod(kubelettest.BusyboxPod("kubectl", "echo first line; echo second line; sleep 3600"))
	n.WaitPod(pod, "ready", kubelettest.PodReady)

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	var out string
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		out, err = run("logs", "kubectl")
		return err == nil && out == "first line\nsecond line\n", nil
	})
	if err != nil {
		t.Errorf("kubectl logs: %q %v", out, err)
	}
	if out, err := run("logs", "kubectl", "--tail=1"); err != nil || out != "second line\n" {
		t.Errorf("kubectl logs --tail=1: %q %v", out, err)
	}
	if out, err := run("exec", "kubectl", "--", "sh", "-c", "echo from exec; hostname"); err != nil || out != "from exec\nkubectl\n" {
		t.Errorf("kubectl exec: %q %v", out, err)
	}
}

func TestRealVolumesAndSecurityContext(t *testing.T) {
	s, n := newRealNode(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().Secrets("default").Create(ctx, &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds"}, Data: map[string][]byte{"token": []byte("s3cret")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"mode": "fast"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hostDir := filepath.Join(t.TempDir(), "made-by-kubelet")
	pod := kubelettest.BusyboxPod("vols", "sleep 3600")
	pod.Labels = map[string]string{"app": "vols"}
	pod.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](2000)}
	pod.Spec.Volumes = []v1.Volume{
		{Name: "secret", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "creds"}}},
		{Name: "downward", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}},
		}}}},
		{Name: "projected", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}},
			{Secret: &v1.SecretProjection{LocalObjectReference: v1.LocalObjectReference{Name: "creds"}, Items: []v1.KeyToPath{{Key: "token", Path: "auth/token"}}}},
		}}}},
		{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir, Type: ptr.To(v1.HostPathDirectoryOrCreate)}}},
		{Name: "memory", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}},
	}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{
		{Name: "secret", MountPath: "/secret"}, {Name: "downward", MountPath: "/downward"},
		{Name: "projected", MountPath: "/projected"}, {Name: "host", MountPath: "/host", ReadOnly: true},
		{Name: "memory", MountPath: "/scratch"},
	}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	checks := []struct{ cmd, want string }{
		{"cat /secret/token", "s3cret"},
		{"cat /downward/labels", `app="vols"`},
		{"cat /downward/name", "vols"},
		{"cat /projected/mode", "fast"},
		{"cat /projected/auth/token", "s3cret"},
		{"id -u; id -g", "1000\n2000\n"},
		{"grep ' /scratch ' /proc/mounts | cut -d' ' -f3", "tmpfs\n"},
		{"touch /host/x 2>/dev/null && echo writable || echo read-only", "read-only\n"},
	}
	for _, c := range checks {
		out, stderr, err := n.Exec(pod, "main", "sh", "-c", c.cmd)
		if err != nil || out != c.want {
			t.Errorf("%s: %q (want %q) %v %s", c.cmd, out, c.want, err, stderr)
		}
	}
	if st, err := os.Stat(hostDir); err != nil || !st.IsDir() {
		t.Errorf("hostPath DirectoryOrCreate did not make %s: %v", hostDir, err)
	}
}

func TestRealHostNetworkPodSharesTheNodesNetwork(t *testing.T) {
	_, n := newRealNode(t)
	pod := kubelettest.BusyboxPod("hostnet", "sleep 3600")
	pod.Spec.HostNetwork = true
	pod = n.CreatePod(pod)
	var got *v1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := n.Client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil && kubelettest.PodReady(p) {
			got = p
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("host-network pod never ready: %v; events: %v", err, n.Events(pod))
	}
	if got.Status.PodIP != "127.0.0.1" {
		t.Errorf("podIP %q, want the node's IP", got.Status.PodIP)
	}
	host, _ := os.Hostname()
	if out, stderr, err := n.Exec(pod, "main", "hostname"); err != nil || strings.TrimSpace(out) != host {
		t.Errorf("hostname in a hostNetwork pod: %q %v %s, want %q", out, err, stderr, host)
	}
}

// secureRealNode is a kubelet on the shared containerd set up as skiff up's: its serving
// certificate from a CA the API server verifies it with, the API server's kubelet client
// certificate from that CA required, and every request authorized by a SubjectAccessReview to
// the API server. kubeletCA is that CA; kubeconfig reaches the API server as the admin.
type secureRealNode struct {
	*kubelettest.Node
	server     *apiservertest.Server
	kubeletCA  *certs.PKI
	kubeconfig string
}

func newSecureRealNode(t *testing.T) *secureRealNode {
	t.Helper()
	d := sharedContainerd.For(t)
	// The kubelet's side of the trust: the API server's apiservertest PKI is made inside Start,
	// so the kubelet link gets a CA of its own, as a cluster whose --kubelet-certificate-authority
	// and kubelet --client-ca-file differ from the API's client CA.
	ca, err := certs.Ensure(filepath.Join(t.TempDir(), "kubelet-pki"))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.ClientCertificate("kube-apiserver-kubelet-client", certs.AdminGroup)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := apiservertest.Start(t, func(c *apiserver.Config) {
		c.KubeletClientCert = &clientCert
		c.KubeletCA = ca.CAPool
	})
	servingPEM, servingKeyPEM, err := ca.KubeletServingCertificate("node-real", []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	serving, err := tls.X509KeyPair(servingPEM, servingKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	n := kubelettest.StartNodeServing(t, s.Client, d, "node-real", func(c *kubelet.ServerConfig) {
		c.Certificate = &serving
		c.ClientCAs = ca.CAPool
		c.Authorizer = kubelet.NewWebhookAuthorizer(s.Client.AuthorizationV1().SubjectAccessReviews(), 0, 0)
	})
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	return &secureRealNode{Node: n, server: s, kubeletCA: ca, kubeconfig: kubeconfig}
}

// kubectlPath is stock kubectl, or the test is skipped.
func kubectlPath(t *testing.T) string {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	return kubectl
}

// startKubectl starts a long-running kubectl (attach, port-forward) and returns its stdout;
// the test's end kills it.
func (n *secureRealNode) startKubectl(t *testing.T, args ...string) io.Reader {
	t.Helper()
	return n.startKubectlBinary(t, kubectlPath(t), args...)
}

// startKubectlBinary is startKubectl with the kubectl binary given.
func (n *secureRealNode) startKubectlBinary(t *testing.T, kubectl string, args ...string) io.Reader {
	t.Helper()
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", n.kubeconfig}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("kubectl %v stderr:\n%s", args, stderr.String())
		}
	})
	return stdout
}

// waitLine reads r until a line satisfies match, for at most a minute; it returns that line.
func waitLine(t *testing.T, r io.Reader, what string, match func(string) bool) string {
	t.Helper()
	found := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(r)
		for scanner.Scan() {
			if match(scanner.Text()) {
				found <- scanner.Text()
				io.Copy(io.Discard, r) // keep kubectl's output flowing until it is killed
				return
			}
		}
		close(found)
	}()
	select {
	case line, ok := <-found:
		if !ok {
			t.Fatalf("kubectl ended before %s", what)
		}
		return line
	case <-time.After(time.Minute):
		t.Fatalf("no %s from kubectl within a minute", what)
	}
	return ""
}

func TestRealKubectlAttachSeesContainerOutput(t *testing.T) {
	kubectlPath(t)
	n := newSecureRealNode(t)
	pod := n.CreatePod(kubelettest.BusyboxPod("talker", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"))
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	out := n.startKubectl(t, "attach", "talker", "-c", "main")
	// attach shows what the container writes from now on, never what it wrote before
	line := waitLine(t, out, "a tick", func(l string) bool { return strings.HasPrefix(l, "tick ") })
	if _, err := strconv.Atoi(strings.TrimPrefix(line, "tick ")); err != nil {
		t.Errorf("attach printed %q", line)
	}
}

func TestRealKubectlPortForwardReachesPodPort(t *testing.T) {
	kubectlPath(t)
	n := newSecureRealNode(t)
	pod := n.CreatePod(kubelettest.BusyboxPod("web", "mkdir -p /www && echo forwarded > /www/index.html && httpd -f -p 8080 -h /www"))
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	out := n.startKubectl(t, "port-forward", "pod/web", "--address", "127.0.0.1", ":8080")
	// "Forwarding from 127.0.0.1:41235 -> 8080"
	line := waitLine(t, out, "the forwarded port", func(l string) bool { return strings.HasPrefix(l, "Forwarding from 127.0.0.1:") })
	local := strings.Fields(strings.TrimPrefix(line, "Forwarding from "))[0]
	var body string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + local + "/index.html")
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200, nil
	})
	if err != nil || body != "forwarded\n" {
		t.Errorf("GET through the forwarded port %s: %q %v", local, body, err)
	}
}

func TestRealKubeletAPIAuthenticatesAndAuthorizesEveryRequest(t *testing.T) {
	n := newSecureRealNode(t)
	pod := n.CreatePod(kubelettest.BusyboxPod("guarded", "echo guarded line; sleep 3600"))
	n.WaitPod(pod, "ready", kubelettest.PodReady)

	// what the API server passes through is allowed: its kubelet client certificate is from
	// the kubelet's CA, and the API server answers the kubelet's review
	var logs string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		b, err := n.server.Client.CoreV1().Pods("default").GetLogs("guarded", &v1.PodLogOptions{}).DoRaw(ctx)
		logs = string(b)
		return err == nil && logs == "guarded line\n", nil
	})
	if err != nil {
		t.Errorf("logs through the API server: %q %v", logs, err)
	}
	if out, err := exec.Command(kubectlPath(t), "--kubeconfig", n.kubeconfig, "exec", "guarded", "--", "echo", "exec ok").CombinedOutput(); err != nil || string(out) != "exec ok\n" {
		t.Errorf("kubectl exec through the API server: %q %v", out, err)
	}

	get := func(cert *tls.Certificate, path string) (int, string, error) {
		cfg := &tls.Config{RootCAs: n.kubeletCA.CAPool, ServerName: "node-real"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
		defer client.CloseIdleConnections()
		resp, err := client.Get(n.KubeletURL + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b)), nil
	}
	mint := func(p *certs.PKI, user string, groups ...string) *tls.Certificate {
		certPEM, keyPEM, err := p.ClientCertificate(user, groups...)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &c
	}

	// the serving certificate verifies for the node's name, and a user the API server allows
	// (RBAC: bound to system:kubelet-api-admin) gets through
	if _, err := n.server.Client.RbacV1().ClusterRoleBindings().Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-kubelet-api-admin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "alice"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var code int
	var body string
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 45*time.Second, true, func(context.Context) (bool, error) {
		code, body, err = get(mint(n.kubeletCA, "alice"), "/containerLogs/default/guarded/main")
		return err == nil && code == 200 && body == "guarded line", nil
	})
	if err != nil {
		t.Errorf("alice's logs: %d %q %v", code, body, err)
	}
	// a certificate from another CA (the API's admin certificate) is refused at TLS
	if _, _, err := get(&n.server.PKI.AdminCert, "/healthz"); err == nil {
		t.Error("a client certificate from another CA was accepted")
	}
	// no certificate at all: 401, even for /healthz, as upstream's port 10250
	if code, body, err := get(nil, "/healthz"); err != nil || code != http.StatusUnauthorized || body != "Unauthorized" {
		t.Errorf("no certificate: %d %q %v", code, body, err)
	}
	// the API server's authorizer denies the anonymous user everything but health paths: the
	// kubelet's review comes back denied
	anonymous := mint(n.kubeletCA, "system:anonymous")
	want := "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource(s)=[proxy])"
	if code, body, err := get(anonymous, "/containerLogs/default/guarded/main"); err != nil || code != http.StatusForbidden || body != want {
		t.Errorf("anonymous logs: %d %q %v, want 403 %q", code, body, err, want)
	}
	want = "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource(s)=[metrics])"
	if code, body, err := get(anonymous, "/metrics/resource"); err != nil || code != http.StatusForbidden || body != want {
		t.Errorf("anonymous metrics: %d %q %v, want 403 %q", code, body, err, want)
	}
}

func TestRealResourceMetricsReportNodePodAndContainerUsage(t *testing.T) {
	_, n := newRealNode(t)
	pod := n.CreatePod(kubelettest.BusyboxPod("busy", "sleep 3600"))
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	var metrics string
	for _, want := range []string{
		"node_cpu_usage_seconds_total ",
		"node_memory_working_set_bytes ",
		`container_cpu_usage_seconds_total{container="main",namespace="default",pod="busy"} `,
		`container_memory_working_set_bytes{container="main",namespace="default",pod="busy"} `,
		`container_start_time_seconds{container="main",namespace="default",pod="busy"} `,
		`pod_cpu_usage_seconds_total{namespace="default",pod="busy"} `,
		`pod_memory_working_set_bytes{namespace="default",pod="busy"} `,
		"resource_scrape_error 0",
	} {
		_ = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			_, metrics = n.KubeletGet("/metrics/resource")
			return strings.Contains(metrics, want), nil
		})
		if !strings.Contains(metrics, want) {
			t.Errorf("no %q in /metrics/resource:\n%s", want, metrics)
		}
	}
}

func TestRealTerminationMessageFallsBackToLogOfFailedContainer(t *testing.T) {
	_, n := newRealNode(t)
	pod := kubelettest.BusyboxPod("messages", "")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	scripts := map[string]string{
		"failed":    "echo -n DONE; exit 1",
		"succeeded": "echo -n DONE",
		"file":      "echo -n OK > /dev/termination-log; echo DONE; exit 1",
	}
	pod.Spec.Containers = nil
	for _, name := range []string{"failed", "succeeded", "file"} {
		pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{
			Name: name, Image: kubelettest.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent,
			Command:                  []string{"sh", "-c", scripts[name]},
			TerminationMessagePolicy: v1.TerminationMessageFallbackToLogsOnError,
		})
	}
	pod = n.CreatePod(pod)
	got := n.WaitPod(pod, "failed", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	// the log of a failed container stands in for the message it did not write; a container
	// that succeeded, or wrote its message file, keeps its own
	for name, want := range map[string]string{"failed": "DONE", "succeeded": "", "file": "OK"} {
		term := containerStatus(got, name).State.Terminated
		if term == nil || term.Message != want {
			t.Errorf("%s: terminated %+v, want message %q", name, term, want)
		}
	}
	// output without a final newline is logged as written
	if _, logs := n.KubeletGet("/containerLogs/default/messages/failed"); logs != "DONE" {
		t.Errorf("logs %q", logs)
	}
}

func TestRealFSGroupOwnsVolumesOfNonRootPod(t *testing.T) {
	s, n := newRealNode(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().Secrets("default").Create(ctx, &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds"}, Data: map[string][]byte{"token": []byte("s3cret")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := kubelettest.BusyboxPod("fsgroup", "sleep 3600")
	pod.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), FSGroup: ptr.To[int64](1001)}
	pod.Spec.Volumes = []v1.Volume{
		{Name: "secret", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "creds", DefaultMode: ptr.To[int32](0o400)}}},
		{Name: "projected", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{DefaultMode: ptr.To[int32](0o440), Sources: []v1.VolumeProjection{
			{Secret: &v1.SecretProjection{LocalObjectReference: v1.LocalObjectReference{Name: "creds"}}},
		}}}},
		{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
	}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{
		{Name: "secret", MountPath: "/secret"}, {Name: "projected", MountPath: "/projected"}, {Name: "scratch", MountPath: "/scratch"},
	}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	checks := []struct{ cmd, want string }{
		// the fsGroup is one of the user's groups, and owns the files, which it may read
		{"id -G", "0 1001\n"},
		{"cat /secret/token", "s3cret"},
		{"stat -L -c '%a %g' /secret/token", "440 1001\n"},
		{"cat /projected/token", "s3cret"},
		{"stat -L -c '%a %g' /projected/token", "440 1001\n"},
		// an emptyDir is the group's, and what is made in it too
		{"stat -c '%a %g' /scratch", "2777 1001\n"},
		{"touch /scratch/new && stat -c '%g' /scratch/new", "1001\n"},
	}
	for _, c := range checks {
		out, stderr, err := n.Exec(pod, "main", "sh", "-c", c.cmd)
		if err != nil || out != c.want {
			t.Errorf("%s: %q (want %q) %v %s", c.cmd, out, c.want, err, stderr)
		}
	}
}

func TestRealLogsOverWebSocketThroughAPIServer(t *testing.T) {
	s, n := newRealNode(t)
	pod := n.CreatePod(kubelettest.BusyboxPod("wslogs", "echo container is alive; sleep 3600"))
	n.WaitPod(pod, "ready", kubelettest.PodReady)

	tlsConfig, err := rest.TLSConfigFor(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	logURL := strings.Replace(s.URL, "https://", "wss://", 1) + "/api/v1/namespaces/default/pods/wslogs/log?container=main"
	config, err := websocket.NewConfig(logURL, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	config.TlsConfig = tlsConfig
	config.Protocol = []string{"binary.k8s.io"}
	// the log is sent as binary messages, then the server closes the connection
	var got string
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		ws, err := websocket.DialConfig(config)
		if err != nil {
			return false, err
		}
		defer ws.Close()
		var b strings.Builder
		for {
			var msg []byte
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				if err == io.EOF {
					break
				}
				return false, err
			}
			b.Write(msg)
		}
		got = b.String()
		return got == "container is alive\n", nil
	})
	if err != nil {
		t.Errorf("logs over WebSocket: %q %v", got, err)
	}
}

func TestRealSidecarOutlivesAppContainersPreStopHooks(t *testing.T) {
	_, n := newRealNode(t)
	hostDir := t.TempDir()
	pod := kubelettest.BusyboxPod("sidecar-stop", "sleep 3600")
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](10)
	pod.Spec.Volumes = []v1.Volume{{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir}}}}
	// the sidecar serves on localhost and leaves at once on SIGTERM
	pod.Spec.InitContainers = []v1.Container{{
		Name: "server", Image: kubelettest.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent,
		RestartPolicy: ptr.To(v1.ContainerRestartPolicyAlways),
		Command:       []string{"sh", "-c", "trap 'exit 0' TERM; mkdir -p /www && echo served > /www/index.html && httpd -f -p 8080 -h /www & wait"},
	}}
	// the app container's preStop hook needs the sidecar a moment after the deletion began
	main := &pod.Spec.Containers[0]
	main.VolumeMounts = []v1.VolumeMount{{Name: "host", MountPath: "/host"}}
	main.Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{
		Command: []string{"sh", "-c", "sleep 1; wget -qO- http://127.0.0.1:8080/index.html > /host/got"},
	}}}
	pod = n.CreatePod(pod)
	n.WaitPod(pod, "ready", kubelettest.PodReady)
	if err := n.Client.CoreV1().Pods("default").Delete(context.Background(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := n.Client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal("pod not removed")
	}
	if got, err := os.ReadFile(filepath.Join(hostDir, "got")); err != nil || string(got) != "served\n" {
		t.Errorf("the preStop hook got %q from the sidecar (%v)", got, err)
	}
}

// kubectl debug's ephemeral container runs in the pod, sees its target's processes and
// takes exec like any container.
func TestRealEphemeralContainerSharesTargetProcessNamespace(t *testing.T) {
	s, n := newRealNode(t)
	pod := n.CreatePod(kubelettest.BusyboxPod("debugged", "sleep 3601"))
	ready := n.WaitPod(pod, "ready", kubelettest.PodReady)
	ready.Spec.EphemeralContainers = []v1.EphemeralContainer{{
		EphemeralContainerCommon: v1.EphemeralContainerCommon{
			Name: "debugger", Image: kubelettest.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent,
			Command: []string{"sh", "-c", "sleep 3600"},
		},
		TargetContainerName: "main",
	}}
	if _, err := s.Client.CoreV1().Pods("default").UpdateEphemeralContainers(context.Background(), "debugged", ready, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.WaitPod(pod, "running its ephemeral container", func(p *v1.Pod) bool {
		return len(p.Status.EphemeralContainerStatuses) == 1 && p.Status.EphemeralContainerStatuses[0].State.Running != nil
	})
	stdout, stderr, err := n.Exec(pod, "debugger", "ps")
	if err != nil {
		t.Fatalf("exec in the ephemeral container: %v (stderr %q)", err, stderr)
	}
	if !strings.Contains(stdout, "sleep 3601") {
		t.Errorf("the debugger does not see its target's process:\n%s", stdout)
	}
}
