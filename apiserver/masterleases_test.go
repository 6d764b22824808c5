package apiserver_test

import (
	"context"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func advertising(ip string) apiservertest.Option {
	return func(c *apiserver.Config) { c.AdvertiseAddress = ip }
}

// kubernetesEndpoints are the addresses the kubernetes Service's Endpoints and EndpointSlice
// name; it fails the test if the two disagree.
func kubernetesEndpoints(t *testing.T, client kubernetes.Interface) []string {
	t.Helper()
	ctx := context.Background()
	ep, err := client.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, ss := range ep.Subsets {
		for _, a := range ss.Addresses {
			ips = append(ips, a.IP)
		}
	}
	slice, err := client.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var sliceIPs []string
	for _, e := range slice.Endpoints {
		sliceIPs = append(sliceIPs, e.Addresses...)
	}
	if !slices.Equal(ips, sliceIPs) {
		t.Fatalf("the kubernetes Endpoints name %v, its EndpointSlice %v", ips, sliceIPs)
	}
	return ips
}

func waitKubernetesEndpoints(t *testing.T, client kubernetes.Interface, want ...string) {
	t.Helper()
	var got []string
	if err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		got = kubernetesEndpoints(t, client)
		return slices.Equal(got, want), nil
	}); err != nil {
		t.Fatalf("the kubernetes service's endpoints are %v, want %v", got, want)
	}
}

func TestKubernetesServiceEndpointsNameEveryLiveAPIServer(t *testing.T) {
	first := apiservertest.Start(t, advertising("10.0.0.1"))
	ctx := context.Background()
	if got := kubernetesEndpoints(t, first.Client); !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Errorf("one server: endpoints %v, want [10.0.0.1]", got)
	}
	lease, err := first.Etcd.Get(ctx, "/registry/masterleases/10.0.0.1")
	if err != nil || len(lease.Kvs) != 1 || lease.Kvs[0].Lease == 0 {
		t.Fatalf("the server's key under /registry/masterleases/: %v %v, want one, with an etcd lease", lease, err)
	}

	// a server that died a moment ago: its key is there, and nobody renews it
	dead, err := first.Etcd.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Etcd.Put(ctx, "/registry/masterleases/10.0.0.3", "", clientv3.WithLease(dead.ID)); err != nil {
		t.Fatal(err)
	}
	second, stopSecond := first.StartPeer(t, advertising("10.0.0.2"))
	if got := kubernetesEndpoints(t, second.Client); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}) {
		t.Errorf("a second server started: endpoints %v, want all three leases", got)
	}
	waitKubernetesEndpoints(t, first.Client, "10.0.0.1", "10.0.0.2")

	stopSecond()
	if got := kubernetesEndpoints(t, first.Client); !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Errorf("the second server stopped: endpoints %v, want [10.0.0.1] at once", got)
	}
	svc, err := first.Client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || svc.Spec.Ports[0].Port != 443 || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("the kubernetes service: %+v %v", svc, err)
	}
}
