package main

import (
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func TestAnEarlierAgentsKubeconfigIsMovedOntoTheLoadBalancer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubelet.kubeconfig")
	if err := throughLoadBalancer(path, "https://127.0.0.1:6444"); err != nil {
		t.Fatalf("without a kubeconfig: %v", err)
	}
	if err := writeBootstrapKubeconfig(path, "https://10.0.0.1:6443", []byte("ca"), "abcdef.0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	if err := throughLoadBalancer(path, "https://127.0.0.1:6444"); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range cfg.Clusters {
		if c.Server != "https://127.0.0.1:6444" || string(c.CertificateAuthorityData) != "ca" {
			t.Errorf("cluster %s: server %s, CA %q; want the load balancer and the CA kept", name, c.Server, c.CertificateAuthorityData)
		}
	}
	if cfg.AuthInfos["tls-bootstrap-token-user"].Token != "abcdef.0123456789abcdef" {
		t.Errorf("the credentials were not kept: %+v", cfg.AuthInfos)
	}
}
