package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
)

func TestKubeletServingCertificateVerifiesForTheNodesNameAndIPs(t *testing.T) {
	dir := t.TempDir()
	if _, err := Ensure(dir); err != nil {
		t.Fatal(err)
	}
	// the kubelet side loads only the CA, and its certificate verifies against the full PKI's
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.KubeletServingCertificate("node-a", []net.IP{net.ParseIP("192.0.2.9")})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	full, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"node-a", "192.0.2.9", "127.0.0.1", "localhost"} {
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: full.CAPool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: full.CAPool, DNSName: "node-b"}); err == nil {
		t.Error("verifies for another node")
	}
	if pair.Leaf.Subject.CommonName != "system:node:node-a" || len(pair.Leaf.Subject.Organization) != 1 || pair.Leaf.Subject.Organization[0] != "system:nodes" {
		t.Errorf("subject %s, want upstream's system:node:node-a in system:nodes", pair.Leaf.Subject)
	}
	if _, err := LoadCA(t.TempDir()); err == nil {
		t.Error("LoadCA of an empty directory succeeded")
	}
}
