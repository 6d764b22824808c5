package apiserver_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func testService(name string, typ corev1.ServiceType) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Type: typ, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
}

func TestServicesGetClusterIPsAndNodePortsNeverTwice(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	svcs := s.Client.CoreV1().Services("default")

	k, err := svcs.Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || k.Spec.ClusterIP != "10.96.0.1" || k.Spec.Ports[0].Port != 443 {
		t.Fatalf("the kubernetes service: %+v %v", k, err)
	}
	eps, err := s.Client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
	if err != nil || len(eps.Items) != 1 || len(eps.Items[0].Endpoints) != 1 {
		t.Fatalf("the kubernetes service's endpoint slice: %v %v", eps, err)
	}

	cidr := netip.MustParsePrefix("10.96.0.0/12")
	web, err := svcs.Create(ctx, testService("web", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := netip.ParseAddr(web.Spec.ClusterIP)
	if err != nil || !cidr.Contains(ip) || web.Spec.Type != corev1.ServiceTypeClusterIP ||
		len(web.Spec.ClusterIPs) != 1 || web.Spec.SessionAffinity != corev1.ServiceAffinityNone || web.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Fatalf("allocated service: %+v", web.Spec)
	}
	taken := testService("taken", "")
	taken.Spec.ClusterIP = web.Spec.ClusterIP
	_, err = svcs.Create(ctx, taken, metav1.CreateOptions{})
	want := `Service "taken" is invalid: spec.clusterIPs: Invalid value: ["` + web.Spec.ClusterIP + `"]: failed to allocate IP ` + web.Spec.ClusterIP + `: provided IP is already allocated`
	if !apierrors.IsInvalid(err) || err.Error() != want {
		t.Errorf("taken cluster IP:\n got %v\nwant %s", err, want)
	}

	np, err := svcs.Create(ctx, testService("np", corev1.ServiceTypeNodePort), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	port := np.Spec.Ports[0].NodePort
	if port < 30000 || port > 32767 || np.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster {
		t.Fatalf("node port %d, policy %q", port, np.Spec.ExternalTrafficPolicy)
	}
	clash := testService("clash", corev1.ServiceTypeNodePort)
	clash.Spec.Ports[0].NodePort = port
	_, err = svcs.Create(ctx, clash, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.ports[0].nodePort: Invalid value: ") || !strings.Contains(err.Error(), "provided port is already allocated") {
		t.Errorf("taken node port: %v", err)
	}
	// an update that leaves the allocated values out keeps them (kubectl replace)
	np.Spec.ClusterIP, np.Spec.ClusterIPs, np.Spec.Ports[0].NodePort = "", nil, 0
	np.Labels = map[string]string{"x": "y"}
	up, err := svcs.Update(ctx, np, metav1.UpdateOptions{})
	if err != nil || up.Spec.Ports[0].NodePort != port || up.Spec.ClusterIP == "" {
		t.Fatalf("update without allocated values: %+v %v", up, err)
	}
	// deleting frees both: another service may take them
	if err := svcs.Delete(ctx, "np", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := svcs.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	clash.Spec.ClusterIP = web.Spec.ClusterIP
	if _, err := svcs.Create(ctx, clash, metav1.CreateOptions{}); err != nil {
		t.Errorf("reusing a freed IP and node port: %v", err)
	}

	headless := testService("headless", "")
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	if h, err := svcs.Create(ctx, headless, metav1.CreateOptions{}); err != nil || h.Spec.ClusterIP != "None" {
		t.Errorf("headless: %v %v", h, err)
	}
	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}}
	if e, err := svcs.Create(ctx, ext, metav1.CreateOptions{}); err != nil || e.Spec.ClusterIP != "" {
		t.Errorf("external name: %v %v", e, err)
	}
	bad := testService("Bad", "")
	bad.Spec.Ports = nil
	_, err = svcs.Create(ctx, bad, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.ports: Required value") || !strings.Contains(err.Error(), "a DNS-1035 label must consist of lower case alphanumeric characters") {
		t.Errorf("invalid service: %v", err)
	}
}

// A thousand Services created at once, 32 at a time, as the services issue asks: no cluster IP
// or node port is handed out twice, and deleting them frees every one (nothing is left in etcd
// but the kubernetes Service's address).
func TestConcurrentServiceCreatesNeverShareAnIPOrNodePort(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 Services are skipped with -short")
	}
	s := apiservertest.Start(t)
	ctx := context.Background()
	svcs := s.Client.CoreV1().Services("default")
	const n, workers = 1000, 32

	var mu sync.Mutex
	ips, ports := map[string]string{}, map[int32]string{}
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				name := fmt.Sprintf("svc-%04d", i)
				svc, err := svcs.Create(ctx, testService(name, corev1.ServiceTypeNodePort), metav1.CreateOptions{})
				if err != nil {
					t.Errorf("create %s: %v", name, err)
					continue
				}
				mu.Lock()
				if other, dup := ips[svc.Spec.ClusterIP]; dup {
					t.Errorf("%s and %s share cluster IP %s", other, name, svc.Spec.ClusterIP)
				}
				ips[svc.Spec.ClusterIP] = name
				port := svc.Spec.Ports[0].NodePort
				if other, dup := ports[port]; dup {
					t.Errorf("%s and %s share node port %d", other, name, port)
				}
				ports[port] = name
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(ips) != n || len(ports) != n {
		t.Fatalf("%d cluster IPs and %d node ports for %d Services", len(ips), len(ports), n)
	}

	next = make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := svcs.Delete(ctx, fmt.Sprintf("svc-%04d", i), metav1.DeleteOptions{}); err != nil {
					t.Errorf("delete: %v", err)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()

	for prefix, want := range map[string]int{"/registry/ipaddresses/": 1, "/registry/servicenodeports/": 0} {
		resp, err := s.Etcd.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != int64(want) {
			t.Errorf("%d keys under %s after the deletes, want %d (the kubernetes Service's)", resp.Count, prefix, want)
		}
	}
}

// Changing a Service's type needs only the new type, as upstream: what the old type had
// allocated (cluster IPs, node ports) and left unchanged is dropped, and goes back to its pool.
func TestServiceTypeChangesDropWhatTheNewTypeHasNoUseFor(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	svcs := s.Client.CoreV1().Services("default")
	np, err := svcs.Create(ctx, testService("np", corev1.ServiceTypeNodePort), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip, port := np.Spec.ClusterIP, np.Spec.Ports[0].NodePort

	// NodePort -> ClusterIP: the node port goes, the cluster IP stays
	np.Spec.Type = corev1.ServiceTypeClusterIP
	cip, err := svcs.Update(ctx, np, metav1.UpdateOptions{})
	if err != nil || cip.Spec.Ports[0].NodePort != 0 || cip.Spec.ClusterIP != ip || cip.Spec.ExternalTrafficPolicy != "" {
		t.Fatalf("NodePort to ClusterIP: %+v %v", cip, err)
	}
	other := testService("other", corev1.ServiceTypeNodePort)
	other.Spec.Ports[0].NodePort = port
	if _, err := svcs.Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Errorf("the dropped node port %d is not free again: %v", port, err)
	}

	// ClusterIP -> ExternalName: the cluster IPs and families go, and the address is free
	cip.Spec.Type, cip.Spec.ExternalName, cip.Spec.Selector = corev1.ServiceTypeExternalName, "example.com", nil
	ext, err := svcs.Update(ctx, cip, metav1.UpdateOptions{})
	if err != nil || ext.Spec.ClusterIP != "" || ext.Spec.ClusterIPs != nil || ext.Spec.IPFamilies != nil || ext.Spec.IPFamilyPolicy != nil {
		t.Fatalf("ClusterIP to ExternalName: %+v %v", ext, err)
	}
	reuse := testService("reuse", "")
	reuse.Spec.ClusterIP = ip
	if _, err := svcs.Create(ctx, reuse, metav1.CreateOptions{}); err != nil {
		t.Errorf("the dropped cluster IP %s is not free again: %v", ip, err)
	}

	// a cluster IP the user set on purpose is validation's to refuse, as upstream
	ext.Spec.Type = corev1.ServiceTypeClusterIP
	back, err := svcs.Update(ctx, ext, metav1.UpdateOptions{})
	if err != nil || back.Spec.ClusterIP == "" {
		t.Fatalf("ExternalName back to ClusterIP: %+v %v", back, err)
	}
	back.Spec.Type, back.Spec.ClusterIP, back.Spec.ClusterIPs = corev1.ServiceTypeExternalName, "10.96.0.77", []string{"10.96.0.77"}
	_, err = svcs.Update(ctx, back, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "may not be set for ExternalName services") {
		t.Errorf("a changed cluster IP on ExternalName: %v", err)
	}
}
