package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// The rules, after upstream's nftables proxier (pkg/proxy/nftables), in one `ip` table (and,
// on a dual-stack node, the same rules for IPv6 in an `ip6` table of the same name, as
// upstream keeps one table per family):
//
//	nat-prerouting, nat-output  → services: clusterIP/externalIP . proto . port vmap @service-ips,
//	                               then, to a local address, proto . port vmap @service-nodeports
//	service-ips elements        → goto service-… (all usable endpoints) or local-… (internal
//	                               traffic policy Local), external IPs → goto external-…
//	service-nodeports elements  → goto external-…: masquerade (policy Cluster) then service-…,
//	                               or (policy Local) only this node's endpoints, unmasqueraded
//	service-…, local-…          → ClientIP affinity (ip saddr @affinity-… goto endpoint-…), then
//	                               numgen random mod N vmap { i : goto endpoint-… }
//	endpoint-…                  → masquerade hairpin traffic, remember the client for affinity,
//	                               dnat to the endpoint
//	nat-postrouting             → masquerade what was marked 0x4000
//	filter-input/forward/output → new connections to a service without endpoints: reject (tcp
//	                               reset, icmp port unreachable), or drop when only the Local
//	                               policy leaves none; traffic to a cluster IP on a port it
//	                               does not serve: reject
//
// Masquerading happens where upstream's does: traffic to a cluster IP from outside the cluster
// CIDR (when it is known), all node-port and external-IP traffic of policy Cluster, locally
// originated external traffic of policy Local, and a pod reaching itself through its Service.

const (
	// masqueradeMark is the packet mark that asks nat-postrouting to masquerade, upstream's.
	masqueradeMark = "0x4000"

	serviceIPsMap          = "service-ips"
	serviceNodePortsMap    = "service-nodeports"
	noEndpointServicesMap  = "no-endpoint-services"
	noEndpointNodePortsMap = "no-endpoint-nodeports"
	clusterIPsSet          = "cluster-ips"

	markForMasqueradeChain = "mark-for-masquerade"
	rejectChain            = "reject-chain"
)

// ipFamily is what the rules of one IP family's table differ in.
type ipFamily struct {
	// table is the nftables family of the table: "ip" or "ip6".
	table string
	// addrType is the nftables type of an address: "ipv4_addr" or "ipv6_addr".
	addrType string
	// match is the payload expression of the network header: "ip" or "ip6".
	match string
	// loopback is the range node ports never answer on.
	loopback string
}

var (
	ipv4Family = ipFamily{table: "ip", addrType: "ipv4_addr", match: "ip", loopback: "127.0.0.0/8"}
	ipv6Family = ipFamily{table: "ip6", addrType: "ipv6_addr", match: "ip6", loopback: "::1"}
)

// has says whether an address is of the family; an IPv4-mapped IPv6 address is of neither.
func (f ipFamily) has(ip netip.Addr) bool {
	if f.table == ipv6Family.table {
		return ip.Is6() && !ip.Is4In6()
	}
	return ip.Is4()
}

// ruleConfig is what the rules depend on besides the Services.
type ruleConfig struct {
	// clusterCIDR is the pods' range; traffic to a cluster IP from outside it is masqueraded.
	// Invalid (unset) turns that off, as upstream without --cluster-cidr.
	clusterCIDR netip.Prefix
	// family is the rules' IP family; IPv4 when zero.
	family ipFamily
}

// buildRules makes the whole table for the given service ports.
func buildRules(ports []*servicePort, cfg ruleConfig) *ruleset {
	if cfg.family.table == "" {
		cfg.family = ipv4Family
	}
	r := newRuleset()
	baseRules(r, cfg.family)
	for _, sp := range ports {
		servicePortRules(r, sp, cfg)
	}
	// elements in one order whatever the order of the Services, so that equal tables compare equal
	for _, m := range r.maps {
		slices.Sort(m.elements)
		m.elements = slices.Compact(m.elements)
	}
	return r
}

// baseRules are the hooks and the chains and maps every service shares.
func baseRules(r *ruleset, f ipFamily) {
	r.maps[serviceIPsMap] = &nftMap{kind: "map", decl: "type " + f.addrType + " . inet_proto . inet_service : verdict"}
	r.maps[serviceNodePortsMap] = &nftMap{kind: "map", decl: "type inet_proto . inet_service : verdict"}
	r.maps[noEndpointServicesMap] = &nftMap{kind: "map", decl: "type " + f.addrType + " . inet_proto . inet_service : verdict"}
	r.maps[noEndpointNodePortsMap] = &nftMap{kind: "map", decl: "type inet_proto . inet_service : verdict"}
	r.maps[clusterIPsSet] = &nftMap{kind: "set", decl: "type " + f.addrType}

	r.chain("nat-prerouting").base = "type nat hook prerouting priority dstnat"
	r.rule("nat-prerouting", "jump services")
	r.chain("nat-output").base = "type nat hook output priority -100"
	r.rule("nat-output", "jump services")
	r.chain("nat-postrouting").base = "type nat hook postrouting priority srcnat"
	r.rule("nat-postrouting", "jump masquerading")

	r.chain("filter-input").base = "type filter hook input priority -110"
	r.rule("filter-input", "ct state new jump nodeport-endpoints-check")
	r.rule("filter-input", "ct state new jump service-endpoints-check")
	r.chain("filter-forward").base = "type filter hook forward priority -110"
	r.rule("filter-forward", "ct state new jump service-endpoints-check")
	r.rule("filter-forward", "ct state new jump cluster-ips-check")
	r.chain("filter-output").base = "type filter hook output priority -110"
	r.rule("filter-output", "ct state new jump service-endpoints-check")
	// after nat-output's DNAT: what still goes to a cluster IP matched no port of it
	r.chain("filter-output-post-dnat").base = "type filter hook output priority -90"
	r.rule("filter-output-post-dnat", "ct state new jump cluster-ips-check")

	r.rule("services", "%s daddr . meta l4proto . th dport vmap @%s", f.match, serviceIPsMap)
	r.rule("services", "fib daddr type local %s daddr != %s meta l4proto . th dport vmap @%s", f.match, f.loopback, serviceNodePortsMap)
	r.rule("service-endpoints-check", "%s daddr . meta l4proto . th dport vmap @%s", f.match, noEndpointServicesMap)
	r.rule("nodeport-endpoints-check", "fib daddr type local %s daddr != %s meta l4proto . th dport vmap @%s", f.match, f.loopback, noEndpointNodePortsMap)
	r.rule("cluster-ips-check", "%s daddr @%s goto %s", f.match, clusterIPsSet, rejectChain)

	r.rule(markForMasqueradeChain, "meta mark set meta mark or %s", masqueradeMark)
	r.rule("masquerading", "meta mark & %s == 0 return", masqueradeMark)
	r.rule("masquerading", "meta mark set meta mark xor %s", masqueradeMark)
	r.rule("masquerading", "masquerade fully-random")

	r.rule(rejectChain, "meta l4proto tcp reject with tcp reset")
	r.rule(rejectChain, "reject")
}

// chainHash names a chain uniquely in 8 characters, as upstream's base32 of a SHA-256.
func chainHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(sum[:])[:8]
}

func serviceChainName(prefix string, sp *servicePort) string {
	return prefix + "-" + chainHash(prefix+sp.id()) + "-" + sp.id()
}

func endpointChainName(sp *servicePort, e endpoint) string {
	return "endpoint-" + chainHash(sp.id()+e.String()) + "-" + sp.id() + "__" + nameSafeIP(e.ip) + "/" + fmt.Sprint(e.port)
}

// affinitySetName names the set of clients stuck to one endpoint; the timeout is in the hash,
// so a changed timeout makes a new set rather than redeclaring one.
func affinitySetName(sp *servicePort, e endpoint) string {
	return "affinity-" + chainHash(fmt.Sprint(sp.id(), e.String(), sp.affinitySeconds)) + "-" + sp.id() + "__" + nameSafeIP(e.ip) + "/" + fmt.Sprint(e.port)
}

// nameSafeIP writes an address as a chain or set name may hold it: nft's names take no ':',
// so an IPv6 address's colons become dots (upstream does the same).
func nameSafeIP(ip netip.Addr) string {
	return strings.ReplaceAll(ip.String(), ":", ".")
}

func servicePortRules(r *ruleset, sp *servicePort, cfg ruleConfig) {
	proto := protoName(sp.protocol)
	clusterKey := fmt.Sprintf("%s . %s . %d", sp.clusterIP, proto, sp.port)
	r.element(clusterIPsSet, sp.clusterIP.String())

	all := sp.clusterEndpoints()
	local := sp.localEndpoints()
	externallyReachable := sp.nodePort != 0 || len(sp.externalIPs) > 0

	if len(all) == 0 {
		// nothing anywhere: refuse the connection at once
		r.element(noEndpointServicesMap, clusterKey+" : goto "+rejectChain)
		for _, ip := range sp.externalIPs {
			r.element(noEndpointServicesMap, fmt.Sprintf("%s . %s . %d : goto %s", ip, proto, sp.port, rejectChain))
		}
		if sp.nodePort != 0 {
			r.element(noEndpointNodePortsMap, fmt.Sprintf("%s . %d : goto %s", proto, sp.nodePort, rejectChain))
		}
		return
	}

	serviceChain := serviceChainName("service", sp)
	localChain := serviceChainName("local", sp)
	externalChain := serviceChainName("external", sp)

	// the cluster-wide chain: every usable endpoint
	if cfg.clusterCIDR.IsValid() {
		r.rule(serviceChain, "%s daddr %s %s dport %d %s saddr != %s jump %s",
			cfg.family.match, sp.clusterIP, proto, sp.port, cfg.family.match, cfg.clusterCIDR, markForMasqueradeChain)
	}
	loadBalance(r, serviceChain, sp, all, cfg.family)
	needLocal := (sp.internalLocal || (externallyReachable && sp.externalLocal)) && len(local) > 0
	if needLocal {
		loadBalance(r, localChain, sp, local, cfg.family)
	}
	// every endpoint any chain sends to
	endpoints := map[string]endpoint{}
	for _, e := range all {
		endpoints[e.String()] = e
	}
	if needLocal {
		for _, e := range local {
			endpoints[e.String()] = e
		}
	}
	for _, e := range endpoints {
		endpointRules(r, sp, e, proto, cfg.family)
	}

	// traffic to the cluster IP
	switch {
	case !sp.internalLocal:
		r.element(serviceIPsMap, clusterKey+" : goto "+serviceChain)
	case len(local) > 0:
		r.element(serviceIPsMap, clusterKey+" : goto "+localChain)
	default:
		// endpoints exist, only none here: drop rather than refuse, as upstream
		r.element(noEndpointServicesMap, clusterKey+" : drop")
	}

	if !externallyReachable {
		return
	}
	// traffic to node ports and external IPs
	var externalVerdict string
	switch {
	case !sp.externalLocal:
		r.rule(externalChain, "jump %s", markForMasqueradeChain)
		r.rule(externalChain, "goto %s", serviceChain)
		externalVerdict = "goto " + externalChain
	case len(local) > 0:
		if cfg.clusterCIDR.IsValid() {
			r.rule(externalChain, "%s saddr %s goto %s", cfg.family.match, cfg.clusterCIDR, serviceChain) // pods: as cluster traffic
		}
		r.rule(externalChain, "fib saddr type local jump %s", markForMasqueradeChain)
		r.rule(externalChain, "fib saddr type local goto %s", serviceChain) // this node: as cluster traffic
		r.rule(externalChain, "goto %s", localChain)
		externalVerdict = "goto " + externalChain
	}
	for _, ip := range sp.externalIPs {
		key := fmt.Sprintf("%s . %s . %d", ip, proto, sp.port)
		if externalVerdict == "" {
			r.element(noEndpointServicesMap, key+" : drop")
		} else {
			r.element(serviceIPsMap, key+" : "+externalVerdict)
		}
	}
	if sp.nodePort != 0 {
		key := fmt.Sprintf("%s . %d", proto, sp.nodePort)
		if externalVerdict == "" {
			r.element(noEndpointNodePortsMap, key+" : drop")
		} else {
			r.element(serviceNodePortsMap, key+" : "+externalVerdict)
		}
	}
}

// loadBalance fills a service or local chain: clients stuck to an endpoint go back to it, the
// others to a random one.
func loadBalance(r *ruleset, chainName string, sp *servicePort, eps []endpoint, f ipFamily) {
	if sp.affinitySeconds > 0 {
		for _, e := range eps {
			r.rule(chainName, "%s saddr @%s goto %s", f.match, affinitySetName(sp, e), endpointChainName(sp, e))
		}
	}
	var targets []string
	for i, e := range eps {
		targets = append(targets, fmt.Sprintf("%d : goto %s", i, endpointChainName(sp, e)))
	}
	r.rule(chainName, "numgen random mod %d vmap { %s }", len(eps), strings.Join(targets, ", "))
}

func endpointRules(r *ruleset, sp *servicePort, e endpoint, proto string, f ipFamily) {
	name := endpointChainName(sp, e)
	r.rule(name, "%s saddr %s jump %s", f.match, e.ip, markForMasqueradeChain) // hairpin
	if sp.affinitySeconds > 0 {
		set := affinitySetName(sp, e)
		r.dynamicSets[set] = fmt.Sprintf("type %s ; flags dynamic,timeout ; timeout %ds", f.addrType, sp.affinitySeconds)
		r.rule(name, "update @%s { %s saddr }", set, f.match)
	}
	r.rule(name, "meta l4proto %s dnat to %s", proto, e)
}
