package proxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// DefaultPodNetworkTable is the node-routes syncer's nftables table (`ip skiff-podnet`, and
// `ip6 skiff-podnet` when dual-stack): the masquerade of pod traffic leaving the pod network.
const DefaultPodNetworkTable = "skiff-podnet"

// podNetworkSet is the set of the table that holds the pod network's ranges.
const podNetworkSet = "pod-network"

// podNetwork is the pod network of one family: every Node's podCIDRs of it and the cluster
// CIDR of it when known, none inside another (an interval set refuses overlapping elements).
func podNetwork(nodes []*corev1.Node, clusterCIDRs []netip.Prefix, f ipFamily) []netip.Prefix {
	var all []netip.Prefix
	for _, c := range clusterCIDRs {
		if f.has(c.Addr()) {
			all = append(all, c.Masked())
		}
	}
	for _, n := range nodes {
		all = append(all, nodePodCIDRs(n, f)...)
	}
	// the widest first: a range is kept unless one kept before holds it
	slices.SortFunc(all, func(a, b netip.Prefix) int {
		if a.Bits() != b.Bits() {
			return a.Bits() - b.Bits()
		}
		return a.Addr().Compare(b.Addr())
	})
	var out []netip.Prefix
	for _, p := range all {
		if !slices.ContainsFunc(out, p.Overlaps) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// multicast is each family's multicast range, never masqueraded (as flannel's rule).
var multicast = map[string]string{ipv4Family.table: "224.0.0.0/4", ipv6Family.table: "ff00::/8"}

// podNetworkTable is the transaction that replaces the family's table with one that
// masquerades what a pod sends out of the pod network, as flannel's host-gw backend does
// (`-s POD_NETWORK ! -d POD_NETWORK ! -d 224.0.0.0/4 -j MASQUERADE --random-fully`): a
// packet from a pod to a pod of any node keeps its source address, one to anything else
// (a node's address, the internet) leaves with this node's. Its chain runs just after
// srcnat so that the proxy's own masquerade, and a CNI plugin's, come first; an empty
// network masquerades nothing.
func podNetworkTable(table string, f ipFamily, network []netip.Prefix) string {
	var b strings.Builder
	// "add" first so that deleting an absent table is no error; the whole table is
	// replaced in one transaction, so no packet sees it half-built
	fmt.Fprintf(&b, "add table %s %s\ndelete table %s %s\n", f.table, table, f.table, table)
	fmt.Fprintf(&b, "table %s %s {\n", f.table, table)
	fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n\t\tflags interval\n", podNetworkSet, f.addrType)
	if len(network) > 0 {
		elems := make([]string, len(network))
		for i, p := range network {
			elems[i] = p.String()
		}
		fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(elems, ", "))
	}
	b.WriteString("\t}\n")
	b.WriteString("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat + 1; policy accept;\n")
	fmt.Fprintf(&b, "\t\t%[1]s saddr @%[2]s %[1]s daddr != @%[2]s %[1]s daddr != %[3]s masquerade fully-random\n",
		f.match, podNetworkSet, multicast[f.table])
	b.WriteString("\t}\n}\n")
	return b.String()
}
