package apiserver_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// hostAddress is an address of this machine that upstream lets the API server proxy to (a
// global unicast one: it refuses loopback), or the test is skipped.
func hostAddress(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no global unicast address to stand in for a pod")
	return ""
}

// fakePodServer stands in for a pod's server on ip: it answers with what it was asked, and
// whether the client's credentials reached it.
func fakePodServer(t *testing.T, ip string, tls bool) int {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skip(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/page" { // a page with a link to its own server, as agnhost's porter serves
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Access-Control-Allow-Origin", "*")
			fmt.Fprint(w, `<a href="/rewriteme">test</a>`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s tls=%v auth=%q body=%q", r.Method, r.URL.RequestURI(), r.TLS != nil, r.Header.Get("Authorization"), body)
	}))
	srv.Listener.Close()
	srv.Listener = l
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return l.Addr().(*net.TCPAddr).Port
}

// podAt creates a pod with a container port and gives it ip, as its kubelet would.
func podAt(t *testing.T, s *apiservertest.Server, name, ip string, port int) {
	t.Helper()
	ctx := context.Background()
	pod := testPod(name)
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: int32(port)}}
	pod, err := s.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	if _, err := s.Client.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestPodAndServiceProxyReachTheBackend(t *testing.T) {
	ip := hostAddress(t)
	s := apiservertest.Start(t)
	ctx := context.Background()
	plain := fakePodServer(t, ip, false)
	secure := fakePodServer(t, ip, true)
	podAt(t, s, "web", ip, plain)

	kubectl := kubectlRunner(t, kubectlOnPath(t), adminKubeconfig(t, s), nil)
	kubectlFails := kubectlCommand(t, kubectlOnPath(t), adminKubeconfig(t, s), nil)
	want := func(got, prefix string) {
		t.Helper()
		if !strings.HasPrefix(got, prefix) || !strings.Contains(got, `auth=""`) {
			t.Fatalf("backend saw %q, want %q and no credentials", got, prefix)
		}
	}
	p := strconv.Itoa(plain)
	rest := s.Client.CoreV1().RESTClient()
	want(kubectl("get", "--raw", "/api/v1/namespaces/default/pods/web:"+p+"/proxy/hello/world?x=1"), "GET /hello/world?x=1 tls=false")
	// without a port, the first container port; a trailing slash is kept
	want(kubectl("get", "--raw", "/api/v1/namespaces/default/pods/web/proxy/dir/"), "GET /dir/ tls=false")
	// the backend's root is .../proxy/: without the slash, a redirect there
	want(kubectl("get", "--raw", "/api/v1/namespaces/default/pods/web/proxy"), "GET / tls=false")
	want(kubectl("get", "--raw", "/api/v1/namespaces/default/pods/https:web:"+strconv.Itoa(secure)+"/proxy/s"), "GET /s tls=true")
	// links of the backend's HTML lead back through the proxy, and its CORS headers are dropped
	for _, prefix := range []string{"/api/v1/namespaces/default/pods/web:" + p + "/proxy", "/api/v1/namespaces/default/pods/https:web:" + strconv.Itoa(secure) + "/proxy"} {
		resp := rest.Get().AbsPath(prefix + "/page").Do(ctx)
		page, err := resp.Raw()
		if want := `<a href="` + prefix + `/rewriteme">test</a>`; err != nil || string(page) != want {
			t.Errorf("proxied page: %q %v, want %q", page, err, want)
		}
	}

	// every method passes through, with its body
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		out, err := rest.Verb(method).AbsPath("/api/v1/namespaces/default/pods/web:" + p + "/proxy/m").Body([]byte("payload")).DoRaw(ctx)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		want(string(out), method+" /m tls=false")
		if !strings.Contains(string(out), `body="payload"`) {
			t.Fatalf("%s: body lost: %s", method, out)
		}
	}

	// a Service reaches a ready endpoint of its EndpointSlices, by port number or name
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"},
		Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt(plain)}},
	}}
	if _, err := s.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	failsWith(t, kubectlFails, "/api/v1/namespaces/default/services/web:80/proxy/", "ServiceUnavailable", `no endpoints available for service "web:80"`)
	ready := true
	name, port := "http", int32(plain)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web"}}},
		Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}
	if _, err := s.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want(kubectl("get", "--raw", "/api/v1/namespaces/default/services/web:80/proxy/api?q=2"), "GET /api?q=2 tls=false")
	want(kubectl("get", "--raw", "/api/v1/namespaces/default/services/http:web:http/proxy/api"), "GET /api tls=false")
	out, err := rest.Post().AbsPath("/api/v1/namespaces/default/services/web:http/proxy/form").Body([]byte("f")).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want(string(out), "POST /form")

	// upstream's answers when there is nothing to reach
	for _, c := range []struct {
		path, reason, msg string
	}{
		{"/api/v1/namespaces/default/pods/nope:80/proxy/", "NotFound", `pods "nope" not found`},
		{"/api/v1/namespaces/default/services/nope/proxy/", "NotFound", `services "nope" not found`},
		{"/api/v1/namespaces/default/services/web:81/proxy/", "ServiceUnavailable", `no service port 81 found for service "web"`},
		{"/api/v1/namespaces/default/services/web:other/proxy/", "ServiceUnavailable", `no endpoints available for service "web:other"`},
		{"/api/v1/namespaces/default/pods/a:b:c:d/proxy/", "BadRequest", `invalid pod request "a:b:c:d"`},
		{"/api/v1/namespaces/default/pods/web:1/proxy/", "ServiceUnavailable", "error trying to reach service: dial tcp"},
	} {
		failsWith(t, kubectlFails, c.path, c.reason, c.msg)
	}
}

func TestProxyRefusesEndpointsThatAreNotTheirPods(t *testing.T) {
	ip := hostAddress(t)
	s := apiservertest.Start(t)
	ctx := context.Background()
	plain := fakePodServer(t, ip, false)
	// a pod claiming loopback is refused, as upstream
	podAt(t, s, "local", "127.0.0.1", plain)
	kubectlFails := kubectlCommand(t, kubectlOnPath(t), adminKubeconfig(t, s), nil)
	failsWith(t, kubectlFails, "/api/v1/namespaces/default/pods/local/proxy/", "BadRequest", "address not allowed")
	// an endpoint whose pod does not have its address is never used
	podAt(t, s, "elsewhere", "192.0.2.200", plain)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "forged"}, Spec: corev1.ServiceSpec{
		Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := s.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	port := int32(plain)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "forged", Labels: map[string]string{discoveryv1.LabelServiceName: "forged"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{ip}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "elsewhere"}},
			{Addresses: []string{ip}},
		},
		Ports: []discoveryv1.EndpointPort{{Port: &port}},
	}
	if _, err := s.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	failsWith(t, kubectlFails, "/api/v1/namespaces/default/services/forged/proxy/", "ServiceUnavailable", `no endpoints available for service "forged"`)
}

// failsWith checks that kubectl get --raw of path fails with upstream's reason and message.
func failsWith(t *testing.T, kubectl func(...string) (string, error), path, reason, msg string) {
	t.Helper()
	out, err := kubectl("get", "--raw", path)
	if err == nil || !strings.Contains(out, "Error from server ("+reason+"): "+msg) {
		t.Errorf("%s: %s (%v), want %s %q", path, out, err, reason, msg)
	}
}
