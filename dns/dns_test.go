package dns

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// fakeUpstream answers every A query with 192.0.2.55, standing in for the host's resolver.
func fakeUpstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
			A: net.ParseIP("192.0.2.55")}}
		w.WriteMsg(m)
	})
	udp, tcp := &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: l, Handler: h}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return pc.LocalAddr().String()
}

type cluster struct {
	t      *testing.T
	client kubernetes.Interface
	addr   string
}

// startDNS serves cluster DNS on a loopback port from a real API server.
func startDNS(t *testing.T, opts ...apiservertest.Option) *cluster {
	t.Helper()
	srv := apiservertest.Start(t, opts...)
	factory := informers.NewSharedInformerFactory(srv.Client, 0)
	s, err := New(factory.Core().V1().Services(), factory.Discovery().V1().EndpointSlices(), Config{
		ClusterDomain: "cluster.local", Upstreams: []string{fakeUpstream(t)}})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		factory.Shutdown()
	})
	return &cluster{t: t, client: srv.Client, addr: pc.LocalAddr().String()}
}

func (c *cluster) query(network, name string, qtype uint16) *dns.Msg {
	c.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	resp, _, err := (&dns.Client{Net: network, Timeout: 5 * time.Second}).Exchange(m, c.addr)
	if err != nil {
		c.t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return resp
}

// eventually repeats a query until check accepts the answer: the server's caches follow the
// API with a delay.
func (c *cluster) eventually(name string, qtype uint16, check func(*dns.Msg) bool) *dns.Msg {
	c.t.Helper()
	var last *dns.Msg
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		last = c.query("udp", name, qtype)
		return check(last), nil
	})
	if err != nil {
		c.t.Fatalf("%s %s: never answered as expected; last answer:\n%v", name, dns.TypeToString[qtype], last)
	}
	return last
}

func addresses(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch r := rr.(type) {
		case *dns.A:
			out = append(out, r.A.String())
		case *dns.AAAA:
			out = append(out, r.AAAA.String())
		}
	}
	slices.Sort(out)
	return out
}

func (c *cluster) create(obj any) {
	c.t.Helper()
	ctx := context.Background()
	var err error
	switch o := obj.(type) {
	case *corev1.Service:
		_, err = c.client.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *discoveryv1.EndpointSlice:
		_, err = c.client.DiscoveryV1().EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

func namedPort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, Protocol: corev1.ProtocolTCP}
}

func TestClusterNamesResolveFromTheAPI(t *testing.T) {
	c := startDNS(t)
	c.create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.50", Ports: []corev1.ServicePort{namedPort("http", 80)}}})
	c.create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{namedPort("sql", 5432)}}})
	c.create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.org"}})
	c.create(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("sql"), Port: ptr.To[int32](5433), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.1.2"}, Hostname: ptr.To("db-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.244.1.3"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.244.1.4"}, Hostname: ptr.To("db-2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
	})

	// a Service: its cluster IP, with a 5 s TTL, authoritatively
	m := c.eventually("web.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
	if got := addresses(m); !slices.Equal(got, []string{"10.96.0.50"}) || m.Answer[0].Header().Ttl != TTL || !m.Authoritative {
		t.Errorf("web: %v ttl %d aa %v", got, m.Answer[0].Header().Ttl, m.Authoritative)
	}
	// over TCP too
	if got := addresses(c.query("tcp", "web.default.svc.cluster.local.", dns.TypeA)); !slices.Equal(got, []string{"10.96.0.50"}) {
		t.Errorf("web over TCP: %v", got)
	}
	// a name that exists without records of the type asked: no error, no answer
	if m := c.query("udp", "web.default.svc.cluster.local.", dns.TypeAAAA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("web AAAA: rcode %s, %d answers", dns.RcodeToString[m.Rcode], len(m.Answer))
	}
	// SRV of a named port
	m = c.query("udp", "_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV)
	if len(m.Answer) != 1 {
		t.Fatalf("web SRV: %v", m)
	}
	if srv := m.Answer[0].(*dns.SRV); srv.Port != 80 || srv.Target != "web.default.svc.cluster.local." {
		t.Errorf("web SRV: %v", srv)
	}

	// a headless Service: its ready endpoints, by name and by hostname
	m = c.eventually("db.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) > 0 })
	if got := addresses(m); !slices.Equal(got, []string{"10.244.1.2", "10.244.1.3"}) {
		t.Errorf("db: %v (the unready 10.244.1.4 must not be listed)", got)
	}
	if got := addresses(c.query("udp", "db-0.db.default.svc.cluster.local.", dns.TypeA)); !slices.Equal(got, []string{"10.244.1.2"}) {
		t.Errorf("db-0.db: %v", got)
	}
	m = c.query("udp", "_sql._tcp.db.default.svc.cluster.local.", dns.TypeSRV)
	var targets []string
	for _, rr := range m.Answer {
		srv := rr.(*dns.SRV)
		if srv.Port != 5433 {
			t.Errorf("headless SRV port %d, want the endpoint's 5433", srv.Port)
		}
		targets = append(targets, srv.Target)
	}
	slices.Sort(targets)
	if want := []string{"10-244-1-3.db.default.svc.cluster.local.", "db-0.db.default.svc.cluster.local."}; !slices.Equal(targets, want) {
		t.Errorf("headless SRV targets %v, want %v", targets, want)
	}
	if len(m.Extra) != 2 {
		t.Errorf("headless SRV: want the targets' addresses as extra records, got %v", m.Extra)
	}

	// an ExternalName Service is a CNAME
	m = c.eventually("ext.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) > 0 })
	if cname, ok := m.Answer[0].(*dns.CNAME); !ok || cname.Target != "example.org." {
		t.Errorf("ext: %v", m.Answer)
	}
	// pod names carry their address
	if got := addresses(c.query("udp", "10-244-1-9.default.pod.cluster.local.", dns.TypeA)); !slices.Equal(got, []string{"10.244.1.9"}) {
		t.Errorf("pod name: %v", got)
	}

	// unknown names of the cluster domain do not exist
	for _, name := range []string{"nope.default.svc.cluster.local.", "web.other.svc.cluster.local.",
		"db-9.db.default.svc.cluster.local.", "_nope._tcp.web.default.svc.cluster.local.", "what.cluster.local."} {
		if m := c.query("udp", name, dns.TypeA); m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 {
			t.Errorf("%s: rcode %s, authority %v; want NXDOMAIN with the SOA", name, dns.RcodeToString[m.Rcode], m.Ns)
		}
	}

	// other names go to the host's resolver, over UDP and TCP
	for _, network := range []string{"udp", "tcp"} {
		if got := addresses(c.query(network, "example.org.", dns.TypeA)); !slices.Equal(got, []string{"192.0.2.55"}) {
			t.Errorf("forwarded over %s: %v", network, got)
		}
	}
}

func TestEachDNSServerPublishesItselfAndADeadOnesEndpointLeaves(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := context.Background()
	// a slice of an older skiff, which named one server and held no Lease
	legacy := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns-" + ManagedBy, Namespace: "kube-system",
			Labels: map[string]string{discoveryv1.LabelServiceName: "kube-dns", discoveryv1.LabelManagedBy: ManagedBy}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.9"}}},
	}
	if _, err := srv.Client.DiscoveryV1().EndpointSlices("kube-system").Create(ctx, legacy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	publisher := func(ip, node string) *Publisher {
		p := NewPublisher(srv.Client, DefaultServiceIP, Endpoint{IP: netip.MustParseAddr(ip), Port: 53, NodeName: node})
		p.now = func() time.Time { return clock }
		return p
	}
	one, two := publisher("192.0.2.1", "node-1"), publisher("192.0.2.2", "node-2")
	sync := func(p *Publisher) {
		t.Helper()
		if err := p.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	endpoints := func() []string {
		t.Helper()
		eps, err := srv.Client.CoreV1().Endpoints("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, ss := range eps.Subsets {
			for _, a := range ss.Addresses {
				ips = append(ips, a.IP+"@"+ptr.Deref(a.NodeName, ""))
			}
		}
		return ips
	}
	sliceNames := func() []string {
		t.Helper()
		list, err := srv.Client.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kube-dns"})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range list.Items {
			names = append(names, s.Name+"="+s.Endpoints[0].Addresses[0])
		}
		slices.Sort(names)
		return names
	}

	sync(one)
	sync(one) // the second time finds everything in place
	svc, err := srv.Client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != "10.96.0.10" || len(svc.Spec.Ports) != 3 || svc.Spec.Ports[0].Protocol != corev1.ProtocolUDP ||
		svc.Spec.Ports[1].Name != "dns-tcp" || svc.Spec.Ports[2].Port != 9153 {
		t.Errorf("kube-dns service: %s %+v", svc.Spec.ClusterIP, svc.Spec.Ports)
	}
	if got := endpoints(); !slices.Equal(got, []string{"192.0.2.1@node-1"}) {
		t.Errorf("kube-dns endpoints with one server: %v", got)
	}
	if _, err := srv.Client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-dns-node-1", metav1.GetOptions{}); err != nil {
		t.Errorf("the first server's lease: %v", err)
	}

	// a second server adds itself beside the first, which keeps it; the slice without a Lease goes
	sync(two)
	sync(one)
	if got := endpoints(); !slices.Equal(got, []string{"192.0.2.1@node-1", "192.0.2.2@node-2"}) {
		t.Errorf("kube-dns endpoints with two servers: %v", got)
	}
	if got := sliceNames(); !slices.Equal(got, []string{"kube-dns-node-1=192.0.2.1", "kube-dns-node-2=192.0.2.2"}) {
		t.Errorf("kube-dns slices with two servers: %v", got)
	}

	// the second stops renewing: within its Lease's duration the first keeps it, after it not
	clock = clock.Add(LeaseDuration - time.Second)
	sync(one)
	if got := endpoints(); len(got) != 2 {
		t.Errorf("kube-dns endpoints before the second server's lease ran out: %v", got)
	}
	clock = clock.Add(2 * time.Second)
	sync(one)
	if got := endpoints(); !slices.Equal(got, []string{"192.0.2.1@node-1"}) {
		t.Errorf("kube-dns endpoints after the second server's lease ran out: %v", got)
	}
	if got := sliceNames(); !slices.Equal(got, []string{"kube-dns-node-1=192.0.2.1"}) {
		t.Errorf("kube-dns slices after the second server's lease ran out: %v", got)
	}
	if _, err := srv.Client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-dns-node-2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dead server's lease: %v, want it deleted", err)
	}

	// it comes back, at another address: its endpoint follows
	two.ep.IP = netip.MustParseAddr("192.0.2.3")
	sync(two)
	sync(one)
	if got := endpoints(); !slices.Equal(got, []string{"192.0.2.1@node-1", "192.0.2.3@node-2"}) {
		t.Errorf("kube-dns endpoints after the second server came back: %v", got)
	}
}

func TestACleanlyStoppedDNSServerLeavesKubeDNSAtOnce(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := context.Background()
	endpoints := func() []string {
		t.Helper()
		eps, err := srv.Client.CoreV1().Endpoints("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, ss := range eps.Subsets {
			for _, a := range ss.Addresses {
				ips = append(ips, a.IP)
			}
		}
		return ips
	}
	exists := func(get func() error) bool {
		t.Helper()
		err := get()
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	sliceOf := func(name string) func() error {
		return func() error {
			_, err := srv.Client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, name, metav1.GetOptions{})
			return err
		}
	}
	leaseOf := func(name string) func() error {
		return func() error {
			_, err := srv.Client.CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
			return err
		}
	}

	stays := NewPublisher(srv.Client, DefaultServiceIP, Endpoint{IP: netip.MustParseAddr("192.0.2.1"), Port: 53, NodeName: "node-1"})
	if err := stays.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	leaves := NewPublisher(srv.Client, DefaultServiceIP, Endpoint{IP: netip.MustParseAddr("192.0.2.2"), Port: 53, NodeName: "node-2"})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); leaves.Run(runCtx) }()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return slices.Equal(endpoints(), []string{"192.0.2.1", "192.0.2.2"}), nil
	})
	if err != nil {
		t.Fatalf("the running server never joined kube-dns: endpoints %v", endpoints())
	}

	// the server stops: once Run has returned, its slice, Lease and address are gone, long
	// before its Lease would have run out; the other server's are untouched
	stop()
	<-done
	if exists(sliceOf("kube-dns-node-2")) || exists(leaseOf("kube-dns-node-2")) {
		t.Errorf("the stopped server's EndpointSlice or Lease is still there")
	}
	if got := endpoints(); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("kube-dns endpoints after a server stopped: %v, want only the other", got)
	}
	if !exists(sliceOf("kube-dns-node-1")) || !exists(leaseOf("kube-dns-node-1")) {
		t.Errorf("the other server's EndpointSlice or Lease went")
	}
	// withdrawing what is already gone is no error
	if err := leaves.Withdraw(ctx); err != nil {
		t.Errorf("a second Withdraw: %v", err)
	}
}
