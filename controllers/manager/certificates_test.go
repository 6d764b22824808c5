package manager

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"slices"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/apiserver/authz/bootstrap"
)

// startCertificateControllers runs the three CSR controllers, each as its service account.
func startCertificateControllers(t *testing.T, s *apiservertest.Server) {
	startManager(t, s, Options{
		Controllers: []string{"csrsigning", "csrapproving", "csrcleaner"}, Port: -1,
		UseServiceAccountCredentials: true,
		ClusterSigningCertFile:       s.PKI.CACertFile, ClusterSigningKeyFile: s.PKI.CAKeyFile,
	})
}

// newRequest is a new key and a PEM request for subject signed by it.
func newRequest(t *testing.T, subject pkix.Name) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func approve(t *testing.T, c kubernetes.Interface, name string) {
	t.Helper()
	ctx := context.Background()
	csr, err := c.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "TestApprove", Message: "approved by the test"})
	if _, err := c.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, name, csr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestApprovedAPIServerClientRequestIsIssuedAndAuthenticates(t *testing.T) {
	s := apiservertest.Start(t)
	startCertificateControllers(t, s)
	ctx := context.Background()
	key, request := newRequest(t, pkix.Name{CommonName: "alice", Organization: []string{"developers"}})
	_, err := s.Client.CertificatesV1().CertificateSigningRequests().Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: request, SignerName: certificatesv1.KubeAPIServerClientSignerName, ExpirationSeconds: ptr.To[int32](3600),
			Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	approve(t, s.Client, "alice")
	var issued []byte
	poll(t, "the certificate", func(ctx context.Context) bool {
		csr, err := s.Client.CertificatesV1().CertificateSigningRequests().Get(ctx, "alice", metav1.GetOptions{})
		issued = nil
		if err == nil {
			issued = csr.Status.Certificate
		}
		return len(issued) > 0
	})
	block, _ := pem.Decode(issued)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := cert.NotAfter.Sub(cert.NotBefore); got != 65*time.Minute {
		t.Errorf("valid for %v, want the hour asked for (and five minutes' backdating)", got)
	}
	if err := cert.CheckSignatureFrom(s.PKI.CA); err != nil {
		t.Errorf("not signed by the cluster CA: %v", err)
	}

	keyDER, _ := x509.MarshalECPrivateKey(key)
	cfg := rest.CopyConfig(s.Config)
	cfg.TLSClientConfig = rest.TLSClientConfig{CAFile: s.PKI.CACertFile, CertData: issued,
		KeyData: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}
	alice := kubernetes.NewForConfigOrDie(cfg)
	review, err := alice.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u := review.Status.UserInfo; u.Username != "alice" || !slices.Contains(u.Groups, "developers") {
		t.Errorf("the certificate authenticates as %q %v, want alice in developers", u.Username, u.Groups)
	}
}

func TestRequestBreakingItsSignersRulesFails(t *testing.T) {
	s := apiservertest.Start(t)
	startCertificateControllers(t, s)
	ctx := context.Background()
	_, request := newRequest(t, pkix.Name{CommonName: "web"})
	_, err := s.Client.CertificatesV1().CertificateSigningRequests().Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "server"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: request, SignerName: certificatesv1.KubeAPIServerClientSignerName,
			Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	approve(t, s.Client, "server")
	var failed *certificatesv1.CertificateSigningRequestCondition
	poll(t, "the Failed condition", func(ctx context.Context) bool {
		csr, err := s.Client.CertificatesV1().CertificateSigningRequests().Get(ctx, "server", metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range csr.Status.Conditions {
			if c.Type == certificatesv1.CertificateFailed {
				failed = &c
				return len(csr.Status.Certificate) == 0
			}
		}
		return false
	})
	if failed.Reason != "SignerValidationFailure" || failed.Message != "invalid usage for client certificate: server auth" {
		t.Errorf("failed with %q %q", failed.Reason, failed.Message)
	}
}

func TestBootstrapTokenGetsAKubeletClientCertificateApprovedAutomatically(t *testing.T) {
	s := apiservertest.Start(t)
	startCertificateControllers(t, s)
	ctx := context.Background()
	for _, b := range bootstrap.NodeBootstrapBindings() {
		if _, err := s.Client.RbacV1().ClusterRoleBindings().Create(ctx, &b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Client.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-abcdef", Namespace: "kube-system"},
		Type:       "bootstrap.kubernetes.io/token",
		StringData: map[string]string{"token-id": "abcdef", "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(s.Config)
	cfg.BearerToken = "abcdef.0123456789abcdef"
	token := kubernetes.NewForConfigOrDie(cfg)
	_, request := newRequest(t, pkix.Name{CommonName: "system:node:joiner", Organization: []string{"system:nodes"}})
	var created *certificatesv1.CertificateSigningRequest
	poll(t, "the bootstrap token to create a request", func(ctx context.Context) bool {
		var err error
		created, err = token.CertificatesV1().CertificateSigningRequests().Create(ctx, &certificatesv1.CertificateSigningRequest{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "node-csr-"},
			Spec: certificatesv1.CertificateSigningRequestSpec{
				Request: request, SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
				Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
			},
		}, metav1.CreateOptions{})
		return err == nil
	})
	if created.Spec.Username != "system:bootstrap:abcdef" || !slices.Contains(created.Spec.Groups, "system:bootstrappers") {
		t.Errorf("requested by %q %v", created.Spec.Username, created.Spec.Groups)
	}
	poll(t, "automatic approval and the certificate", func(ctx context.Context) bool {
		csr, err := token.CertificatesV1().CertificateSigningRequests().Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil || len(csr.Status.Certificate) == 0 {
			return false
		}
		for _, c := range csr.Status.Conditions {
			if c.Type == certificatesv1.CertificateApproved && c.Reason == "AutoApproved" &&
				c.Message == "Auto approving kubelet client certificate after SubjectAccessReview." {
				return true
			}
		}
		t.Fatalf("issued without automatic approval: %v", csr.Status.Conditions)
		return false
	})
}
