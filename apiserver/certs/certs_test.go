package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func mustEnsure(t *testing.T, dir string, extraSANs ...string) *PKI {
	t.Helper()
	p, err := Ensure(dir, extraSANs...)
	if err != nil {
		t.Fatalf("Ensure(%s): %v", dir, err)
	}
	return p
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEnsureKeepsKeysPrivateToOwner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	// a directory that already exists with a loose mode is tightened
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := mustEnsure(t, dir)

	if m := mode(t, dir); m != 0o700 {
		t.Errorf("PKI directory mode = %o, want 700", m)
	}
	for _, key := range []string{p.CAKeyFile, p.ServingKeyFile, p.AdminKeyFile, p.ServiceAccountKeyFile, p.FrontProxy.CAKeyFile, p.FrontProxy.ClientKeyFile} {
		if m := mode(t, key); m != 0o600 {
			t.Errorf("%s mode = %o, want 600", filepath.Base(key), m)
		}
	}
	for _, cert := range []string{p.CACertFile, p.ServingCertFile, p.AdminCertFile} {
		if m := mode(t, cert); m&0o002 != 0 {
			t.Errorf("%s mode = %o, world-writable", filepath.Base(cert), m)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 12 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("PKI directory holds %v, want the six certificate and key files, the four of the front proxy and sa.key, sa.pub only", names)
	}
}

func TestEnsureReusesPKIOnRestart(t *testing.T) {
	dir := t.TempDir()
	first := mustEnsure(t, dir)
	files := []string{first.CACertFile, first.CAKeyFile, first.ServingCertFile,
		first.ServingKeyFile, first.AdminCertFile, first.AdminKeyFile}
	before := map[string][]byte{}
	for _, f := range files {
		before[f] = readFile(t, f)
	}

	second := mustEnsure(t, dir)

	for _, f := range files {
		if !bytes.Equal(before[f], readFile(t, f)) {
			t.Errorf("%s changed on the second Ensure", filepath.Base(f))
		}
	}
	if !bytes.Equal(first.CAPEM, second.CAPEM) || !first.CA.Equal(second.CA) {
		t.Error("second Ensure loaded another CA")
	}
	if !second.ServingCert.Leaf.Equal(first.ServingCert.Leaf) {
		t.Error("second Ensure loaded another serving certificate")
	}
}

func TestServingCertificateNamesHostAndCluster(t *testing.T) {
	p := mustEnsure(t, t.TempDir(), "api.example.com", "192.0.2.10")
	leaf := p.ServingCert.Leaf

	want := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", "api.example.com", "127.0.0.1", "::1", "192.0.2.10"}
	if host, err := os.Hostname(); err == nil {
		want = append(want, host)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		want = append(want, a.(*net.IPNet).IP.String())
	}
	for _, name := range want {
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:   name,
			Roots:     p.CAPool,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			t.Errorf("serving certificate does not verify for %q: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: p.CAPool}); err == nil {
		t.Error("serving certificate verifies for a name it was not made for")
	}
}

func TestServingCertificateRenewedWhenNamesChange(t *testing.T) {
	dir := t.TempDir()
	first := mustEnsure(t, dir)
	second := mustEnsure(t, dir, "api.example.com")

	if !first.CA.Equal(second.CA) {
		t.Fatal("the CA changed with the serving names")
	}
	if second.ServingCert.Leaf.Equal(first.ServingCert.Leaf) {
		t.Fatal("serving certificate kept although a name was added")
	}
	if !slices.Contains(second.ServingCert.Leaf.DNSNames, "api.example.com") {
		t.Errorf("renewed serving certificate names %v, want api.example.com among them",
			second.ServingCert.Leaf.DNSNames)
	}
	onDisk, err := tls.LoadX509KeyPair(second.ServingCertFile, second.ServingKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !onDisk.Leaf.Equal(second.ServingCert.Leaf) {
		t.Error("renewed serving certificate was not written to disk")
	}
	if !bytes.Equal(first.AdminCert.Certificate[0], second.AdminCert.Certificate[0]) {
		t.Error("admin certificate changed with the serving names")
	}
}

func TestLeafFromAnotherCAIsReplaced(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	mustEnsure(t, dir)
	stranger := mustEnsure(t, other)
	for _, name := range []string{ServingCertFileName, ServingKeyFileName, AdminCertFileName, AdminKeyFileName} {
		if err := os.WriteFile(filepath.Join(dir, name), readFile(t, filepath.Join(other, name)), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	p := mustEnsure(t, dir)

	for what, leaf := range map[string]*x509.Certificate{"serving": p.ServingCert.Leaf, "admin": p.AdminCert.Leaf} {
		if leaf.Equal(stranger.ServingCert.Leaf) || leaf.Equal(stranger.AdminCert.Leaf) {
			t.Errorf("%s certificate signed by another CA was kept", what)
		}
		if err := leaf.CheckSignatureFrom(p.CA); err != nil {
			t.Errorf("%s certificate is not signed by the cluster CA: %v", what, err)
		}
	}
}

func TestEnsureRefusesCACertificateWithoutKey(t *testing.T) {
	dir := t.TempDir()
	p := mustEnsure(t, dir)
	if err := os.Remove(p.CAKeyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir); err == nil || !strings.Contains(err.Error(), "without a usable key") {
		t.Fatalf("Ensure with the CA key gone = %v, want an error naming the missing key", err)
	}
}

func TestAdminCertificateIsSystemMastersClient(t *testing.T) {
	p := mustEnsure(t, t.TempDir())
	leaf := p.AdminCert.Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:     p.CAPool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Fatalf("admin certificate does not verify as a client: %v", err)
	}
	if leaf.Subject.CommonName != "admin" || !slices.Equal(leaf.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("admin subject = CN %q O %v, want CN admin O [system:masters]",
			leaf.Subject.CommonName, leaf.Subject.Organization)
	}
	if slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Error("admin certificate can also serve")
	}
}

func TestClientCertificateNamesUserAndGroups(t *testing.T) {
	p := mustEnsure(t, t.TempDir())
	certPEM, keyPEM, err := p.ClientCertificate("system:node:worker-1", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{
		Roots:     p.CAPool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Fatalf("client certificate does not verify against the CA: %v", err)
	}
	if pair.Leaf.Subject.CommonName != "system:node:worker-1" ||
		!slices.Equal(pair.Leaf.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("subject = %v, want CN system:node:worker-1 O system:nodes", pair.Leaf.Subject)
	}
	if _, _, err := p.ClientCertificate(""); err == nil {
		t.Error("ClientCertificate with no user name succeeded")
	}
}

// TestKubeconfigReachesServerAsAdmin checks the whole chain a user relies on: client-go loads
// the written kubeconfig, trusts the serving certificate at 127.0.0.1 and presents the admin
// certificate, which a server requiring client certificates from the CA accepts.
func TestKubeconfigReachesServerAsAdmin(t *testing.T) {
	dir := t.TempDir()
	p := mustEnsure(t, filepath.Join(dir, "pki"))

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer := r.TLS.PeerCertificates[0].Subject
		fmt.Fprintf(w, "%s %v", peer.CommonName, peer.Organization)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{p.ServingCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.CAPool,
	}
	srv.StartTLS()
	defer srv.Close()

	path := filepath.Join(dir, "kubeconfig")
	if err := p.WriteKubeconfig(path, srv.URL); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("kubeconfig mode = %o, want 600", m)
	}

	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := raw.Contexts[raw.CurrentContext]
	if raw.CurrentContext != "skiff" || ctx == nil || ctx.Cluster != "skiff" || ctx.AuthInfo != "admin" {
		t.Fatalf("kubeconfig current context %q = %+v, want skiff with cluster skiff and user admin",
			raw.CurrentContext, ctx)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(cfg.Host + "/")
	if err != nil {
		t.Fatalf("GET through the kubeconfig: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if got := string(body); got != "admin [system:masters]" {
		t.Errorf("server saw client %q, want admin [system:masters]", got)
	}
}

func TestUserKubeconfigAuthenticatesAsThatUser(t *testing.T) {
	dir := t.TempDir()
	p := mustEnsure(t, filepath.Join(dir, "pki"))
	path := filepath.Join(dir, "kubelet.kubeconfig")
	if err := p.WriteUserKubeconfig(path, "https://127.0.0.1:6443", "system:node:n1", "system:nodes"); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData)
	if err != nil {
		t.Fatal(err)
	}
	if pair.Leaf.Subject.CommonName != "system:node:n1" {
		t.Errorf("kubeconfig user CN = %q, want system:node:n1", pair.Leaf.Subject.CommonName)
	}
	if !bytes.Equal(cfg.CAData, p.CAPEM) {
		t.Error("kubeconfig does not embed the cluster CA")
	}
}

func TestEnsureMakesAFrontProxyCAAndClientCertificateAndKeepsThem(t *testing.T) {
	dir := t.TempDir()
	p, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	fp := p.FrontProxy
	if fp == nil || fp.ClientCert.Leaf == nil {
		t.Fatal("no front-proxy client certificate")
	}
	if cn := fp.ClientCert.Leaf.Subject.CommonName; cn != FrontProxyClientName {
		t.Fatalf("front-proxy client CN = %q, want %q", cn, FrontProxyClientName)
	}
	// the cluster CA must not vouch for the front proxy, nor the front-proxy CA for the cluster
	if _, err := fp.ClientCert.Leaf.Verify(x509.VerifyOptions{Roots: p.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("the cluster CA verifies the front-proxy client certificate")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(fp.CAPEM) {
		t.Fatal("front-proxy CA PEM does not parse")
	}
	if _, err := fp.ClientCert.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("front-proxy CA does not verify its client certificate: %v", err)
	}
	if _, err := p.AdminCert.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("the front-proxy CA verifies the admin certificate")
	}
	again, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.FrontProxy.CAPEM, fp.CAPEM) || !again.FrontProxy.ClientCert.Leaf.Equal(fp.ClientCert.Leaf) {
		t.Fatal("a second Ensure replaced the front-proxy CA or client certificate")
	}
}
