package apiserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregatorclient "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// servingCertificate is a self-signed serving certificate (its own CA) for the DNS name an
// APIService's Service is reached under, and its PEM, the APIService's caBundle.
func servingCertificate(t *testing.T, dnsName string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		DNSNames: []string{dnsName}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return pair, certPEM
}

// whoAmI is what the fake extension server answers with: who the front proxy said the user
// is, and whether the client's own credentials reached it.
type whoAmI struct {
	Proxy         string              `json:"proxy"`
	User          string              `json:"user"`
	Groups        []string            `json:"groups"`
	Extra         map[string][]string `json:"extra"`
	Authorization string              `json:"authorization"`
	Path          string              `json:"path"`
}

// wardleDiscovery is the discovery document of the sample API server's v1alpha1.
var wardleDiscovery = metav1.APIResourceList{
	TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
	GroupVersion: "wardle.example.com/v1alpha1",
	APIResources: []metav1.APIResource{
		{Name: "flunders", SingularName: "flunder", Namespaced: true, Kind: "Flunder", Verbs: []string{"create", "get", "list", "watch"}},
		{Name: "flunders/status", Namespaced: true, Kind: "Flunder", Verbs: []string{"get", "update"}},
	},
}

// fakeExtensionServer serves the discovery documents given (wardle's when none) over TLS as
// api.wardle.svc, requiring a client certificate of the front-proxy CA, and answers every
// other path with whoAmI. It returns its port, its caBundle and a function that stops it.
func fakeExtensionServer(t *testing.T, s *apiservertest.Server, documents ...metav1.APIResourceList) (int32, []byte, func()) {
	t.Helper()
	if len(documents) == 0 {
		documents = []metav1.APIResourceList{wardleDiscovery}
	}
	cert, caBundle := servingCertificate(t, "api.wardle.svc")
	frontProxyCAs := x509.NewCertPool()
	frontProxyCAs.AppendCertsFromPEM(s.PKI.FrontProxy.CAPEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for _, doc := range documents {
			if r.URL.Path == "/apis/"+doc.GroupVersion {
				json.NewEncoder(w).Encode(doc)
				return
			}
		}
		extra := map[string][]string{}
		for k, v := range r.Header {
			if strings.HasPrefix(k, "X-Remote-Extra-") {
				extra[strings.TrimPrefix(k, "X-Remote-Extra-")] = v
			}
		}
		json.NewEncoder(w).Encode(whoAmI{
			Proxy: r.TLS.PeerCertificates[0].Subject.CommonName, User: r.Header.Get("X-Remote-User"),
			Groups: r.Header.Values("X-Remote-Group"), Extra: extra, Authorization: r.Header.Get("Authorization"), Path: r.URL.Path,
		})
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: frontProxyCAs}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	var p int32
	fmt.Sscan(port, &p)
	return p, caBundle, srv.Close
}

// registerWardle makes the namespace wardle, the Service api there with an EndpointSlice
// pointing at 127.0.0.1:port, and the APIService v1alpha1.wardle.example.com for it.
func registerWardle(t *testing.T, cs kubernetes.Interface, agg aggregatorclient.Interface, port int32, caBundle []byte) {
	t.Helper()
	wardleService(t, cs, port)
	if _, err := agg.ApiregistrationV1().APIServices().Create(context.Background(), &apiregistrationv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: "v1alpha1.wardle.example.com"},
		Spec: apiregistrationv1.APIServiceSpec{
			Group: "wardle.example.com", Version: "v1alpha1", GroupPriorityMinimum: 1000, VersionPriority: 15,
			Service: &apiregistrationv1.ServiceReference{Namespace: "wardle", Name: "api"}, CABundle: caBundle,
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// wardleService makes the namespace wardle and the Service api there with an EndpointSlice
// pointing at 127.0.0.1:port.
func wardleService(t *testing.T, cs kubernetes.Interface, port int32) {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "wardle"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services("wardle").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(port)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("wardle").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "api-1", Labels: map[string]string{discoveryv1.LabelServiceName: "api"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port)}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitAvailable waits until the APIService's Available condition has status and returns it.
func waitAvailable(t *testing.T, agg aggregatorclient.Interface, name string, status apiregistrationv1.ConditionStatus) apiregistrationv1.APIServiceCondition {
	t.Helper()
	var got apiregistrationv1.APIServiceCondition
	eventually(t, "APIService "+name+" Available="+string(status), func() error {
		svc, err := agg.ApiregistrationV1().APIServices().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range svc.Status.Conditions {
			if c.Type == apiregistrationv1.Available {
				got = c
				if c.Status == status {
					return nil
				}
			}
		}
		return fmt.Errorf("conditions %+v", svc.Status.Conditions)
	})
	return got
}

// getStatus GETs path as the admin, asking for JSON, and returns the code and the Status
// answered.
func getStatus(t *testing.T, s *apiservertest.Server, path string) (int, metav1.Status) {
	t.Helper()
	rt, err := rest.TransportFor(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var status metav1.Status
	json.NewDecoder(resp.Body).Decode(&status)
	return resp.StatusCode, status
}

func TestEveryServedGroupVersionHasALocalAPIService(t *testing.T) {
	s := apiservertest.Start(t)
	agg := aggregatorclient.NewForConfigOrDie(s.Config)
	ctx := context.Background()
	for _, name := range []string{"v1.", "v1.apps", "v2.autoscaling", "v1.apiregistration.k8s.io", "v1beta1.metrics.k8s.io"} {
		eventually(t, "local APIService "+name, func() error {
			svc, err := agg.ApiregistrationV1().APIServices().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if svc.Spec.Service != nil {
				return fmt.Errorf("%s names a service", name)
			}
			c := svc.Status.Conditions
			if len(c) != 1 || c[0].Status != apiregistrationv1.ConditionTrue || c[0].Reason != "Local" || c[0].Message != "Local APIServices are always available" {
				return fmt.Errorf("%s conditions %+v", name, c)
			}
			return nil
		})
	}
	apps, _ := agg.ApiregistrationV1().APIServices().Get(ctx, "v1.apps", metav1.GetOptions{})
	if apps.Spec.GroupPriorityMinimum != 17800 || apps.Spec.VersionPriority != 15 || apps.Labels["kube-aggregator.kubernetes.io/automanaged"] != "onstart" {
		t.Errorf("v1.apps spec %+v labels %v, want upstream's priorities 17800/15 and automanaged=onstart", apps.Spec, apps.Labels)
	}

	// a CustomResourceDefinition's versions get theirs, and lose them with it
	crd := establish(t, s, cronTabCRD())
	eventually(t, "APIService of the CRD", func() error {
		svc, err := agg.ApiregistrationV1().APIServices().Get(ctx, "v1.stable.example.com", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if svc.Spec.GroupPriorityMinimum != 1000 || svc.Spec.VersionPriority != 100 || svc.Labels["kube-aggregator.kubernetes.io/automanaged"] != "true" {
			return fmt.Errorf("spec %+v labels %v", svc.Spec, svc.Labels)
		}
		return nil
	})
	ext := apiextensionsclient.NewForConfigOrDie(s.Config)
	if err := ext.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, crd.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "APIService of the deleted CRD gone", func() error {
		_, err := agg.ApiregistrationV1().APIServices().Get(ctx, "v1.stable.example.com", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})

	// a deleted local APIService of a served group version comes back
	if err := agg.ApiregistrationV1().APIServices().Delete(ctx, "v1.batch", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "v1.batch made again", func() error {
		_, err := agg.ApiregistrationV1().APIServices().Get(ctx, "v1.batch", metav1.GetOptions{})
		return err
	})
}

func TestStockKubectlListsAPIServicesAsUpstream(t *testing.T) {
	s := apiservertest.Start(t)
	kubeconfig := adminKubeconfig(t, s)
	run := kubectlRunner(t, kubectlOnPath(t), kubeconfig, nil)
	var out string
	eventually(t, "kubectl get apiservices", func() error {
		out = run("get", "apiservices")
		if !strings.Contains(out, "v1.apps") {
			return fmt.Errorf("no v1.apps in\n%s", out)
		}
		return nil
	})
	lines := strings.Split(out, "\n")
	if fields := strings.Fields(lines[0]); !slices.Equal(fields, []string{"NAME", "SERVICE", "AVAILABLE", "AGE"}) {
		t.Errorf("header %q", lines[0])
	}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 4 && f[0] == "v1.apps" && (f[1] != "Local" || f[2] != "True") {
			t.Errorf("v1.apps row %q, want Local True", l)
		}
	}
}

func TestExtensionAPIServerAuthenticationConfigMap(t *testing.T) {
	s := apiservertest.Start(t)
	var cm *corev1.ConfigMap
	eventually(t, "extension-apiserver-authentication", func() error {
		var err error
		cm, err = s.Client.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "extension-apiserver-authentication", metav1.GetOptions{})
		return err
	})
	want := map[string]string{
		"client-ca-file":                     string(s.PKI.CAPEM),
		"requestheader-client-ca-file":       string(s.PKI.FrontProxy.CAPEM),
		"requestheader-allowed-names":        `["front-proxy-client"]`,
		"requestheader-username-headers":     `["X-Remote-User"]`,
		"requestheader-uid-headers":          `["X-Remote-Uid"]`,
		"requestheader-group-headers":        `["X-Remote-Group"]`,
		"requestheader-extra-headers-prefix": `["X-Remote-Extra-"]`,
	}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Errorf("%s = %q, want %q", k, cm.Data[k], v)
		}
	}
}

func TestAPIServiceProxiesAsTheFrontProxyAndMergesDiscovery(t *testing.T) {
	s := apiservertest.Start(t)
	agg := aggregatorclient.NewForConfigOrDie(s.Config)
	port, caBundle, stop := fakeExtensionServer(t, s)
	registerWardle(t, s.Client, agg, port, caBundle)
	if c := waitAvailable(t, agg, "v1alpha1.wardle.example.com", apiregistrationv1.ConditionTrue); c.Reason != "Passed" || c.Message != "all checks passed" {
		t.Errorf("Available condition %+v", c)
	}
	ctx := context.Background()

	// the request reaches the extension server as the front proxy, naming the user; the
	// client's credentials do not
	var who whoAmI
	eventually(t, "proxied request", func() error {
		body, err := s.Client.CoreV1().RESTClient().Get().AbsPath("/apis/wardle.example.com/v1alpha1/namespaces/default/flunders").DoRaw(ctx)
		if err != nil {
			return err
		}
		return json.Unmarshal(body, &who)
	})
	if who.Proxy != "front-proxy-client" || who.User != "admin" || !slices.Contains(who.Groups, "system:masters") ||
		!slices.Contains(who.Groups, "system:authenticated") || who.Authorization != "" ||
		who.Path != "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders" {
		t.Errorf("extension server saw %+v", who)
	}

	// discovery lists the extension's resources, legacy and aggregated
	groups, resources, err := s.Client.Discovery().ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(groups, func(g *metav1.APIGroup) bool { return g.Name == "wardle.example.com" }) {
		t.Error("aggregated discovery lacks wardle.example.com")
	}
	found := false
	for _, list := range resources {
		if list.GroupVersion == "wardle.example.com/v1alpha1" {
			for _, r := range list.APIResources {
				found = found || r.Name == "flunders" && r.Kind == "Flunder" && r.Namespaced
			}
		}
	}
	if !found {
		t.Error("aggregated discovery lacks flunders")
	}
	legacy, err := s.Client.CoreV1().RESTClient().Get().AbsPath("/apis").DoRaw(ctx)
	if err != nil || !strings.Contains(string(legacy), `"wardle.example.com/v1alpha1"`) {
		t.Errorf("legacy /apis lacks wardle.example.com/v1alpha1: %v\n%s", err, legacy)
	}

	// the extension server goes away: requests fail with 503, the APIService is no longer
	// Available, and discovery stops listing it
	stop()
	_, err = s.Client.CoreV1().RESTClient().Get().AbsPath("/apis/wardle.example.com/v1alpha1/namespaces/default/flunders").DoRaw(ctx)
	if !apierrors.IsServiceUnavailable(err) {
		t.Errorf("request to a stopped extension server: %v, want 503", err)
	}
	c := waitAvailable(t, agg, "v1alpha1.wardle.example.com", apiregistrationv1.ConditionFalse)
	wantPrefix := fmt.Sprintf("failing or missing response from https://127.0.0.1:%d/apis/wardle.example.com/v1alpha1: ", port)
	if c.Reason != "FailedDiscoveryCheck" || !strings.HasPrefix(c.Message, wantPrefix) {
		t.Errorf("Available condition %+v, want FailedDiscoveryCheck with a message starting %q", c, wantPrefix)
	}
	if code, status := getStatus(t, s, "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders"); code != http.StatusServiceUnavailable ||
		status.Message != "service unavailable" || status.Reason != metav1.StatusReasonServiceUnavailable {
		t.Errorf("request to an unavailable APIService: %d %+v, want 503 service unavailable", code, status)
	}
	eventually(t, "discovery without wardle", func() error {
		groups, err := s.Client.Discovery().ServerGroups()
		if err != nil {
			return err
		}
		for _, g := range groups.Groups {
			if g.Name == "wardle.example.com" {
				return fmt.Errorf("still listed")
			}
		}
		return nil
	})

	// without ready endpoints it is MissingEndpoints, without the Service ServiceNotFound
	if err := s.Client.DiscoveryV1().EndpointSlices("wardle").Delete(ctx, "api-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := waitAvailable(t, agg, "v1alpha1.wardle.example.com", apiregistrationv1.ConditionFalse); c.Reason == "FailedDiscoveryCheck" {
		eventually(t, "EndpointsNotFound", func() error {
			svc, err := agg.ApiregistrationV1().APIServices().Get(ctx, "v1alpha1.wardle.example.com", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if c := svc.Status.Conditions[0]; c.Reason != "EndpointsNotFound" || c.Message != `cannot find endpointslices for service/api in "wardle"` {
				return fmt.Errorf("condition %+v", c)
			}
			return nil
		})
	}
	if err := s.Client.CoreV1().Services("wardle").Delete(ctx, "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ServiceNotFound", func() error {
		svc, err := agg.ApiregistrationV1().APIServices().Get(ctx, "v1alpha1.wardle.example.com", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c := svc.Status.Conditions[0]; c.Reason != "ServiceNotFound" || c.Message != `service/api in "wardle" is not present` {
			return fmt.Errorf("condition %+v", c)
		}
		return nil
	})
}

func TestAPIServiceBadInputIsRefusedInUpstreamWords(t *testing.T) {
	s := apiservertest.Start(t)
	agg := aggregatorclient.NewForConfigOrDie(s.Config)
	ctx := context.Background()
	ref := &apiregistrationv1.ServiceReference{Namespace: "wardle", Name: "api"}
	for _, tc := range []struct {
		name string
		svc  apiregistrationv1.APIService
		want string
	}{
		{"name is not version.group", apiregistrationv1.APIService{
			ObjectMeta: metav1.ObjectMeta{Name: "v1.wrong.example.com"},
			Spec:       apiregistrationv1.APIServiceSpec{Group: "wardle.example.com", Version: "v1", GroupPriorityMinimum: 1, VersionPriority: 1, Service: ref}},
			`APIService.apiregistration.k8s.io "v1.wrong.example.com" is invalid: metadata.name: Invalid value: "v1.wrong.example.com": must be ` + "`spec.version+\".\"+spec.group`" + `: "v1.wardle.example.com"`},
		{"priorities out of range", apiregistrationv1.APIService{
			ObjectMeta: metav1.ObjectMeta{Name: "v1.wardle.example.com"},
			Spec:       apiregistrationv1.APIServiceSpec{Group: "wardle.example.com", Version: "v1", GroupPriorityMinimum: 20001, VersionPriority: 0, Service: ref}},
			`APIService.apiregistration.k8s.io "v1.wardle.example.com" is invalid: [spec.groupPriorityMinimum: Invalid value: 20001: must be positive and less than 20000, spec.versionPriority: Invalid value: 0: must be positive and less than 1000]`},
		{"caBundle with insecureSkipTLSVerify", apiregistrationv1.APIService{
			ObjectMeta: metav1.ObjectMeta{Name: "v1.wardle.example.com"},
			Spec: apiregistrationv1.APIServiceSpec{Group: "wardle.example.com", Version: "v1", GroupPriorityMinimum: 1, VersionPriority: 1, Service: ref,
				InsecureSkipTLSVerify: true, CABundle: []byte("x")}},
			`APIService.apiregistration.k8s.io "v1.wardle.example.com" is invalid: spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present`},
		{"local with a caBundle", apiregistrationv1.APIService{
			ObjectMeta: metav1.ObjectMeta{Name: "v1.wardle.example.com"},
			Spec:       apiregistrationv1.APIServiceSpec{Group: "wardle.example.com", Version: "v1", GroupPriorityMinimum: 1, VersionPriority: 1, CABundle: []byte("xyz")}},
			`APIService.apiregistration.k8s.io "v1.wardle.example.com" is invalid: spec.caBundle: Invalid value: "3 bytes": local APIServices may not have a caBundle`},
		{"service without a name", apiregistrationv1.APIService{
			ObjectMeta: metav1.ObjectMeta{Name: "v1.wardle.example.com"},
			Spec: apiregistrationv1.APIServiceSpec{Group: "wardle.example.com", Version: "v1", GroupPriorityMinimum: 1, VersionPriority: 1,
				Service: &apiregistrationv1.ServiceReference{Namespace: "wardle", Port: ptr.To[int32](70000)}}},
			`APIService.apiregistration.k8s.io "v1.wardle.example.com" is invalid: [spec.service.name: Required value, spec.service.port: Invalid value: 70000: port is not valid: must be between 1 and 65535, inclusive]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := agg.ApiregistrationV1().APIServices().Create(ctx, &tc.svc, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) || err.Error() != tc.want {
				t.Fatalf("create: %v\nwant 422: %s", err, tc.want)
			}
			if _, err := agg.ApiregistrationV1().APIServices().Get(ctx, tc.svc.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("refused APIService stored: %v", err)
			}
		})
	}
}

func TestWatchingOneObjectByNameNeedsOnlyItsResourceName(t *testing.T) {
	s := apiservertest.Start(t)
	alice, _ := userClient(t, s, "alice")
	grant(t, s.Client, "kube-system", "auth-reader", "alice", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"},
		ResourceNames: []string{"extension-apiserver-authentication"}, Verbs: []string{"get", "list", "watch"}})
	ctx := context.Background()
	eventually(t, "list by metadata.name", func() error {
		_, err := alice.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=extension-apiserver-authentication"})
		return err
	})
	w, err := alice.CoreV1().ConfigMaps("kube-system").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=extension-apiserver-authentication"})
	if err != nil {
		t.Fatalf("watch by metadata.name: %v", err)
	}
	w.Stop()
	if _, err := alice.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list of every ConfigMap: %v, want 403", err)
	}
	if _, err := alice.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=other"}); !apierrors.IsForbidden(err) {
		t.Errorf("list of another ConfigMap by name: %v, want 403", err)
	}
}

func TestARegisteredMetricsAPIServiceTakesOverFromSkiffsOwnAndGivesItBack(t *testing.T) {
	s := apiservertest.Start(t)
	agg := aggregatorclient.NewForConfigOrDie(s.Config)
	ctx := context.Background()
	metricsServer := metav1.APIResourceList{
		TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "metrics.k8s.io/v1beta1",
		APIResources: []metav1.APIResource{
			{Name: "nodes", Kind: "NodeMetrics", Verbs: []string{"get", "list"}},
			{Name: "pods", Kind: "PodMetrics", Namespaced: true, Verbs: []string{"get", "list"}},
			{Name: "extras", Kind: "ExtraMetrics", Verbs: []string{"get"}}, // only the extension has it
		},
	}
	port, caBundle, _ := fakeExtensionServer(t, s, metricsServer)
	wardleService(t, s.Client, port)

	// metrics-server's manifest applies its APIService over skiff's local one
	eventually(t, "register v1beta1.metrics.k8s.io", func() error {
		svc, err := agg.ApiregistrationV1().APIServices().Get(ctx, "v1beta1.metrics.k8s.io", metav1.GetOptions{})
		if err != nil {
			return err
		}
		svc.Spec.Service = &apiregistrationv1.ServiceReference{Namespace: "wardle", Name: "api", Port: ptr.To[int32](443)}
		svc.Spec.CABundle = caBundle
		_, err = agg.ApiregistrationV1().APIServices().Update(ctx, svc, metav1.UpdateOptions{})
		return err
	})
	eventually(t, "v1beta1.metrics.k8s.io checked", func() error {
		if c := waitAvailable(t, agg, "v1beta1.metrics.k8s.io", apiregistrationv1.ConditionTrue); c.Reason != "Passed" {
			return fmt.Errorf("Available condition %+v", c)
		}
		return nil
	})
	var who whoAmI
	eventually(t, "metrics request reaches the extension server", func() error {
		body, err := s.Client.CoreV1().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").DoRaw(ctx)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(body, &who); err != nil || who.User != "admin" {
			return fmt.Errorf("answered %s", body)
		}
		return nil
	})
	eventually(t, "discovery of the extension's metrics API", func() error {
		_, lists, err := s.Client.Discovery().ServerGroupsAndResources()
		if err != nil {
			return err
		}
		for _, l := range lists {
			if l.GroupVersion == "metrics.k8s.io/v1beta1" && slices.ContainsFunc(l.APIResources, func(r metav1.APIResource) bool { return r.Name == "extras" }) {
				return nil
			}
		}
		return fmt.Errorf("metrics.k8s.io/v1beta1 without the extension's resources")
	})

	// deleting it gives the group version back to skiff's own metrics API
	if err := agg.ApiregistrationV1().APIServices().Delete(ctx, "v1beta1.metrics.k8s.io", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "local v1beta1.metrics.k8s.io again", func() error {
		if c := waitAvailable(t, agg, "v1beta1.metrics.k8s.io", apiregistrationv1.ConditionTrue); c.Reason != "Local" {
			return fmt.Errorf("Available condition %+v", c)
		}
		return nil
	})
	eventually(t, "skiff serves the metrics API again", func() error {
		body, err := s.Client.CoreV1().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").DoRaw(ctx)
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), `"kind":"NodeMetricsList"`) {
			return fmt.Errorf("answered %s", body)
		}
		return nil
	})
	svc, err := agg.ApiregistrationV1().APIServices().Get(ctx, "v1beta1.metrics.k8s.io", metav1.GetOptions{})
	if err != nil || svc.Spec.Service != nil {
		t.Errorf("v1beta1.metrics.k8s.io after the delete: %v %+v", err, svc.Spec)
	}
}
