// Package dualstack_test proves a dual-stack cluster with real pods: a real API server with
// an IPv4 and an IPv6 service range, node IPAM on a dual-stack cluster CIDR, a real kubelet on
// a containerd of the test's own, the EndpointSlice controller and the proxy, wired as `skiff
// up --cluster-cidr 10.42.0.0/16,fd42::/56 --service-cidr 10.96.0.0/12,fd00:10:96::/112`
// wires them. Its pods get an address of each family, and a client pod reaches a dual-stack
// Service on both of its cluster IPs.
//
// The test process runs itself again in a network namespace of its own (TestMain), so that the
// node it builds (the pods' bridge, the proxy's tables, the kubelet's port) is private.
package dualstack_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/endpointslice"
	"github.com/skiff-dev/skiff/controllers/nodeipam"
	"github.com/skiff-dev/skiff/e2e/netnstest"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
	"github.com/skiff-dev/skiff/proxy"
)

const (
	nodeName     = "node-dualstack"
	nodeIP       = "172.30.0.1"
	clusterCIDR  = "10.42.0.0/16,fd42::/56"
	serviceRange = "10.96.0.0/12,fd00:10:96::/112"
)

// TestMain runs the tests in a network namespace of their own (netnstest).
func TestMain(m *testing.M) { os.Exit(netnstest.Main(m, nil)) }

func requireNode(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("real containers are skipped with -short")
	}
	if why := netnstest.Why(); why != "" {
		t.Skip(why)
	}
	if m := kubelettest.Missing(); m != "" {
		t.Skipf("real containers cannot run here: %s", m)
	}
	for _, tool := range []string{"nft", "ip", "ip6tables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the pod network needs %s on PATH (apt-get install nftables iproute2 iptables)", tool)
		}
	}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		t.Skip("this kernel has no IPv6")
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		ok, detail := cond()
		last = detail
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v; last: %s", what, err, last)
	}
}

// webPod serves a page naming itself on port 8080 ("http") on every address of the pod.
func webPod(name string) *corev1.Pod {
	pod := kubelettest.BusyboxPod(name, "mkdir -p /www && echo "+name+" > /www/index.html && exec httpd -f -p 8080 -h /www")
	pod.Labels = map[string]string{"app": "web"}
	c := &pod.Spec.Containers[0]
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 5,
	}
	return pod
}

func TestADualStackClusterGivesPodsBothFamiliesAndRoutesServicesOnBoth(t *testing.T) {
	requireNode(t)
	// the kernel here has no dummy links: an empty bridge holds the node's address
	run(t, "ip", "link", "add", "node0", "type", "bridge")
	run(t, "ip", "addr", "add", nodeIP+"/24", "dev", "node0")
	run(t, "ip", "link", "set", "node0", "up")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "node0").Run() })

	ctrd, err := kubelettest.StartContainerd(context.Background())
	if err != nil {
		t.Fatalf("containerd: %v", err)
	}
	t.Cleanup(func() {
		if err := ctrd.Stop(); err != nil {
			t.Errorf("stopping containerd: %v", err)
		}
	})
	srv := apiservertest.Start(t, func(c *apiserver.Config) { c.ServiceClusterIPRange = serviceRange })
	client := srv.Client
	ctx, cancel := context.WithCancel(context.Background())
	var stopped []chan struct{}
	var factories []informers.SharedInformerFactory
	t.Cleanup(func() {
		cancel()
		for _, c := range stopped {
			<-c
		}
		for _, f := range factories {
			f.Shutdown()
		}
	})
	goStopped := func(f func()) {
		done := make(chan struct{})
		stopped = append(stopped, done)
		go func() {
			defer close(done)
			f()
		}()
	}

	// the controller manager's part: node IPAM on the dual-stack cluster CIDR, EndpointSlices
	cidrs, err := nodeipam.ParseClusterCIDRs(clusterCIDR)
	if err != nil {
		t.Fatal(err)
	}
	cm := informers.NewSharedInformerFactory(client, 0)
	ipam, err := nodeipam.New(cm.Core().V1().Nodes(), client, cidrs, []int{nodeipam.DefaultMaskSize(cidrs[0]), nodeipam.DefaultMaskSize(cidrs[1])}, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	esc, err := endpointslice.New(cm.Core().V1().Pods(), cm.Core().V1().Services(), cm.Core().V1().Nodes(),
		cm.Discovery().V1().EndpointSlices(), cm.Core().V1().Endpoints(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Start(ctx.Done())
	factories = append(factories, cm)
	goStopped(func() { ipam.Run(ctx, 1) })
	goStopped(func() { esc.Run(ctx, 2) })

	// the proxy, dual-stack, on this namespace's nftables
	pf := informers.NewSharedInformerFactory(client, 0)
	p, err := proxy.New(pf.Core().V1().Services(), pf.Discovery().V1().EndpointSlices(), proxy.Config{
		Hostname: nodeName, ClusterCIDR: cidrs[0], IPv6: true, IPv6ClusterCIDR: cidrs[1],
	})
	if err != nil {
		t.Fatal(err)
	}
	pf.Start(ctx.Done())
	factories = append(factories, pf)
	goStopped(func() {
		if err := p.Run(ctx); err != nil {
			t.Errorf("proxy: %v", err)
		}
	})

	// the kubelet has no pod CIDR of its own: it learns both from the Node node IPAM fills
	node := kubelettest.StartNode(t, client, ctrd, nodeName, func(c *kubelet.Config) {
		c.PodCIDR = ""
		c.NodeIPs = []net.IP{net.ParseIP(nodeIP)}
	})
	// node IPAM gives the Node a pod CIDR of each family; the kubelet hands both to the pod
	// network, and the Node is Ready (the runtime's network with it) only then, which is when
	// the scheduler would send it pods
	eventually(t, "the Node with a pod CIDR of each family, Ready", func() (bool, string) {
		n, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
		}
		want := []string{"10.42.0.0/24", "fd42::/64"}
		return ready && n.Spec.PodCIDR == want[0] && reflect.DeepEqual(n.Spec.PodCIDRs, want),
			fmt.Sprintf("podCIDR %q, podCIDRs %v (want %v), ready %v", n.Spec.PodCIDR, n.Spec.PodCIDRs, want, ready)
	})

	backends := []string{"web-0", "web-1"}
	var pods []*corev1.Pod
	for _, name := range backends {
		pods = append(pods, node.CreatePod(webPod(name)))
	}
	clientPod := node.CreatePod(kubelettest.BusyboxPod("client", "exec sleep 3600"))
	web, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack),
			Selector:       map[string]string{"app": "web"},
			Ports:          []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(web.Spec.ClusterIPs) != 2 {
		t.Fatalf("a RequireDualStack Service got cluster IPs %v", web.Spec.ClusterIPs)
	}
	for i, p := range pods {
		pods[i] = node.WaitPod(p, "ready", kubelettest.PodReady)
	}
	clientPod = node.WaitPod(clientPod, "running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })

	// every pod has an IPv4 address from the node's IPv4 range first, then an IPv6 one from its
	// IPv6 range, and podIP is the IPv4 one, as upstream's kubelet reports them
	v4Range, v6Range := netip.MustParsePrefix("10.42.0.0/24"), netip.MustParsePrefix("fd42::/64")
	for _, p := range append(slices.Clone(pods), clientPod) {
		ips := p.Status.PodIPs
		if len(ips) != 2 || !inRange(ips[0].IP, v4Range) || !inRange(ips[1].IP, v6Range) || p.Status.PodIP != ips[0].IP {
			t.Fatalf("pod %s: podIP %q, podIPs %v; want an IPv4 address of %v, then an IPv6 one of %v", p.Name, p.Status.PodIP, ips, v4Range, v6Range)
		}
		// the pod has the addresses it is reported to have
		addrs, stderr, err := node.Exec(p, "main", "ip", "addr", "show", "dev", "eth0")
		if err != nil || !strings.Contains(addrs, ips[0].IP+"/24") || !strings.Contains(addrs, ips[1].IP+"/64") {
			t.Errorf("pod %s's eth0 (err %v %s):\n%s", p.Name, err, stderr, addrs)
		}
	}

	// the EndpointSlice controller publishes one slice of each family
	eventually(t, "an IPv4 and an IPv6 EndpointSlice with both backends ready", func() (bool, string) {
		list, err := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return false, err.Error()
		}
		ready := map[discoveryv1.AddressType]int{}
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if ptr.Deref(e.Conditions.Ready, false) {
					ready[s.AddressType]++
				}
			}
		}
		return ready[discoveryv1.AddressTypeIPv4] == 2 && ready[discoveryv1.AddressTypeIPv6] == 2, fmt.Sprint(ready)
	})

	// from the client pod, both backends answer on each of the Service's cluster IPs
	for _, ip := range web.Spec.ClusterIPs {
		url := "http://" + net.JoinHostPort(ip, "80") + "/"
		eventually(t, "both backends answering "+url+" from the client pod", func() (bool, string) {
			answers := fetch(node, clientPod, url, 20)
			return answers["web-0"] > 0 && answers["web-1"] > 0 && answers["web-0"]+answers["web-1"] == 20, fmt.Sprint(answers)
		})
	}
	// and a pod reaches another over IPv6 directly
	direct := "http://" + net.JoinHostPort(pods[1].Status.PodIPs[1].IP, "8080") + "/"
	if answers := fetch(node, clientPod, direct, 1); answers["web-1"] != 1 {
		t.Errorf("%s from the client pod: %v", direct, answers)
	}
}

func inRange(s string, p netip.Prefix) bool {
	ip, err := netip.ParseAddr(s)
	return err == nil && p.Contains(ip)
}

// fetch asks url n times with busybox wget from the pod and counts the answers (the pages
// name their pods); a failed request is counted as "error: <what wget said>".
func fetch(node *kubelettest.Node, from *corev1.Pod, url string, n int) map[string]int {
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do wget -q -O- %s 2>&1 || echo "error: wget exit $?"; i=$((i+1)); done`, n, url)
	stdout, stderr, err := node.Exec(from, "main", "sh", "-c", script)
	answers := map[string]int{}
	if err != nil {
		answers[fmt.Sprintf("error: exec: %v %s", err, stderr)]++
		return answers
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		answers[line]++
	}
	return answers
}
