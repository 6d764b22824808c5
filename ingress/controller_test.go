package ingress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// The controller against a real API server, with backends that are HTTP servers on loopback
// addresses standing in for pods: each answers "NAME HOST PATH X-Forwarded-For".

const testNodeIP = "192.0.2.10"

// backend serves as one endpoint on ip, answering with its name; stopped when the test ends.
func backend(t *testing.T, name, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s %s", name, r.Host, r.URL.Path, r.Header.Get("X-Forwarded-For"))
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	return l.Addr().(*net.TCPAddr).Port
}

func mustCreate[T any](t *testing.T, create func(context.Context, T, metav1.CreateOptions) (T, error), obj T) T {
	t.Helper()
	out, err := create(context.Background(), obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func service(name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: corev1.ServiceSpec{
		Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
}

// slice is an EndpointSlice of svc's "http" port with ready endpoints at ips, on port.
func slice(name, svc string, port int, ready bool, ips ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, ip := range ips {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}})
	}
	return s
}

func serviceBackend(name string) *networkingv1.IngressBackend {
	return &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}}
}

func rule(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
	return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}
}

func prefixPath(p string, b *networkingv1.IngressBackend) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: p, PathType: ptr.To(networkingv1.PathTypePrefix), Backend: *b}
}

// running is a controller serving HTTP and HTTPS on loopback ports.
type running struct {
	c                 *Controller
	httpURL, httpsURL string
}

// startController runs the controller and its listeners until the test ends, as the user
// skiff runs it as, with only what the default policy grants that user.
func startController(t *testing.T, srv *apiservertest.Server) *running {
	t.Helper()
	cfg := rest.CopyConfig(srv.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: apiserver.IngressControllerUser}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFactories(client, "node-1")
	c, err := NewFromFactories(client, f, Config{NodeName: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secure, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Start(ctx.Done())
	ran, served := make(chan struct{}), make(chan error, 1)
	go func() { defer close(ran); c.Run(ctx) }()
	go func() { served <- c.Serve(ctx, plain, secure) }()
	t.Cleanup(func() {
		cancel()
		<-ran
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		f.Shutdown()
	})
	return &running{c: c, httpURL: "http://" + plain.Addr().String(), httpsURL: "https://" + secure.Addr().String()}
}

// get asks base+path with the Host header host, through client (plain HTTP when nil).
func get(client *http.Client, base, host, path string) (int, string, error) {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		ok, detail := cond()
		last = detail
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v; last: %s", what, err, last)
	}
}

// answers asks n times and counts the answers' first words (the backends' names) by code.
func answers(client *http.Client, base, host, path string, n int) map[string]int {
	out := map[string]int{}
	for range n {
		code, body, err := get(client, base, host, path)
		if err != nil {
			out["error: "+err.Error()]++
			continue
		}
		first, _, _ := strings.Cut(body, " ")
		out[strconv.Itoa(code)+" "+first]++
	}
	return out
}

func TestIngressRoutesByHostAndPathToReadyEndpointsAndWritesStatus(t *testing.T) {
	srv := apiservertest.Start(t)
	client := srv.Client
	ctx := context.Background()

	node := mustCreate(t, client.CoreV1().Nodes().Create, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}})
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: testNodeIP}}
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// web has two endpoints (in two slices, on two ports), api one, empty none
	web0, web1, api0 := backend(t, "web-0", "127.0.0.1"), backend(t, "web-1", "127.0.0.2"), backend(t, "api-0", "127.0.0.1")
	for _, name := range []string{"web", "api", "empty"} {
		mustCreate(t, client.CoreV1().Services("default").Create, service(name))
	}
	slices := client.DiscoveryV1().EndpointSlices("default")
	mustCreate(t, slices.Create, slice("web-a", "web", web0, true, "127.0.0.1"))
	mustCreate(t, slices.Create, slice("web-b", "web", web1, true, "127.0.0.2"))
	mustCreate(t, slices.Create, slice("api-a", "api", api0, true, "127.0.0.1"))

	r := startController(t, srv)

	// the controller makes its class, the default one in a cluster that has none
	var class *networkingv1.IngressClass
	eventually(t, "the skiff IngressClass", func() (bool, string) {
		var err error
		class, err = client.NetworkingV1().IngressClasses().Get(ctx, ClassName, metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	if class.Spec.Controller != ControllerName || class.Annotations[DefaultClassAnnotation] != "true" {
		t.Errorf("the class: want controller %s marked default, got %q %v", ControllerName, class.Spec.Controller, class.Annotations)
	}

	// an Ingress naming no class gets the default one, and is served
	ing := mustCreate(t, client.NetworkingV1().Ingresses("default").Create, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "site", Namespace: "default"},
		Spec: networkingv1.IngressSpec{
			DefaultBackend: serviceBackend("api"),
			Rules: []networkingv1.IngressRule{
				rule("www.example.com", prefixPath("/", serviceBackend("web")), prefixPath("/api", serviceBackend("api"))),
				rule("*.apps.example.com", prefixPath("/", serviceBackend("empty"))),
			},
		},
	})
	if ptr.Deref(ing.Spec.IngressClassName, "") != ClassName {
		t.Fatalf("the Ingress got class %v, want %s", ing.Spec.IngressClassName, ClassName)
	}
	// one of another class is not
	mustCreate(t, client.NetworkingV1().Ingresses("default").Create, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: "default"},
		Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx"),
			Rules: []networkingv1.IngressRule{rule("theirs.example.com", prefixPath("/", serviceBackend("web")))}},
	})

	eventually(t, "both web endpoints answering www.example.com/", func() (bool, string) {
		got := answers(nil, r.httpURL, "www.example.com", "/", 20)
		return len(got) == 2 && got["200 web-0"] == 10 && got["200 web-1"] == 10, fmt.Sprint(got)
	})
	code, body, err := get(nil, r.httpURL, "www.example.com:80", "/api/v1/things")
	if err != nil || code != 200 || !strings.HasPrefix(body, "api-0 www.example.com:80 /api/v1/things 127.0.0.1") {
		t.Errorf("www.example.com/api/v1/things: want api-0 to see the client's Host, path and address, got %d %q %v", code, body, err)
	}
	if code, body, _ := get(nil, r.httpURL, "www.example.com", "/apiary"); !strings.HasPrefix(body, "web-") {
		t.Errorf("/apiary is not under /api: want web, got %d %q", code, body)
	}
	if code, body, _ := get(nil, r.httpURL, "x.apps.example.com", "/"); code != 503 || !strings.Contains(body, "default/empty:80: no ready endpoints") {
		t.Errorf("a backend without endpoints: want 503 saying so, got %d %q", code, body)
	}
	if code, body, _ := get(nil, r.httpURL, "nothing.example.com", "/x"); code != 200 || !strings.HasPrefix(body, "api-0") {
		t.Errorf("an unmatched host: want the default backend api, got %d %q", code, body)
	}
	if code, body, _ := get(nil, r.httpURL, "theirs.example.com", "/"); !strings.HasPrefix(body, "api-0") {
		t.Errorf("another class's host: want the default backend, not its rules, got %d %q", code, body)
	}

	// status: the node's address on ours, nothing on theirs
	eventually(t, "the node's address in the Ingress's status", func() (bool, string) {
		got, err := client.NetworkingV1().Ingresses("default").Get(ctx, "site", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		lb := got.Status.LoadBalancer.Ingress
		return len(lb) == 1 && lb[0].IP == testNodeIP, fmt.Sprintf("%+v", lb)
	})
	if theirs, _ := client.NetworkingV1().Ingresses("default").Get(ctx, "theirs", metav1.GetOptions{}); len(theirs.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("another class's Ingress got a status: %+v", theirs.Status.LoadBalancer.Ingress)
	}

	// an endpoint turning unready leaves the rotation
	s, err := slices.Get(ctx, "web-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Endpoints[0].Conditions.Ready = ptr.To(false)
	if _, err := slices.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "only web-0 answering", func() (bool, string) {
		got := answers(nil, r.httpURL, "www.example.com", "/", 10)
		return len(got) == 1 && got["200 web-0"] == 10, fmt.Sprint(got)
	})

	// an endpoint that refuses connections (a pod just gone) costs no request while another answers
	refusing, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := refusing.Addr().(*net.TCPAddr).Port
	refusing.Close()
	mustCreate(t, slices.Create, slice("api-gone", "api", closedPort, true, "127.0.0.3"))
	eventually(t, "the api backend listing the gone endpoint", func() (bool, string) {
		u := r.c.current.Load().upstreams[Backend{Namespace: "default", Service: "api", Port: networkingv1.ServiceBackendPort{Number: 80}}]
		return len(u.addrs) == 2, u.String()
	})
	if got := answers(nil, r.httpURL, "www.example.com", "/api", 10); len(got) != 1 || got["200 api-0"] != 10 {
		t.Errorf("with one endpoint refusing, want every request answered by api-0, got %v", got)
	}

	// the requests are counted
	if n := requestsCounted(t, r.c, "site", "api", "200"); n < 1 {
		t.Errorf("skiff_ingress_requests_total for site/api 200: want at least 1, got %v", n)
	}
	if !r.c.Healthy() {
		t.Error("a synced controller says it is not healthy")
	}
}

func TestIngressServesTLSFromTheSecretNamedForTheHost(t *testing.T) {
	srv := apiservertest.Start(t)
	client := srv.Client
	port := backend(t, "secure-0", "127.0.0.1")
	mustCreate(t, client.CoreV1().Services("default").Create, service("secure"))
	mustCreate(t, client.DiscoveryV1().EndpointSlices("default").Create, slice("secure-a", "secure", port, true, "127.0.0.1"))
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("secure.example.com", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, client.CoreV1().Secrets("default").Create, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "secure-tls", Namespace: "default"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	})
	mustCreate(t, client.NetworkingV1().Ingresses("default").Create, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "secure", Namespace: "default"},
		Spec: networkingv1.IngressSpec{
			TLS:   []networkingv1.IngressTLS{{Hosts: []string{"secure.example.com"}, SecretName: "secure-tls"}},
			Rules: []networkingv1.IngressRule{rule("secure.example.com", prefixPath("/", serviceBackend("secure")))},
		},
	})
	r := startController(t, srv)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	verifying := func(serverName string) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serverName}, DisableKeepAlives: true}}
	}
	eventually(t, "secure.example.com answering over TLS with its Secret's certificate", func() (bool, string) {
		code, body, err := get(verifying("secure.example.com"), r.httpsURL, "secure.example.com", "/x")
		return err == nil && code == 200 && strings.HasPrefix(body, "secure-0 secure.example.com /x"), fmt.Sprintf("%d %q %v", code, body, err)
	})
	// HTTPS speaks HTTP/2 to clients that offer it
	resp, err := verifying("secure.example.com").Get(r.httpsURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("want HTTP/2 over TLS, got %s", resp.Proto)
	}
	// the same route answers plain HTTP too, as Traefik's does without a redirect
	if code, body, err := get(nil, r.httpURL, "secure.example.com", "/x"); err != nil || code != 200 || !strings.HasPrefix(body, "secure-0") {
		t.Errorf("plain HTTP: %d %q %v", code, body, err)
	}
	// a name no Secret covers gets the self-signed certificate, which the client refuses
	_, _, err = get(verifying("other.example.com"), r.httpsURL, "other.example.com", "/")
	var wrongHost x509.HostnameError
	if err == nil || !errors.As(err, &wrongHost) {
		t.Fatalf("other.example.com: want the self-signed certificate refused, got %v", err)
	}
	if cn := wrongHost.Certificate.Subject.CommonName; cn != "skiff ingress default certificate" {
		t.Errorf("other.example.com got the certificate of %q", cn)
	}
}

// requestsCounted is skiff_ingress_requests_total of one Ingress in default, Service and code.
func requestsCounted(t *testing.T, c *Controller, ingress, service, code string) float64 {
	t.Helper()
	families, err := c.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"namespace": "default", "ingress": ingress, "service": service, "code": code}
	for _, f := range families {
		if f.GetName() != "skiff_ingress_requests_total" {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestIngressClassIsNotMadeDefaultBesideAnotherAndTheClassAnnotationIsHonoured(t *testing.T) {
	srv := apiservertest.Start(t)
	client := srv.Client
	ctx := context.Background()
	mustCreate(t, client.NetworkingV1().IngressClasses().Create, &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: "other", Annotations: map[string]string{DefaultClassAnnotation: "true"}},
		Spec:       networkingv1.IngressClassSpec{Controller: "example.com/other"},
	})
	port := backend(t, "web-0", "127.0.0.1")
	mustCreate(t, client.CoreV1().Services("default").Create, service("web"))
	mustCreate(t, client.DiscoveryV1().EndpointSlices("default").Create, slice("web-a", "web", port, true, "127.0.0.1"))
	// one naming the class by the deprecated annotation, one left to the default (other)
	for name, annotations := range map[string]map[string]string{"annotated": {ClassAnnotation: ClassName}, "defaulted": nil} {
		mustCreate(t, client.NetworkingV1().Ingresses("default").Create, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: annotations},
			Spec:       networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{rule(name+".example.com", prefixPath("/", serviceBackend("web")))}},
		})
	}
	r := startController(t, srv)

	eventually(t, "annotated.example.com answering", func() (bool, string) {
		code, body, err := get(nil, r.httpURL, "annotated.example.com", "/")
		return err == nil && code == 200 && strings.HasPrefix(body, "web-0"), fmt.Sprintf("%d %q %v", code, body, err)
	})
	class, err := client.NetworkingV1().IngressClasses().Get(ctx, ClassName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, marked := class.Annotations[DefaultClassAnnotation]; marked {
		t.Errorf("the class was marked default beside another default class: %v", class.Annotations)
	}
	if code, _, err := get(nil, r.httpURL, "defaulted.example.com", "/"); err != nil || code != 404 {
		t.Errorf("an Ingress of the other default class: want 404 here, got %d %v", code, err)
	}
}
