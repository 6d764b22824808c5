package csrcleaner

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sort"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func certificateExpiring(t *testing.T, notAfter time.Time) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}, NotBefore: notAfter.Add(-2 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestCleanerDeletesOnlyRequestsPastUpstreamsIntervals(t *testing.T) {
	now := time.Now()
	ago := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }
	condition := func(t certificatesv1.RequestConditionType, updated time.Duration) []certificatesv1.CertificateSigningRequestCondition {
		return []certificatesv1.CertificateSigningRequestCondition{{Type: t, Status: corev1.ConditionTrue, LastUpdateTime: ago(updated)}}
	}
	csr := func(name string, created time.Duration, conds []certificatesv1.CertificateSigningRequestCondition, cert []byte) *certificatesv1.CertificateSigningRequest {
		return &certificatesv1.CertificateSigningRequest{
			ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), CreationTimestamp: ago(created)},
			Status:     certificatesv1.CertificateSigningRequestStatus{Conditions: conds, Certificate: cert},
		}
	}
	valid := certificateExpiring(t, now.Add(24*time.Hour))
	objects := []*certificatesv1.CertificateSigningRequest{
		csr("pending-fresh", 23*time.Hour, nil, nil),
		csr("pending-old", 25*time.Hour, nil, nil),
		csr("denied-fresh", 2*time.Hour, condition(certificatesv1.CertificateDenied, 30*time.Minute), nil),
		csr("denied-old", 2*time.Hour, condition(certificatesv1.CertificateDenied, 61*time.Minute), nil),
		csr("failed-old", 2*time.Hour, condition(certificatesv1.CertificateFailed, 61*time.Minute), nil),
		csr("approved-unissued", 30*time.Hour, condition(certificatesv1.CertificateApproved, 2*time.Hour), nil),
		csr("issued-fresh", 2*time.Hour, condition(certificatesv1.CertificateApproved, 30*time.Minute), valid),
		csr("issued-old", 2*time.Hour, condition(certificatesv1.CertificateApproved, 61*time.Minute), valid),
		csr("issued-expired", 2*time.Hour, condition(certificatesv1.CertificateApproved, 10*time.Minute), certificateExpiring(t, now.Add(-time.Minute))),
	}
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	informer := factory.Certificates().V1().CertificateSigningRequests()
	for _, o := range objects {
		if _, err := client.CertificatesV1().CertificateSigningRequests().Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := informer.Informer().GetIndexer().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	c := New(informer, client)
	c.now = func() time.Time { return now }
	c.clean(context.Background())

	left, err := client.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range left.Items {
		names = append(names, o.Name)
	}
	sort.Strings(names)
	want := []string{"approved-unissued", "denied-fresh", "issued-fresh", "pending-fresh"}
	if len(names) != len(want) {
		t.Fatalf("left %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("left %v, want %v", names, want)
		}
	}
}
