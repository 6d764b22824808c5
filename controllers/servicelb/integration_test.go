package servicelb

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
)

func startController(t *testing.T) kubernetes.Interface {
	t.Helper()
	srv := apiservertest.Start(t)
	factory := informers.NewSharedInformerFactory(srv.Client, 0)
	c, err := New(factory.Core().V1().Services(), factory.Core().V1().Nodes(), factory.Discovery().V1().EndpointSlices(),
		srv.Client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() { defer close(done); c.Run(ctx, 1) }()
	t.Cleanup(func() {
		cancel()
		<-done
		factory.Shutdown()
	})
	return srv.Client
}

// readyNode registers a Ready node with the given addresses, as a kubelet would.
func readyNode(t *testing.T, client kubernetes.Interface, name string, nodeLabels map[string]string, addrs ...corev1.NodeAddress) {
	t.Helper()
	ctx := context.Background()
	n, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: nodeLabels}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = addrs
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func internalIP(ip string) corev1.NodeAddress {
	return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip}
}

func loadBalancer(t *testing.T, client kubernetes.Interface, name string, mutate func(*corev1.Service)) {
	t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
		Ports: []corev1.ServicePort{{Port: 80}},
	}}
	if mutate != nil {
		mutate(svc)
	}
	if _, err := client.CoreV1().Services("default").Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func ingressIPs(t *testing.T, client kubernetes.Interface, name string) []string {
	t.Helper()
	svc, err := client.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range svc.Status.LoadBalancer.Ingress {
		out = append(out, i.IP)
	}
	return out
}

func waitForIngress(t *testing.T, client kubernetes.Interface, name string, want ...string) {
	t.Helper()
	var got []string
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		got = ingressIPs(t, client, name)
		return slices.Equal(got, want), nil
	}); err != nil {
		t.Fatalf("%s: ingress %v, want %v", name, got, want)
	}
}

func TestALoadBalancerServiceIsAnsweredOnTheReadyNodesAddresses(t *testing.T) {
	client := startController(t)
	readyNode(t, client, "node-a", nil, internalIP("192.0.2.11"))
	readyNode(t, client, "node-b", nil, internalIP("192.0.2.12"), corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.12"})
	readyNode(t, client, "node-c", map[string]string{ExcludeLabel: ""}, internalIP("192.0.2.13"))
	loadBalancer(t, client, "web", nil)
	// the external address where a node has one; the excluded node not at all
	waitForIngress(t, client, "web", "192.0.2.11", "203.0.113.12")
	// what the server stored is what the controller writes: no sync rewrites it again
	stored, err := client.CoreV1().Services("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []corev1.LoadBalancerIngress{{IP: "192.0.2.11", IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)},
		{IP: "203.0.113.12", IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)}}
	if !apiequality.Semantic.DeepEqual(stored.Status.LoadBalancer.Ingress, want) {
		t.Errorf("stored ingress %+v, want %+v", stored.Status.LoadBalancer.Ingress, want)
	}

	// a node that stops being Ready leaves
	ctx := context.Background()
	n, err := client.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions[0].Status = corev1.ConditionFalse
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForIngress(t, client, "web", "203.0.113.12")

	// a Service that stops being a LoadBalancer loses its ingress
	svc, err := client.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Type = corev1.ServiceTypeClusterIP
	if _, err := client.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForIngress(t, client, "web")
}

func TestLocalTrafficPolicyListsOnlyNodesWithReadyEndpoints(t *testing.T) {
	client := startController(t)
	readyNode(t, client, "node-a", nil, internalIP("192.0.2.11"))
	readyNode(t, client, "node-b", nil, internalIP("192.0.2.12"))
	loadBalancer(t, client, "local", func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	// no endpoint anywhere yet: every node answers rather than none
	waitForIngress(t, client, "local", "192.0.2.11", "192.0.2.12")
	_, err := client.DiscoveryV1().EndpointSlices("default").Create(context.Background(), &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "local-1", Labels: map[string]string{discoveryv1.LabelServiceName: "local"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.1.5"}, NodeName: ptr.To("node-b"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.244.0.5"}, NodeName: ptr.To("node-a"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitForIngress(t, client, "local", "192.0.2.12")
}

func TestAServiceOfAnotherLoadBalancerClassIsLeftAlone(t *testing.T) {
	client := startController(t)
	readyNode(t, client, "node-a", nil, internalIP("192.0.2.11"))
	loadBalancer(t, client, "theirs", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("example.com/lb") })
	loadBalancer(t, client, "ours", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To(LoadBalancerClass) })
	// ours is answered after theirs was created: by then theirs has been looked at
	waitForIngress(t, client, "ours", "192.0.2.11")
	if got := ingressIPs(t, client, "theirs"); len(got) != 0 {
		t.Errorf("another class's Service got ingress %v", got)
	}
}
