package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/servicelb"
	"github.com/skiff-dev/skiff/e2e/netnstest"
)

// Traffic from outside the node to a LoadBalancer's node address (its ingress written by the
// servicelb controller, as in `skiff up`), to external IPs, and under the Local traffic
// policies, through the same namespaces as netns_test.go. pod1's endpoints claim to run on
// another node, so that Local policies must leave it out.

const externalIP = "198.51.100.10"

// startServiceLB runs the servicelb controller until the test ends.
func startServiceLB(t *testing.T, client kubernetes.Interface) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := servicelb.New(factory.Core().V1().Services(), factory.Core().V1().Nodes(), factory.Discovery().V1().EndpointSlices(),
		client, controllers.Reporting{})
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
}

// httpGet asks for /healthz at addr from a namespace. It speaks HTTP on a connection it dials
// itself: http.Transport dials on goroutines of its own, outside the namespace.
func httpGet(netns, addr string) (code int, body string, err error) {
	err = netnstest.InNetns(netns, func() error {
		c, err := net.DialTimeout("tcp", addr, dialTimout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(dialTimout))
		if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		code, body = resp.StatusCode, string(b)
		return err
	})
	return code, body, err
}

// splitEndpoints is a slice with pod0 on this node and pod1 on another.
func splitEndpoints(svc string) *discoveryv1.EndpointSlice {
	s := endpointSlice(svc, podIP(0), podIP(1))
	s.Endpoints[1].NodeName = ptr.To("node-2")
	return s
}

func TestLoadBalancerExternalIPsAndLocalPoliciesInNetworkNamespaces(t *testing.T) {
	requireNetworkPrivileges(t)
	n := newTestNode(t, 2)
	srv := apiservertest.Start(t)
	client := srv.Client
	ctx := context.Background()

	// this node, as its kubelet registers it
	node, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nodeIP}}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	createService(t, client, "lb", corev1.ServiceTypeLoadBalancer)
	lbLocal := createService(t, client, "lb-local", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
		s.Spec.Ports[0].Port = 81
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	ext := createService(t, client, "ext", corev1.ServiceTypeClusterIP, func(s *corev1.Service) {
		s.Spec.ExternalIPs = []string{externalIP}
	})
	internalLocal := createService(t, client, "internal-local", corev1.ServiceTypeClusterIP, func(s *corev1.Service) {
		s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
	})
	sticky := createService(t, client, "sticky", corev1.ServiceTypeClusterIP, func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](7)}}
	})
	for _, s := range []*discoveryv1.EndpointSlice{
		endpointSlice("lb", podIP(0), podIP(1)), splitEndpoints("lb-local"), endpointSlice("ext", podIP(0), podIP(1)),
		splitEndpoints("internal-local"), endpointSlice("sticky", podIP(0), podIP(1)),
	} {
		if _, err := client.DiscoveryV1().EndpointSlices("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	startServiceLB(t, client)
	startProxy(t, client, n)

	answersFrom := func(from, addr string, want ...string) func() (bool, string) {
		return func() (bool, string) {
			answers, err := ask(from, addr, 40)
			ok := err == nil && len(answers) == len(want)
			for _, w := range want {
				ok = ok && answers[w] > 0
			}
			return ok, fmt.Sprintf("answers %v, err %v", answers, err)
		}
	}

	// the LoadBalancer answers on the node's address, on the Service's own port
	eventually(t, "the load balancer's ingress to be the node's address", func() (bool, string) {
		svc, err := client.CoreV1().Services("default").Get(ctx, "lb", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(svc.Status.LoadBalancer.Ingress) == 1 && svc.Status.LoadBalancer.Ingress[0].IP == nodeIP,
			fmt.Sprintf("ingress %+v", svc.Status.LoadBalancer.Ingress)
	})
	eventually(t, "both pods answering the load balancer on the node's address", answersFrom(n.client, net.JoinHostPort(nodeIP, "80"), "pod0", "pod1"))

	// externalTrafficPolicy: Local sends outside traffic only to this node's endpoint, on the
	// load balancer's address and on the node port alike
	eventually(t, "only the local pod answering the Local load balancer", answersFrom(n.client, net.JoinHostPort(nodeIP, "81"), "pod0"))
	eventually(t, "only the local pod answering the Local node port",
		answersFrom(n.client, net.JoinHostPort(nodeIP, fmt.Sprint(lbLocal.Spec.Ports[0].NodePort)), "pod0"))
	// its health check node port says this node has one ready endpoint of it
	hcAddr := net.JoinHostPort(nodeIP, fmt.Sprint(lbLocal.Spec.HealthCheckNodePort))
	if lbLocal.Spec.HealthCheckNodePort == 0 {
		t.Fatal("a Local LoadBalancer got no health check node port")
	}
	eventually(t, "the health check answering 200 with one local endpoint", func() (bool, string) {
		code, body, err := httpGet(n.client, hcAddr)
		return err == nil && code == 200 && strings.Contains(body, `"localEndpoints": 1`) && strings.Contains(body, `"name": "lb-local"`),
			fmt.Sprintf("%d %s %v", code, body, err)
	})
	// ... and 503 once the only local endpoint is not ready
	s, err := client.DiscoveryV1().EndpointSlices("default").Get(ctx, "lb-local-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Endpoints[0].Conditions.Ready = ptr.To(false)
	if s, err = client.DiscoveryV1().EndpointSlices("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the health check answering 503 with no local endpoint", func() (bool, string) {
		code, body, err := httpGet(n.client, hcAddr)
		return err == nil && code == 503 && strings.Contains(body, `"localEndpoints": 0`), fmt.Sprintf("%d %s %v", code, body, err)
	})

	// ... while its cluster IP still reaches every ready endpoint
	s.Endpoints[0].Conditions.Ready = ptr.To(true)
	if _, err := client.DiscoveryV1().EndpointSlices("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both pods answering the Local load balancer's cluster IP", answersFrom(n.client, net.JoinHostPort(lbLocal.Spec.ClusterIP, "81"), "pod0", "pod1"))

	// an external IP routed to the node reaches the endpoints, as does the cluster IP
	eventually(t, "both pods answering the external IP", answersFrom(n.client, net.JoinHostPort(externalIP, "80"), "pod0", "pod1"))
	eventually(t, "both pods answering the external IP's cluster IP", answersFrom(n.client, net.JoinHostPort(ext.Spec.ClusterIP, "80"), "pod0", "pod1"))

	// internalTrafficPolicy: Local keeps cluster-IP traffic on this node
	eventually(t, "only the local pod answering the internal-Local cluster IP", answersFrom(n.pods[1], net.JoinHostPort(internalLocal.Spec.ClusterIP, "80"), "pod0"))

	// ClientIP affinity with a timeout: one client sticks to one pod, and the kernel forgets it
	// after the Service's timeout, not the default three hours
	eventually(t, "the sticky service answering", func() (bool, string) {
		answers, err := ask(n.client, net.JoinHostPort(sticky.Spec.ClusterIP, "80"), 1)
		return err == nil, fmt.Sprintf("answers %v, err %v", answers, err)
	})
	if answers, err := ask(n.client, net.JoinHostPort(sticky.Spec.ClusterIP, "80"), 30); err != nil || len(answers) != 1 {
		t.Errorf("session affinity: want every answer from one pod, got %v (err %v)", answers, err)
	}
	out, err := exec.Command("ip", "netns", "exec", n.node, "nft", "list", "table", "ip", "skiff").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "timeout 7s") || !strings.Contains(string(out), clientIP+" expires") {
		t.Errorf("want an affinity set with a 7s timeout holding the client %s:\n%s", clientIP, out)
	}
}
