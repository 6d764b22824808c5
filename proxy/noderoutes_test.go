package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// TestNodeRoutesBetweenNodesInNetworkNamespaces builds two nodes on one link, each with a pod
// on a bridge in its own podCIDR, runs one node-routes syncer per node and sends traffic from
// pod A to pod B:
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
}

// startNodeRoutes runs a node-routes syncer for the named node in a network namespace until
// the test ends.
func startNodeRoutes(t *testing.T, client kubernetes.Interface, name, netns string) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	r, err := NewNodeRoutes(factory.Core().V1().Nodes(), RoutesConfig{Hostname: name, IP: []string{"ip", "-n", netns}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node routes: %v", err)
		}
		factory.Shutdown()
	})
}
