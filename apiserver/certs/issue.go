package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// newKey is the key every certificate made here gets: ECDSA P-256, small and fast, and
// accepted by every Kubernetes client.
func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return key, encodePEM("EC PRIVATE KEY", der), nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// newCA makes the cluster's self-signed CA certificate, valid for ten years from now.
func newCA(now time.Time) (certPEM, keyPEM []byte, err error) { return newNamedCA("skiff-ca", now) }

// newNamedCA makes a self-signed CA certificate named name, valid for ten years from now.
func newNamedCA(name string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	ski := sha1.Sum(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski[:],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	return encodePEM("CERTIFICATE", der), keyPEM, nil
}

func servingTemplate(dnsNames []string, ips []net.IP, now time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(leafLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}
}

// oidOrganization is the O attribute of a distinguished name.
var oidOrganization = asn1.ObjectIdentifier{2, 5, 4, 10}

// clientTemplate is a client certificate as upstream's x509 authenticator reads it: the CN is
// the user name, each O a group.
func clientTemplate(user string, groups []string, now time.Time) *x509.Certificate {
	// Each group gets an RDN of its own: pkix.Name.Organization would put them all in one
	// DER SET, which sorts them, and the groups would come back in another order.
	subject := pkix.Name{CommonName: user}
	for _, g := range groups {
		subject.ExtraNames = append(subject.ExtraNames, pkix.AttributeTypeAndValue{Type: oidOrganization, Value: g})
	}
	return &x509.Certificate{
		Subject:     subject,
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(leafLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// issue signs tmpl with the CA for a fresh key, never past the CA's own expiry.
func (p *PKI) issue(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	return issueWith(p.CA, p.caKey, tmpl)
}

// issueWith signs tmpl with ca for a fresh key, never past ca's own expiry.
func issueWith(ca *x509.Certificate, caKey crypto.Signer, tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = serialNumber(); err != nil {
		return nil, nil, err
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("signing certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	return encodePEM("CERTIFICATE", der), keyPEM, nil
}

// KubeletServingCertificate mints the serving certificate of a node's kubelet API, signed by
// the cluster CA as upstream's serverTLSBootstrap certificates are: CN system:node:<name>, O
// system:nodes, for the node's name and IPs (the addresses the API server dials it on) and
// localhost. It returns PEM-encoded certificate and key; nothing is written to disk.
func (p *PKI) KubeletServingCertificate(nodeName string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	if nodeName == "" {
		return nil, nil, fmt.Errorf("kubelet serving certificate needs a node name")
	}
	tmpl := servingTemplate([]string{nodeName, "localhost"}, append(append([]net.IP{}, ips...), net.IPv4(127, 0, 0, 1), net.IPv6loopback), time.Now())
	tmpl.Subject = pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}}
	return p.issue(tmpl)
}

// LoadCA loads the cluster CA of the PKI in dir, to sign with, making and changing nothing;
// only the CA fields of the PKI it returns are set.
func LoadCA(dir string) (*PKI, error) {
	p := &PKI{Dir: dir, CACertFile: filepath.Join(dir, CACertFileName), CAKeyFile: filepath.Join(dir, CAKeyFileName)}
	certPEM, err := os.ReadFile(p.CACertFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(p.CAKeyFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA key: %w", err)
	}
	if err := p.loadCA(certPEM, keyPEM); err != nil {
		return nil, err
	}
	return p, nil
}
