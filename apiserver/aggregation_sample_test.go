package apiserver_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregatorclient "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// sampleAPIServer is upstream's k8s.io/sample-apiserver, built by `make sample-apiserver`
// (tools/sample-apiserver; .ci/run does) into bin/sample-apiserver, or the test is skipped.
func sampleAPIServer(t *testing.T) string {
	bin, err := filepath.Abs(filepath.Join("..", "bin", "sample-apiserver"))
	if err == nil {
		if _, err = os.Stat(bin); err == nil {
			return bin
		}
	}
	t.Skip("no bin/sample-apiserver: run `make sample-apiserver`")
	return ""
}

// startSampleAPIServer runs the sample API server on 127.0.0.1 as upstream's example deploys
// it: as an identity of its own with only the rights upstream's manifests give it
// (system:auth-delegator, extension-apiserver-authentication-reader, reading namespaces),
// delegating authentication and authorization to skiff (TokenReview, SubjectAccessReview,
// the extension-apiserver-authentication ConfigMap), storing flunders in skiff's etcd under
// its own prefix, serving a certificate for api.wardle.svc. It returns its port and caBundle;
// the process is stopped when the test ends.
func startSampleAPIServer(t *testing.T, s *apiservertest.Server) (int32, []byte) {
	t.Helper()
	bin := sampleAPIServer(t)
	dir := t.TempDir()
	const user = "system:wardle-server"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := s.PKI.WriteUserKubeconfig(kubeconfig, s.URL, user); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	subject := []rbacv1.Subject{{Kind: "User", Name: user}}
	if _, err := s.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "wardle:system:auth-delegator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"}, Subjects: subject,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.RbacV1().RoleBindings("kube-system").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "wardle-auth-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "extension-apiserver-authentication-reader"}, Subjects: subject,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "aggregated-apiserver-clusterrole"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "watch", "list"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "wardle-apiserver-clusterrolebinding"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "aggregated-apiserver-clusterrole"}, Subjects: subject,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cert, caBundle := servingCertificate(t, "api.wardle.svc")
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, caBundle, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	logFile, err := os.Create(filepath.Join(dir, "sample-apiserver.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		"--tls-cert-file="+certFile, "--tls-private-key-file="+keyFile, "--cert-dir="+dir,
		"--etcd-servers="+strings.Join(s.EtcdEndpoints, ","),
		"--etcd-cafile="+s.EtcdCAFile, "--etcd-certfile="+s.EtcdCertFile, "--etcd-keyfile="+s.EtcdKeyFile,
		"--kubeconfig="+kubeconfig, "--authentication-kubeconfig="+kubeconfig, "--authorization-kubeconfig="+kubeconfig,
		// the extension server's own admission and flow control are not what this test is about
		"--disable-admission-plugins=MutatingAdmissionPolicy,MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook",
		"--enable-priority-and-fairness=false",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			if log, err := os.ReadFile(logFile.Name()); err == nil {
				if len(log) > 8000 {
					log = log[len(log)-8000:]
				}
				t.Logf("sample-apiserver log (tail):\n%s", log)
			}
		}
	})
	return int32(port), caBundle
}

func TestSampleAPIServerServesFlundersThroughSkiffToStockKubectl(t *testing.T) {
	sampleAPIServer(t)
	s := apiservertest.Start(t)
	kubeconfig := adminKubeconfig(t, s)
	agg := aggregatorclient.NewForConfigOrDie(s.Config)
	port, caBundle := startSampleAPIServer(t, s)
	registerWardle(t, s.Client, agg, port, caBundle)

	// its discovery answers once it has read the authentication ConfigMap and started
	deadline := time.Now().Add(2 * time.Minute)
	for {
		svc, err := agg.ApiregistrationV1().APIServices().Get(context.Background(), "v1alpha1.wardle.example.com", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(svc.Status.Conditions) > 0 && svc.Status.Conditions[0].Status == apiregistrationv1.ConditionTrue {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("v1alpha1.wardle.example.com not Available: %+v", svc.Status.Conditions)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// a watch passes through the proxy as a stream
	flunders := schema.GroupVersionResource{Group: "wardle.example.com", Version: "v1alpha1", Resource: "flunders"}
	var watcher watch.Interface
	eventually(t, "watch flunders", func() error {
		var err error
		watcher, err = dynamic.NewForConfigOrDie(s.Config).Resource(flunders).Namespace("default").Watch(context.Background(), metav1.ListOptions{})
		return err
	})
	defer watcher.Stop()

	run := kubectlRunner(t, kubectlOnPath(t), kubeconfig, nil)
	manifest := filepath.Join(t.TempDir(), "flunder.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: wardle.example.com/v1alpha1
kind: Flunder
metadata:
  name: my-first-flunder
  labels:
    sample-label: "true"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out string
	eventually(t, "kubectl create flunder", func() error {
		kubectl := kubectlCommand(t, kubectlOnPath(t), kubeconfig, nil)
		var err error
		if out, err = kubectl("create", "-f", manifest); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if !strings.Contains(out, "flunder.wardle.example.com/my-first-flunder created") {
		t.Errorf("kubectl create:\n%s", out)
	}
	select {
	case ev := <-watcher.ResultChan():
		if m, err := meta.Accessor(ev.Object); err != nil || ev.Type != watch.Added || m.GetName() != "my-first-flunder" {
			t.Errorf("watch event %s %v, want ADDED my-first-flunder", ev.Type, ev.Object)
		}
	case <-time.After(time.Minute):
		t.Error("no watch event for the created flunder")
	}
	out = run("get", "flunders")
	if !strings.Contains(out, "NAME") || !strings.Contains(out, "my-first-flunder") {
		t.Errorf("kubectl get flunders:\n%s", out)
	}
	// the extension server's warnings reach the client (v1alpha1 is deprecated there)
	if out := run("get", "flunders.wardle.example.com", "my-first-flunder", "-o", "jsonpath={.metadata.labels.sample-label}"); !strings.HasSuffix(out, "\ntrue") ||
		!strings.Contains(out, "Warning: wardle.example.com/v1alpha1 Flunder is deprecated") {
		t.Errorf("kubectl get flunder -o jsonpath: %q", out)
	}
	if out := run("api-resources", "--api-group=wardle.example.com"); !strings.Contains(out, "flunders") || !strings.Contains(out, "fischers") {
		t.Errorf("kubectl api-resources:\n%s", out)
	}
	// its OpenAPI v3 document is listed and proxied: kubectl explain reads it
	if out := run("explain", "flunders.spec"); !strings.Contains(out, "KIND:       Flunder") || !strings.Contains(out, "reference") {
		t.Errorf("kubectl explain flunders.spec:\n%s", out)
	}
	if out := run("get", "apiservices", "v1alpha1.wardle.example.com"); !strings.Contains(out, "wardle/api") || !strings.Contains(out, "True") {
		t.Errorf("kubectl get apiservice:\n%s", out)
	}
	// the sample server stored it in etcd under its own prefix
	resp, err := s.Etcd.Get(context.Background(), "/registry/wardle.example.com/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil || !slices.ContainsFunc(resp.Kvs, func(kv *mvccpb.KeyValue) bool {
		return strings.HasSuffix(string(kv.Key), "/flunders/default/my-first-flunder")
	}) {
		t.Errorf("flunder in etcd: %v %v", err, resp.Kvs)
	}

	// another user: skiff authorizes the request before proxying it, in upstream's words, and
	// the sample server authorizes it again by SubjectAccessReview
	aliceConfig := filepath.Join(t.TempDir(), "alice.kubeconfig")
	if err := s.PKI.WriteUserKubeconfig(aliceConfig, s.URL, "alice"); err != nil {
		t.Fatal(err)
	}
	alice := kubectlCommand(t, kubectlOnPath(t), aliceConfig, nil)
	out, err = alice("get", "flunders")
	if want := `flunders.wardle.example.com is forbidden: User "alice" cannot list resource "flunders" in API group "wardle.example.com" in the namespace "default"`; err == nil || !strings.Contains(out, want) {
		t.Errorf("alice without rights: %v\n%s\nwant %s", err, out, want)
	}
	grant(t, s.Client, "default", "flunder-reader", "alice", rbacv1.PolicyRule{APIGroups: []string{"wardle.example.com"}, Resources: []string{"flunders"}, Verbs: []string{"get", "list"}})
	eventually(t, "alice lists flunders", func() error {
		out, err := alice("get", "flunders", "-o", "name")
		if err != nil || !strings.Contains(out, "flunder.wardle.example.com/my-first-flunder") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})

	// straight to the extension server, as clients may go: a cluster client certificate is
	// trusted through the ConfigMap's client-ca-file, a service-account token through
	// TokenReview, and the token's user is then authorized by SubjectAccessReview (403)
	ctx := context.Background()
	direct := fmt.Sprintf("https://127.0.0.1:%d/apis/wardle.example.com/v1alpha1/namespaces/default/flunders", port)
	adminTransport, err := rest.TransportFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{
		CertFile: s.PKI.AdminCertFile, KeyFile: s.PKI.AdminKeyFile, CAData: caBundle, ServerName: "api.wardle.svc"}})
	if err != nil {
		t.Fatal(err)
	}
	if code := directGet(t, adminTransport, direct, ""); code != http.StatusOK {
		t.Errorf("admin's client certificate straight to the extension server: %d, want 200", code)
	}
	if _, err := s.Client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "wardle-client"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token, err := s.Client.CoreV1().ServiceAccounts("default").CreateToken(ctx, "wardle-client", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	anonymousTransport, err := rest.TransportFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAData: caBundle, ServerName: "api.wardle.svc"}})
	if err != nil {
		t.Fatal(err)
	}
	if code := directGet(t, anonymousTransport, direct, token.Status.Token); code != http.StatusForbidden {
		t.Errorf("a service-account token straight to the extension server: %d, want 403 (authenticated by TokenReview, refused by SubjectAccessReview)", code)
	}
	if code := directGet(t, anonymousTransport, direct, "not-a-token"); code != http.StatusUnauthorized {
		t.Errorf("a bad token straight to the extension server: %d, want 401", code)
	}

	run("delete", "flunder", "my-first-flunder")
	if out := run("get", "flunders"); strings.Contains(out, "my-first-flunder") {
		t.Errorf("after delete:\n%s", out)
	}
}

// directGet GETs url through rt, with a bearer token when one is given, and returns the code.
func directGet(t *testing.T, rt http.RoundTripper, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
