package csrsigning

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/utils/ptr"
)

func TestEachSignerKeepsUpstreamsRules(t *testing.T) {
	node := pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}
	client := []certificatesv1.KeyUsage{"digital signature", "client auth"}
	serving := []certificatesv1.KeyUsage{"digital signature", "key encipherment", "server auth"}
	cases := []struct {
		name, signer string
		req          x509.CertificateRequest
		usages       []certificatesv1.KeyUsage
		want         string
	}{
		{"kubelet client", certificatesv1.KubeAPIServerClientKubeletSignerName, x509.CertificateRequest{Subject: node}, client, ""},
		{"kubelet client in another group", certificatesv1.KubeAPIServerClientKubeletSignerName,
			x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:masters"}}}, client,
			"subject organization is not system:nodes"},
		{"kubelet client with a DNS name", certificatesv1.KubeAPIServerClientKubeletSignerName,
			x509.CertificateRequest{Subject: node, DNSNames: []string{"n1"}}, client, "DNS subjectAltNames are not allowed"},
		{"kubelet client not a node", certificatesv1.KubeAPIServerClientKubeletSignerName,
			x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice", Organization: []string{"system:nodes"}}}, client,
			"subject common name does not begin with system:node:"},
		{"kubelet client serving", certificatesv1.KubeAPIServerClientKubeletSignerName, x509.CertificateRequest{Subject: node}, serving,
			"usages did not match [client auth digital signature key encipherment]"},
		{"kubelet serving", certificatesv1.KubeletServingSignerName,
			x509.CertificateRequest{Subject: node, IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}}, serving, ""},
		{"kubelet serving without names", certificatesv1.KubeletServingSignerName, x509.CertificateRequest{Subject: node}, serving,
			"DNS or IP subjectAltName is required"},
		{"apiserver client", certificatesv1.KubeAPIServerClientSignerName, x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice"}}, client, ""},
		{"apiserver client without client auth", certificatesv1.KubeAPIServerClientSignerName,
			x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice"}}, []certificatesv1.KeyUsage{"digital signature"},
			"missing required usage for client certificate: client auth"},
	}
	for _, c := range cases {
		known, err := validateForSigner(c.signer, &c.req, c.usages)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if !known || got != c.want {
			t.Errorf("%s: known %v, error %q, want %q", c.name, known, got, c.want)
		}
	}
	if known, _ := validateForSigner("example.com/other", &x509.CertificateRequest{}, client); known {
		t.Error("another signer's request taken as ours")
	}
}

func TestRequestedDurationIsHonouredWithinTheSignersBounds(t *testing.T) {
	c := &Controller{ca: &CA{Duration: 24 * time.Hour}}
	for _, tc := range []struct {
		asked *int32
		want  time.Duration
	}{
		{nil, 24 * time.Hour},
		{ptr.To[int32](3600), time.Hour},
		{ptr.To[int32](7 * 24 * 3600), 24 * time.Hour},
		{ptr.To[int32](60), 10 * time.Minute},
	} {
		if got := c.duration(tc.asked); got != tc.want {
			t.Errorf("asked %v: %v, want %v", tc.asked, got, tc.want)
		}
	}
}
