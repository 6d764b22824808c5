// Package dns is skiff's cluster DNS: a small server, after CoreDNS's kubernetes plugin, that
// answers for the cluster domain from Services and EndpointSlices (watched through client-go
// informers) and forwards every other name to the host's resolvers. It also keeps the
// kube-system/kube-dns Service that fronts it (see README.md for how traffic reaches it).
//
// It answers only from what the API says: it must never invent a record for a name the
// cluster does not hold (that is NXDOMAIN), nor answer for names outside the cluster domain
// other than by forwarding them.
package dns

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// TTL is the time to live of every answer from the cluster domain, CoreDNS's default.
const TTL = 5

// DefaultClusterDomain is the cluster domain unless configured otherwise.
const DefaultClusterDomain = "cluster.local"

// Config says what the server answers for and where it forwards the rest.
type Config struct {
	// ClusterDomain is the domain answered from the API ("cluster.local").
	ClusterDomain string
	// Upstreams are the resolvers ("host:port") other names go to, tried in order. None
	// answers them SERVFAIL.
	Upstreams []string
	// ForwardTimeout bounds one forwarded exchange; 2s when zero.
	ForwardTimeout time.Duration
}

// Server answers DNS queries; it is a dns.Handler.
type Server struct {
	cfg      Config
	zone     string // the cluster domain, lower case, with the final dot
	services corelisters.ServiceLister
	// servicesIdx is the Services' indexer, for lookups by cluster IP
	servicesIdx cache.Indexer
	slices      cache.Indexer
	synced      []cache.InformerSynced
}

var _ dns.Handler = &Server{}

const (
	serviceIndex = "service"
	// clusterIPIndex indexes Services by each of their cluster IPs, addressIndex EndpointSlices
	// by each of their endpoints' addresses: the reverse (PTR) lookups.
	clusterIPIndex = "clusterIP"
	addressIndex   = "address"
)

// New makes a server on shared informers of Services and EndpointSlices. Call it before the
// informers start.
func New(services coreinformers.ServiceInformer, slices discoveryinformers.EndpointSliceInformer, cfg Config) (*Server, error) {
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = DefaultClusterDomain
	}
	if cfg.ForwardTimeout == 0 {
		cfg.ForwardTimeout = 2 * time.Second
	}
	for informer, indexers := range map[cache.SharedIndexInformer]cache.Indexers{
		slices.Informer():   {serviceIndex: sliceServiceKey, addressIndex: sliceAddresses},
		services.Informer(): {clusterIPIndex: serviceClusterIPs},
	} {
		for name, f := range indexers {
			if _, ok := informer.GetIndexer().GetIndexers()[name]; ok {
				continue
			}
			if err := informer.AddIndexers(cache.Indexers{name: f}); err != nil {
				return nil, err
			}
		}
	}
	return &Server{
		cfg:         cfg,
		zone:        dns.Fqdn(strings.ToLower(cfg.ClusterDomain)),
		services:    services.Lister(),
		servicesIdx: services.Informer().GetIndexer(),
		slices:      slices.Informer().GetIndexer(),
		synced:      []cache.InformerSynced{services.Informer().HasSynced, slices.Informer().HasSynced},
	}, nil
}

// serviceClusterIPs are a Service's cluster IPs in canonical form (none for a headless one).
func serviceClusterIPs(obj any) ([]string, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil, nil
	}
	var out []string
	for _, ip := range svc.Spec.ClusterIPs {
		if a, err := netip.ParseAddr(ip); err == nil {
			out = append(out, a.Unmap().String())
		}
	}
	return out, nil
}

// sliceAddresses are the addresses of a Service's EndpointSlice, in canonical form.
func sliceAddresses(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
		return nil, nil
	}
	var out []string
	for _, ep := range s.Endpoints {
		for _, ip := range ep.Addresses {
			if a, err := netip.ParseAddr(ip); err == nil && !slices.Contains(out, a.Unmap().String()) {
				out = append(out, a.Unmap().String())
			}
		}
	}
	return out, nil
}

func sliceServiceKey(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
}

// UpstreamsFromResolvConf are the nameservers of a resolv.conf file, as host:port.
func UpstreamsFromResolvConf(path string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	return out, nil
}

// Serve answers queries on a UDP socket and a TCP listener (either may be nil) once the
// informers have synced, until ctx is done; it closes both.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, l net.Listener) error {
	if !cache.WaitForNamedCacheSync("dns", ctx.Done(), s.synced...) {
		if pc != nil {
			pc.Close()
		}
		if l != nil {
			l.Close()
		}
		return nil
	}
	var servers []*dns.Server
	if pc != nil {
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: s})
	}
	if l != nil {
		servers = append(servers, &dns.Server{Listener: l, Handler: s})
	}
	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Go(func() { errc <- srv.ActivateAndServe() })
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, srv := range servers {
		srv.Shutdown()
	}
	wg.Wait()
	return err
}

// ListenAndServe listens on addr over UDP and TCP and serves until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return err
	}
	slog.Info("serving cluster DNS", "address", addr, "domain", s.cfg.ClusterDomain, "upstreams", s.cfg.Upstreams)
	return s.Serve(ctx, pc, l)
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if ip, ok := reverseName(name); ok {
		// the reverse zones, as CoreDNS's kubernetes plugin with "fallthrough in-addr.arpa
		// ip6.arpa": an address of the cluster is answered here, any other goes upstream
		if answers := s.reverse(name, ip); len(answers) > 0 && q.Qtype == dns.TypePTR {
			m := new(dns.Msg)
			m.SetReply(req)
			m.Authoritative = true
			m.Answer = answers
			w.WriteMsg(m)
			return
		}
		s.forward(w, req)
		return
	}
	if name != s.zone && !strings.HasSuffix(name, "."+s.zone) {
		s.forward(w, req)
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	answers, extra, exists := s.lookup(name, q.Qtype)
	switch {
	case !exists:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{s.soa()}
	case len(answers) == 0:
		m.Ns = []dns.RR{s.soa()} // the name exists, not with this type
	default:
		m.Answer = answers
		m.Extra = extra
	}
	w.WriteMsg(m)
}

// reverseName is the address a full reverse name (d.c.b.a.in-addr.arpa., or 32 nibbles under
// ip6.arpa.) stands for; false for any other name, a partial one among them.
func reverseName(name string) (netip.Addr, bool) {
	var labels []string
	var v6 bool
	switch {
	case strings.HasSuffix(name, ".in-addr.arpa."):
		labels = strings.Split(strings.TrimSuffix(name, ".in-addr.arpa."), ".")
	case strings.HasSuffix(name, ".ip6.arpa."):
		labels, v6 = strings.Split(strings.TrimSuffix(name, ".ip6.arpa."), "."), true
	default:
		return netip.Addr{}, false
	}
	slices.Reverse(labels)
	if !v6 {
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		ip, err := netip.ParseAddr(strings.Join(labels, "."))
		return ip, err == nil
	}
	if len(labels) != 32 {
		return netip.Addr{}, false
	}
	var b strings.Builder
	for i, l := range labels {
		if len(l) != 1 {
			return netip.Addr{}, false
		}
		if i > 0 && i%4 == 0 {
			b.WriteByte(':')
		}
		b.WriteString(l)
	}
	ip, err := netip.ParseAddr(b.String())
	return ip, err == nil
}

// reverse are the PTR records of an address, as CoreDNS's kubernetes plugin answers them: the
// Service whose cluster IP it is, else each ready endpoint with that address as
// <hostname or dashed address>.<service>.<namespace>.svc.<zone>.
func (s *Server) reverse(name string, ip netip.Addr) []dns.RR {
	key := ip.Unmap().String()
	record := func(target string) dns.RR {
		return &dns.PTR{Hdr: header(name, dns.TypePTR), Ptr: target}
	}
	if objs, _ := s.servicesIdx.ByIndex(clusterIPIndex, key); len(objs) > 0 {
		// one Service holds a cluster IP; the first of a stale cache's two is as good
		svc := objs[0].(*corev1.Service)
		return []dns.RR{record(svc.Name + "." + svc.Namespace + ".svc." + s.zone)}
	}
	objs, _ := s.slices.ByIndex(addressIndex, key)
	var answers []dns.RR
	for _, o := range objs {
		slice := o.(*discoveryv1.EndpointSlice)
		for _, ep := range slice.Endpoints {
			if !ptr.Deref(ep.Conditions.Ready, true) || !slices.ContainsFunc(ep.Addresses, func(a string) bool {
				p, err := netip.ParseAddr(a)
				return err == nil && p.Unmap() == ip.Unmap()
			}) {
				continue
			}
			host := ptr.Deref(ep.Hostname, "")
			if host == "" {
				host = dashed(ip)
			}
			target := strings.ToLower(host) + "." + slice.Labels[discoveryv1.LabelServiceName] + "." + slice.Namespace + ".svc." + s.zone
			if !slices.ContainsFunc(answers, func(rr dns.RR) bool { return rr.(*dns.PTR).Ptr == target }) {
				answers = append(answers, record(target))
			}
		}
	}
	return answers
}

// soa is the zone's start of authority, as CoreDNS's kubernetes plugin writes it.
func (s *Server) soa() dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: s.zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: TTL},
		Ns:      "ns.dns." + s.zone,
		Mbox:    "hostmaster." + s.zone,
		Serial:  uint32(time.Now().Unix()),
		Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: TTL,
	}
}

// lookup answers a name of the cluster domain: the records of type qtype, extra records
// (addresses of SRV targets), and whether the name exists at all.
func (s *Server) lookup(name string, qtype uint16) (answers, extra []dns.RR, exists bool) {
	if name == s.zone {
		if qtype == dns.TypeSOA {
			return []dns.RR{s.soa()}, nil, true
		}
		return nil, nil, true
	}
	labels := dns.SplitDomainName(strings.TrimSuffix(name, "."+s.zone))
	n := len(labels)
	if n == 0 {
		return nil, nil, false
	}
	switch labels[n-1] {
	case "svc":
		return s.lookupService(name, labels[:n-1], qtype)
	case "pod":
		return s.lookupPod(name, labels[:n-1], qtype)
	}
	return nil, nil, false
}

// lookupPod answers a-b-c-d.<ns>.pod.<zone> with a.b.c.d (CoreDNS's "pods insecure").
func (s *Server) lookupPod(name string, labels []string, qtype uint16) ([]dns.RR, []dns.RR, bool) {
	if len(labels) != 2 {
		return nil, nil, false
	}
	ip, err := netip.ParseAddr(strings.ReplaceAll(labels[0], "-", "."))
	if err != nil {
		ip, err = netip.ParseAddr(strings.ReplaceAll(labels[0], "-", ":"))
		if err != nil {
			return nil, nil, false
		}
	}
	if rr := addressRecord(name, ip, qtype); rr != nil {
		return []dns.RR{rr}, nil, true
	}
	return nil, nil, true
}

// lookupService answers the names under <svc>.<ns>.svc.<zone>:
//
//	<svc>.<ns>.svc                  A/AAAA of the cluster IP, or of every ready endpoint (headless);
//	                                CNAME for an ExternalName; SRV of every named port
//	<host>.<svc>.<ns>.svc           A/AAAA of the endpoint of that hostname (or dashed IP)
//	_<port>._<proto>.<svc>.<ns>.svc SRV of the named port: the Service, or every ready endpoint
func (s *Server) lookupService(name string, labels []string, qtype uint16) ([]dns.RR, []dns.RR, bool) {
	n := len(labels)
	if n < 2 || n > 4 {
		return nil, nil, false
	}
	svc, err := s.services.Services(labels[n-1]).Get(labels[n-2])
	if err != nil {
		return nil, nil, false
	}
	svcName := svc.Name + "." + svc.Namespace + ".svc." + s.zone
	switch n {
	case 2:
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			target := dns.Fqdn(svc.Spec.ExternalName)
			return []dns.RR{&dns.CNAME{Hdr: header(name, dns.TypeCNAME), Target: target}}, nil, true
		}
		if qtype == dns.TypeSRV {
			var answers, extra []dns.RR
			for _, p := range svc.Spec.Ports {
				if p.Name == "" {
					continue
				}
				a, e := s.srv(name, svc, svcName, p)
				answers, extra = append(answers, a...), append(extra, e...)
			}
			return answers, extra, true
		}
		var answers []dns.RR
		for _, ip := range s.serviceIPs(svc) {
			if rr := addressRecord(name, ip, qtype); rr != nil {
				answers = append(answers, rr)
			}
		}
		return answers, nil, true
	case 3:
		// a hostname under a headless Service
		if !isHeadless(svc) {
			return nil, nil, false
		}
		var answers []dns.RR
		found := false
		for _, e := range s.readyEndpoints(svc) {
			if e.hostname != labels[0] {
				continue
			}
			found = true
			if rr := addressRecord(name, e.ip, qtype); rr != nil {
				answers = append(answers, rr)
			}
		}
		return answers, nil, found
	default: // 4: _port._proto
		if !strings.HasPrefix(labels[0], "_") || !strings.HasPrefix(labels[1], "_") {
			return nil, nil, false
		}
		portName, proto := labels[0][1:], labels[1][1:]
		for _, p := range svc.Spec.Ports {
			if strings.EqualFold(p.Name, portName) && strings.EqualFold(string(p.Protocol), proto) {
				if qtype != dns.TypeSRV {
					return nil, nil, true
				}
				a, e := s.srv(name, svc, svcName, p)
				return a, e, true
			}
		}
		return nil, nil, false
	}
}

// srv are the SRV records of one named port and the addresses of their targets: the Service
// itself, or each ready endpoint of a headless one.
func (s *Server) srv(name string, svc *corev1.Service, svcName string, p corev1.ServicePort) (answers, extra []dns.RR) {
	if !isHeadless(svc) {
		answers = append(answers, &dns.SRV{Hdr: header(name, dns.TypeSRV), Priority: 0, Weight: 100,
			Port: uint16(p.Port), Target: svcName})
		for _, ip := range s.serviceIPs(svc) {
			extra = append(extra, addressRecord(svcName, ip, 0))
		}
		return answers, extra
	}
	for _, e := range s.readyEndpoints(svc) {
		port, ok := e.ports[p.Name+"/"+string(p.Protocol)]
		if !ok {
			continue
		}
		target := e.hostname + "." + svcName
		answers = append(answers, &dns.SRV{Hdr: header(name, dns.TypeSRV), Priority: 0, Weight: 100,
			Port: uint16(port), Target: target})
		extra = append(extra, addressRecord(target, e.ip, 0))
	}
	return answers, extra
}

func isHeadless(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP == corev1.ClusterIPNone
}

func header(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: TTL}
}

// addressRecord is an A or AAAA record for ip when qtype asks for its family (0 asks for
// either), else nil.
func addressRecord(name string, ip netip.Addr, qtype uint16) dns.RR {
	ip = ip.Unmap()
	switch {
	case ip.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY || qtype == 0):
		return &dns.A{Hdr: header(name, dns.TypeA), A: ip.AsSlice()}
	case ip.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY || qtype == 0):
		return &dns.AAAA{Hdr: header(name, dns.TypeAAAA), AAAA: ip.AsSlice()}
	}
	return nil
}

// serviceIPs are the addresses a Service's own name resolves to: its cluster IPs, or for a
// headless Service its ready endpoints.
func (s *Server) serviceIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	if isHeadless(svc) {
		for _, e := range s.readyEndpoints(svc) {
			if !slices.Contains(out, e.ip) {
				out = append(out, e.ip)
			}
		}
		return out
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, s := range ips {
		if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, ip)
		}
	}
	return out
}

// dashed is an endpoint's address as a DNS label, the name of an endpoint without a hostname.
func dashed(ip netip.Addr) string {
	return strings.NewReplacer(".", "-", ":", "-").Replace(ip.String())
}

// readyEndpoint is one ready address of a Service's slices.
type readyEndpoint struct {
	ip netip.Addr
	// hostname is the endpoint's hostname, or its address with dashes.
	hostname string
	// ports by name/protocol
	ports map[string]int32
}

func (s *Server) readyEndpoints(svc *corev1.Service) []readyEndpoint {
	objs, err := s.slices.ByIndex(serviceIndex, svc.Namespace+"/"+svc.Name)
	if err != nil {
		return nil
	}
	var out []readyEndpoint
	for _, o := range objs {
		slice := o.(*discoveryv1.EndpointSlice)
		ports := map[string]int32{}
		for _, p := range slice.Ports {
			if p.Port != nil {
				ports[ptr.Deref(p.Name, "")+"/"+string(ptr.Deref(p.Protocol, corev1.ProtocolTCP))] = *p.Port
			}
		}
		for _, ep := range slice.Endpoints {
			if !ptr.Deref(ep.Conditions.Ready, true) || len(ep.Addresses) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				continue
			}
			host := ptr.Deref(ep.Hostname, "")
			if host == "" {
				host = dashed(ip)
			}
			out = append(out, readyEndpoint{ip: ip, hostname: strings.ToLower(host), ports: ports})
		}
	}
	slices.SortFunc(out, func(a, b readyEndpoint) int { return a.ip.Compare(b.ip) })
	return out
}

// forward sends a query for a name outside the cluster domain to the upstream resolvers, over
// the transport it came by, and relays the first answer.
func (s *Server) forward(w dns.ResponseWriter, req *dns.Msg) {
	network := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	c := &dns.Client{Net: network, Timeout: s.cfg.ForwardTimeout}
	var lastErr error = errors.New("no upstream resolver")
	for _, up := range s.cfg.Upstreams {
		resp, _, err := c.Exchange(req, up)
		if err == nil && resp.Truncated && network == "udp" {
			resp, _, err = (&dns.Client{Net: "tcp", Timeout: s.cfg.ForwardTimeout}).Exchange(req, up)
		}
		if err != nil {
			lastErr = err
			continue
		}
		resp.Id = req.Id
		w.WriteMsg(resp)
		return
	}
	slog.Debug("forwarding a query failed", "name", req.Question[0].Name, "err", lastErr)
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	w.WriteMsg(m)
}
