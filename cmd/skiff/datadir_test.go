package main

import (
	"path/filepath"
	"testing"
)

// In-cluster clients reach the server at the kubernetes Service's cluster IP
// (KUBERNETES_SERVICE_HOST) and verify the serving certificate there, as client-go's
// rest.InClusterConfig does.
func TestServingCertificateNamesTheKubernetesServiceIP(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	pki, _, err := prepareDataDir(dataDir, "https://127.0.0.1:6443", []string{"192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := pki.ServingCert.Leaf
	for _, want := range []string{"10.96.0.1", "192.0.2.7", "127.0.0.1"} {
		if err := leaf.VerifyHostname(want); err != nil {
			t.Errorf("the serving certificate does not name %s: %v (it names %v)", want, err, leaf.IPAddresses)
		}
	}
	if err := leaf.VerifyHostname("kubernetes.default.svc"); err != nil {
		t.Error(err)
	}
}
