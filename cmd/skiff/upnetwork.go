package main

import (
	"fmt"
	"math/big"
	"net/netip"
	"strings"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/controllers/nodeipam"
	"github.com/skiff-dev/skiff/registry"
)

// upNetwork is skiff up's address plan, read from --cluster-cidr and --service-cidr as k3s
// reads its flags of those names: each one CIDR, or an IPv4 and an IPv6 one separated by a
// comma for a dual-stack cluster.
type upNetwork struct {
	// clusterCIDR is the controller manager's --cluster-cidr, what node IPAM hands out.
	clusterCIDR string
	// podCIDR is this node's own pod range, the first node subnet of each cluster CIDR, which
	// its kubelet registers with (node IPAM leaves a Node that has one alone).
	podCIDR string
	// serviceCIDR is the API server's --service-cluster-ip-range.
	serviceCIDR string
	// clusterDNS is the kube-dns Service's cluster IP, the tenth address of the service range.
	clusterDNS string
	// dualStack: pods get an IPv6 address too, and the proxy routes IPv6 Services.
	dualStack bool
}

// network reads the address plan from the flags; an unset one (options built in code rather
// than from flags) is its flag's default. The IPv4 CIDR comes first: skiff up's node address,
// and with it each pod's primary address, is IPv4.
func (o *upOptions) network() (upNetwork, error) {
	if o.clusterCIDR == "" {
		o.clusterCIDR = nodeipam.DefaultClusterCIDR
	}
	if o.serviceCIDR == "" {
		o.serviceCIDR = apiserver.DefaultServiceClusterIPRange
	}
	cluster, err := nodeipam.ParseClusterCIDRs(o.clusterCIDR)
	if err != nil {
		return upNetwork{}, err
	}
	service, service6, err := registry.ParseServiceCIDRs(o.serviceCIDR)
	if err != nil {
		return upNetwork{}, fmt.Errorf("--service-cidr: %w", err)
	}
	if !cluster[0].Addr().Is4() || !service.Addr().Is4() {
		return upNetwork{}, fmt.Errorf("--cluster-cidr %q, --service-cidr %q: the IPv4 CIDR comes first (IPv6-primary and IPv6-only clusters are not supported)", o.clusterCIDR, o.serviceCIDR)
	}
	var podCIDRs []string
	for _, p := range cluster {
		podCIDRs = append(podCIDRs, netip.PrefixFrom(p.Addr(), max(p.Bits(), nodeipam.DefaultMaskSize(p))).String())
	}
	n := upNetwork{
		clusterCIDR: o.clusterCIDR,
		podCIDR:     strings.Join(podCIDRs, ","),
		serviceCIDR: o.serviceCIDR,
		clusterDNS:  nthAddress(service, 10).String(),
		dualStack:   len(cluster) == 2,
	}
	if service6.IsValid() && !n.dualStack {
		return upNetwork{}, fmt.Errorf("--service-cidr %q is dual-stack but --cluster-cidr %q is not: pods would have no IPv6 address to serve IPv6 Services", o.serviceCIDR, o.clusterCIDR)
	}
	return n, nil
}

// nthAddress is the n-th address of a range (its first is the 0th).
func nthAddress(p netip.Prefix, n int64) netip.Addr {
	i := new(big.Int).Add(new(big.Int).SetBytes(p.Masked().Addr().AsSlice()), big.NewInt(n))
	addr, _ := netip.AddrFromSlice(i.FillBytes(make([]byte, p.Addr().BitLen()/8)))
	return addr
}
