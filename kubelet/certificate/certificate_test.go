package certificate_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/apiserver/authz/bootstrap"
	"github.com/skiff-dev/skiff/controllers/manager"
	"github.com/skiff-dev/skiff/kubelet/certificate"
)

func TestClientCertificateIsBootstrappedThenRenewedByTheNodeItself(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- manager.Run(ctx, s.Config, manager.Options{
			Controllers: []string{"csrsigning", "csrapproving"}, Port: -1, UseServiceAccountCredentials: true,
			ClusterSigningCertFile: s.PKI.CACertFile, ClusterSigningKeyFile: s.PKI.CAKeyFile,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller manager: %v", err)
		}
	})
	for _, b := range bootstrap.NodeBootstrapBindings() {
		if _, err := s.Client.RbacV1().ClusterRoleBindings().Create(ctx, &b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Client.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-rotate", Namespace: "kube-system"},
		Type:       "bootstrap.kubernetes.io/token",
		StringData: map[string]string{"token-id": "rotate", "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	server := rest.AnonymousClientConfig(s.Config)
	boot := rest.CopyConfig(server)
	boot.BearerToken = "rotate.0123456789abcdef"

	// the first certificate is renewed at once, the next one not during the test
	var renewals atomic.Int32
	renewAt := func(notBefore, notAfter time.Time) time.Time {
		if renewals.Add(1) == 1 {
			return notBefore
		}
		return notAfter
	}
	dir := t.TempDir()
	m, err := certificate.New(ctx, certificate.Config{NodeName: "rotator", CertDir: dir, Server: server, Bootstrap: boot, RenewAt: renewAt})
	if err != nil {
		t.Fatal(err)
	}
	first := m.Current().Leaf
	if first.Subject.CommonName != "system:node:rotator" {
		t.Fatalf("bootstrapped %v", first.Subject)
	}
	cfg, err := m.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	node := kubernetes.NewForConfigOrDie(cfg)
	review, err := node.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || review.Status.UserInfo.Username != "system:node:rotator" {
		t.Fatalf("authenticated as %+v (%v)", review, err)
	}

	renewing, stopRenewing := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() { defer close(renewed); m.Run(renewing, node) }()
	defer func() { stopRenewing(); <-renewed }()
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return m.Current().Leaf.SerialNumber.Cmp(first.SerialNumber) != 0, nil
	})
	if err != nil {
		t.Fatal("the certificate was never renewed")
	}
	csrs, err := s.Client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var selfApproved bool
	for _, csr := range csrs.Items {
		for _, c := range csr.Status.Conditions {
			if csr.Spec.Username == "system:node:rotator" && c.Type == certificatesv1.CertificateApproved &&
				c.Message == "Auto approving self kubelet client certificate after SubjectAccessReview." {
				selfApproved = true
			}
		}
	}
	if !selfApproved {
		t.Errorf("no renewal request by the node approved as its own: %+v", csrs.Items)
	}
	// a new connection presents the renewed certificate
	if _, err := node.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// a restarted kubelet finds the renewed certificate without bootstrapping again
	again, err := certificate.New(ctx, certificate.Config{NodeName: "rotator", CertDir: dir, Server: server})
	if err != nil {
		t.Fatal(err)
	}
	if again.Current().Leaf.SerialNumber.Cmp(m.Current().Leaf.SerialNumber) != 0 {
		t.Errorf("restart loaded another certificate than %s", filepath.Join(dir, certificate.CurrentFileName))
	}
}
