package main

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers/manager"
	"github.com/skiff-dev/skiff/join"
	"github.com/skiff-dev/skiff/kubelet/certificate"
)

// The server's half of a join, in process: skiff up's cluster-info, `skiff token create`, the
// bootstrap signer, and what an agent then does with the printed command: discover and pin
// the CA anonymously, bootstrap a node certificate with the token, and get its proxy a
// system:kube-proxy certificate with the node's.
func TestTokenCreatePrintsAJoinCommandThatDiscoversThePinnedCAAndBootstrapsANodeAndItsProxies(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	managerDone := make(chan error, 1)
	go func() {
		managerDone <- manager.Run(ctx, s.Config, manager.Options{
			Controllers: []string{"bootstrapsigner", "csrsigning", "csrapproving"}, Port: -1, UseServiceAccountCredentials: true,
			ClusterSigningCertFile: s.PKI.CACertFile, ClusterSigningKeyFile: s.PKI.CAKeyFile,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-managerDone; err != nil {
			t.Errorf("controller manager: %v", err)
		}
	})
	if err := ensureNodeBootstrapBindings(ctx, s.Config); err != nil {
		t.Fatal(err)
	}
	if err := ensureClusterInfo(ctx, s.Config, s.URL, s.PKI.CAPEM); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := createToken(ctx, &tokenOptions{kubeconfig: kubeconfig, ttl: time.Hour, groups: []string{defaultNodeTokenGroup},
		usages: []string{"signing", "authentication"}}, &out); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^skiff agent --server (\S+) --token ([a-z0-9]{6}\.[a-z0-9]{16}) --ca-cert-hash (sha256:[0-9a-f]{64})\n$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("printed %q, want one join command", out.String())
	}
	if m[1] != s.URL {
		t.Errorf("server %s, want cluster-info's %s", m[1], s.URL)
	}
	secret, err := s.Client.CoreV1().Secrets("kube-system").Get(ctx, "bootstrap-token-"+m[2][:6], metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the token's Secret: %v", err)
	}
	if secret.Type != "bootstrap.kubernetes.io/token" || string(secret.Data["auth-extra-groups"]) != defaultNodeTokenGroup || len(secret.Data["expiration"]) == 0 {
		t.Errorf("token Secret %v, want kubeadm's shape with an expiration", secret)
	}

	discoverCtx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	ca, err := join.Discovery{Server: m[1], Token: m[2], CACertHashes: []string{m[3]}, RetryInterval: 100 * time.Millisecond}.Discover(discoverCtx)
	if err != nil {
		t.Fatalf("discovery with the printed command: %v", err)
	}
	if !bytes.Equal(ca, s.PKI.CAPEM) {
		t.Error("discovery pinned another CA than the cluster's")
	}
	// with another token's secret the signature is refused
	if _, err := (join.Discovery{Server: m[1], Token: m[2][:7] + strings.Repeat("x", 16), CACertHashes: []string{m[3]}}).Discover(discoverCtx); err == nil {
		t.Error("discovery believed cluster-info with a wrong token secret")
	}

	o := &agentOptions{server: m[1], dataDir: dir}
	bootPath := filepath.Join(dir, "bootstrap.kubeconfig")
	if err := writeBootstrapKubeconfig(bootPath, m[1], ca, m[2]); err != nil {
		t.Fatal(err)
	}
	boot, err := clientcmd.BuildConfigFromFlags("", bootPath)
	if err != nil {
		t.Fatal(err)
	}
	bootCtx, stopBoot := context.WithTimeout(ctx, time.Minute)
	defer stopBoot()
	node, err := certificate.New(bootCtx, certificate.Config{NodeName: "joiner", CertDir: filepath.Join(dir, "kubelet"),
		Server: rest.AnonymousClientConfig(boot), Bootstrap: boot})
	if err != nil {
		t.Fatalf("the node's certificate with the token: %v", err)
	}
	nodeConfig, err := node.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	proxyConfig, _, err := o.proxyCredentials(bootCtx, "joiner", o.server, ca, nodeConfig, "system:kube-proxy", "kube-proxy")
	if err != nil {
		t.Fatalf("the proxy's certificate with the node's credentials: %v", err)
	}
	proxyCert, err := certificate.New(bootCtx, certificate.Config{CertDir: filepath.Join(dir, "proxy", "pki"), FileName: "kube-proxy-client-current.pem",
		Identity: &pkix.Name{CommonName: "system:kube-proxy"}})
	if err != nil {
		t.Fatal(err)
	}
	if cn := proxyCert.Current().Leaf.Subject.CommonName; cn != "system:kube-proxy" {
		t.Errorf("the proxy's certificate is for %q", cn)
	}
	// the proxy's identity may read what the proxy reads, as system:node-proxier grants
	proxyClient, err := kubernetes.NewForConfig(proxyConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proxyClient.DiscoveryV1().EndpointSlices("").List(bootCtx, metav1.ListOptions{}); err != nil {
		t.Errorf("the proxy's identity cannot list EndpointSlices: %v", err)
	}
	// and the NetworkPolicy agent's what it reads
	policyConfig, _, err := o.proxyCredentials(bootCtx, "joiner", o.server, ca, nodeConfig, "system:skiff:network-policy-agent", "network-policy")
	if err != nil {
		t.Fatalf("the NetworkPolicy agent's certificate with the node's credentials: %v", err)
	}
	policyClient, err := kubernetes.NewForConfig(policyConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policyClient.NetworkingV1().NetworkPolicies("").List(bootCtx, metav1.ListOptions{}); err != nil {
		t.Errorf("the NetworkPolicy agent's identity cannot list NetworkPolicies: %v", err)
	}
}
