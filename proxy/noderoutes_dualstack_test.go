package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func dualStackNode(name string, podCIDRs []string, addresses ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDR: podCIDRs[0], PodCIDRs: podCIDRs}}
	for _, a := range addresses {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
	}
	return n
}

// desiredRoutes is what a syncer on node-a wants, given the Nodes.
func desiredRoutes(t *testing.T, cfg RoutesConfig, nodes ...*corev1.Node) map[netip.Prefix]route {
	t.Helper()
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	r, err := NewNodeRoutes(factory.Core().V1().Nodes(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := factory.Core().V1().Nodes().Informer().GetIndexer().Add(n); err != nil {
			t.Fatal(err)
		}
	}
	want, err := r.desired()
	if err != nil {
		t.Fatal(err)
	}
	return want
}

func TestADualStackSyncerRoutesEachFamilysPodCIDRViaTheNodesAddressOfThatFamily(t *testing.T) {
	nodes := []*corev1.Node{
		dualStackNode("node-a", []string{"10.42.0.0/24", "fd42::/64"}, "192.168.77.1", "fd77::1"),
		dualStackNode("node-b", []string{"10.42.1.0/24", "fd42:0:0:1::/64"}, "192.168.77.2", "fd77::2"),
		// no IPv6 address: its IPv6 pods are out of reach
		dualStackNode("node-c", []string{"10.42.2.0/24", "fd42:0:0:2::/64"}, "192.168.77.3"),
	}
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	got := desiredRoutes(t, RoutesConfig{Hostname: "node-a", IPv6: true}, nodes...)
	want := map[netip.Prefix]route{
		p("10.42.1.0/24"):    {dst: p("10.42.1.0/24"), via: a("192.168.77.2")},
		p("fd42:0:0:1::/64"): {dst: p("fd42:0:0:1::/64"), via: a("fd77::2")},
		p("10.42.2.0/24"):    {dst: p("10.42.2.0/24"), via: a("192.168.77.3")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("desired routes = %v, want %v", got, want)
	}

	// without IPv6 the same Nodes give only the IPv4 routes, as before dual stack
	got = desiredRoutes(t, RoutesConfig{Hostname: "node-a"}, nodes...)
	delete(want, p("fd42:0:0:1::/64"))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("IPv4-only desired routes = %v, want %v", got, want)
	}
}

// TestIPv6NodeRoutesInNetworkNamespaces runs a dual-stack node-routes syncer in each of two
// nodes' network namespaces, linked, and checks the routes the kernel holds and the traffic
// between their pods over IPv6 (the source address kept between pods, masqueraded to a
// node's address):
//
//	podA fd45:0:0:1::10 ── cbr0 ─ nodeA eth0 192.168.78.1, fd78::1 ══ veth ══ 192.168.78.2, fd78::2 eth0 nodeB ─ cbr0 ── podB fd45:0:0:2::10
func TestIPv6NodeRoutesInNetworkNamespaces(t *testing.T) {
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
	a, b := "skr6-nodea-"+id, "skr6-nodeb-"+id
	h.addNetns(a)
	h.addNetns(b)
	h.run("ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
	pods := []string{"skr6-poda-" + id, "skr6-podb-" + id}
	podIPs := []string{"fd45:0:0:1::10", "fd45:0:0:2::10"}
	for i, ns := range []string{a, b} {
		h.run("ip", "-n", ns, "link", "set", "lo", "up")
		h.run("ip", "-n", ns, "addr", "add", fmt.Sprintf("192.168.78.%d/24", i+1), "dev", "eth0")
		h.run("ip", "-n", ns, "addr", "add", fmt.Sprintf("fd78::%d/64", i+1), "dev", "eth0", "nodad")
		h.run("ip", "-n", ns, "link", "set", "eth0", "up")
		// a pod on a bridge in the node's IPv6 podCIDR
		h.run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
		h.run("ip", "-n", ns, "link", "add", "cbr0", "type", "bridge")
		h.run("ip", "-n", ns, "addr", "add", fmt.Sprintf("fd45:0:0:%d::1/64", i+1), "dev", "cbr0", "nodad")
		h.run("ip", "-n", ns, "link", "set", "cbr0", "up")
		h.addNetns(pods[i])
		h.run("ip", "-n", ns, "link", "add", "vp0", "type", "veth", "peer", "name", "eth0", "netns", pods[i])
		h.run("ip", "-n", ns, "link", "set", "vp0", "master", "cbr0")
		h.run("ip", "-n", ns, "link", "set", "vp0", "up")
		h.run("ip", "-n", pods[i], "link", "set", "lo", "up")
		h.run("ip", "-n", pods[i], "addr", "add", podIPs[i]+"/64", "dev", "eth0", "nodad")
		h.run("ip", "-n", pods[i], "link", "set", "eth0", "up")
		h.run("ip", "-n", pods[i], "-6", "route", "add", "default", "via", fmt.Sprintf("fd45:0:0:%d::1", i+1))
		h.serveClientAddress(pods[i], podIPs[i])
		h.serveClientAddress(ns, fmt.Sprintf("fd78::%d", i+1))
	}
	// an IPv6 route of an earlier run of ours, for a node that is gone, and one of someone else
	h.run("ip", "-n", a, "-6", "route", "add", "fd45:0:0:9::/64", "via", "fd78::2", "proto", fmt.Sprint(DefaultRouteProtocol))
	h.run("ip", "-n", a, "-6", "route", "add", "fd99::/64", "via", "fd78::2", "proto", "static")

	srv := apiservertest.Start(t)
	ctx := context.Background()
	for _, n := range []*corev1.Node{
		dualStackNode("node-a", []string{"10.245.1.0/24", "fd45:0:0:1::/64"}, "192.168.78.1", "fd78::1"),
		dualStackNode("node-b", []string{"10.245.2.0/24", "fd45:0:0:2::/64"}, "192.168.78.2", "fd78::2"),
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
	dualStack := func(cfg *RoutesConfig) { cfg.IPv6 = true }
	startNodeRoutes(t, srv.Client, "node-a", a, dualStack)
	startNodeRoutes(t, srv.Client, "node-b", b, dualStack)

	routes := func(family string) string {
		out, err := exec.Command("ip", "-n", a, family, "route", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("ip route show: %v: %s", err, out)
		}
		return string(out)
	}
	eventually(t, "node A's routes to node B's pods of both families, and not the stale one", func() (bool, string) {
		v4, v6 := routes("-4"), routes("-6")
		return strings.Contains(v4, "10.245.2.0/24 via 192.168.78.2 dev eth0 proto 77") &&
			strings.Contains(v6, "fd45:0:0:2::/64 via fd78::2 dev eth0 proto 77") &&
			!strings.Contains(v6, "fd45:0:0:9::/64"), v4 + v6
	})
	if v6 := routes("-6"); !strings.Contains(v6, "fd99::/64 via fd78::2 dev eth0 proto static") || strings.Contains(v6, "fd45:0:0:1::/64 via") {
		t.Errorf("node A's IPv6 routes:\n%s", v6)
	}
	// pod to pod over IPv6 keeps the source address; pod to a node's address is masqueraded
	eventually(t, "pod A reaching pod B over IPv6", func() (bool, string) {
		answers, err := ask(pods[0], net.JoinHostPort(podIPs[1], fmt.Sprint(clientAddressPort)), 1)
		return err == nil && answers[podIPs[0]] == 1, fmt.Sprintf("answers %v, err %v; routes:\n%s", answers, err, routes("-6"))
	})
	if answers, err := ask(pods[1], net.JoinHostPort(podIPs[0], fmt.Sprint(clientAddressPort)), 1); err != nil || answers[podIPs[1]] != 1 {
		t.Errorf("pod A saw pod B's connection come from %v (err %v), want pod B's address %s", answers, err, podIPs[1])
	}
	if answers, err := ask(pods[0], net.JoinHostPort("fd78::2", fmt.Sprint(clientAddressPort)), 1); err != nil || answers["fd78::1"] != 1 {
		t.Errorf("node B saw pod A's connection come from %v (err %v), want node A's address fd78::1", answers, err)
	}
	// each family's pod network is its podCIDRs, node A's own too, in a table of its family
	if set := podNetworkSetOf(t, a, "ip6"); !strings.Contains(set, "fd45:0:0:1::/64, fd45:0:0:2::/64") || strings.Contains(set, "10.245") {
		t.Errorf("node A's IPv6 pod network set:\n%s", set)
	}
	if set := podNetworkSetOf(t, a, "ip"); !strings.Contains(set, "10.245.1.0/24, 10.245.2.0/24") || strings.Contains(set, "fd45") {
		t.Errorf("node A's IPv4 pod network set:\n%s", set)
	}

	// node B goes: both its routes go
	if err := srv.Client.CoreV1().Nodes().Delete(ctx, "node-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node A's routes to node B's pods removed", func() (bool, string) {
		v4, v6 := routes("-4"), routes("-6")
		return !strings.Contains(v4, "10.245.2.0/24") && !strings.Contains(v6, "fd45:0:0:2::/64"), v4 + v6
	})
}
