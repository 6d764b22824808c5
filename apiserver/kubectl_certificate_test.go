package apiserver_test

import (
	"context"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestStockKubectlApprovesAndDeniesCertificateSigningRequests(t *testing.T) {
	s := apiservertest.Start(t)
	kubeconfig := adminKubeconfig(t, s)
	for _, bin := range kubectlBinaries(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			suffix := strings.ReplaceAll(strings.TrimPrefix(filepath.Base(bin), "kubectl"), ".", "-")
			run := kubectlRunner(t, bin, kubeconfig, nil)
			manifest := filepath.Join(t.TempDir(), "csr.yaml")
			var docs []string
			for _, name := range []string{"approve-me" + suffix, "deny-me" + suffix} {
				docs = append(docs, fmt.Sprintf(`apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: %s
spec:
  request: %s
  signerName: example.com/kubectl
  expirationSeconds: 86400
  usages: ["digital signature", "client auth"]
`, name, base64.StdEncoding.EncodeToString(csrPEM(t, pkix.Name{CommonName: name}))))
			}
			if err := os.WriteFile(manifest, []byte(strings.Join(docs, "---\n")), 0o600); err != nil {
				t.Fatal(err)
			}
			run("apply", "-f", manifest)
			out := run("get", "csr", "approve-me"+suffix)
			if !strings.Contains(out, "SIGNERNAME") || !strings.Contains(out, "REQUESTEDDURATION") ||
				!strings.Contains(out, "example.com/kubectl") || !strings.Contains(out, "admin") || !strings.Contains(out, "24h") ||
				!strings.Contains(out, "Pending") {
				t.Errorf("get csr:\n%s", out)
			}
			if out := run("certificate", "approve", "approve-me"+suffix); !strings.Contains(out, "certificatesigningrequest.certificates.k8s.io/approve-me"+suffix+" approved") {
				t.Errorf("certificate approve: %s", out)
			}
			if out := run("certificate", "deny", "deny-me"+suffix); !strings.Contains(out, "certificatesigningrequest.certificates.k8s.io/deny-me"+suffix+" denied") {
				t.Errorf("certificate deny: %s", out)
			}
			approved, err := s.Client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), "approve-me"+suffix, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if c := approved.Status.Conditions; len(c) != 1 || c[0].Type != certificatesv1.CertificateApproved || c[0].Reason != "KubectlApprove" || c[0].LastUpdateTime.IsZero() {
				t.Errorf("approved with %+v", c)
			}
			out = run("get", "csr")
			if !strings.Contains(out, "Approved") || !strings.Contains(out, "Denied") {
				t.Errorf("get csr after approving and denying:\n%s", out)
			}
			run("delete", "csr", "approve-me"+suffix, "deny-me"+suffix)
		})
	}
}
