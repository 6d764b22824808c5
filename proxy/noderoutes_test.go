package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/e2e/netnstest"
)

// TestNodeRoutesBetweenNodesInNetworkNamespaces builds two nodes on one link, each with a pod
// on a bridge in its own podCIDR, runs one node-routes syncer per node and sends traffic from
// pod A to pod B, which sees pod A's own address, and to node B's address, which sees node
// A's (the pod network's masquerade):
//
//	podA (10.245.1.10) ── cbr0 10.245.1.1 ─ nodeA eth0 192.168.77.1 ══ veth ══ 192.168.77.2 eth0 nodeB ─ cbr0 10.245.2.1 ── podB (10.245.2.10)
func TestNodeRoutesBetweenNodesInNetworkNamespaces(t *testing.T) {
	requireNetworkPrivileges(t)
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	h := &testNode{t: t}
	t.Cleanup(func() {
		for i := len(h.createdNetnses) - 1; i >= 0; i-- {
			if out, err := exec.Command("ip", "netns", "del", h.createdNetnses[i]).CombinedOutput(); err != nil {
				t.Errorf("deleting netns %s: %v: %s", h.createdNetnses[i], err, out)
			}
		}
	})
	type side struct{ node, pod, nodeIP, cidr, bridge, podIP string }
	a := side{"skr-nodea-" + id, "skr-poda-" + id, "192.168.77.1", "10.245.1.0/24", "10.245.1.1", "10.245.1.10"}
	b := side{"skr-nodeb-" + id, "skr-podb-" + id, "192.168.77.2", "10.245.2.0/24", "10.245.2.1", "10.245.2.10"}
	for _, s := range []side{a, b} {
		h.addNetns(s.node)
		h.addNetns(s.pod)
	}
	h.run("ip", "-n", a.node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b.node)
	for _, s := range []side{a, b} {
		in := func(args ...string) { h.run(append([]string{"ip", "-n", s.node}, args...)...) }
		h.run("ip", "netns", "exec", s.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		in("link", "set", "lo", "up")
		in("addr", "add", s.nodeIP+"/24", "dev", "eth0")
		in("link", "set", "eth0", "up")
		in("link", "add", "cbr0", "type", "bridge")
		in("addr", "add", s.bridge+"/24", "dev", "cbr0")
		in("link", "set", "cbr0", "up")
		in("link", "add", "vp0", "type", "veth", "peer", "name", "eth0", "netns", s.pod)
		in("link", "set", "vp0", "master", "cbr0")
		in("link", "set", "vp0", "up")
		h.run("ip", "-n", s.pod, "link", "set", "lo", "up")
		h.run("ip", "-n", s.pod, "addr", "add", s.podIP+"/24", "dev", "eth0")
		h.run("ip", "-n", s.pod, "link", "set", "eth0", "up")
		h.run("ip", "-n", s.pod, "route", "add", "default", "via", s.bridge)
		h.servePodName(s.pod, s.podIP, s.pod)
		h.serveClientAddress(s.pod, s.podIP)
		h.serveClientAddress(s.node, s.nodeIP)
	}
	// what node A holds before: a route of someone else (never touched) and one of an earlier
	// run of ours for a node that is gone (removed)
	h.run("ip", "-n", a.node, "route", "add", "10.99.0.0/24", "via", b.nodeIP, "proto", "static")
	h.run("ip", "-n", a.node, "route", "add", "10.245.9.0/24", "via", b.nodeIP, "proto", fmt.Sprint(DefaultRouteProtocol))

	srv := apiservertest.Start(t)
	ctx := context.Background()
	for _, n := range []struct{ name, ip, cidr string }{
		{"node-a", a.nodeIP, a.cidr},
		{"node-b", b.nodeIP, b.cidr},
		// an address on no link of either node: its route cannot be added, the others still are
		{"node-far", "192.0.2.9", "10.245.3.0/24"},
	} {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.name},
			Spec:       corev1.NodeSpec{PodCIDR: n.cidr, PodCIDRs: []string{n.cidr}},
		}
		node, err := srv.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.ip}, {Type: corev1.NodeHostName, Address: n.name}}
		if _, err := srv.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	startNodeRoutes(t, srv.Client, "node-a", a.node)
	startNodeRoutes(t, srv.Client, "node-b", b.node)

	routes := func(netns string) string {
		out, err := exec.Command("ip", "-n", netns, "-4", "route", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("ip route show: %v: %s", err, out)
		}
		return string(out)
	}
	podBAddr := net.JoinHostPort(b.podIP, fmt.Sprint(podPort))
	podAAddr := net.JoinHostPort(a.podIP, fmt.Sprint(podPort))
	eventually(t, "pod A reaching pod B", func() (bool, string) {
		answers, err := ask(a.pod, podBAddr, 1)
		return err == nil && answers[b.pod] == 1, fmt.Sprintf("answers %v, err %v; routes in A:\n%s", answers, err, routes(a.node))
	})
	eventually(t, "pod B reaching pod A", func() (bool, string) {
		answers, err := ask(b.pod, podAAddr, 1)
		return err == nil && answers[a.pod] == 1, fmt.Sprintf("answers %v, err %v", answers, err)
	})
	// pod to pod: the source address is kept; pod to a node's address (out of the pod
	// network): masqueraded to the node's
	if answers, err := ask(a.pod, net.JoinHostPort(b.podIP, fmt.Sprint(clientAddressPort)), 1); err != nil || answers[a.podIP] != 1 {
		t.Errorf("pod B saw pod A's connection come from %v (err %v), want pod A's address %s", answers, err, a.podIP)
	}
	if answers, err := ask(b.pod, net.JoinHostPort(a.podIP, fmt.Sprint(clientAddressPort)), 1); err != nil || answers[b.podIP] != 1 {
		t.Errorf("pod A saw pod B's connection come from %v (err %v), want pod B's address %s", answers, err, b.podIP)
	}
	if answers, err := ask(a.pod, net.JoinHostPort(b.nodeIP, fmt.Sprint(clientAddressPort)), 1); err != nil || answers[a.nodeIP] != 1 {
		t.Errorf("node B saw pod A's connection come from %v (err %v), want node A's address %s", answers, err, a.nodeIP)
	}
	// every Node's podCIDR is in the pod network, those without a route too
	if set := podNetworkSetOf(t, a.node, "ip"); !strings.Contains(set, "10.245.1.0/24, 10.245.2.0/24, 10.245.3.0/24") {
		t.Errorf("node A's pod network set:\n%s", set)
	}

	ra := routes(a.node)
	for _, want := range []string{
		"10.245.2.0/24 via 192.168.77.2 dev eth0 proto 77", // node B's pods
		"10.99.0.0/24 via 192.168.77.2 dev eth0 proto static",
	} {
		if !strings.Contains(ra, want) {
			t.Errorf("node A's routes lack %q:\n%s", want, ra)
		}
	}
	for _, unwanted := range []string{"10.245.9.0/24", "10.245.3.0/24", "10.245.1.0/24 via"} {
		if strings.Contains(ra, unwanted) {
			t.Errorf("node A's routes hold %q:\n%s", unwanted, ra)
		}
	}

	// node B goes: node A's route to its pods goes, nothing else does
	if err := srv.Client.CoreV1().Nodes().Delete(ctx, "node-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node A's route to node B's pods removed", func() (bool, string) {
		ra := routes(a.node)
		return !strings.Contains(ra, b.cidr), ra
	})
	if ra := routes(a.node); !strings.Contains(ra, "10.99.0.0/24 via 192.168.77.2 dev eth0 proto static") {
		t.Errorf("the route of someone else went:\n%s", ra)
	}
	if _, err := ask(a.pod, podBAddr, 1); err == nil {
		t.Errorf("pod A still reaches pod B without a route")
	}
	eventually(t, "node B's pods out of node A's pod network", func() (bool, string) {
		set := podNetworkSetOf(t, a.node, "ip")
		return strings.Contains(set, "10.245.1.0/24, 10.245.3.0/24"), set
	})
}

// clientAddressPort is where serveClientAddress answers.
const clientAddressPort = 8081

// serveClientAddress answers every TCP connection to ip:8081 in the namespace with the
// address the connection came from.
func (n *testNode) serveClientAddress(netns, ip string) {
	n.t.Helper()
	var l net.Listener
	err := netnstest.InNetns(netns, func() (err error) {
		l, err = net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(clientAddressPort)))
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
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			c.Write([]byte(host))
			c.Close()
		}
	}()
}

// podNetworkSetOf is the pod network set of the syncer's table of a family ("ip", "ip6") in
// a namespace, as nft lists it, on one line (nft wraps long element lists).
func podNetworkSetOf(t *testing.T, netns, family string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", netns, "nft", "list", "set", family, DefaultPodNetworkTable, podNetworkSet).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list set: %v: %s", err, out)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// TestTheSyncersTableGoesWhenItStopsAndItsRoutesStay stops a syncer: its pod network table
// goes, its routes stay (pod traffic keeps flowing until the next start); skiff reset's
// RemoveFromNode then removes the routes and a table a killed syncer left, of both
// families, and nothing else.
func TestTheSyncersTableGoesWhenItStopsAndItsRoutesStay(t *testing.T) {
	requireNetworkPrivileges(t)
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	h := &testNode{t: t}
	t.Cleanup(func() {
		for i := len(h.createdNetnses) - 1; i >= 0; i-- {
			if out, err := exec.Command("ip", "netns", "del", h.createdNetnses[i]).CombinedOutput(); err != nil {
				t.Errorf("deleting netns %s: %v: %s", h.createdNetnses[i], err, out)
			}
		}
	})
	a, b := "skrs-nodea-"+id, "skrs-nodeb-"+id
	h.addNetns(a)
	h.addNetns(b)
	h.run("ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
	for i, ns := range []string{a, b} {
		h.run("ip", "-n", ns, "link", "set", "lo", "up")
		h.run("ip", "-n", ns, "addr", "add", fmt.Sprintf("192.168.79.%d/24", i+1), "dev", "eth0")
		h.run("ip", "-n", ns, "link", "set", "eth0", "up")
	}
	srv := apiservertest.Start(t)
	ctx := context.Background()
	for _, n := range []*corev1.Node{
		dualStackNode("node-a", []string{"10.245.1.0/24"}, "192.168.79.1"),
		dualStackNode("node-b", []string{"10.245.2.0/24"}, "192.168.79.2"),
	} {
		status := n.Status
		n, err := srv.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Status = status
		if _, err := srv.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	routes := func() string {
		out, err := exec.Command("ip", "-n", a, "route", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("ip route show: %v: %s", err, out)
		}
		return string(out)
	}
	tables := func() string {
		out, err := exec.Command("ip", "netns", "exec", a, "nft", "list", "tables").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list tables: %v: %s", err, out)
		}
		return string(out)
	}
	stop := startNodeRoutes(t, srv.Client, "node-a", a)
	eventually(t, "node A's route and table", func() (bool, string) {
		return strings.Contains(routes(), "10.245.2.0/24 via 192.168.79.2") && strings.Contains(tables(), "table ip "+DefaultPodNetworkTable), routes() + tables()
	})
	stop()
	if got := tables(); strings.Contains(got, DefaultPodNetworkTable) {
		t.Errorf("the pod network's table outlived the syncer:\n%s", got)
	}
	if got := routes(); !strings.Contains(got, "10.245.2.0/24 via 192.168.79.2") {
		t.Errorf("the route went with the syncer:\n%s", got)
	}

	// what a killed syncer leaves, beside a table of someone else
	for _, tx := range []string{
		podNetworkTable(DefaultPodNetworkTable, ipv4Family, []netip.Prefix{netip.MustParsePrefix("10.245.0.0/16")}),
		podNetworkTable(DefaultPodNetworkTable, ipv6Family, []netip.Prefix{netip.MustParsePrefix("fd45::/56")}),
		"add table ip someone-else\n",
	} {
		if err := runNFT(ctx, []string{"ip", "netns", "exec", a, "nft"}, tx); err != nil {
			t.Fatal(err)
		}
	}
	if err := netnstest.InNetns(a, func() error { return RemoveFromNode(ctx) }); err != nil {
		t.Fatal(err)
	}
	if got := tables(); strings.Contains(got, DefaultPodNetworkTable) || !strings.Contains(got, "table ip someone-else") {
		t.Errorf("tables after RemoveFromNode:\n%s", got)
	}
	if got := routes(); strings.Contains(got, "10.245.2.0/24") {
		t.Errorf("routes after RemoveFromNode:\n%s", got)
	}
}

// startNodeRoutes runs a node-routes syncer for the named node in a network namespace until
// stop, or until the test ends; mutate adjusts its config.
func startNodeRoutes(t *testing.T, client kubernetes.Interface, name, netns string, mutate ...func(*RoutesConfig)) (stop func()) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	cfg := RoutesConfig{Hostname: name, IP: []string{"ip", "-n", netns}, NFT: []string{"ip", "netns", "exec", netns, "nft"}}
	for _, m := range mutate {
		m(&cfg)
	}
	r, err := NewNodeRoutes(factory.Core().V1().Nodes(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node routes: %v", err)
			}
			factory.Shutdown()
		})
	}
	t.Cleanup(stop)
	return stop
}
