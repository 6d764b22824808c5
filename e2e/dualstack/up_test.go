package dualstack_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/kubelet/ociimage"
)

// TestSkiffUpWithDualStackFlagsRunsADualStackCluster runs `skiff up --cluster-cidr
// 10.42.0.0/16,fd42::/56 --service-cidr 10.96.0.0/12,fd00:10:96::/112` as a user would, and
// checks that the flags reach every part: node IPAM and the kubelet (the Node's pod CIDRs, the
// pods' addresses), the API server (a dual-stack Service's two cluster IPs) and the proxy (a
// pod reaching the Service on each, the ip6 table it keeps and removes on exit) and the
// NetworkPolicy agent (an isolated pod closed on both addresses, in ip6 skiff-netpol too).
func TestSkiffUpWithDualStackFlagsRunsADualStackCluster(t *testing.T) {
	requireNode(t)
	run(t, "ip", "link", "add", "node0", "type", "bridge")
	run(t, "ip", "addr", "add", nodeIP+"/24", "dev", "node0")
	run(t, "ip", "link", "set", "node0", "up")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "node0").Run() })

	bin := filepath.Join(t.TempDir(), "skiff")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/skiff-dev/skiff/cmd/skiff").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir, err := os.MkdirTemp("", "skiff-ds-") // short: containerd's socket lives beneath it
	if err != nil {
		t.Fatal(err)
	}
	imageDir := t.TempDir()
	img, err := ociimage.Busybox("skiff.local/busybox:1")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(imageDir, "busybox.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if err := img.WriteOCI(f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	up := exec.Command(bin, "up", "--data-dir", dataDir, "--image-dir", imageDir, "--disable-ingress",
		"--cluster-cidr", clusterCIDR, "--service-cidr", serviceRange)
	stdout, err := up.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "skiff-up.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	up.Stderr = log
	up.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // a killed go test kills skiff up too
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() {
		exitErr = up.Wait()
		close(exited)
	}()
	// whatever happens, nothing of the cluster outlives the test: skiff reset is the tool
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = up.Process.Kill()
			<-exited
		}
		if out, err := exec.Command(bin, "reset", "--data-dir", dataDir).CombinedOutput(); err != nil {
			t.Logf("skiff reset: %v\n%s", err, out)
		}
		os.RemoveAll(dataDir)
		if b, _ := os.ReadFile(logPath); t.Failed() {
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			t.Logf("skiff up's log, the end:\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "skiff is ready") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("skiff up exited before it was ready: %v", exitErr)
	case <-time.After(3 * time.Minute):
		t.Fatal("skiff up did not say it was ready within 3 minutes")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("nodes: %v %v", nodes, err)
	}
	if want := []string{"10.42.0.0/24", "fd42::/64"}; !reflect.DeepEqual(nodes.Items[0].Spec.PodCIDRs, want) {
		t.Errorf("skiff up's Node has podCIDRs %v, want %v", nodes.Items[0].Spec.PodCIDRs, want)
	}

	web := webPod("web")
	web.Spec.Containers[0].Image, web.Spec.Containers[0].ImagePullPolicy = "skiff.local/busybox:1", corev1.PullNever
	if _, err := client.CoreV1().Pods("default").Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack),
			Selector:       map[string]string{"app": "web"},
			Ports:          []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.ClusterIPs) != 2 || !inRange(svc.Spec.ClusterIPs[1], netip.MustParsePrefix("fd00:10:96::/112")) {
		t.Fatalf("the Service's cluster IPs: %v", svc.Spec.ClusterIPs)
	}
	// the client asks the Service on each cluster IP once a second and logs what answered (a
	// dropped connection is given up after 2 s: busybox's wget -T crashes)
	script := fmt.Sprintf(`while true; do echo "v4 $(timeout 2 wget -q -O- http://%s/ 2>&1)"; echo "v6 $(timeout 2 wget -q -O- http://[%s]/ 2>&1)"; sleep 1; done`,
		svc.Spec.ClusterIPs[0], svc.Spec.ClusterIPs[1])
	clientPod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client"},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{Name: "main", Image: "skiff.local/busybox:1", ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", script}}},
		},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, clientPod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"web", "client"} {
		eventually(t, name+" running with an address of each family", func() (bool, string) {
			p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			ips := p.Status.PodIPs
			ok := p.Status.Phase == corev1.PodRunning && len(ips) == 2 &&
				inRange(ips[0].IP, netip.MustParsePrefix("10.42.0.0/24")) && inRange(ips[1].IP, netip.MustParsePrefix("fd42::/64"))
			return ok, fmt.Sprintf("phase %s, podIPs %v", p.Status.Phase, ips)
		})
	}
	eventually(t, "the client reaching the Service on both cluster IPs", func() (bool, string) {
		b, err := client.CoreV1().Pods("default").GetLogs("client", &corev1.PodLogOptions{TailLines: ptr.To[int64](6)}).Do(ctx).Raw()
		if err != nil {
			return false, err.Error()
		}
		logs := string(b)
		return strings.Contains(logs, "v4 web") && strings.Contains(logs, "v6 web"), logs
	})
	if out, err := exec.Command("nft", "list", "table", "ip6", "skiff").CombinedOutput(); err != nil || !strings.Contains(string(out), svc.Spec.ClusterIPs[1]) {
		t.Errorf("the proxy's ip6 table (err %v):\n%s", err, out)
	}

	// a policy isolating web for ingress closes both of its addresses to the client
	if _, err := client.NetworkingV1().NetworkPolicies("default").Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "web-deny-ingress"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the client refused by web on both cluster IPs", func() (bool, string) {
		b, err := client.CoreV1().Pods("default").GetLogs("client", &corev1.PodLogOptions{TailLines: ptr.To[int64](4)}).Do(ctx).Raw()
		if err != nil {
			return false, err.Error()
		}
		logs := string(b)
		return strings.Count(logs, "\n") == 4 && !strings.Contains(logs, "web"), logs
	})
	webPodNow, err := client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nft", "list", "table", "ip6", "skiff-netpol").CombinedOutput(); err != nil || !strings.Contains(string(out), webPodNow.Status.PodIPs[1].IP) {
		t.Errorf("the NetworkPolicy agent's ip6 table (err %v) should isolate %s:\n%s", err, webPodNow.Status.PodIPs[1].IP, out)
	}

	// stopped, skiff up leaves no table of either family
	if err := up.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Errorf("skiff up after SIGTERM: %v, want exit 0", exitErr)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("skiff up did not stop within 2 minutes of SIGTERM")
	}
	if out, err := exec.Command("nft", "list", "tables").CombinedOutput(); err != nil || strings.Contains(string(out), "skiff") {
		t.Errorf("after skiff up stopped: err %v, tables:\n%s", err, out)
	}
}
