package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/e2e/netnstest"
)

// The NetworkPolicy test uses the proxy test's node (netns_test.go) with three pods, and
// gives them API objects:
//
//	pod0 10.244.1.10  namespace prod, app=db   TCP 8080 (named "http"), 9000, 9001, 9005
//	pod1 10.244.1.11  namespace prod, app=web  TCP 8080
//	pod2 10.244.1.12  namespace dev,  app=web  TCP 8080, UDP 53 (echo)
//	node 10.244.1.1 (bridge), UDP 53 (echo) — the node's own DNS — and TCP 9100
//	client 172.31.0.2, outside the cluster
//
// Each step creates policies, waits until every connection it names succeeds or fails as
// the policies say, and deletes them. The agent (and the proxy, for the Service step) run in
// the test process and program the node's namespace.

// policyProbeTimeout bounds one connection attempt: a dropped SYN must not hold a check long.
const policyProbeTimeout = 500 * time.Millisecond

// reaches says whether a TCP connection from a namespace to addr gets an answer.
func reaches(netns, addr string) bool {
	err := netnstest.InNetns(netns, func() error {
		c, err := net.DialTimeout("tcp", addr, policyProbeTimeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(policyProbeTimeout))
		_, err = io.ReadAll(c)
		return err
	})
	return err == nil
}

// udpAnswered says whether a UDP datagram from a namespace to addr is echoed back.
func udpAnswered(netns, addr string) bool {
	err := netnstest.InNetns(netns, func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(policyProbeTimeout))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		_, err = c.Read(make([]byte, 16))
		return err
	})
	return err == nil
}

// serveTCP answers every TCP connection to ip:port in a namespace with its port number.
func (n *testNode) serveTCP(netns, ip string, port int) {
	n.t.Helper()
	var l net.Listener
	if err := netnstest.InNetns(netns, func() (err error) {
		l, err = net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		return err
	}); err != nil {
		n.t.Fatalf("listen in %s: %v", netns, err)
	}
	n.t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, port)
			c.Close()
		}
	}()
}

// serveUDPEcho echoes every datagram to ip:port in a namespace.
func (n *testNode) serveUDPEcho(netns, ip string, port int) {
	n.t.Helper()
	var pc net.PacketConn
	if err := netnstest.InNetns(netns, func() (err error) {
		pc, err = net.ListenPacket("udp", net.JoinHostPort(ip, fmt.Sprint(port)))
		return err
	}); err != nil {
		n.t.Fatalf("listen udp in %s: %v", netns, err)
	}
	n.t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			k, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:k], addr)
		}
	}()
}

// startNetworkPolicyAgent runs an agent for the test node until the returned stop is called
// (or the test ends).
func startNetworkPolicyAgent(t *testing.T, client kubernetes.Interface, n *testNode, opts ...func(*NetworkPolicyConfig)) (stop func()) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	cfg := NetworkPolicyConfig{
		Hostname:        nodeName,
		NFT:             n.nftInNode,
		NetNS:           netnsDir + "/" + n.node,
		MinSyncInterval: 10 * time.Millisecond,
		Sysctl: func(name, value string) error {
			out, err := exec.Command("ip", "netns", "exec", n.node, "sysctl", "-qw", strings.ReplaceAll(name, "/", ".")+"="+value).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		},
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	a, err := NewNetworkPolicyAgent(factory.Core().V1().Pods(), factory.Core().V1().Namespaces(), factory.Networking().V1().NetworkPolicies(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("NetworkPolicy agent: %v", err)
		}
		factory.Shutdown()
	}
	t.Cleanup(stop)
	return stop
}

// connectivity is what a step expects: from a namespace to an address, answered or not.
type connectivity struct {
	from, to string
	udp      bool
	want     bool
}

func expectConnectivity(t *testing.T, what string, cases []connectivity) {
	t.Helper()
	eventually(t, what, func() (bool, string) {
		var wrong []string
		for _, c := range cases {
			got := false
			if c.udp {
				got = udpAnswered(c.from, c.to)
			} else {
				got = reaches(c.from, c.to)
			}
			if got != c.want {
				wrong = append(wrong, fmt.Sprintf("%s → %s (udp %v): answered %v, want %v", c.from, c.to, c.udp, got, c.want))
			}
		}
		return len(wrong) == 0, strings.Join(wrong, "; ")
	})
}

func policyPeerPods(sel map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: sel}}
}

func TestNetworkPoliciesInNetworkNamespaces(t *testing.T) {
	requireNetworkPrivileges(t)
	n := newTestNode(t, 3)
	srv := apiservertest.Start(t)
	client := srv.Client
	ctx := context.Background()

	for _, ns := range []string{"prod", "dev"} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"team": ns}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	type podSpec struct {
		namespace, app string
		ports          []corev1.ContainerPort
	}
	for i, p := range []podSpec{
		{"prod", "db", []corev1.ContainerPort{{Name: "http", ContainerPort: podPort}, {ContainerPort: 9000}}},
		{"prod", "web", nil},
		{"dev", "web", nil},
	} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod%d", i), Namespace: p.namespace, Labels: map[string]string{"app": p.app}},
			Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Image: "busybox", Ports: p.ports}}},
		}
		pod, err := client.CoreV1().Pods(p.namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: podIP(i), PodIPs: []corev1.PodIP{{IP: podIP(i)}}}
		if _, err := client.CoreV1().Pods(p.namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, port := range []int{9000, 9001, 9005} {
		n.serveTCP(n.pods[0], podIP(0), port)
	}
	n.serveUDPEcho(n.pods[2], podIP(2), 53)
	n.serveUDPEcho(n.node, bridgeIP, 53)
	n.serveTCP(n.node, bridgeIP, 9100)

	// what an earlier run might have left, dropping everything: the first sync must remove it
	n.run("sh", "-c", "printf 'add table ip skiff-netpol\\nadd chain ip skiff-netpol stale { type filter hook forward priority 0 ; policy drop ; }\\n' | ip netns exec "+n.node+" nft -f -")
	stop := startNetworkPolicyAgent(t, client, n)
	startProxy(t, client, n) // the Service step: policies judge traffic after the proxy's DNAT

	pod0, pod1, pod2 := n.pods[0], n.pods[1], n.pods[2]
	at := func(i, port int) string { return net.JoinHostPort(podIP(i), fmt.Sprint(port)) }
	policies := client.NetworkingV1().NetworkPolicies("prod")
	create := func(np *networkingv1.NetworkPolicy) {
		t.Helper()
		if np.Namespace == "" {
			np.Namespace = "prod"
		}
		if _, err := client.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create policy %s: %v", np.Name, err)
		}
	}
	remove := func(names ...string) {
		t.Helper()
		for _, name := range names {
			if err := policies.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatalf("delete policy %s: %v", name, err)
			}
		}
	}
	onDB := metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
	ingress := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}

	expectConnectivity(t, "every pod reachable without policies, the stale table replaced", []connectivity{
		{from: pod1, to: at(0, podPort), want: true},
		{from: pod2, to: at(0, podPort), want: true},
		{from: n.client, to: at(0, podPort), want: true},
	})

	// default deny: every pod of prod is isolated for ingress
	create(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "default-deny"}, Spec: networkingv1.NetworkPolicySpec{PolicyTypes: ingress}})
	expectConnectivity(t, "default deny ingress in prod", []connectivity{
		{from: pod1, to: at(0, podPort), want: false},
		{from: pod2, to: at(0, podPort), want: false},
		{from: pod2, to: at(1, podPort), want: false},
		{from: n.client, to: at(0, podPort), want: false},
		{from: n.node, to: at(0, podPort), want: true}, // the kubelet's probes
		{from: pod0, to: at(2, podPort), want: true},   // its own connections, and their replies
	})

	create(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-web"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: onDB, PolicyTypes: ingress,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{policyPeerPods(map[string]string{"app": "web"})}}},
	}})
	expectConnectivity(t, "a podSelector peer allows the labelled pod of the policy's namespace only", []connectivity{
		{from: pod1, to: at(0, podPort), want: true},
		{from: pod2, to: at(0, podPort), want: false},
		{from: n.client, to: at(0, podPort), want: false},
	})

	// through a Service: the backend's policy judges the client, not the cluster IP
	svc := createService(t, client, "db", corev1.ServiceTypeClusterIP)
	slice := endpointSlice("db", podIP(0))
	if _, err := client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clusterAddr := net.JoinHostPort(svc.Spec.ClusterIP, "80")
	expectConnectivity(t, "the Service's backend policy applies after DNAT", []connectivity{
		{from: pod1, to: clusterAddr, want: true},
		{from: pod2, to: clusterAddr, want: false},
	})
	remove("allow-web")

	create(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-dev"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: onDB, PolicyTypes: ingress,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
			{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "dev"}}},
		}}},
	}})
	expectConnectivity(t, "a namespaceSelector peer allows every pod of the namespace", []connectivity{
		{from: pod2, to: at(0, podPort), want: true},
		{from: pod1, to: at(0, podPort), want: false},
	})
	remove("allow-dev")

	// pods relabelled: only set elements change (written through netlink, not nft)
	create(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-web-and-dev"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: onDB, PolicyTypes: ingress,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
			policyPeerPods(map[string]string{"app": "web"}),
			{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "dev"}}},
		}}},
	}})
	expectConnectivity(t, "pods of both peers allowed", []connectivity{
		{from: pod1, to: at(0, podPort), want: true},
		{from: pod2, to: at(0, podPort), want: true},
	})
	relabel := func(app string) {
		t.Helper()
		pod, err := client.CoreV1().Pods("prod").Get(ctx, "pod1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Labels["app"] = app
		if _, err := client.CoreV1().Pods("prod").Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	relabel("batch")
	expectConnectivity(t, "a pod relabelled out of the peers is denied", []connectivity{
		{from: pod1, to: at(0, podPort), want: false},
		{from: pod2, to: at(0, podPort), want: true},
	})
	relabel("web")
	expectConnectivity(t, "a pod relabelled back is allowed again", []connectivity{
		{from: pod1, to: at(0, podPort), want: true},
	})
	remove("allow-web-and-dev")

	create(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-dev-batch"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: onDB, PolicyTypes: ingress,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "dev"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "batch"}},
		}}}},
	}})
	expectConnectivity(t, "namespace and pod selectors in one peer must both match", []connectivity{
		{from: pod2, to: at(0, podPort), want: false},
	})
	remove("allow-dev-batch")

	ipBlock := func(except string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-outside"}, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: onDB, PolicyTypes: ingress,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "172.31.0.0/24", Except: []string{except}}},
			}}},
		}}
	}
	create(ipBlock(clientIP + "/32"))
	expectConnectivity(t, "an ipBlock's exception is denied", []connectivity{
		{from: n.client, to: at(0, podPort), want: false},
	})
	remove("allow-outside")
	create(ipBlock("172.31.0.128/25"))
	expectConnectivity(t, "an ipBlock allows the rest of its range", []connectivity{
		{from: n.client, to: at(0, podPort), want: true},
		{from: pod1, to: at(0, podPort), want: false},
	})
	remove("allow-outside")

	create(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-http"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: onDB, PolicyTypes: ingress,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromString("http"))}}}},
	}})
	expectConnectivity(t, "a named port is the selected pod's container port of that name", []connectivity{
		{from: pod1, to: at(0, podPort), want: true},
		{from: pod2, to: at(0, podPort), want: true},
		{from: pod1, to: at(0, 9000), want: false},
	})
	remove("allow-http")

	create(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-range"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: onDB, PolicyTypes: ingress,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(9000)), EndPort: ptr.To[int32](9002)},
		}}},
	}})
	expectConnectivity(t, "a port range allows from port to endPort", []connectivity{
		{from: pod1, to: at(0, 9000), want: true},
		{from: pod1, to: at(0, 9001), want: true},
		{from: pod1, to: at(0, 9005), want: false},
		{from: pod1, to: at(0, podPort), want: false},
	})
	remove("allow-range", "default-deny")

	create(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "web-egress-dns-only"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{
			{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(53))},
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(53))},
		}}},
	}})
	expectConnectivity(t, "egress deny with DNS allowed", []connectivity{
		{from: pod1, to: at(0, podPort), want: false},
		{from: pod1, to: at(2, podPort), want: false},
		{from: pod1, to: at(2, 53), udp: true, want: true},
		{from: pod1, to: net.JoinHostPort(bridgeIP, "53"), udp: true, want: true}, // the node's DNS
		{from: pod1, to: net.JoinHostPort(bridgeIP, "9100"), want: true},          // its own node, always
		{from: pod2, to: at(1, podPort), want: true},                              // ingress to pod1 is not isolated
		{from: pod0, to: at(1, podPort), want: true},
	})
	remove("web-egress-dns-only")

	expectConnectivity(t, "traffic flows again once the policies are gone", []connectivity{
		{from: pod1, to: at(0, podPort), want: true},
		{from: pod2, to: at(0, 9005), want: true},
		{from: pod1, to: at(2, podPort), want: true},
		{from: n.client, to: at(0, podPort), want: true},
	})

	stop()
	out, err := exec.Command("ip", "netns", "exec", n.node, "nft", "list", "tables").CombinedOutput()
	if err != nil || strings.Contains(string(out), DefaultNetworkPolicyTable) {
		t.Errorf("after the agent stopped: err %v, tables:\n%s", err, out)
	}
}
