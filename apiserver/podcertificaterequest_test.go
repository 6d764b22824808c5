package apiserver_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// podCertificateRequest asks example.com/signer for a certificate for key, with an empty
// stub CSR signed by it, as a kubelet does.
func podCertificateRequest(t *testing.T, key ed25519.PrivateKey) *certificatesv1.PodCertificateRequest {
	t.Helper()
	stub, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &certificatesv1.PodCertificateRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "web-cert", Namespace: "default"},
		Spec: certificatesv1.PodCertificateRequestSpec{
			SignerName: "example.com/signer", PodName: "web", PodUID: "pod-uid",
			ServiceAccountName: "default", ServiceAccountUID: "sa-uid", NodeName: "node-a", NodeUID: "node-uid",
			StubPKCS10Request: stub,
		},
	}
}

// issue makes a certificate for pub valid from notBefore for lifetime, signed by a new CA.
func issue(t *testing.T, pub ed25519.PublicKey, notBefore time.Time, lifetime time.Duration) string {
	t.Helper()
	_, caKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "web"},
		NotBefore: notBefore, NotAfter: notBefore.Add(lifetime)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestPodCertificateRequestIsAnsweredOnceThroughStatus(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	pcrs := s.Client.CertificatesV1().PodCertificateRequests("default")
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	req := podCertificateRequest(t, key)
	req.Status.CertificateChain = "set by the requester"
	created, err := pcrs.Create(ctx, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := created.Spec.MaxExpirationSeconds; got == nil || *got != 86400 {
		t.Errorf("maxExpirationSeconds defaulted to %v, want a day", got)
	}
	if created.Status.CertificateChain != "" {
		t.Errorf("a request was created with a status: %+v", created.Status)
	}

	// signers watch their own requests
	for selector, want := range map[string]int{"spec.signerName=example.com/signer": 1, "spec.signerName=example.com/other": 0} {
		list, err := pcrs.List(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil || len(list.Items) != want {
			t.Errorf("list %s: %v, want %d items", selector, err, want)
		}
	}

	// the spec never changes
	created.Spec.PodName = "other"
	if _, err := pcrs.Update(ctx, created, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec: Invalid value") {
		t.Errorf("changing the spec: %v", err)
	}
	created.Spec.PodName = "web"

	// a certificate for another key is refused
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	notBefore := time.Now().Truncate(time.Second)
	issued := created.DeepCopy()
	issued.Status = certificatesv1.PodCertificateRequestStatus{
		Conditions: []metav1.Condition{{Type: "Issued", Status: metav1.ConditionTrue, Reason: "Reason", Message: "issued", LastTransitionTime: metav1.Now()}},
		NotBefore:  &metav1.Time{Time: notBefore}, NotAfter: &metav1.Time{Time: notBefore.Add(24 * time.Hour)},
		BeginRefreshAt: &metav1.Time{Time: notBefore.Add(12 * time.Hour)},
	}
	issued.Status.CertificateChain = issue(t, otherPub, notBefore, 24*time.Hour)
	if _, err := pcrs.UpdateStatus(ctx, issued, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "leaf certificate was not issued to the requested public key") {
		t.Errorf("issuing for another key: %v", err)
	}

	issued.Status.CertificateChain = issue(t, pub, notBefore, 24*time.Hour)
	answered, err := pcrs.UpdateStatus(ctx, issued, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if answered.Status.CertificateChain != issued.Status.CertificateChain || answered.Spec.PodName != "web" {
		t.Errorf("after issuing: %+v", answered)
	}

	// an issued request is final
	answered.Status.Conditions[0].Message = "changed my mind"
	if _, err := pcrs.UpdateStatus(ctx, answered, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "immutable after PodCertificateRequest is issued, denied, or failed") {
		t.Errorf("changing an issued request: %v", err)
	}
}

func TestPodCertificateRequestNeedsAValidStubAndLifetime(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mutate func(*certificatesv1.PodCertificateRequest)
		want   string
	}{
		"no stub":        {func(r *certificatesv1.PodCertificateRequest) { r.Spec.StubPKCS10Request = nil }, "exactly one of (stubPKCS10Request) or (pkixPublicKey, proofOfPossession) must be set"},
		"garbage stub":   {func(r *certificatesv1.PodCertificateRequest) { r.Spec.StubPKCS10Request = []byte("x") }, "spec.stubPKCS10Request: Invalid value: must be a valid PKCS#10 CSR"},
		"too short":      {func(r *certificatesv1.PodCertificateRequest) { r.Spec.MaxExpirationSeconds = new(int32(60)) }, "must be in the range [3600, 7862400]"},
		"no pod uid":     {func(r *certificatesv1.PodCertificateRequest) { r.Spec.PodUID = "" }, `spec.podUID: Invalid value: "": must not be empty`},
		"bad signerName": {func(r *certificatesv1.PodCertificateRequest) { r.Spec.SignerName = "" }, "spec.signerName: Required value"},
	} {
		req := podCertificateRequest(t, key)
		tc.mutate(req)
		_, err := s.Client.CertificatesV1().PodCertificateRequests("default").Create(ctx, req, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
