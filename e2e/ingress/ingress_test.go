// Package ingress_test proves the built-in ingress controller with real pods: a real API
// server, a real kubelet on a containerd of the test's own running busybox httpd pods, the
// EndpointSlice controller, and the ingress controller on the node's ports 80 and 443, as
// `skiff up` wires them; requests come from outside the pods, to the node's address, and are
// routed by host and path, over HTTP and over TLS with a Secret's certificate that the
// client verifies.
//
// The test process runs itself again in a network namespace of its own (TestMain), so that
// ports 80 and 443, the pods' bridge and the kubelet's port are private to it.
package ingress_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/endpointslice"
	"github.com/skiff-dev/skiff/e2e/netnstest"
	"github.com/skiff-dev/skiff/ingress"
	"github.com/skiff-dev/skiff/kubelet"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

// The node, inside the test's network namespace:
//
//	node0 (empty bridge, 172.30.0.1: the node's address, where the ingress controller listens)
//	skiff0 (the pods' bridge, made by CNI, 10.244.7.1/24) ── veth ── each pod (10.244.7.x)
const (
	nodeName = "node-e2e"
	nodeIP   = "172.30.0.1"
	podCIDR  = "10.244.7.0/24"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Main(m, nil)) }

func requireNode(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("real containers are skipped with -short")
	}
	if why := netnstest.Why(); why != "" {
		t.Skip(why)
	}
	if m := kubelettest.Missing(); m != "" {
		t.Skipf("real containers cannot run here: %s", m)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the test needs ip on PATH (apt-get install iproute2)")
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// cluster is one node's worth of skiff: what an Ingress needs to work.
type cluster struct {
	client kubernetes.Interface
	node   *kubelettest.Node
}

// startCluster starts, in this network namespace, an API server, containerd and a kubelet,
// the EndpointSlice controller and the ingress controller on nodeIP:80 and :443. All stop
// when the test ends.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	// the kernel here has no dummy links: an empty bridge holds the node's address
	run(t, "ip", "link", "add", "node0", "type", "bridge")
	run(t, "ip", "addr", "add", nodeIP+"/24", "dev", "node0")
	run(t, "ip", "link", "set", "node0", "up")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "node0").Run() })

	ctrd, err := kubelettest.StartContainerd(context.Background())
	if err != nil {
		t.Fatalf("containerd: %v", err)
	}
	t.Cleanup(func() {
		if err := ctrd.Stop(); err != nil {
			t.Errorf("stopping containerd: %v", err)
		}
	})
	srv := apiservertest.Start(t)
	client := srv.Client
	ctx, cancel := context.WithCancel(context.Background())
	var stopped []chan struct{}
	var shutdowns []func()
	t.Cleanup(func() {
		cancel()
		for _, c := range stopped {
			<-c
		}
		for _, s := range shutdowns {
			s()
		}
	})
	goStopped := func(f func()) {
		done := make(chan struct{})
		stopped = append(stopped, done)
		go func() {
			defer close(done)
			f()
		}()
	}

	// the controller manager's part: EndpointSlices for Services with selectors
	cm := informers.NewSharedInformerFactory(client, 0)
	esc, err := endpointslice.New(cm.Core().V1().Pods(), cm.Core().V1().Services(), cm.Core().V1().Nodes(),
		cm.Discovery().V1().EndpointSlices(), cm.Core().V1().Endpoints(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Start(ctx.Done())
	shutdowns = append(shutdowns, cm.Shutdown)
	goStopped(func() { esc.Run(ctx, 2) })

	// the ingress controller, on the node's ports 80 and 443
	f := ingress.NewFactories(client, nodeName)
	ic, err := ingress.NewFromFactories(client, f, ingress.Config{NodeName: nodeName})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := net.Listen("tcp", nodeIP+":80")
	if err != nil {
		t.Fatal(err)
	}
	secure, err := net.Listen("tcp", nodeIP+":443")
	if err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	shutdowns = append(shutdowns, f.Shutdown)
	goStopped(func() { ic.Run(ctx) })
	goStopped(func() {
		if err := ic.Serve(ctx, plain, secure); err != nil {
			t.Errorf("ingress: %v", err)
		}
	})

	node := kubelettest.StartNode(t, client, ctrd, nodeName, func(c *kubelet.Config) {
		c.PodCIDR = podCIDR
		c.NodeIPs = []net.IP{net.ParseIP(nodeIP)}
	})
	return &cluster{client: client, node: node}
}

// webPod serves, with busybox httpd on port 8080 ("http"), a page naming itself at / and at
// /api/; it is ready once serving.
func webPod(name, app string) *corev1.Pod {
	pod := kubelettest.BusyboxPod(name, fmt.Sprintf("mkdir -p /www/api && echo %[1]s > /www/index.html && echo %[1]s > /www/api/index.html && exec httpd -f -p 8080 -h /www", name))
	pod.Labels = map[string]string{"app": app}
	c := &pod.Spec.Containers[0]
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}},
		PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 5,
	}
	return pod
}

func (c *cluster) createService(t *testing.T, name, app string) {
	t.Helper()
	if _, err := c.client.CoreV1().Services("default").Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service %s: %v", name, err)
	}
}

func backend(service string) networkingv1.IngressBackend {
	return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Name: "http"}}}
}

func prefix(path, service string) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: path, PathType: ptr.To(networkingv1.PathTypePrefix), Backend: backend(service)}
}

func rule(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
	return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}
}

// fetch asks base+path with the Host header host n times, and counts the answers (the pages
// name their pods); a failed request is counted as "error: ...".
func fetch(client *http.Client, base, host, path string, n int) map[string]int {
	answers := map[string]int{}
	for range n {
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			answers["error: "+err.Error()]++
			continue
		}
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			answers["error: "+err.Error()]++
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer := strings.TrimSpace(string(b))
		if resp.StatusCode != http.StatusOK {
			answer = fmt.Sprintf("%d %s", resp.StatusCode, answer)
		}
		answers[answer]++
	}
	return answers
}

// only says whether every answer came from pods, and each of them answered.
func only(answers map[string]int, pods ...string) bool {
	if len(answers) != len(pods) {
		return false
	}
	for _, p := range pods {
		if answers[p] == 0 {
			return false
		}
	}
	return true
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		ok, detail := cond()
		last = detail
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v; last: %s", what, err, last)
	}
}

func TestIngressRoutesByHostAndPathToPodsOverHTTPAndTLS(t *testing.T) {
	requireNode(t)
	c := startCluster(t)
	ctx := context.Background()

	var pods []*corev1.Pod
	for _, p := range []struct{ name, app string }{{"web-0", "web"}, {"web-1", "web"}, {"api-0", "api"}} {
		pods = append(pods, c.node.CreatePod(webPod(p.name, p.app)))
	}
	c.createService(t, "web", "web")
	c.createService(t, "api", "api")

	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("secure.example.com", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "secure-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// the controller makes its class before the Ingress names it
	eventually(t, "the skiff IngressClass", func() (bool, string) {
		_, err := c.client.NetworkingV1().IngressClasses().Get(ctx, ingress.ClassName, metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	if _, err := c.client.NetworkingV1().Ingresses("default").Create(ctx, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "site"},
		Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To(ingress.ClassName),
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"secure.example.com"}, SecretName: "secure-tls"}},
			Rules: []networkingv1.IngressRule{
				rule("web.example.com", prefix("/", "web")),
				rule("api.example.com", prefix("/", "api")),
				rule("site.example.com", prefix("/", "web"), prefix("/api", "api")),
				rule("secure.example.com", prefix("/", "web"), prefix("/api", "api")),
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		c.node.WaitPod(p, "ready", kubelettest.PodReady)
	}

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	base := "http://" + nodeIP
	// by host: both web pods answer web.example.com, round-robin; api-0 api.example.com
	eventually(t, "both web pods answering web.example.com", func() (bool, string) {
		answers := fetch(hc, base, "web.example.com", "/", 10)
		return only(answers, "web-0", "web-1") && answers["web-0"] == 5, fmt.Sprint(answers)
	})
	if answers := fetch(hc, base, "api.example.com", "/", 6); !only(answers, "api-0") {
		t.Errorf("api.example.com: want api-0 only, got %v", answers)
	}
	// by path on one host: /api/ goes to api, the rest to web
	if answers := fetch(hc, base, "site.example.com", "/api/", 6); !only(answers, "api-0") {
		t.Errorf("site.example.com/api/: want api-0 only, got %v", answers)
	}
	if answers := fetch(hc, base, "site.example.com", "/", 10); !only(answers, "web-0", "web-1") {
		t.Errorf("site.example.com/: want web-0 and web-1, got %v", answers)
	}
	// a host no rule names: 404, there being no default backend
	if answers := fetch(hc, base, "nowhere.example.com", "/", 1); answers["404 404 page not found"] != 1 {
		t.Errorf("nowhere.example.com: want 404, got %v", answers)
	}

	// TLS: the Secret's certificate, verified by the client, and the same routes behind it
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	tc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "secure.example.com"}}}
	eventually(t, "secure.example.com/api/ answering over verified TLS", func() (bool, string) {
		answers := fetch(tc, "https://"+nodeIP, "secure.example.com", "/api/", 3)
		return only(answers, "api-0"), fmt.Sprint(answers)
	})
	if answers := fetch(tc, "https://"+nodeIP, "secure.example.com", "/", 10); !only(answers, "web-0", "web-1") {
		t.Errorf("https secure.example.com/: want web-0 and web-1, got %v", answers)
	}

	// the Ingress's status has the node's address
	eventually(t, "the node's address in the Ingress's status", func() (bool, string) {
		ing, err := c.client.NetworkingV1().Ingresses("default").Get(ctx, "site", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		lb := ing.Status.LoadBalancer.Ingress
		return len(lb) == 1 && lb[0].IP == nodeIP, fmt.Sprintf("%+v", lb)
	})

	// a pod that goes away leaves the rotation
	if err := c.client.CoreV1().Pods("default").Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "only web-0 answering web.example.com", func() (bool, string) {
		answers := fetch(hc, base, "web.example.com", "/", 10)
		return only(answers, "web-0"), fmt.Sprint(answers)
	})
}
