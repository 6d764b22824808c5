package proxy

import (
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func dualStackNode(name string, podCIDRs []string, addresses ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDR: podCIDRs[0], PodCIDRs: podCIDRs}}
	for _, a := range addresses {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
	}
	return n
}

// desiredRoutes is what a syncer on node-a wants, given the Nodes.
func desiredRoutes(t *testing.T, cfg RoutesConfig, nodes ...*corev1.Node) map[netip.Prefix]route {
	t.Helper()
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	r, err := NewNodeRoutes(factory.Core().V1().Nodes(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := factory.Core().V1().Nodes().Informer().GetIndexer().Add(n); err != nil {
			t.Fatal(err)
		}
	}
	want, err := r.desired()
	if err != nil {
		t.Fatal(err)
	}
	return want
}

func TestADualStackSyncerRoutesEachFamilysPodCIDRViaTheNodesAddressOfThatFamily(t *testing.T) {
	nodes := []*corev1.Node{
		dualStackNode("node-a", []string{"10.42.0.0/24", "fd42::/64"}, "192.168.77.1", "fd77::1"),
		dualStackNode("node-b", []string{"10.42.1.0/24", "fd42:0:0:1::/64"}, "192.168.77.2", "fd77::2"),
		// no IPv6 address: its IPv6 pods are out of reach
		dualStackNode("node-c", []string{"10.42.2.0/24", "fd42:0:0:2::/64"}, "192.168.77.3"),
	}
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	got := desiredRoutes(t, RoutesConfig{Hostname: "node-a", IPv6: true}, nodes...)
	want := map[netip.Prefix]route{
		p("10.42.1.0/24"):    {dst: p("10.42.1.0/24"), via: a("192.168.77.2")},
		p("fd42:0:0:1::/64"): {dst: p("fd42:0:0:1::/64"), via: a("fd77::2")},
		p("10.42.2.0/24"):    {dst: p("10.42.2.0/24"), via: a("192.168.77.3")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("desired routes = %v, want %v", got, want)
	}

	// without IPv6 the same Nodes give only the IPv4 routes, as before dual stack
	got = desiredRoutes(t, RoutesConfig{Hostname: "node-a"}, nodes...)
	delete(want, p("fd42:0:0:1::/64"))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("IPv4-only desired routes = %v, want %v", got, want)
	}
}
