package proxy

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestThePodNetworkIsEveryNodesPodCIDROfTheFamilyWithinTheClusterCIDR(t *testing.T) {
	p := netip.MustParsePrefix
	nodes := []*corev1.Node{
		dualStackNode("node-a", []string{"10.42.0.0/24", "fd42::/64"}, "192.168.77.1"),
		dualStackNode("node-b", []string{"10.42.1.0/24", "fd42:0:0:1::/64"}),
		// outside the cluster CIDR (given by hand): in the pod network too
		dualStackNode("node-c", []string{"10.99.0.0/24"}),
	}
	if got, want := podNetwork(nodes, nil, ipv4Family), []netip.Prefix{p("10.42.0.0/24"), p("10.42.1.0/24"), p("10.99.0.0/24")}; !reflect.DeepEqual(got, want) {
		t.Errorf("IPv4 pod network = %v, want %v", got, want)
	}
	// the cluster CIDR holds the podCIDRs inside it: an interval set takes no overlap
	cluster := []netip.Prefix{p("10.42.0.0/16"), p("fd42::/56")}
	if got, want := podNetwork(nodes, cluster, ipv4Family), []netip.Prefix{p("10.42.0.0/16"), p("10.99.0.0/24")}; !reflect.DeepEqual(got, want) {
		t.Errorf("IPv4 pod network with the cluster CIDR = %v, want %v", got, want)
	}
	if got, want := podNetwork(nodes, cluster, ipv6Family), []netip.Prefix{p("fd42::/56")}; !reflect.DeepEqual(got, want) {
		t.Errorf("IPv6 pod network with the cluster CIDR = %v, want %v", got, want)
	}
	if got := podNetwork(nil, nil, ipv6Family); len(got) != 0 {
		t.Errorf("pod network without Nodes = %v", got)
	}
}

func TestThePodNetworkTableMasqueradesOnlyWhatLeavesIt(t *testing.T) {
	tx := podNetworkTable("skiff-podnet", ipv6Family, []netip.Prefix{netip.MustParsePrefix("fd42::/56")})
	for _, want := range []string{
		"add table ip6 skiff-podnet\ndelete table ip6 skiff-podnet\n",
		"type ipv6_addr", "elements = { fd42::/56 }",
		"type nat hook postrouting priority srcnat + 1;",
		"ip6 saddr @pod-network ip6 daddr != @pod-network ip6 daddr != ff00::/8 masquerade fully-random",
	} {
		if !strings.Contains(tx, want) {
			t.Errorf("transaction lacks %q:\n%s", want, tx)
		}
	}
	// no Node has a podCIDR yet: an empty set, which nft refuses to write as "elements = { }"
	if tx := podNetworkTable("skiff-podnet", ipv4Family, nil); strings.Contains(tx, "elements") {
		t.Errorf("empty pod network:\n%s", tx)
	}
}
