package certs

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// The front proxy is the API server in its role of proxying requests to extension API
// servers (APIService aggregation): it presents a client certificate of a CA of its own,
// distinct from the cluster CA, and names the user it authenticated in X-Remote-* headers.
// Extension servers trust those headers only over a connection whose certificate that CA
// signed and whose CN is an allowed name, as upstream's requestheader authenticator does; a
// cluster-CA client certificate can therefore never pass itself off as the front proxy.

// File names of the front proxy's PKI, as kubeadm names them.
const (
	FrontProxyCACertFileName     = "front-proxy-ca.crt"
	FrontProxyCAKeyFileName      = "front-proxy-ca.key"
	FrontProxyClientCertFileName = "front-proxy-client.crt"
	FrontProxyClientKeyFileName  = "front-proxy-client.key"
)

// FrontProxyClientName is the CN of the front proxy's client certificate, the one name the
// extension-apiserver-authentication ConfigMap allows (upstream's requestheader-allowed-names).
const FrontProxyClientName = "front-proxy-client"

// FrontProxy is the front proxy's CA and client certificate.
type FrontProxy struct {
	CACertFile, CAKeyFile         string
	ClientCertFile, ClientKeyFile string
	// CAPEM is the front-proxy CA certificate, PEM-encoded: what extension servers verify the
	// client certificate with (requestheader-client-ca-file).
	CAPEM []byte
	// ClientCert is the client certificate (CN front-proxy-client) and key; Leaf is set.
	ClientCert tls.Certificate
}

// ensureFrontProxy loads the front proxy's CA and client certificate, making what is missing.
// As the cluster CA, an existing front-proxy CA is never replaced; the client certificate is
// made anew when it no longer verifies, has another name or nears its expiry.
func (p *PKI) ensureFrontProxy() error {
	fp := &FrontProxy{
		CACertFile:     filepath.Join(p.Dir, FrontProxyCACertFileName),
		CAKeyFile:      filepath.Join(p.Dir, FrontProxyCAKeyFileName),
		ClientCertFile: filepath.Join(p.Dir, FrontProxyClientCertFileName),
		ClientKeyFile:  filepath.Join(p.Dir, FrontProxyClientKeyFileName),
	}
	caPEM, err := os.ReadFile(fp.CACertFile)
	var caKeyPEM []byte
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if caPEM, caKeyPEM, err = newNamedCA("front-proxy-ca", time.Now()); err != nil {
			return err
		}
		if err := writeKeyPair(fp.CAKeyFile, fp.CACertFile, caKeyPEM, caPEM); err != nil {
			return err
		}
		slog.Info("created front-proxy certificate authority", "file", fp.CACertFile)
	case err != nil:
		return fmt.Errorf("reading front-proxy CA certificate: %w", err)
	default:
		if caKeyPEM, err = os.ReadFile(fp.CAKeyFile); err != nil {
			return fmt.Errorf("front-proxy CA certificate %s without a usable key: %w", fp.CACertFile, err)
		}
	}
	caPair, err := tls.X509KeyPair(caPEM, caKeyPEM)
	if err != nil {
		return fmt.Errorf("loading front-proxy CA: %w", err)
	}
	caKey, ok := caPair.PrivateKey.(crypto.Signer)
	if !ok || !caPair.Leaf.IsCA {
		return fmt.Errorf("%s is not a usable CA", fp.CACertFile)
	}
	if time.Now().After(caPair.Leaf.NotAfter) {
		return fmt.Errorf("front-proxy CA certificate %s expired on %s; remove it and its key to make a new one",
			fp.CACertFile, caPair.Leaf.NotAfter.Format(time.DateOnly))
	}
	fp.CAPEM = caPEM
	pool := x509.NewCertPool()
	pool.AddCert(caPair.Leaf)

	if pair, err := tls.LoadX509KeyPair(fp.ClientCertFile, fp.ClientKeyFile); err == nil &&
		pair.Leaf.Subject.CommonName == FrontProxyClientName && time.Until(pair.Leaf.NotAfter) >= renewBefore {
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			fp.ClientCert = pair
			p.FrontProxy = fp
			return nil
		}
	}
	certPEM, keyPEM, err := issueWith(caPair.Leaf, caKey, clientTemplate(FrontProxyClientName, nil, time.Now()))
	if err != nil {
		return err
	}
	if err := writeKeyPair(fp.ClientKeyFile, fp.ClientCertFile, keyPEM, certPEM); err != nil {
		return err
	}
	if fp.ClientCert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return err
	}
	slog.Info("created front-proxy client certificate", "file", fp.ClientCertFile)
	p.FrontProxy = fp
	return nil
}
