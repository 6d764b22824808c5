package nodeipam

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
)

func TestCIDRSetHandsOutEachSubnetOnce(t *testing.T) {
	s, err := newCIDRSet(netip.MustParsePrefix("10.244.0.0/22"), 24)
	if err != nil {
		t.Fatal(err)
	}
	s.occupy(netip.MustParsePrefix("10.244.1.0/24"))
	var got []string
	for range 3 {
		p, err := s.allocateNext()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.String())
	}
	want := []string{"10.244.0.0/24", "10.244.2.0/24", "10.244.3.0/24"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allocated %v, want %v", got, want)
		}
	}
	if _, err := s.allocateNext(); err != errCIDRRangeFull {
		t.Errorf("fifth allocation: %v, want the range full", err)
	}
	s.release(netip.MustParsePrefix("10.244.2.0/24"))
	if p, _ := s.allocateNext(); p.String() != "10.244.2.0/24" {
		t.Errorf("after release allocated %v, want the released subnet", p)
	}
}

func TestCIDRSetIPv6(t *testing.T) {
	s, err := newCIDRSet(netip.MustParsePrefix("fd00:10:244::/56"), 64)
	if err != nil {
		t.Fatal(err)
	}
	s.allocateNext()
	p, _ := s.allocateNext()
	if p.String() != "fd00:10:244:1::/64" {
		t.Errorf("second IPv6 subnet %v, want fd00:10:244:1::/64", p)
	}
}

func newController(t *testing.T, client kubernetes.Interface) (*Controller, informers.SharedInformerFactory) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	cidrs, err := ParseClusterCIDRs(DefaultClusterCIDR)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(factory.Core().V1().Nodes(), client, cidrs, []int{24}, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	return c, factory
}

func TestNodesGetDistinctCIDRsAndKeepTheirsOnRepeatedSyncs(t *testing.T) {
	taken := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "old"}, Spec: corev1.NodeSpec{PodCIDR: "10.244.0.0/24", PodCIDRs: []string{"10.244.0.0/24"}}}
	client := fake.NewClientset(taken, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "new"}})
	c, factory := newController(t, client)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	// the informer may not have seen the first patch when the second sync runs
	for range 2 {
		if err := c.sync(ctx, "new"); err != nil {
			t.Fatal(err)
		}
	}
	var patches []string
	for _, a := range client.Actions() {
		if a.GetVerb() == "patch" {
			patches = append(patches, string(a.(clienttesting.PatchAction).GetPatch()))
		}
	}
	if len(patches) == 0 {
		t.Fatal("no patch")
	}
	for _, p := range patches {
		if p != patches[0] {
			t.Errorf("patches differ: %v", patches)
		}
	}
	n, _ := client.CoreV1().Nodes().Get(ctx, "new", metav1.GetOptions{})
	if n.Spec.PodCIDR != "10.244.1.0/24" || len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != "10.244.1.0/24" {
		t.Errorf("new node podCIDR %q podCIDRs %v, want 10.244.1.0/24 beside the taken 10.244.0.0/24", n.Spec.PodCIDR, n.Spec.PodCIDRs)
	}
	if err := c.sync(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() == "patch" && a.(clienttesting.PatchAction).GetName() == "old" {
			t.Error("a node with a CIDR was patched")
		}
	}
}

func TestEveryRegisteredNodeGetsAPodCIDROnce(t *testing.T) {
	s := apiservertest.Start(t)
	c, factory := newController(t, s.Client)
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx, 4) }()
	defer func() { cancel(); <-done; factory.Shutdown() }()

	names := []string{"n1", "n2", "n3", "n4", "n5"}
	for _, n := range names {
		if _, err := s.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]string{}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			node, err := s.Client.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if err != nil || node.Spec.PodCIDR == "" {
				return false, nil
			}
			seen[n] = node.Spec.PodCIDR
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("pod CIDRs %v: %v", seen, err)
	}
	owners := map[string]string{}
	cluster := netip.MustParsePrefix(DefaultClusterCIDR)
	for n, cidr := range seen {
		p := netip.MustParsePrefix(cidr)
		if p.Bits() != 24 || !cluster.Contains(p.Addr()) {
			t.Errorf("node %s got %s, want a /24 of %s", n, cidr, cluster)
		}
		if other, dup := owners[cidr]; dup {
			t.Errorf("%s given to both %s and %s", cidr, other, n)
		}
		owners[cidr] = n
	}
}
