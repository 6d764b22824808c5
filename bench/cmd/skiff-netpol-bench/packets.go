package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/e2e/netnstest"
	"github.com/skiff-dev/skiff/proxy"
)

// The packets phase's network, inside the bench's namespace (the node), which routes between
// two pods, so that every packet between them meets the forward hook:
//
//	client pod netns (10.244.2.10) ── veth ── node ── veth ── server pod netns (10.244.1.10:8080)
//
// The server pod is isolated for ingress and allowed from the client by a policy of namespace
// zz-bench, whose rules come after every other policy's in pod-ingress: each new connection's
// first packet passes every other rule first (the worst case). Replies and the rest of a
// connection are accepted by the first rule (established). New connections per second are
// measured with and without the table, conntrack on in both (a table of the bench's own uses
// it, as the proxy's does on a node).
const (
	serverAddr = "10.244.1.10"
	clientAddr = "10.244.2.10"
	serverPort = 8080
	benchNS    = "zz-bench"
)

// packetObjects adds the two pods, their namespace and the policy allowing the client.
func packetObjects(podStore, nsStore, npStore cache.Indexer) {
	must(nsStore.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNS, Labels: map[string]string{"team": benchNS}}}))
	server := newPod(0, 0, serverAddr)
	server.Namespace, server.Name, server.Labels = benchNS, "server", map[string]string{"app": "server"}
	client := newPod(0, 0, clientAddr)
	client.Namespace, client.Name, client.Labels, client.Spec.NodeName = benchNS, "client", map[string]string{"app": "client"}, "other-node"
	must(podStore.Add(server))
	must(podStore.Add(client))
	must(npStore.Add(&networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: "allow-client"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: ptrTo(intstr.FromString("http"))}},
			}},
		},
	}))
}

func ptrTo[T any](v T) *T { return &v }

func sh(args ...string) error {
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// packetNetwork is the two pod namespaces; remove deletes them.
type packetNetwork struct {
	server, client string
	created        []string
}

func newPacketNetwork() (*packetNetwork, error) {
	id := fmt.Sprint(os.Getpid())
	n := &packetNetwork{server: "sknp-server-" + id, client: "sknp-client-" + id}
	for _, ns := range []string{n.server, n.client} {
		if err := sh("ip", "netns", "add", ns); err != nil {
			n.remove()
			return nil, err
		}
		n.created = append(n.created, ns)
	}
	for _, s := range [][]string{
		{"ip", "link", "add", "vserver", "type", "veth", "peer", "name", "eth0", "netns", n.server},
		{"ip", "addr", "add", "10.244.1.1/24", "dev", "vserver"},
		{"ip", "link", "set", "vserver", "up"},
		{"ip", "-n", n.server, "link", "set", "lo", "up"},
		{"ip", "-n", n.server, "addr", "add", serverAddr + "/24", "dev", "eth0"},
		{"ip", "-n", n.server, "link", "set", "eth0", "up"},
		{"ip", "-n", n.server, "route", "add", "default", "via", "10.244.1.1"},
		{"ip", "link", "add", "vclient", "type", "veth", "peer", "name", "eth0", "netns", n.client},
		{"ip", "addr", "add", "10.244.2.1/24", "dev", "vclient"},
		{"ip", "link", "set", "vclient", "up"},
		{"ip", "-n", n.client, "link", "set", "lo", "up"},
		{"ip", "-n", n.client, "addr", "add", clientAddr + "/24", "dev", "eth0"},
		{"ip", "-n", n.client, "link", "set", "eth0", "up"},
		{"ip", "-n", n.client, "route", "add", "default", "via", "10.244.2.1"},
		// connections closed by the thousand: reuse ports in TIME_WAIT, forget them soon
		{"ip", "netns", "exec", n.client, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65000"},
		{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=2"},
	} {
		if err := sh(s...); err != nil {
			n.remove()
			return nil, err
		}
	}
	return n, nil
}

func (n *packetNetwork) remove() {
	for _, ns := range n.created {
		_ = sh("ip", "netns", "del", ns)
	}
}

// serve answers every connection to the server pod with a few bytes and closes it.
func (n *packetNetwork) serve() (stop func(), err error) {
	var l net.Listener
	if err := netnstest.InNetns(n.server, func() (err error) {
		l, err = net.Listen("tcp", net.JoinHostPort(serverAddr, fmt.Sprint(serverPort)))
		return err
	}); err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ok\n"))
			c.Close()
		}
	}()
	return func() { l.Close() }, nil
}

// connectionRate opens connections from the client pod to the server pod with conns workers
// for d and returns connections per second; a failed connection is an error.
func (n *packetNetwork) connectionRate(conns int, d time.Duration) (float64, error) {
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, conns)
	deadline := time.Now().Add(d)
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = netnstest.InNetns(n.client, func() error {
				for time.Now().Before(deadline) {
					c, err := net.DialTimeout("tcp", net.JoinHostPort(serverAddr, fmt.Sprint(serverPort)), time.Second)
					if err != nil {
						return err
					}
					_, err = io.Copy(io.Discard, c)
					c.Close()
					if err != nil {
						return err
					}
					done.Add(1)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(done.Load()) / d.Seconds(), nil
}

// packetsPhase measures new connections per second through the forward hook with and without
// the NetworkPolicy table, rounds times each, alternating. newAgent makes an agent on the
// filled informers; its first sync builds the table.
func packetsPhase(ctx context.Context, newAgent func() (*proxy.NetworkPolicyAgent, error), rounds, conns int, d time.Duration) error {
	n, err := newPacketNetwork()
	if err != nil {
		return err
	}
	defer n.remove()
	stop, err := n.serve()
	if err != nil {
		return err
	}
	defer stop()
	// a node always tracks connections (the proxy's NAT does): so must the baseline, or the
	// difference would be conntrack's cost, not the policies'
	if err := sh("sh", "-c", "printf 'add table ip bench-conntrack\\nadd chain ip bench-conntrack forward { type filter hook forward priority 10 ; }\\nadd rule ip bench-conntrack forward ct state established counter accept\\n' | nft -f -"); err != nil {
		return err
	}
	var with, without []float64
	for round := range rounds {
		_ = sh("nft", "delete", "table", "ip", proxy.DefaultNetworkPolicyTable) // absent in the first round
		rate, err := n.connectionRate(conns, d)
		if err != nil {
			return fmt.Errorf("without the table, round %d: %w", round+1, err)
		}
		without = append(without, rate)
		agent, err := newAgent()
		if err != nil {
			return err
		}
		if err := agent.Sync(ctx); err != nil {
			return err
		}
		if rate, err = n.connectionRate(conns, d); err != nil {
			return fmt.Errorf("with the table, round %d: %w", round+1, err)
		}
		with = append(with, rate)
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	fmt.Printf("new connections/s, client pod → isolated server pod allowed by the last policy (%d workers, %v × %d rounds):\n", conns, d, rounds)
	fmt.Printf("  without the table %.0f (rounds %s), with it %.0f (rounds %s): %.0f %% of the rate without\n",
		mean(without), roundList(without), mean(with), roundList(with), 100*mean(with)/mean(without))
	return nil
}

func roundList(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.0f", x))
	}
	return strings.Join(parts, ", ")
}
