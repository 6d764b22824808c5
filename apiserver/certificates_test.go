package apiserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// csrPEM is a PEM PKCS#10 request for subject, signed by a new key.
func csrPEM(t *testing.T, subject pkix.Name) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func clientCSR(t *testing.T, name string, subject pkix.Name) *certificatesv1.CertificateSigningRequest {
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    csrPEM(t, subject),
			SignerName: certificatesv1.KubeAPIServerClientSignerName,
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		},
	}
}

func wantStatus(t *testing.T, err error, code int32, message string) {
	t.Helper()
	status, ok := err.(apierrors.APIStatus)
	if !ok {
		t.Fatalf("got %v, want a %d Status %q", err, code, message)
	}
	if s := status.Status(); s.Code != code || s.Message != message {
		t.Fatalf("got %d %q, want %d %q", s.Code, s.Message, code, message)
	}
}

func TestCSRCreateRecordsTheRequesterNotWhatTheClientClaims(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	csr := clientCSR(t, "claims", pkix.Name{CommonName: "alice"})
	csr.Spec.Username, csr.Spec.Groups, csr.Spec.UID = "someone-else", []string{"system:masters"}, "forged"
	csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
	got, err := s.Client.CertificatesV1().CertificateSigningRequests().Create(ctx, csr, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Username != "admin" || got.Spec.UID != "" || !slices.Contains(got.Spec.Groups, "system:masters") || !slices.Contains(got.Spec.Groups, "system:authenticated") {
		t.Errorf("spec records %q %q %v, want the admin who asked", got.Spec.Username, got.Spec.UID, got.Spec.Groups)
	}
	if len(got.Status.Conditions) != 0 {
		t.Errorf("created pre-approved: %v", got.Status.Conditions)
	}
}

func TestCSRBadInputAnswersUpstreamsWordsAndStoresNothing(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	csrs := s.Client.CertificatesV1().CertificateSigningRequests()

	bad := clientCSR(t, "bad-pem", pkix.Name{CommonName: "alice"})
	bad.Spec.Request = []byte("not a request")
	_, err := csrs.Create(ctx, bad, metav1.CreateOptions{})
	wantStatus(t, err, 422, `CertificateSigningRequest.certificates.k8s.io "bad-pem" is invalid: spec.request: Invalid value: "bm90IGEgcmVxdWVzdA==": PEM block type must be CERTIFICATE REQUEST`)

	short := clientCSR(t, "short", pkix.Name{CommonName: "alice"})
	short.Spec.ExpirationSeconds = ptr.To[int32](599)
	short.Spec.SignerName = "nodomain"
	short.Spec.Usages = nil
	_, err = csrs.Create(ctx, short, metav1.CreateOptions{})
	wantStatus(t, err, 422, `CertificateSigningRequest.certificates.k8s.io "short" is invalid: [spec.usages: Required value, `+
		`spec.signerName: Invalid value: "nodomain": must be a fully qualified domain and path of the form 'example.com/signer-name', `+
		`spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)]`)

	masters := clientCSR(t, "masters", pkix.Name{CommonName: "mallory", Organization: []string{"system:masters"}})
	_, err = csrs.Create(ctx, masters, metav1.CreateOptions{})
	wantStatus(t, err, 403, `certificatesigningrequests.certificates.k8s.io "masters" is forbidden: use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed`)

	list, err := csrs.List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 0 {
		t.Fatalf("stored %d requests (%v), want none", len(list.Items), err)
	}

	created, err := csrs.Create(ctx, clientCSR(t, "good", pkix.Name{CommonName: "alice"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	both := created.DeepCopy()
	both.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{
		{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "R"},
		{Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue, Reason: "R"},
	}
	_, err = csrs.UpdateApproval(ctx, "good", both, metav1.UpdateOptions{})
	wantStatus(t, err, 422, `CertificateSigningRequest.certificates.k8s.io "good" is invalid: status.conditions[1].type: Invalid value: "Denied": Approved and Denied conditions are mutually exclusive`)

	// approval only through /approval: an update of the request keeps its status and spec
	sneaky := created.DeepCopy()
	sneaky.Status.Conditions = both.Status.Conditions[:1]
	sneaky.Spec.SignerName = "example.com/other"
	sneaky.Spec.Usages = []certificatesv1.KeyUsage{certificatesv1.UsageServerAuth}
	updated, err := csrs.Update(ctx, sneaky, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(updated.Status.Conditions) != 0 || updated.Spec.SignerName != certificatesv1.KubeAPIServerClientSignerName || len(updated.Spec.Usages) != 2 {
		t.Errorf("an update changed spec or status: %+v %+v", updated.Spec, updated.Status)
	}
	// a certificate only through /status
	withCert := updated.DeepCopy()
	withCert.Status.Certificate = s.PKI.CAPEM
	if _, err := csrs.UpdateApproval(ctx, "good", withCert, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := csrs.Get(ctx, "good", metav1.GetOptions{})
	if len(got.Status.Certificate) != 0 {
		t.Errorf("/approval set a certificate")
	}
	// /status cannot approve
	approving := got.DeepCopy()
	approving.Status.Conditions = both.Status.Conditions[:1]
	_, err = csrs.UpdateStatus(ctx, approving, metav1.UpdateOptions{})
	wantStatus(t, err, 422, `CertificateSigningRequest.certificates.k8s.io "good" is invalid: status.conditions: Forbidden: updates may not add a condition of type "Approved"`)
	badCert := got.DeepCopy()
	badCert.Status.Certificate = []byte("junk")
	_, err = csrs.UpdateStatus(ctx, badCert, metav1.UpdateOptions{})
	wantStatus(t, err, 422, `CertificateSigningRequest.certificates.k8s.io "good" is invalid: status.certificate: Invalid value: "<certificate data>": must contain at least one CERTIFICATE PEM block`)
}

func TestCSRApprovalAndSigningNeedTheSignersVerbs(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	alice, _ := userClient(t, s, "alice")
	if _, err := s.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "csr-writer"},
		Rules: []rbacv1.PolicyRule{
			{Verbs: []string{"*"}, APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests", "certificatesigningrequests/approval", "certificatesigningrequests/status"}},
			{Verbs: []string{"approve"}, APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"signers"}, ResourceNames: []string{"example.com/*"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "csr-writer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "csr-writer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	csrs := alice.CertificatesV1().CertificateSigningRequests()
	var apiClient, custom *certificatesv1.CertificateSigningRequest
	eventually(t, "alice may create requests", func() (err error) {
		apiClient, err = csrs.Create(ctx, clientCSR(t, "for-apiserver", pkix.Name{CommonName: "alice"}), metav1.CreateOptions{})
		return err
	})
	c := clientCSR(t, "for-example", pkix.Name{CommonName: "alice"})
	c.Spec.SignerName = "example.com/custom"
	custom, err := csrs.Create(ctx, c, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	approve := func(csr *certificatesv1.CertificateSigningRequest) error {
		csr = csr.DeepCopy()
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Test"})
		_, err := csrs.UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
		return err
	}
	wantStatus(t, approve(apiClient), 403, `certificatesigningrequests.certificates.k8s.io "for-apiserver" is forbidden: user not permitted to approve requests with signerName "kubernetes.io/kube-apiserver-client"`)
	if err := approve(custom); err != nil {
		t.Fatalf("approving with the domain's wildcard: %v", err)
	}
	got, _ := csrs.Get(ctx, "for-example", metav1.GetOptions{})
	got.Status.Certificate = s.PKI.CAPEM
	_, err = csrs.UpdateStatus(ctx, got, metav1.UpdateOptions{})
	wantStatus(t, err, 403, `certificatesigningrequests.certificates.k8s.io "for-example" is forbidden: user not permitted to sign requests with signerName "example.com/custom"`)
}

func TestCSRTableHasUpstreamsColumns(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	c := clientCSR(t, "tabled", pkix.Name{CommonName: "alice"})
	c.Spec.ExpirationSeconds = ptr.To[int32](3600)
	if _, err := s.Client.CertificatesV1().CertificateSigningRequests().Create(ctx, c, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	table := &metav1.Table{}
	err := s.Client.CertificatesV1().RESTClient().Get().Resource("certificatesigningrequests").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Do(ctx).Into(table)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, col := range table.ColumnDefinitions {
		names = append(names, col.Name)
	}
	if got := strings.Join(names, ","); got != "Name,Age,SignerName,Requestor,RequestedDuration,Condition" {
		t.Errorf("columns %s", got)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("%d rows", len(table.Rows))
	}
	cells := table.Rows[0].Cells
	if cells[2] != "kubernetes.io/kube-apiserver-client" || cells[3] != "admin" || cells[4] != "60m" || cells[5] != "Pending" {
		t.Errorf("row %v", cells)
	}
}
