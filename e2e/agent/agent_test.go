// Package agent_test proves that a second machine joins a cluster with a token: `skiff up`
// runs as the server, `skiff token create` prints the join command, and `skiff agent` runs
// it on "another machine", a network namespace of its own joined to the server's by a veth
// pair. The agent's node becomes Ready, runs a real container, and that container reaches a
// pod on the server's node by its pod IP (over the host-gateway routes), which sees the
// container's own pod IP (no NAT between pods), and through a Service.
//
// The test process runs itself again in a network namespace of its own (netnstest), the
// server's machine; the agent's namespace is made and removed by the test.
package agent_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/e2e/netnstest"
	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
	"github.com/skiff-dev/skiff/kubelet/ociimage"
)

// The two machines:
//
//	server (the test's namespace): agent0 10.77.0.1/24, skiff up, pods in 10.244.0.0/24
//	agent  (namespace skiff-agent-PID): eth0 10.77.0.2/24, default via 10.77.0.1,
//	       skiff agent, pods in the podCIDR the controller manager gives it
const (
	serverIP  = "10.77.0.1"
	agentIP   = "10.77.0.2"
	agentNode = "agent-e2e"
	image     = "skiff.local/busybox:1"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Main(m, nil)) }

func requireMachines(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("real containers and processes are skipped with -short")
	}
	if why := netnstest.Why(); why != "" {
		t.Skip(why)
	}
	if m := localcontainerd.Missing(); m != "" {
		t.Skipf("real containers cannot run here: %s", m)
	}
	for _, tool := range []string{"nft", "ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the test needs %s on PATH (apt-get install nftables iproute2 util-linux)", tool)
		}
	}
}

// agentMachine makes the agent's network namespace, wired to this one by a veth pair, and
// removes it when the test ends (after the agent has stopped: cleanups run last-in first-out).
func agentMachine(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("skiff-agent-%d", os.Getpid())
	netnstest.Run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	netnstest.Run(t, "ip", "link", "add", "agent0", "type", "veth", "peer", "name", "eth0", "netns", ns)
	netnstest.Run(t, "ip", "addr", "add", serverIP+"/24", "dev", "agent0")
	netnstest.Run(t, "ip", "link", "set", "agent0", "up")
	netnstest.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	netnstest.Run(t, "ip", "-n", ns, "addr", "add", agentIP+"/24", "dev", "eth0")
	netnstest.Run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	netnstest.Run(t, "ip", "-n", ns, "route", "add", "default", "via", serverIP)
	return ns
}

func buildSkiff(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "skiff")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/skiff-dev/skiff/cmd/skiff").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func buildImages(t *testing.T, dir string) string {
	t.Helper()
	images := filepath.Join(dir, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := ociimage.Busybox(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.WriteFile(filepath.Join(images, "busybox.tar")); err != nil {
		t.Fatal(err)
	}
	return images
}

var joinCommand = regexp.MustCompile(`skiff agent --server (\S+) --token (\S+) --ca-cert-hash (sha256:[0-9a-f]{64})`)

func TestAgentJoinsWithATokenAndItsPodsReachTheServersPods(t *testing.T) {
	requireMachines(t)
	// short: containerd's socket path under it must fit in 107 bytes
	dir, err := os.MkdirTemp("", "skiff-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// what a killed skiff left mounted goes before RemoveAll descends into it
		localcontainerd.UnmountUnder(dir)
		os.RemoveAll(dir)
	})
	bin := buildSkiff(t, dir)
	images := buildImages(t, dir)
	ns := agentMachine(t)
	var out []byte

	server := netnstest.Start(t, dir, "server", bin, "up", "--data-dir", filepath.Join(dir, "server"),
		"--advertise-address", serverIP, "--image-dir", images)
	server.WaitLog(t, regexp.MustCompile(`skiff is ready at `), 3*time.Minute)

	out, err = exec.Command(bin, "token", "create", "--kubeconfig", filepath.Join(dir, "server", "kubeconfig")).CombinedOutput()
	if err != nil {
		t.Fatalf("skiff token create: %v: %s", err, out)
	}
	m := joinCommand.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("skiff token create printed %q, want a join command with the server, token and CA hash", out)
	}
	if want := "https://" + serverIP + ":6443"; m[1] != want {
		t.Errorf("join command's server %s, want the advertised %s", m[1], want)
	}

	netnstest.Start(t, dir, "agent", "nsenter", "--net=/run/netns/"+ns, bin, "agent",
		"--server", m[1], "--token", m[2], "--ca-cert-hash", m[3],
		"--data-dir", filepath.Join(dir, "agent"), "--node-name", agentNode, "--node-ip", agentIP, "--image-dir", images)

	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "server", "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	node := waitNode(t, client, agentNode, func(n *corev1.Node) bool { return controllers.IsNodeReady(n) && n.Spec.PodCIDR != "" })
	if node.Spec.PodCIDR == "10.244.0.0/24" {
		t.Errorf("the agent's node got the server node's podCIDR %s", node.Spec.PodCIDR)
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var serverNode string
	for _, n := range nodes.Items {
		if n.Name != agentNode {
			serverNode = n.Name
		}
	}
	if len(nodes.Items) != 2 || serverNode == "" {
		t.Fatalf("nodes %v, want the server's and %s", nodes.Items, agentNode)
	}

	// /cgi-bin/client answers the address the request came from
	web := busybox("web", serverNode, corev1.RestartPolicyAlways, `mkdir -p /www/cgi-bin && echo hello-from-the-server > /www/index.html &&
printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "client=$REMOTE_ADDR"\n' > /www/cgi-bin/client && chmod +x /www/cgi-bin/client &&
exec httpd -f -p 8080 -h /www`)
	web.Labels = map[string]string{"app": "web"}
	if _, err := client.CoreV1().Pods("default").Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	web = waitPod(t, client, "web", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" })
	svc, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// a real container on the agent's node fetches the page by pod IP and by cluster IP,
	// once both answered (after the routes and the agent's proxy rules are in) asks the
	// server's pod which address it came from, and exits 0 if that is its own pod IP, 3 if
	// not (nc, not wget: this static busybox's wget crashes in its name lookup)
	script := fmt.Sprintf(`get() { printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 "$1" "$2" | grep -q hello-from-the-server; }
for i in $(seq 90); do
  if get %[1]s 8080; then pod=ok; else pod=failed; fi
  if get %[2]s 80; then svc=ok; else svc=failed; fi
  echo "pod IP: $pod, service: $svc"
  if [ $pod = ok ] && [ $svc = ok ]; then
    seen=$(printf 'GET /cgi-bin/client HTTP/1.0\r\n\r\n' | nc -w 2 %[1]s 8080 | grep client=)
    echo "the server's pod saw $seen, this pod is $POD_IP"
    case "$seen" in "client=$POD_IP"|"client=[::ffff:$POD_IP]") exit 0;; esac  # httpd writes IPv4 mapped
    exit 3
  fi
  sleep 1
done
exit 1`, web.Status.PodIP, svc.Spec.ClusterIP)
	clientPod := busybox("client", agentNode, corev1.RestartPolicyNever, script)
	clientPod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}}
	if _, err := client.CoreV1().Pods("default").Create(ctx, clientPod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done := waitPod(t, client, "client", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	if done.Status.Phase != corev1.PodSucceeded {
		logs, _ := filepath.Glob(filepath.Join(dir, "agent", "kubelet", "logs", "default_client_*", "main", "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("the client's log:\n%s", b[max(0, len(b)-2000):])
		}
		t.Errorf("the agent's pod could not reach the server's pod at %s and through Service %s, or reached it from another address than its own (exit 3): %s",
			web.Status.PodIP, svc.Spec.ClusterIP, describe(done))
	}
	if !strings.HasPrefix(done.Status.PodIP, strings.TrimSuffix(node.Spec.PodCIDR, "0/24")) {
		t.Errorf("the agent's pod has IP %s, outside its node's podCIDR %s", done.Status.PodIP, node.Spec.PodCIDR)
	}

	// the proxy's and the NetworkPolicy agent's own identities, not the node's
	for file, user := range map[string]string{"kube-proxy": "system:kube-proxy", "network-policy": "system:skiff:network-policy-agent"} {
		path := filepath.Join(dir, "agent", "proxy", "pki", file+"-client-current.pem")
		pair, err := tls.LoadX509KeyPair(path, path)
		if err != nil {
			t.Fatalf("the agent's %s has no certificate of its own: %v", file, err)
		}
		if cn := pair.Leaf.Subject.CommonName; cn != user {
			t.Errorf("the agent's %s authenticates as %q, want %s", file, cn, user)
		}
	}
}

func busybox(name, node string, restart corev1.RestartPolicy, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName: node, RestartPolicy: restart, TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{Name: "main", Image: image, ImagePullPolicy: corev1.PullNever, Command: []string{"sh", "-c", script}}},
		},
	}
}

func waitNode(t *testing.T, client kubernetes.Interface, name string, cond func(*corev1.Node) bool) *corev1.Node {
	t.Helper()
	var last *corev1.Node
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = n
		return cond(n), nil
	})
	if err != nil {
		t.Fatalf("node %s never joined and became Ready; last: %+v", name, last)
	}
	return last
}

func waitPod(t *testing.T, client kubernetes.Interface, name string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s never got there: %s", name, describe(last))
	}
	return last
}

func describe(p *corev1.Pod) string {
	if p == nil {
		return "no pod"
	}
	return fmt.Sprintf("phase %s, IP %s, node %s, conditions %+v, containers %+v", p.Status.Phase, p.Status.PodIP, p.Spec.NodeName, p.Status.Conditions, p.Status.ContainerStatuses)
}
