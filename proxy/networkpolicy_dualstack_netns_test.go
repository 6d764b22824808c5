package proxy

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// The dual-stack NetworkPolicy test is the NetworkPolicy test's node and pods with the
// dual-stack test's IPv6 addresses (dualstack_netns_test.go):
//
//	pod0 10.244.1.10 fd44:1::10  namespace prod, app=db   TCP 8080
//	pod1 10.244.1.11 fd44:1::11  namespace prod, app=web  TCP 8080
//	pod2 10.244.1.12 fd44:1::12  namespace dev,  app=web  TCP 8080
//	client 172.31.0.2 fd31::2, outside the cluster
//
// A policy applies to every address of its pods; an ipBlock only to its own family.
func TestNetworkPoliciesOverIPv6InNetworkNamespaces(t *testing.T) {
	requireNetworkPrivileges(t)
	n := newTestNode(t, 3)
	n.addIPv6()
	// the proxy turns forwarding on in a cluster; this test runs the agent alone
	n.run("ip", "netns", "exec", n.node, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	srv := apiservertest.Start(t)
	client := srv.Client
	ctx := context.Background()

	for _, ns := range []string{"prod", "dev"} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"team": ns}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range []struct{ namespace, app string }{{"prod", "db"}, {"prod", "web"}, {"dev", "web"}} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod%d", i), Namespace: p.namespace, Labels: map[string]string{"app": p.app}},
			Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}
		pod, err := client.CoreV1().Pods(p.namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: podIP(i), PodIPs: []corev1.PodIP{{IP: podIP(i)}, {IP: podIPv6(i)}}}
		if _, err := client.CoreV1().Pods(p.namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// what an earlier run might have left, dropping all IPv6 traffic: the first sync must remove it
	n.run("sh", "-c", "printf 'add table ip6 skiff-netpol\\nadd chain ip6 skiff-netpol stale { type filter hook forward priority 0 ; policy drop ; }\\n' | ip netns exec "+n.node+" nft -f -")
	stop := startNetworkPolicyAgent(t, client, n, func(c *NetworkPolicyConfig) { c.IPv6 = true })

	pod0, pod1, pod2 := n.pods[0], n.pods[1], n.pods[2]
	v4 := func(i int) string { return net.JoinHostPort(podIP(i), fmt.Sprint(podPort)) }
	v6 := func(i int) string { return net.JoinHostPort(podIPv6(i), fmt.Sprint(podPort)) }
	policies := client.NetworkingV1().NetworkPolicies("prod")
	create := func(np *networkingv1.NetworkPolicy) {
		t.Helper()
		np.Namespace = "prod"
		if _, err := policies.Create(ctx, np, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create policy %s: %v", np.Name, err)
		}
	}
	remove := func(name string) {
		t.Helper()
		if err := policies.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete policy %s: %v", name, err)
		}
	}
	allowIngressFrom := func(name string, peers ...networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers}},
		}}
	}

	expectConnectivity(t, "every pod reachable over IPv6 without policies, the stale table replaced", []connectivity{
		{from: pod1, to: v6(0), want: true},
		{from: pod2, to: v6(0), want: true},
		{from: n.client, to: v6(0), want: true},
		{from: n.client, to: v4(0), want: true},
	})

	create(allowIngressFrom("allow-web", policyPeerPods(map[string]string{"app": "web"})))
	expectConnectivity(t, "an isolated pod's IPv6 address admits only its policy's peers", []connectivity{
		{from: pod1, to: v6(0), want: true},
		{from: pod2, to: v6(0), want: false},
		{from: n.client, to: v6(0), want: false},
		{from: n.node, to: v6(0), want: true}, // the kubelet's probes
		{from: pod2, to: v6(1), want: true},   // pod1 is not isolated
		{from: pod0, to: v6(2), want: true},   // its own connections, and their replies
		{from: pod1, to: v4(0), want: true},
		{from: pod2, to: v4(0), want: false},
	})
	// a relabelled pod changes set elements only, of both families (written through netlink)
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
	expectConnectivity(t, "a pod relabelled out of the peers is denied on both addresses", []connectivity{
		{from: pod1, to: v6(0), want: false},
		{from: pod1, to: v4(0), want: false},
	})
	relabel("web")
	expectConnectivity(t, "a pod relabelled back is allowed again on both addresses", []connectivity{
		{from: pod1, to: v6(0), want: true},
		{from: pod1, to: v4(0), want: true},
	})
	remove("allow-web")

	create(allowIngressFrom("allow-dev", networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "dev"}}}))
	expectConnectivity(t, "a namespaceSelector peer admits the namespace's pods over IPv6", []connectivity{
		{from: pod2, to: v6(0), want: true},
		{from: pod1, to: v6(0), want: false},
	})
	remove("allow-dev")

	create(allowIngressFrom("allow-outside-v6", networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "fd31::/64", Except: []string{clientIPv6 + "/128"}}}))
	expectConnectivity(t, "an IPv6 ipBlock's exception is denied", []connectivity{
		{from: n.client, to: v6(0), want: false},
	})
	remove("allow-outside-v6")
	create(allowIngressFrom("allow-outside-v6", networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "fd31::/64", Except: []string{"fd31::80/121"}}}))
	expectConnectivity(t, "an IPv6 ipBlock admits what it names, over IPv6 only", []connectivity{
		{from: n.client, to: v6(0), want: true},
		{from: n.client, to: v4(0), want: false},
		{from: pod1, to: v6(0), want: false},
	})
	remove("allow-outside-v6")
	create(allowIngressFrom("allow-outside-v4", networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "172.31.0.0/24"}}))
	expectConnectivity(t, "an IPv4 ipBlock admits nothing over IPv6", []connectivity{
		{from: n.client, to: v4(0), want: true},
		{from: n.client, to: v6(0), want: false},
	})
	remove("allow-outside-v4")

	create(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "web-egress-to-db"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{policyPeerPods(map[string]string{"app": "db"})}}},
	}})
	expectConnectivity(t, "an egress policy holds over IPv6", []connectivity{
		{from: pod1, to: v6(0), want: true},
		{from: pod1, to: v6(2), want: false},
		{from: pod1, to: v4(2), want: false},
		{from: pod2, to: v6(1), want: true},
	})
	remove("web-egress-to-db")

	expectConnectivity(t, "IPv6 traffic flows again once the policies are gone", []connectivity{
		{from: pod1, to: v6(2), want: true},
		{from: pod2, to: v6(0), want: true},
		{from: n.client, to: v6(0), want: true},
	})

	stop()
	out, err := exec.Command("ip", "netns", "exec", n.node, "nft", "list", "tables").CombinedOutput()
	if err != nil || strings.Contains(string(out), DefaultNetworkPolicyTable) {
		t.Errorf("after the agent stopped, neither family's table is left: err %v, tables:\n%s", err, out)
	}
}
