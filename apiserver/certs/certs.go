// Package certs keeps the cluster's PKI in a data directory: a certificate authority, the API
// server's serving certificate, the admin's client certificate and the key pair that signs
// service-account tokens. Ensure makes them once and
// reuses them on every later start, renewing only a leaf certificate that no longer fits (host
// names changed, near expiry, or signed by another CA).
//
// It never replaces an existing CA (every kubeconfig trusts it) or service-account key (every
// issued token is signed by it), never leaves a key readable by
// anyone but the owner (directory 0700, keys 0600), and never writes a half file: each file is
// written beside its final name and renamed into place.
package certs

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the PKI directory, as kubeadm names them where it has a name.
const (
	CACertFileName      = "ca.crt"
	CAKeyFileName       = "ca.key"
	ServingCertFileName = "apiserver.crt"
	ServingKeyFileName  = "apiserver.key"
	AdminCertFileName   = "admin.crt"
	AdminKeyFileName    = "admin.key"
	// ServiceAccountKeyFileName and ServiceAccountPublicKeyFileName are kubeadm's sa.key and
	// sa.pub.
	ServiceAccountKeyFileName       = "sa.key"
	ServiceAccountPublicKeyFileName = "sa.pub"
)

// The admin identity: system:masters is the group upstream's RBAC bootstrap binds to
// cluster-admin.
const (
	AdminUser  = "admin"
	AdminGroup = "system:masters"
)

// Lifetimes. Leaves are renewed by Ensure when less than renewBefore remains.
const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	leafLifetime = 365 * 24 * time.Hour
	renewBefore  = 30 * 24 * time.Hour
	// clockSkew back-dates NotBefore so that a machine whose clock is slightly behind accepts
	// a certificate made a moment ago.
	clockSkew = 5 * time.Minute
)

// clusterDNSNames are the names under which pods reach the API server through the default
// "kubernetes" Service.
var clusterDNSNames = []string{
	"kubernetes",
	"kubernetes.default",
	"kubernetes.default.svc",
	"kubernetes.default.svc.cluster.local",
}

// PKI is the cluster's certificates, loaded from (and kept in) Dir.
type PKI struct {
	// Dir is the directory holding every file below.
	Dir string

	CACertFile, CAKeyFile           string
	ServingCertFile, ServingKeyFile string
	AdminCertFile, AdminKeyFile     string
	// ServiceAccountKeyFile and ServiceAccountPublicKeyFile hold the service-account token
	// signing key pair.
	ServiceAccountKeyFile, ServiceAccountPublicKeyFile string

	// CA is the certificate authority; CAPEM its PEM encoding; CAPool a pool holding only it,
	// for verifying both the serving certificate and client certificates.
	CA     *x509.Certificate
	CAPEM  []byte
	CAPool *x509.CertPool

	// ServingCert is the API server's certificate and key (Leaf is set).
	ServingCert tls.Certificate
	// AdminCert is the admin's client certificate and key (Leaf is set): CN admin, O
	// system:masters.
	AdminCert tls.Certificate
	// ServiceAccountKey signs service-account tokens; its public half verifies them on every
	// API server that shares this directory.
	ServiceAccountKey crypto.Signer
	// FrontProxy is the CA and client certificate the API server proxies to extension API
	// servers with (frontproxy.go).
	FrontProxy *FrontProxy

	caKey                     crypto.Signer
	adminCertPEM, adminKeyPEM []byte
}

// Ensure loads the PKI in dir, creating what is missing: the directory (0700), the CA, the
// serving certificate, the admin client certificate and the service-account key pair. The serving certificate names
// localhost, 127.0.0.1, ::1, the host name, every address of the host's interfaces, the
// in-cluster names of the kubernetes Service, and extraSANs (each an IP address or a DNS
// name); it is made anew when that set differs from the one it was made for.
//
// An existing CA is always reused; a CA certificate without its key, or an expired CA, is an
// error rather than a silent replacement that would break every client that trusts it.
func Ensure(dir string, extraSANs ...string) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating PKI directory: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone; the keys must not be reachable.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restricting PKI directory: %w", err)
	}
	p := &PKI{
		Dir:             dir,
		CACertFile:      filepath.Join(dir, CACertFileName),
		CAKeyFile:       filepath.Join(dir, CAKeyFileName),
		ServingCertFile: filepath.Join(dir, ServingCertFileName),
		ServingKeyFile:  filepath.Join(dir, ServingKeyFileName),
		AdminCertFile:   filepath.Join(dir, AdminCertFileName),
		AdminKeyFile:    filepath.Join(dir, AdminKeyFileName),

		ServiceAccountKeyFile:       filepath.Join(dir, ServiceAccountKeyFileName),
		ServiceAccountPublicKeyFile: filepath.Join(dir, ServiceAccountPublicKeyFileName),
	}
	if err := p.ensureCA(); err != nil {
		return nil, err
	}
	dnsNames, ips := servingSANs(extraSANs)
	if err := p.ensureServing(dnsNames, ips); err != nil {
		return nil, err
	}
	if err := p.ensureAdmin(); err != nil {
		return nil, err
	}
	if err := p.ensureServiceAccountKey(); err != nil {
		return nil, err
	}
	if err := p.ensureFrontProxy(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *PKI) ensureCA() error {
	certPEM, err := os.ReadFile(p.CACertFile)
	if errors.Is(err, fs.ErrNotExist) {
		// No CA yet (a key without its certificate is what an interrupted first start leaves).
		certPEM, keyPEM, err := newCA(time.Now())
		if err != nil {
			return err
		}
		if err := writeKeyPair(p.CAKeyFile, p.CACertFile, keyPEM, certPEM); err != nil {
			return err
		}
		slog.Info("created certificate authority", "file", p.CACertFile)
		return p.loadCA(certPEM, keyPEM)
	}
	if err != nil {
		return fmt.Errorf("reading CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(p.CAKeyFile)
	if err != nil {
		return fmt.Errorf("CA certificate %s without a usable key: %w", p.CACertFile, err)
	}
	if err := os.Chmod(p.CAKeyFile, 0o600); err != nil {
		return fmt.Errorf("restricting CA key: %w", err)
	}
	if err := p.loadCA(certPEM, keyPEM); err != nil {
		return err
	}
	if time.Now().After(p.CA.NotAfter) {
		return fmt.Errorf("CA certificate %s expired on %s; remove %s to make a new cluster PKI",
			p.CACertFile, p.CA.NotAfter.Format(time.DateOnly), p.Dir)
	}
	return nil
}

func (p *PKI) loadCA(certPEM, keyPEM []byte) error {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("loading CA from %s: %w", p.Dir, err)
	}
	if !pair.Leaf.IsCA {
		return fmt.Errorf("%s is not a CA certificate", p.CACertFile)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("CA key %s cannot sign", p.CAKeyFile)
	}
	p.CA, p.CAPEM, p.caKey = pair.Leaf, certPEM, signer
	p.CAPool = x509.NewCertPool()
	p.CAPool.AddCert(p.CA)
	return nil
}

func (p *PKI) ensureServing(dnsNames []string, ips []net.IP) error {
	pair, _, _, err := p.loadLeaf(p.ServingCertFile, p.ServingKeyFile, x509.ExtKeyUsageServerAuth)
	if err == nil && sameSANs(pair.Leaf, dnsNames, ips) {
		p.ServingCert = pair
		return nil
	}
	reason := "none yet"
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		reason = err.Error()
	} else if err == nil {
		reason = "host names or addresses changed"
	}
	certPEM, keyPEM, err := p.issue(servingTemplate(dnsNames, ips, time.Now()))
	if err != nil {
		return err
	}
	if err := writeKeyPair(p.ServingKeyFile, p.ServingCertFile, keyPEM, certPEM); err != nil {
		return err
	}
	if p.ServingCert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return err
	}
	slog.Info("created serving certificate", "file", p.ServingCertFile, "reason", reason,
		"names", strings.Join(sanStrings(dnsNames, ips), ","))
	return nil
}

func (p *PKI) ensureAdmin() error {
	pair, certPEM, keyPEM, err := p.loadLeaf(p.AdminCertFile, p.AdminKeyFile, x509.ExtKeyUsageClientAuth)
	if err == nil && pair.Leaf.Subject.CommonName == AdminUser &&
		slices.Equal(pair.Leaf.Subject.Organization, []string{AdminGroup}) {
		p.AdminCert, p.adminCertPEM, p.adminKeyPEM = pair, certPEM, keyPEM
		return nil
	}
	certPEM, keyPEM, err = p.ClientCertificate(AdminUser, AdminGroup)
	if err != nil {
		return err
	}
	if err := writeKeyPair(p.AdminKeyFile, p.AdminCertFile, keyPEM, certPEM); err != nil {
		return err
	}
	if p.AdminCert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return err
	}
	p.adminCertPEM, p.adminKeyPEM = certPEM, keyPEM
	slog.Info("created admin client certificate", "file", p.AdminCertFile)
	return nil
}

// loadLeaf loads a key pair and checks that it is still worth keeping: the key matches, the CA
// signed it for usage, and it is not about to expire. The error says why not.
func (p *PKI) loadLeaf(certFile, keyFile string, usage x509.ExtKeyUsage) (pair tls.Certificate, certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(certFile); err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	if keyPEM, err = os.ReadFile(keyFile); err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	if pair, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("%s: %w", certFile, err)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{
		Roots:     p.CAPool,
		KeyUsages: []x509.ExtKeyUsage{usage},
	}); err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("%s: %w", certFile, err)
	}
	if time.Until(pair.Leaf.NotAfter) < renewBefore {
		return tls.Certificate{}, nil, nil, fmt.Errorf("%s expires on %s", certFile,
			pair.Leaf.NotAfter.Format(time.DateOnly))
	}
	return pair, certPEM, keyPEM, nil
}

// ClientCertificate mints a client certificate signed by the cluster CA that authenticates as
// user with groups (the certificate's CN and O), valid for a year. It returns PEM-encoded
// certificate and key; tls.X509KeyPair loads them. Nothing is written to disk.
func (p *PKI) ClientCertificate(user string, groups ...string) (certPEM, keyPEM []byte, err error) {
	if user == "" {
		return nil, nil, errors.New("client certificate needs a user name")
	}
	return p.issue(clientTemplate(user, groups, time.Now()))
}

// servingSANs is the deduplicated set of names and addresses the serving certificate must
// carry, in a stable order.
func servingSANs(extra []string) ([]string, []net.IP) {
	names := []string{"localhost"}
	names = append(names, clusterDNSNames...)
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	if host, err := os.Hostname(); err == nil && host != "" {
		names = append(names, host)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP)
			}
		}
	}
	for _, s := range extra {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		} else {
			names = append(names, strings.ToLower(s))
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	slices.SortFunc(ips, func(a, b net.IP) int { return bytes.Compare(a.To16(), b.To16()) })
	ips = slices.CompactFunc(ips, func(a, b net.IP) bool { return a.Equal(b) })
	return names, ips
}

// sameSANs reports whether cert names exactly dnsNames and ips.
func sameSANs(cert *x509.Certificate, dnsNames []string, ips []net.IP) bool {
	have := sanStrings(cert.DNSNames, cert.IPAddresses)
	want := sanStrings(dnsNames, ips)
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(slices.Compact(have), slices.Compact(want))
}

func sanStrings(dnsNames []string, ips []net.IP) []string {
	out := slices.Clone(dnsNames)
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

// writeKeyPair writes the key (0600) before the certificate (0644): a certificate file is the
// mark that its pair is complete.
func writeKeyPair(keyFile, certFile string, keyPEM, certPEM []byte) error {
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, certPEM, 0o644)
}

// writeFileAtomic replaces path with data, so that a reader sees the old file or the new one,
// never a part; the file has exactly mode perm whatever the umask.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func encodePEM(blockType string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
}
