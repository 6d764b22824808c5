package servicecidr

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
)

// startController starts an API server whose own service range is 10.0.0.0/29 (five
// addresses for Services beside the kubernetes Service's) and the controller on it, with no
// grace period after a deleted ServiceCIDR's last address goes.
func startController(t *testing.T) kubernetes.Interface {
	t.Helper()
	srv := apiservertest.Start(t, func(c *apiserver.Config) { c.ServiceClusterIPRange = "10.0.0.0/29" })
	factory := informers.NewSharedInformerFactory(srv.Client, 0)
	c, err := New(factory.Networking().V1().ServiceCIDRs(), factory.Networking().V1().IPAddresses(), srv.Client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeletionGracePeriod(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() { defer close(done); c.Run(ctx, 2) }()
	t.Cleanup(func() {
		cancel()
		<-done
		factory.Shutdown()
	})
	return srv.Client
}

func createServiceCIDR(t *testing.T, client kubernetes.Interface, name, cidr string) {
	t.Helper()
	_, err := client.NetworkingV1().ServiceCIDRs().Create(context.Background(), &networkingv1.ServiceCIDR{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       networkingv1.ServiceCIDRSpec{CIDRs: []string{cidr}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// waitServiceCIDR waits until the ServiceCIDR satisfies cond (nil when it is gone).
func waitServiceCIDR(t *testing.T, client kubernetes.Interface, name, what string, cond func(*networkingv1.ServiceCIDR) bool) {
	t.Helper()
	var last *networkingv1.ServiceCIDR
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := client.NetworkingV1().ServiceCIDRs().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return cond(nil), nil
		}
		if err != nil {
			return false, err
		}
		last = c
		return cond(c), nil
	})
	if err != nil {
		t.Fatalf("ServiceCIDR %s never %s: %+v", name, what, last)
	}
}

func ready(c *networkingv1.ServiceCIDR) bool {
	return c != nil && slices.Contains(c.Finalizers, apis.ServiceCIDRFinalizer) &&
		meta.IsStatusConditionTrue(c.Status.Conditions, networkingv1.ServiceCIDRConditionReady)
}

func createService(t *testing.T, client kubernetes.Interface, name, clusterIP string) *corev1.Service {
	t.Helper()
	svc, err := client.CoreV1().Services("default").Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: clusterIP, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Service %s: %v", name, err)
	}
	return svc
}

func TestServiceCIDRsGetFinalizerAndReadyAndFillAfterTheDefault(t *testing.T) {
	client := startController(t)
	ctx := context.Background()
	waitServiceCIDR(t, client, apis.DefaultServiceCIDRName, "ready with its finalizer", ready)
	createServiceCIDR(t, client, "extra", "10.1.0.0/29")
	waitServiceCIDR(t, client, "extra", "ready with its finalizer", ready)

	// the default range's five free addresses go first, then the extra's
	defaultRange, extra := netip.MustParsePrefix("10.0.0.0/29"), netip.MustParsePrefix("10.1.0.0/29")
	taken := map[string]bool{}
	for i := range 7 {
		svc := createService(t, client, fmt.Sprintf("svc-%d", i), "")
		ip := netip.MustParseAddr(svc.Spec.ClusterIP)
		taken[ip.String()] = true
		want := defaultRange
		if i >= 5 {
			want = extra
		}
		if !want.Contains(ip) {
			t.Errorf("Service %d of 7 got %s, want one of %s", i, ip, want)
		}
		addr, err := client.NetworkingV1().IPAddresses().Get(ctx, ip.String(), metav1.GetOptions{})
		if err != nil || addr.Spec.ParentRef == nil || addr.Spec.ParentRef.Name != svc.Name || addr.Spec.ParentRef.Resource != "services" {
			t.Errorf("IPAddress %s: %+v %v", ip, addr, err)
		}
	}
	// a cluster IP asked for in the extra range is given; one in no range is refused
	chosen := "10.1.0.6"
	if taken[chosen] {
		chosen = "10.1.0.5"
		if taken[chosen] {
			chosen = "10.1.0.4"
		}
	}
	createService(t, client, "chosen", chosen)
	_, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "outside"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.2.0.5", Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Errorf("a cluster IP in no ServiceCIDR: %v", err)
	}
}

func TestDeletedServiceCIDRStaysWhileItsAddressesDoAndNoOtherCoversThem(t *testing.T) {
	client := startController(t)
	ctx := context.Background()
	createServiceCIDR(t, client, "extra", "10.1.0.0/29")
	waitServiceCIDR(t, client, "extra", "ready with its finalizer", ready)
	svc := createService(t, client, "in-extra", "10.1.0.3")

	if err := client.NetworkingV1().ServiceCIDRs().Delete(ctx, "extra", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitServiceCIDR(t, client, "extra", "terminating", func(c *networkingv1.ServiceCIDR) bool {
		if c == nil {
			return false
		}
		cond := meta.FindStatusCondition(c.Status.Conditions, networkingv1.ServiceCIDRConditionReady)
		return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == networkingv1.ServiceCIDRReasonTerminating &&
			cond.Message == "There are still IPAddresses referencing the ServiceCIDR, please remove them or create a new ServiceCIDR"
	})
	// no new address comes from a ServiceCIDR being deleted
	if _, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "late"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.1.0.4", Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("a cluster IP of a terminating ServiceCIDR: %v", err)
	}

	if err := client.CoreV1().Services("default").Delete(ctx, svc.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitServiceCIDR(t, client, "extra", "gone", func(c *networkingv1.ServiceCIDR) bool { return c == nil })
}

func TestDeletedServiceCIDRInsideAnotherGoesAtOnce(t *testing.T) {
	client := startController(t)
	ctx := context.Background()
	createServiceCIDR(t, client, "wide", "10.1.0.0/24")
	createServiceCIDR(t, client, "narrow", "10.1.0.0/29")
	waitServiceCIDR(t, client, "wide", "ready with its finalizer", ready)
	waitServiceCIDR(t, client, "narrow", "ready with its finalizer", ready)
	createService(t, client, "in-both", "10.1.0.3")

	if err := client.NetworkingV1().ServiceCIDRs().Delete(ctx, "narrow", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitServiceCIDR(t, client, "narrow", "gone", func(c *networkingv1.ServiceCIDR) bool { return c == nil })
	if _, err := client.NetworkingV1().IPAddresses().Get(ctx, "10.1.0.3", metav1.GetOptions{}); err != nil {
		t.Errorf("the Service's IPAddress: %v", err)
	}
}
