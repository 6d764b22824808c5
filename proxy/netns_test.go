package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/e2e/netnstest"
)

// The network test builds a node in network namespaces and sends real traffic through the
// proxy's rules:
//
//	client netns (172.31.0.2) ── veth ── node netns (172.31.0.1; bridge br0 10.244.1.1/24)
//	                                        ├── veth ── pod0 netns (10.244.1.10) "pod0" on :8080
//	                                        └── veth ── pod1 netns (10.244.1.11) "pod1" on :8080
//
// The proxy runs in the test process and programs the node namespace's nftables through
// `ip netns exec`. Every namespace (and with it every link and the nft table) is deleted when
// the test ends, passed or failed.

const (
	nodeIP     = "172.31.0.1"
	clientIP   = "172.31.0.2"
	bridgeIP   = "10.244.1.1"
	podPort    = 8080
	nodeName   = "node-1"
	netnsDir   = "/var/run/netns"
	dialTimout = 2 * time.Second
)

func podIP(i int) string { return fmt.Sprintf("10.244.1.%d", 10+i) }

type testNode struct {
	t              *testing.T
	node, client   string
	pods           []string
	nftInNode      []string
	createdNetnses []string
}

func requireNetworkPrivileges(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the network test needs root (network namespaces, nftables); run it as root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the network test needs %s on PATH (apt-get install nftables iproute2)", tool)
		}
	}
}

func (n *testNode) run(args ...string) {
	n.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (n *testNode) addNetns(name string) {
	n.t.Helper()
	n.run("ip", "netns", "add", name)
	n.createdNetnses = append(n.createdNetnses, name)
}

// newTestNode builds the namespaces above; they are removed when the test ends.
func newTestNode(t *testing.T, pods int) *testNode {
	t.Helper()
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	n := &testNode{t: t, node: "skp-node-" + id, client: "skp-client-" + id}
	t.Cleanup(func() {
		for i := len(n.createdNetnses) - 1; i >= 0; i-- {
			if out, err := exec.Command("ip", "netns", "del", n.createdNetnses[i]).CombinedOutput(); err != nil {
				t.Errorf("deleting netns %s: %v: %s", n.createdNetnses[i], err, out)
			}
		}
	})
	n.addNetns(n.node)
	n.addNetns(n.client)
	nodeCmd := func(args ...string) { n.run(append([]string{"ip", "-n", n.node}, args...)...) }
	n.run("ip", "netns", "exec", n.node, "sysctl", "-qw", "net.ipv4.ip_forward=0") // the proxy must turn it on
	nodeCmd("link", "set", "lo", "up")
	nodeCmd("link", "add", "br0", "type", "bridge")
	nodeCmd("addr", "add", bridgeIP+"/24", "dev", "br0")
	nodeCmd("link", "set", "br0", "up")
	// the client: the node's way to the rest of the world
	nodeCmd("link", "add", "vc0", "type", "veth", "peer", "name", "eth0", "netns", n.client)
	nodeCmd("addr", "add", nodeIP+"/24", "dev", "vc0")
	nodeCmd("link", "set", "vc0", "up")
	nodeCmd("route", "add", "default", "via", clientIP)
	n.run("ip", "-n", n.client, "link", "set", "lo", "up")
	n.run("ip", "-n", n.client, "addr", "add", clientIP+"/24", "dev", "eth0")
	n.run("ip", "-n", n.client, "link", "set", "eth0", "up")
	n.run("ip", "-n", n.client, "route", "add", "default", "via", nodeIP)
	for i := range pods {
		pod := fmt.Sprintf("skp-pod%d-%s", i, id)
		n.addNetns(pod)
		n.pods = append(n.pods, pod)
		port := fmt.Sprintf("vp%d", i)
		nodeCmd("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", pod)
		nodeCmd("link", "set", port, "master", "br0")
		nodeCmd("link", "set", port, "type", "bridge_slave", "hairpin", "on") // a pod may reach itself through its Service
		nodeCmd("link", "set", port, "up")
		n.run("ip", "-n", pod, "link", "set", "lo", "up")
		n.run("ip", "-n", pod, "addr", "add", podIP(i)+"/24", "dev", "eth0")
		n.run("ip", "-n", pod, "link", "set", "eth0", "up")
		n.run("ip", "-n", pod, "route", "add", "default", "via", bridgeIP)
		n.servePodName(pod, podIP(i), fmt.Sprintf("pod%d", i))
	}
	n.nftInNode = []string{"ip", "netns", "exec", n.node, "nft"}
	return n
}

// servePodName answers every TCP connection to ip:8080 in the pod's namespace with answer.
func (n *testNode) servePodName(netns, ip, answer string) {
	n.t.Helper()
	var l net.Listener
	err := netnstest.InNetns(netns, func() (err error) {
		l, err = net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(podPort)))
		return err
	})
	if err != nil {
		n.t.Fatalf("listen in %s: %v", netns, err)
	}
	n.t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(answer))
			c.Close()
		}
	}()
}

// ask connects from a namespace to addr tries times and counts the answers; a connection
// error ends the round and is returned.
func ask(netns, addr string, tries int) (map[string]int, error) {
	answers := map[string]int{}
	err := netnstest.InNetns(netns, func() error {
		for range tries {
			c, err := net.DialTimeout("tcp", addr, dialTimout)
			if err != nil {
				return err
			}
			c.SetDeadline(time.Now().Add(dialTimout))
			b, err := io.ReadAll(c)
			c.Close()
			if err != nil {
				return err
			}
			answers[string(b)]++
		}
		return nil
	})
	return answers, err
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		ok, detail := cond()
		last = detail
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v; last: %s", what, err, last)
	}
}

func endpointSlice(svc string, ips ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc + "-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](podPort), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, ip := range ips {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(nodeName),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	return s
}

func createService(t *testing.T, client kubernetes.Interface, name string, typ corev1.ServiceType, mutate ...func(*corev1.Service)) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       corev1.ServiceSpec{Type: typ, Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	for _, m := range mutate {
		m(svc)
	}
	svc, err := client.CoreV1().Services("default").Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s: %v", name, err)
	}
	return svc
}

// startProxy runs a proxy for the test node until the returned stop is called (or the test
// ends); mutate changes its configuration.
func startProxy(t *testing.T, client kubernetes.Interface, n *testNode, mutate ...func(*Config)) (stop func()) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	cfg := Config{
		Hostname:    nodeName,
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
		NFT:         n.nftInNode,
		HealthCheckListen: func(network, addr string) (l net.Listener, err error) {
			err = netnstest.InNetns(n.node, func() error { l, err = net.Listen(network, addr); return err })
			return l, err
		},
		Sysctl: func(name, value string) error {
			out, err := exec.Command("ip", "netns", "exec", n.node, "sysctl", "-qw", strings.ReplaceAll(name, "/", ".")+"="+value).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	p, err := New(factory.Core().V1().Services(), factory.Discovery().V1().EndpointSlices(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
		factory.Shutdown()
	}
	t.Cleanup(stop)
	return stop
}

func TestTrafficThroughTheProxyInNetworkNamespaces(t *testing.T) {
	requireNetworkPrivileges(t)
	n := newTestNode(t, 2)
	srv := apiservertest.Start(t)
	client := srv.Client
	ctx := context.Background()

	// what an earlier run might have left: the first sync must leave none of it
	n.run("sh", "-c", "printf 'add table ip skiff\\nadd chain ip skiff stale-chain\\n' | ip netns exec "+n.node+" nft -f -")

	web := createService(t, client, "web", corev1.ServiceTypeNodePort)
	empty := createService(t, client, "empty", corev1.ServiceTypeClusterIP)
	sticky := createService(t, client, "sticky", corev1.ServiceTypeClusterIP, func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	})
	for _, s := range []*discoveryv1.EndpointSlice{endpointSlice("web", podIP(0), podIP(1)), endpointSlice("sticky", podIP(0), podIP(1))} {
		if _, err := client.DiscoveryV1().EndpointSlices("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	stop := startProxy(t, client, n)

	clusterAddr := net.JoinHostPort(web.Spec.ClusterIP, "80")
	nodePortAddr := net.JoinHostPort(nodeIP, fmt.Sprint(web.Spec.Ports[0].NodePort))
	everyPodAnswers := func(from, addr string) func() (bool, string) {
		return func() (bool, string) {
			answers, err := ask(from, addr, 40)
			return err == nil && answers["pod0"] > 0 && answers["pod1"] > 0, fmt.Sprintf("answers %v, err %v", answers, err)
		}
	}
	eventually(t, "both pods answering the cluster IP from the client", everyPodAnswers(n.client, clusterAddr))
	eventually(t, "both pods answering the node port from the client", everyPodAnswers(n.client, nodePortAddr))
	eventually(t, "both pods answering the cluster IP from the node itself", everyPodAnswers(n.node, clusterAddr))
	eventually(t, "both pods answering the cluster IP from a pod (one of them itself, hairpin)", everyPodAnswers(n.pods[0], clusterAddr))

	out, err := exec.Command("ip", "netns", "exec", n.node, "nft", "list", "table", "ip", "skiff").CombinedOutput()
	if err != nil || strings.Contains(string(out), "stale-chain") {
		t.Errorf("the first sync should rebuild the table from nothing (err %v):\n%s", err, out)
	}
	if v, _ := exec.Command("ip", "netns", "exec", n.node, "sysctl", "-n", "net.ipv4.ip_forward").Output(); strings.TrimSpace(string(v)) != "1" {
		t.Errorf("ip_forward is %q in the node namespace", v)
	}

	// ClientIP affinity: one client, one pod
	eventually(t, "the sticky service answering", func() (bool, string) {
		answers, err := ask(n.client, net.JoinHostPort(sticky.Spec.ClusterIP, "80"), 1)
		return err == nil, fmt.Sprintf("answers %v, err %v", answers, err)
	})
	if answers, err := ask(n.client, net.JoinHostPort(sticky.Spec.ClusterIP, "80"), 30); err != nil || len(answers) != 1 {
		t.Errorf("session affinity: want every answer from one pod, got %v (err %v)", answers, err)
	}

	// a Service without endpoints refuses connections at once
	_, err = ask(n.client, net.JoinHostPort(empty.Spec.ClusterIP, "80"), 1)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a service without endpoints: want connection refused, got %v", err)
	}

	// removing an endpoint takes effect: only pod0 answers
	s, err := client.DiscoveryV1().EndpointSlices("default").Get(ctx, "web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Endpoints = s.Endpoints[:1]
	if s, err = client.DiscoveryV1().EndpointSlices("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "only pod0 answering", func() (bool, string) {
		answers, err := ask(n.client, clusterAddr, 30)
		return err == nil && answers["pod0"] == 30, fmt.Sprintf("answers %v, err %v", answers, err)
	})

	// and the last endpoint going makes the Service refuse
	s.Endpoints = []discoveryv1.Endpoint{}
	if _, err := client.DiscoveryV1().EndpointSlices("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the emptied service refusing", func() (bool, string) {
		_, err := ask(n.client, clusterAddr, 1)
		return errors.Is(err, syscall.ECONNREFUSED), fmt.Sprintf("err %v", err)
	})

	// a stopped proxy leaves no table behind
	stop()
	out, err = exec.Command("ip", "netns", "exec", n.node, "nft", "list", "tables").CombinedOutput()
	if err != nil || strings.Contains(string(out), "skiff") {
		t.Errorf("after the proxy stopped: err %v, tables:\n%s", err, out)
	}
}
