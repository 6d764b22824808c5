package main

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers/manager"
	"github.com/skiff-dev/skiff/kubelet/certificate"
)

func TestKubeletWithOnlyABootstrapTokenGetsACertificateAndRegistersItsNode(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	managerDone := make(chan error, 1)
	go func() {
		managerDone <- manager.Run(ctx, s.Config, manager.Options{
			Controllers: []string{"csrsigning", "csrapproving"}, Port: -1, UseServiceAccountCredentials: true,
			ClusterSigningCertFile: s.PKI.CACertFile, ClusterSigningKeyFile: s.PKI.CAKeyFile,
		})
	}()
	if err := ensureNodeBootstrapBindings(ctx, s.Config); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-joiner", Namespace: "kube-system"},
		Type:       "bootstrap.kubernetes.io/token",
		StringData: map[string]string{"token-id": "joiner", "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	boot := clientcmdapi.NewConfig()
	boot.Clusters["c"] = &clientcmdapi.Cluster{Server: s.URL, CertificateAuthorityData: s.PKI.CAPEM}
	boot.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "joiner.0123456789abcdef"}
	boot.Contexts["x"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	boot.CurrentContext = "x"
	bootPath := filepath.Join(dir, "bootstrap.kubeconfig")
	if err := clientcmd.WriteToFile(*boot, bootPath); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	o := &kubeletOptions{
		kubeconfig: filepath.Join(dir, "kubelet.kubeconfig"), bootstrapKubeconfig: bootPath, rotateCertificates: true, rotateServerCertificates: true,
		hostnameOverride: "joiner", runtimeEndpoint: fakeRuntimeEndpoint, rootDir: filepath.Join(dir, "kubelet"),
		port: port, address: "127.0.0.1", maxPods: 110, kubeAPIQPS: 50, kubeAPIBurst: 100, podCIDR: "10.244.9.0/24",
	}
	kubeletDone := make(chan error, 1)
	go func() { kubeletDone <- runKubelet(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-kubeletDone; err != nil {
			t.Errorf("kubelet: %v", err)
		}
		if err := <-managerDone; err != nil {
			t.Errorf("controller manager: %v", err)
		}
	})

	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := s.Client.CoreV1().Nodes().Get(ctx, "joiner", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatal("the bootstrapped kubelet never registered its Node")
	}
	// the client certificate came from the bootstrap token's request; the serving one waits
	// for approval from the node's own request
	var serving string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		csrs, err := s.Client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err != nil || len(csrs.Items) != 2 {
			return false, nil
		}
		for _, csr := range csrs.Items {
			switch {
			case csr.Spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName && csr.Spec.Username == "system:bootstrap:joiner":
			case csr.Spec.SignerName == certificatesv1.KubeletServingSignerName && csr.Spec.Username == "system:node:joiner":
				serving = csr.Name
			default:
				t.Fatalf("unexpected request %s by %q for %q", csr.Name, csr.Spec.Username, csr.Spec.SignerName)
			}
		}
		return serving != "", nil
	})
	if err != nil {
		t.Fatal("no bootstrap request and serving request")
	}
	servingCSR, err := s.Client.CertificatesV1().CertificateSigningRequests().Get(ctx, serving, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	servingCSR.Status.Conditions = append(servingCSR.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "TestApprove"})
	if _, err := s.Client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, serving, servingCSR, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return false, nil
		}
		defer conn.Close()
		peer := conn.ConnectionState().PeerCertificates[0]
		return peer.Subject.CommonName == "system:node:joiner" && peer.CheckSignatureFrom(s.PKI.CA) == nil, nil
	})
	if err != nil {
		got, _ := s.Client.CertificatesV1().CertificateSigningRequests().Get(ctx, serving, metav1.GetOptions{})
		t.Fatalf("the kubelet API never served its approved serving certificate; request %+v, issued %d bytes", got.Status.Conditions, len(got.Status.Certificate))
	}
	// the certificate and the kubeconfig naming it stay for the next start
	st, err := os.Stat(filepath.Join(dir, "kubelet", "pki", certificate.CurrentFileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("certificate file: %v %v", st, err)
	}
	written, err := clientcmd.LoadFromFile(o.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if a := written.AuthInfos[written.Contexts[written.CurrentContext].AuthInfo]; a.ClientCertificate != filepath.Join(dir, "kubelet", "pki", certificate.CurrentFileName) || a.Token != "" {
		t.Errorf("written kubeconfig authenticates with %+v", a)
	}
}
