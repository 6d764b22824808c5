package servicecidr

import (
	"context"
	"slices"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/controllers"
)

func syncedFake(t *testing.T, objects ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objects...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Networking().V1().ServiceCIDRs(), factory.Networking().V1().IPAddresses(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		t.Fatal("caches not synced")
	}
	return c, client
}

func serviceCIDR(name string, deleting bool, cidrs ...string) *networkingv1.ServiceCIDR {
	c := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: cidrs}}
	if deleting {
		c.DeletionTimestamp = &metav1.Time{Time: time.Now().Add(-time.Hour)}
		c.Finalizers = []string{apis.ServiceCIDRFinalizer}
	}
	return c
}

func clusterIP(ip string) *networkingv1.IPAddress {
	return &networkingv1.IPAddress{
		ObjectMeta: metav1.ObjectMeta{Name: ip, Labels: map[string]string{networkingv1.LabelManagedBy: ipAllocatorManager}},
		Spec:       networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Resource: "services", Namespace: "default", Name: "web"}},
	}
}

func get(t *testing.T, client *fake.Clientset, name string) *networkingv1.ServiceCIDR {
	t.Helper()
	c, err := client.NetworkingV1().ServiceCIDRs().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSyncAddsFinalizerAndReady(t *testing.T) {
	c, client := syncedFake(t, serviceCIDR("extra", false, "10.1.0.0/24"))
	if err := c.sync(context.Background(), "extra"); err != nil {
		t.Fatal(err)
	}
	got := get(t, client, "extra")
	ready := meta.FindStatusCondition(got.Status.Conditions, networkingv1.ServiceCIDRConditionReady)
	if !slices.Contains(got.Finalizers, apis.ServiceCIDRFinalizer) || ready == nil || ready.Status != metav1.ConditionTrue || ready.Message != "Kubernetes Service CIDR is ready" {
		t.Errorf("after sync: finalizers %v, Ready %+v", got.Finalizers, ready)
	}
}

func TestSyncKeepsDeletedServiceCIDRHoldingAnUncoveredAddress(t *testing.T) {
	c, client := syncedFake(t, serviceCIDR("extra", true, "10.1.0.0/24"), clusterIP("10.1.0.9"))
	if err := c.sync(context.Background(), "extra"); err != nil {
		t.Fatal(err)
	}
	got := get(t, client, "extra")
	ready := meta.FindStatusCondition(got.Status.Conditions, networkingv1.ServiceCIDRConditionReady)
	if !slices.Contains(got.Finalizers, apis.ServiceCIDRFinalizer) || ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != "Terminating" {
		t.Errorf("after sync: finalizers %v, Ready %+v", got.Finalizers, ready)
	}
}

func TestSyncReleasesDeletedServiceCIDRWhoseAddressesAnotherCovers(t *testing.T) {
	c, client := syncedFake(t, serviceCIDR("extra", true, "10.1.0.0/24"), serviceCIDR("wider", false, "10.1.0.0/16"), clusterIP("10.1.0.9"))
	if err := c.sync(context.Background(), "extra"); err != nil {
		t.Fatal(err)
	}
	if got := get(t, client, "extra"); slices.Contains(got.Finalizers, apis.ServiceCIDRFinalizer) {
		t.Errorf("finalizers after sync: %v", got.Finalizers)
	}
}

func TestSyncKeepsDeletedServiceCIDRCoveredOnlyByAnotherBeingDeleted(t *testing.T) {
	c, client := syncedFake(t, serviceCIDR("extra", true, "10.1.0.0/24"), serviceCIDR("wider", true, "10.1.0.0/16"), clusterIP("10.1.0.9"))
	if err := c.sync(context.Background(), "extra"); err != nil {
		t.Fatal(err)
	}
	if got := get(t, client, "extra"); !slices.Contains(got.Finalizers, apis.ServiceCIDRFinalizer) {
		t.Errorf("finalizers after sync: %v", got.Finalizers)
	}
}

func TestSyncWaitsTheGracePeriodBeforeReleasing(t *testing.T) {
	deleted := serviceCIDR("extra", true, "10.1.0.0/24")
	deleted.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	c, client := syncedFake(t, deleted)
	if err := c.sync(context.Background(), "extra"); err == nil {
		t.Error("sync within the grace period asked for no requeue")
	}
	if got := get(t, client, "extra"); !slices.Contains(got.Finalizers, apis.ServiceCIDRFinalizer) {
		t.Errorf("finalizers within the grace period: %v", got.Finalizers)
	}
}
