package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// The dual-stack test gives the test node, its client and its pods an IPv6 address beside the
// IPv4 one:
//
//	client (fd31::2) ── node (fd31::1; br0 fd44:1::1/64) ── pod0 (fd44:1::10), pod1 (fd44:1::11)
const (
	nodeIPv6   = "fd31::1"
	clientIPv6 = "fd31::2"
	bridgeIPv6 = "fd44:1::1"
)

func podIPv6(i int) string { return fmt.Sprintf("fd44:1::%d", 10+i) }

// addIPv6 gives every namespace of the test node its IPv6 address and routes (without
// duplicate address detection, so the addresses work at once) and serves each pod's name on
// its IPv6 address too.
func (n *testNode) addIPv6() {
	n.t.Helper()
	nodeCmd := func(args ...string) { n.run(append([]string{"ip", "-n", n.node}, args...)...) }
	n.run("ip", "netns", "exec", n.node, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0") // the proxy must turn it on
	nodeCmd("addr", "add", bridgeIPv6+"/64", "dev", "br0", "nodad")
	nodeCmd("addr", "add", nodeIPv6+"/64", "dev", "vc0", "nodad")
	nodeCmd("-6", "route", "add", "default", "via", clientIPv6)
	n.run("ip", "-n", n.client, "addr", "add", clientIPv6+"/64", "dev", "eth0", "nodad")
	n.run("ip", "-n", n.client, "-6", "route", "add", "default", "via", nodeIPv6)
	for i, pod := range n.pods {
		n.run("ip", "-n", pod, "addr", "add", podIPv6(i)+"/64", "dev", "eth0", "nodad")
		n.run("ip", "-n", pod, "-6", "route", "add", "default", "via", bridgeIPv6)
		n.servePodName(pod, podIPv6(i), fmt.Sprintf("pod%d", i))
	}
}

func ipv6EndpointSlice(svc string, ips ...string) *discoveryv1.EndpointSlice {
	s := endpointSlice(svc, ips...)
	s.Name, s.AddressType = svc+"-v6", discoveryv1.AddressTypeIPv6
	return s
}

func TestADualStackServiceAnswersOnBothClusterIPsInNetworkNamespaces(t *testing.T) {
	requireNetworkPrivileges(t)
	n := newTestNode(t, 2)
	n.addIPv6()
	srv := apiservertest.Start(t, func(c *apiserver.Config) { c.ServiceClusterIPRange = "10.96.0.0/12,fd00:10:96::/112" })
	client := srv.Client
	ctx := t.Context()

	web := createService(t, client, "web", corev1.ServiceTypeNodePort, func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	})
	v6only := createService(t, client, "v6only", corev1.ServiceTypeClusterIP, func(s *corev1.Service) {
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	})
	empty := createService(t, client, "empty", corev1.ServiceTypeClusterIP, func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	})
	if len(web.Spec.ClusterIPs) != 2 || len(v6only.Spec.ClusterIPs) != 1 {
		t.Fatalf("cluster IPs: web %v, v6only %v", web.Spec.ClusterIPs, v6only.Spec.ClusterIPs)
	}
	for _, s := range []*discoveryv1.EndpointSlice{
		endpointSlice("web", podIP(0), podIP(1)),
		ipv6EndpointSlice("web", podIPv6(0), podIPv6(1)),
		ipv6EndpointSlice("v6only", podIPv6(1)),
	} {
		if _, err := client.DiscoveryV1().EndpointSlices("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	stop := startProxy(t, client, n, func(c *Config) {
		c.IPv6, c.IPv6ClusterCIDR = true, netip.MustParsePrefix("fd44::/48")
	})

	everyPodAnswers := func(from, addr string) func() (bool, string) {
		return func() (bool, string) {
			answers, err := ask(from, addr, 40)
			return err == nil && answers["pod0"] > 0 && answers["pod1"] > 0, fmt.Sprintf("answers %v, err %v", answers, err)
		}
	}
	v4Cluster := net.JoinHostPort(web.Spec.ClusterIPs[0], "80")
	v6Cluster := net.JoinHostPort(web.Spec.ClusterIPs[1], "80")
	eventually(t, "both pods answering the IPv6 cluster IP from the client", everyPodAnswers(n.client, v6Cluster))
	eventually(t, "both pods answering the IPv4 cluster IP from the client", everyPodAnswers(n.client, v4Cluster))
	eventually(t, "both pods answering the IPv6 cluster IP from a pod (one of them itself, hairpin)", everyPodAnswers(n.pods[0], v6Cluster))
	eventually(t, "both pods answering the IPv6 cluster IP from the node", everyPodAnswers(n.node, v6Cluster))
	v6NodePort := net.JoinHostPort(nodeIPv6, fmt.Sprint(web.Spec.Ports[0].NodePort))
	eventually(t, "both pods answering the node port on the node's IPv6 address", everyPodAnswers(n.client, v6NodePort))
	eventually(t, "the IPv6-only Service answering from its one endpoint", func() (bool, string) {
		answers, err := ask(n.client, net.JoinHostPort(v6only.Spec.ClusterIP, "80"), 10)
		return err == nil && answers["pod1"] == 10, fmt.Sprintf("answers %v, err %v", answers, err)
	})
	if _, err := ask(n.client, net.JoinHostPort(empty.Spec.ClusterIPs[1], "80"), 1); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("an IPv6 cluster IP without endpoints: want connection refused, got %v", err)
	}
	if v, _ := exec.Command("ip", "netns", "exec", n.node, "sysctl", "-n", "net.ipv6.conf.all.forwarding").Output(); strings.TrimSpace(string(v)) != "1" {
		t.Errorf("IPv6 forwarding is %q in the node namespace", v)
	}

	// a stopped proxy leaves neither table behind
	stop()
	out, err := exec.Command("ip", "netns", "exec", n.node, "nft", "list", "tables").CombinedOutput()
	if err != nil || strings.Contains(string(out), "skiff") {
		t.Errorf("after the proxy stopped: err %v, tables:\n%s", err, out)
	}
}
