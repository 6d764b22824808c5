package csrapproving

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/skiff-dev/skiff/controllers"
)

func kubeletRequest(t *testing.T, name, username, cn string, usages ...certificatesv1.KeyUsage) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName, Username: username, Usages: usages,
		},
	}
}

// approvingWith runs sync over csrs against a fake API whose SubjectAccessReviews allow only
// the subresources in allowed, and returns the requests as they end up.
func approvingWith(t *testing.T, allowed map[string]bool, csrs ...*certificatesv1.CertificateSigningRequest) map[string]*certificatesv1.CertificateSigningRequest {
	t.Helper()
	client := fake.NewClientset()
	client.PrependReactor("create", "subjectaccessreviews", func(a clienttesting.Action) (bool, runtime.Object, error) {
		sar := a.(clienttesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		sar.Status.Allowed = allowed[sar.Spec.ResourceAttributes.Subresource]
		return true, sar, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	informer := factory.Certificates().V1().CertificateSigningRequests()
	c, err := New(informer, client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, csr := range csrs {
		if _, err := client.CertificatesV1().CertificateSigningRequests().Create(ctx, csr, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := informer.Informer().GetIndexer().Add(csr); err != nil {
			t.Fatal(err)
		}
		if err := c.sync(ctx, csr.Name); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]*certificatesv1.CertificateSigningRequest{}
	for _, csr := range csrs {
		got, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out[csr.Name] = got
	}
	return out
}

func approvalMessage(csr *certificatesv1.CertificateSigningRequest) string {
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved && c.Reason == "AutoApproved" {
			return c.Message
		}
	}
	return ""
}

func TestApprovesKubeletClientRequestsOnlyWhenTheRequesterMay(t *testing.T) {
	usages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	renewal := kubeletRequest(t, "renewal", "system:node:n1", "system:node:n1", usages...)
	joining := kubeletRequest(t, "joining", "system:bootstrap:abcdef", "system:node:n2", usages...)
	serving := kubeletRequest(t, "server-usages", "system:bootstrap:abcdef", "system:node:n3", certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth)

	got := approvingWith(t, map[string]bool{"selfnodeclient": true, "nodeclient": true}, renewal, joining, serving)
	if m := approvalMessage(got["renewal"]); m != "Auto approving self kubelet client certificate after SubjectAccessReview." {
		t.Errorf("renewal: %q", m)
	}
	if m := approvalMessage(got["joining"]); m != "Auto approving kubelet client certificate after SubjectAccessReview." {
		t.Errorf("joining node: %q", m)
	}
	if c := got["server-usages"].Status.Conditions; len(c) != 0 {
		t.Errorf("a request with serving usages was decided: %v", c)
	}

	got = approvingWith(t, map[string]bool{}, kubeletRequest(t, "not-allowed", "system:bootstrap:abcdef", "system:node:n2", usages...))
	if c := got["not-allowed"].Status.Conditions; len(c) != 0 {
		t.Errorf("approved without permission: %v", c)
	}
}

// proxyRequest is a node's request for a client certificate of subject, to the
// kube-apiserver-client signer.
func proxyRequest(t *testing.T, name string, subject pkix.Name, groups []string, usages ...certificatesv1.KeyUsage) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeAPIServerClientSignerName, Username: "system:node:n1", Groups: groups, Usages: usages,
		},
	}
}

func TestApprovesANodesProxyClientRequestsOnlyForExactlyThoseIdentities(t *testing.T) {
	client := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	nodes := []string{"system:nodes", "system:authenticated"}
	proxy := pkix.Name{CommonName: "system:kube-proxy"}
	got := approvingWith(t, map[string]bool{"nodeproxyclient": true},
		proxyRequest(t, "proxy", proxy, nodes, client...),
		proxyRequest(t, "network-policy", pkix.Name{CommonName: "system:skiff:network-policy-agent"}, nodes, client...),
		proxyRequest(t, "masters", pkix.Name{CommonName: "system:kube-proxy", Organization: []string{"system:masters"}}, nodes, client...),
		proxyRequest(t, "admin", pkix.Name{CommonName: "admin"}, nodes, client...),
		proxyRequest(t, "not-a-node", proxy, []string{"system:authenticated"}, client...),
		proxyRequest(t, "serving", proxy, nodes, certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth),
	)
	for _, name := range []string{"proxy", "network-policy"} {
		if m := approvalMessage(got[name]); m != "Auto approving proxy client certificate of a node after SubjectAccessReview." {
			t.Errorf("a node's %s request: %q", name, m)
		}
	}
	for _, name := range []string{"masters", "admin", "not-a-node", "serving"} {
		if c := got[name].Status.Conditions; len(c) != 0 {
			t.Errorf("%s: decided, want left for a person: %v", name, c)
		}
	}
	got = approvingWith(t, map[string]bool{}, proxyRequest(t, "not-allowed", proxy, nodes, client...))
	if c := got["not-allowed"].Status.Conditions; len(c) != 0 {
		t.Errorf("approved without permission: %v", c)
	}
}
