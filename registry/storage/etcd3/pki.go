package etcd3

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// embeddedPKI is the embedded etcd's own certificate authority and the three certificates it
// signs: the server's (client URLs), the peer's (peer URLs, for members that join later) and
// the one client that may talk to it, the API server. It is a CA of its own, as kubeadm keeps
// etcd/ca.crt apart from the cluster CA: etcd checks only that a client certificate chains to
// the CA it trusts, so trusting the cluster CA would open the store to every user and node
// holding a client certificate from it.
//
// The files live in one directory (0700, keys 0600, owned by whoever runs skiff): a local user
// who cannot read them cannot reach the store, which refuses connections without a client
// certificate from this CA.
type embeddedPKI struct {
	dir                           string
	caFile, caKeyFile             string
	serverCertFile, serverKeyFile string
	peerCertFile, peerKeyFile     string
	clientCertFile, clientKeyFile string
	ca                            *x509.Certificate
	caKey                         *ecdsa.PrivateKey
	caPool                        *x509.CertPool
	clientCertificate             tls.Certificate
}

// File names inside the embedded etcd's PKI directory, as kubeadm names them under pki/etcd
// (and apiserver-etcd-client for the API server's client certificate).
const (
	etcdCAFileName         = "ca.crt"
	etcdCAKeyFileName      = "ca.key"
	etcdServerCertFileName = "server.crt"
	etcdServerKeyFileName  = "server.key"
	etcdPeerCertFileName   = "peer.crt"
	etcdPeerKeyFileName    = "peer.key"
	etcdClientCertFileName = "apiserver-etcd-client.crt"
	etcdClientKeyFileName  = "apiserver-etcd-client.key"
)

// EtcdClientCommonName is the common name of the embedded etcd's only client certificate.
const EtcdClientCommonName = "kube-apiserver-etcd-client"

const (
	etcdCALifetime   = 10 * 365 * 24 * time.Hour
	etcdLeafLifetime = 365 * 24 * time.Hour
	etcdRenewBefore  = 30 * 24 * time.Hour
	etcdClockSkew    = 5 * time.Minute
)

// ensureEmbeddedPKI loads the PKI in dir, making what is missing or about to expire. The CA is
// made once and kept; leaves signed by another CA (a CA made anew after its key was lost) are
// made again.
func ensureEmbeddedPKI(dir string, memberIPs ...net.IP) (*embeddedPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd PKI directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restricting etcd PKI directory: %w", err)
	}
	p := &embeddedPKI{
		dir:            dir,
		caFile:         filepath.Join(dir, etcdCAFileName),
		caKeyFile:      filepath.Join(dir, etcdCAKeyFileName),
		serverCertFile: filepath.Join(dir, etcdServerCertFileName),
		serverKeyFile:  filepath.Join(dir, etcdServerKeyFileName),
		peerCertFile:   filepath.Join(dir, etcdPeerCertFileName),
		peerKeyFile:    filepath.Join(dir, etcdPeerKeyFileName),
		clientCertFile: filepath.Join(dir, etcdClientCertFileName),
		clientKeyFile:  filepath.Join(dir, etcdClientKeyFileName),
	}
	if err := p.ensureCA(); err != nil {
		return nil, err
	}
	now := time.Now()
	// Members of one machine's cluster reach each other on loopback; a member of a cluster
	// spanning machines is reached at memberIPs too.
	loopback := func(cn string, usages ...x509.ExtKeyUsage) *x509.Certificate {
		return &x509.Certificate{
			Subject:     pkix.Name{CommonName: cn},
			NotBefore:   now.Add(-etcdClockSkew),
			NotAfter:    now.Add(etcdLeafLifetime),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: usages,
			DNSNames:    []string{"localhost"},
			IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, memberIPs...),
		}
	}
	server := x509.ExtKeyUsageServerAuth
	client := x509.ExtKeyUsageClientAuth
	if err := p.ensureLeaf(p.serverKeyFile, p.serverCertFile, loopback("etcd-server", server, client)); err != nil {
		return nil, err
	}
	if err := p.ensureLeaf(p.peerKeyFile, p.peerCertFile, loopback("etcd-peer", server, client)); err != nil {
		return nil, err
	}
	clientTmpl := loopback(EtcdClientCommonName, client)
	clientTmpl.DNSNames, clientTmpl.IPAddresses = nil, nil
	if err := p.ensureLeaf(p.clientKeyFile, p.clientCertFile, clientTmpl); err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(p.clientCertFile, p.clientKeyFile)
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	p.clientCertificate = pair
	return p, nil
}

func (p *embeddedPKI) ensureCA() error {
	certPEM, certErr := os.ReadFile(p.caFile)
	keyPEM, keyErr := os.ReadFile(p.caKeyFile)
	if certErr == nil && keyErr == nil {
		cert, key, err := parsePair(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("etcd CA in %s: %w", p.dir, err)
		}
		if time.Now().Before(cert.NotAfter.Add(-etcdRenewBefore)) {
			p.setCA(cert, key)
			return nil
		}
	} else if !errors.Is(certErr, fs.ErrNotExist) && certErr != nil || !errors.Is(keyErr, fs.ErrNotExist) && keyErr != nil {
		return fmt.Errorf("etcd CA in %s: %w", p.dir, errors.Join(certErr, keyErr))
	}
	// No CA (or one about to expire): only skiff's API server holds certificates from it, and
	// they are made again below, so a new CA breaks nobody.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "etcd-ca"},
		NotBefore:             now.Add(-etcdClockSkew),
		NotAfter:              now.Add(etcdCALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("creating etcd CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	if err := writePair(p.caKeyFile, p.caFile, key, der); err != nil {
		return err
	}
	p.setCA(cert, key)
	return nil
}

func (p *embeddedPKI) setCA(cert *x509.Certificate, key *ecdsa.PrivateKey) {
	p.ca, p.caKey = cert, key
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(cert)
}

// ensureLeaf keeps the pair in keyFile/certFile if it was signed by this CA and is not about to
// expire, and otherwise signs tmpl for a new key.
func (p *embeddedPKI) ensureLeaf(keyFile, certFile string, tmpl *x509.Certificate) error {
	certPEM, certErr := os.ReadFile(certFile)
	keyPEM, keyErr := os.ReadFile(keyFile)
	if certErr == nil && keyErr == nil {
		if cert, _, err := parsePair(certPEM, keyPEM); err == nil &&
			cert.CheckSignatureFrom(p.ca) == nil && time.Now().Before(cert.NotAfter.Add(-etcdRenewBefore)) &&
			namesAll(cert, tmpl.IPAddresses) {
			return nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
		return err
	}
	if tmpl.NotAfter.After(p.ca.NotAfter) {
		tmpl.NotAfter = p.ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return fmt.Errorf("signing etcd certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return writePair(keyFile, certFile, key, der)
}

// namesAll says whether cert names every one of ips.
func namesAll(cert *x509.Certificate, ips []net.IP) bool {
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// clientTLS is the TLS configuration of a client of the embedded etcd.
func (p *embeddedPKI) clientTLS() *tls.Config {
	return &tls.Config{
		RootCAs:      p.caPool,
		Certificates: []tls.Certificate{p.clientCertificate},
		MinVersion:   tls.VersionTLS12,
	}
}

func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certBlock, _ := pem.Decode(certPEM)
	keyBlock, _ := pem.Decode(keyPEM)
	if certBlock == nil || keyBlock == nil {
		return nil, nil, errors.New("not PEM")
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New("key does not match certificate")
	}
	return cert, key, nil
}

// writePair writes the key (0600) before the certificate: a certificate file is the mark that
// its pair is complete.
func writePair(keyFile, certFile string, key *ecdsa.PrivateKey, certDER []byte) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o644)
}

// writeFileAtomic replaces path with data (mode perm whatever the umask), so that a reader sees
// the old file or the new one, never a part.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
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
