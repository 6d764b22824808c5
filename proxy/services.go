package proxy

import (
	"net/netip"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

// servicePort is one port of one Service as the proxy routes it: the addresses it answers on
// and the endpoints it may send to.
type servicePort struct {
	namespace, name, portName string
	protocol                  corev1.Protocol
	clusterIP                 netip.Addr
	port                      int32
	nodePort                  int32
	// externalIPs are spec.externalIPs and the load balancer's ingress IPs: routed as node
	// ports are (external traffic).
	externalIPs []netip.Addr
	// affinitySeconds is the ClientIP session affinity timeout; 0 without affinity.
	affinitySeconds int32
	internalLocal   bool
	externalLocal   bool
	endpoints       []endpoint
}

// endpoint is one address and port a servicePort may send to.
type endpoint struct {
	ip                          netip.Addr
	port                        int32
	ready, serving, terminating bool
	local                       bool
}

// id is the service port's name in upstream's form, ns/name/proto/portname.
func (sp *servicePort) id() string {
	return sp.namespace + "/" + sp.name + "/" + protoName(sp.protocol) + "/" + sp.portName
}

func protoName(p corev1.Protocol) string {
	switch p {
	case corev1.ProtocolUDP:
		return "udp"
	case corev1.ProtocolSCTP:
		return "sctp"
	default:
		return "tcp"
	}
}

// String is the endpoint as a dnat target takes it: 10.244.1.2:8080, [fd42::2]:8080.
func (e endpoint) String() string { return netip.AddrPortFrom(e.ip, uint16(e.port)).String() }

// clusterEndpoints are the endpoints traffic may go to from anywhere: the ready ones, or when
// none is ready the serving ones that are terminating (so that a rolling update in progress
// does not drop traffic), as upstream.
func (sp *servicePort) clusterEndpoints() []endpoint {
	return usable(sp.endpoints)
}

// localEndpoints are the usable endpoints on this node.
func (sp *servicePort) localEndpoints() []endpoint {
	var local []endpoint
	for _, e := range sp.endpoints {
		if e.local {
			local = append(local, e)
		}
	}
	return usable(local)
}

func usable(eps []endpoint) []endpoint {
	var ready, terminating []endpoint
	for _, e := range eps {
		switch {
		case e.ready:
			ready = append(ready, e)
		case e.serving && e.terminating:
			terminating = append(terminating, e)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return terminating
}

// servicePorts turns a Service and its EndpointSlices into the IPv4 ports the proxy routes;
// a Service without an IPv4 cluster IP (headless, ExternalName, IPv6 only) has none. hostname
// names this node.
func servicePorts(svc *corev1.Service, epSlices []*discoveryv1.EndpointSlice, hostname string) []*servicePort {
	return familyServicePorts(svc, epSlices, hostname, ipv4Family)
}

// familyServicePorts are a Service's ports in one IP family: on its cluster IP of that family,
// to its endpoints of that family, with its external IPs of that family. A Service without a
// cluster IP of the family has none: as upstream, each family's table routes a dual-stack
// Service on its own cluster IP to its own EndpointSlices.
func familyServicePorts(svc *corev1.Service, epSlices []*discoveryv1.EndpointSlice, hostname string, f ipFamily) []*servicePort {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	clusterIP, ok := familyClusterIP(svc, f)
	if !ok {
		return nil // headless, unallocated, or none of this family
	}
	var external []netip.Addr
	for _, s := range svc.Spec.ExternalIPs {
		if ip, err := netip.ParseAddr(s); err == nil && f.has(ip) {
			external = append(external, ip)
		}
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(ing.IP); err == nil && f.has(ip) {
			external = append(external, ip)
		}
	}
	var affinity int32
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		affinity = corev1.DefaultClientIPServiceAffinitySeconds
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			affinity = *c.ClientIP.TimeoutSeconds
		}
	}
	var out []*servicePort
	for _, p := range svc.Spec.Ports {
		sp := &servicePort{
			namespace: svc.Namespace, name: svc.Name, portName: p.Name, protocol: p.Protocol,
			clusterIP: clusterIP, port: p.Port, externalIPs: external, affinitySeconds: affinity,
			internalLocal: ptr.Deref(svc.Spec.InternalTrafficPolicy, "") == corev1.ServiceInternalTrafficPolicyLocal,
			externalLocal: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		}
		if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			sp.nodePort = p.NodePort
		}
		if sp.protocol == "" {
			sp.protocol = corev1.ProtocolTCP
		}
		sp.endpoints = sliceEndpoints(epSlices, p.Name, sp.protocol, hostname, f)
		out = append(out, sp)
	}
	return out
}

// sliceEndpoints collects the endpoints of the family's slices that carry the named port, one
// per address and port, sorted.
func sliceEndpoints(epSlices []*discoveryv1.EndpointSlice, portName string, proto corev1.Protocol, hostname string, f ipFamily) []endpoint {
	seen := map[string]bool{}
	var out []endpoint
	addressType := discoveryv1.AddressTypeIPv4
	if f.table == ipv6Family.table {
		addressType = discoveryv1.AddressTypeIPv6
	}
	for _, s := range epSlices {
		if s.AddressType != addressType {
			continue
		}
		var port int32
		for _, p := range s.Ports {
			if ptr.Deref(p.Name, "") == portName && ptr.Deref(p.Protocol, corev1.ProtocolTCP) == proto && p.Port != nil {
				port = *p.Port
				break
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil || !f.has(ip) {
				continue
			}
			ready := ptr.Deref(ep.Conditions.Ready, true) // unknown counts as ready, as upstream
			e := endpoint{
				ip: ip, port: port,
				ready:       ready,
				serving:     ptr.Deref(ep.Conditions.Serving, ready),
				terminating: ptr.Deref(ep.Conditions.Terminating, false),
				local:       hostname != "" && ptr.Deref(ep.NodeName, "") == hostname,
			}
			if seen[e.String()] {
				continue
			}
			seen[e.String()] = true
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].ip.Compare(out[j].ip); c != 0 {
			return c < 0
		}
		return out[i].port < out[j].port
	})
	return slices.Clip(out)
}

// familyClusterIP is a Service's cluster IP of the family: the primary one, or the secondary
// of a dual-stack Service whose primary family is the other.
func familyClusterIP(svc *corev1.Service, f ipFamily) (netip.Addr, bool) {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, s := range ips {
		if ip, err := netip.ParseAddr(s); err == nil && f.has(ip) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}
