// Package certificate keeps a kubelet's certificates, as upstream's kubelet certificate
// managers: its client certificate, bootstrapped with a bootstrap credential through a
// CertificateSigningRequest for the kube-apiserver-client-kubelet signer, and optionally its
// serving certificate, requested from the kubelet-serving signer. Each is renewed with the
// kubelet's own credentials when 70–90% of its life has passed, and the current one is kept in
// the kubelet's certificate directory, so that a restarted kubelet keeps them.
//
// It never writes a key anywhere but that directory (mode 0600), and never hands out a
// certificate that has expired while a renewal is pending: clients then fail as upstream's
// do, rather than authenticating with a credential the server would refuse.
package certificate

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate/csr"
	"k8s.io/client-go/util/connrotation"
)

// CurrentFileName is the file in the certificate directory holding the current client
// certificate and its key, upstream's kubelet-client-current.pem; ServingFileName the serving
// one's, kubelet-server-current.pem.
const (
	CurrentFileName = "kubelet-client-current.pem"
	ServingFileName = "kubelet-server-current.pem"
)

// Serving names what a kubelet's serving certificate is for: the node's host names and
// addresses.
type Serving struct {
	DNSNames    []string
	IPAddresses []net.IP
}

// Config configures a Manager.
type Config struct {
	// NodeName is the node whose identity the certificate carries: CN system:node:NodeName,
	// O system:nodes.
	NodeName string
	// CertDir holds CurrentFileName.
	CertDir string
	// Server is the API server's address and CA, without credentials.
	Server *rest.Config
	// Bootstrap, when set, asks for the first certificate when CertDir holds none that is
	// valid (the bootstrap token's kubeconfig).
	Bootstrap *rest.Config
	// Duration is the life asked for (spec.expirationSeconds); zero asks for the signer's
	// longest.
	Duration time.Duration
	// Serving, when set, makes the certificate a serving one for these names, from the
	// kubelet-serving signer (NewServing).
	Serving *Serving
	// RenewAt returns when within [notBefore, notAfter] a certificate is renewed; nil for
	// upstream's jittered 70–90% of its life.
	RenewAt func(notBefore, notAfter time.Time) time.Time
	// Identity, when set, makes the certificate a client one for this subject instead of the
	// node's, from the kube-apiserver-client signer, kept in FileName: a node's kube-proxy
	// (CN system:kube-proxy), asked for and renewed with the node's own credentials.
	Identity *pkix.Name
	// FileName is the file in CertDir holding the certificate; CurrentFileName when empty
	// (ServingFileName for NewServing).
	FileName string
}

// fileName is cfg.FileName or def.
func (cfg Config) fileName(def string) string {
	if cfg.FileName != "" {
		return cfg.FileName
	}
	return def
}

// Manager holds the current certificate and renews it.
type Manager struct {
	cfg  Config
	path string

	mu      sync.RWMutex
	current *tls.Certificate

	// conns are the connections made with the current certificate, closed when it changes
	// so that the next requests present the new one
	conns *connrotation.Dialer
}

// New loads the current certificate from cfg.CertDir, or bootstraps one with cfg.Bootstrap,
// waiting for its approval and issue until ctx is done.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.RenewAt == nil {
		cfg.RenewAt = jitteredRenewal
	}
	m := &Manager{cfg: cfg, path: filepath.Join(cfg.CertDir, cfg.fileName(CurrentFileName))}
	m.conns = connrotation.NewDialer((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	if c, err := loadPair(m.path); err == nil && time.Now().Before(c.Leaf.NotAfter) {
		m.current = c
		return m, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		slog.Warn("kubelet client certificate unusable, requesting a new one", "file", m.path, "err", err)
	}
	if cfg.Bootstrap == nil {
		return nil, fmt.Errorf("no valid client certificate in %s and no bootstrap credentials", m.path)
	}
	client, err := kubernetes.NewForConfig(cfg.Bootstrap)
	if err != nil {
		return nil, err
	}
	subject := "system:node:" + cfg.NodeName
	if cfg.Identity != nil {
		subject = cfg.Identity.CommonName
	}
	slog.Info("requesting a client certificate with the bootstrap credentials", "node", cfg.NodeName, "subject", subject)
	if err := m.request(ctx, client); err != nil {
		return nil, fmt.Errorf("bootstrap client certificate: %w", err)
	}
	return m, nil
}

// NewServing loads the current serving certificate from cfg.CertDir, if any; Run asks for
// one when there is none, since a serving certificate waits for a person (or an approver) to
// approve it and the kubelet serves a self-signed one meanwhile, as upstream's does.
func NewServing(cfg Config) *Manager {
	if cfg.RenewAt == nil {
		cfg.RenewAt = jitteredRenewal
	}
	if cfg.Serving == nil {
		cfg.Serving = &Serving{}
	}
	m := &Manager{cfg: cfg, path: filepath.Join(cfg.CertDir, cfg.fileName(ServingFileName))}
	m.conns = connrotation.NewDialer((&net.Dialer{}).DialContext)
	if c, err := loadPair(m.path); err == nil && time.Now().Before(c.Leaf.NotAfter) {
		m.current = c
	}
	return m
}

// Current is the certificate in use; nil while a serving certificate has not been issued.
func (m *Manager) Current() *tls.Certificate {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.current
}

// CertificateFile is the file holding the current certificate and key, which a kubeconfig
// may name as both client-certificate and client-key.
func (m *Manager) CertificateFile() string { return m.path }

// RESTConfig is cfg.Server authenticating with the current certificate, whichever it is at
// the time of each new connection.
func (m *Manager) RESTConfig() (*rest.Config, error) {
	pool := x509.NewCertPool()
	caPEM := m.cfg.Server.CAData
	if len(caPEM) == 0 && m.cfg.Server.CAFile != "" {
		b, err := os.ReadFile(m.cfg.Server.CAFile)
		if err != nil {
			return nil, err
		}
		caPEM = b
	}
	var rootCAs *x509.CertPool
	if len(caPEM) > 0 {
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("the server's CA holds no certificate")
		}
		rootCAs = pool
	}
	tlsConfig := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    rootCAs,
		ServerName: m.cfg.Server.TLSClientConfig.ServerName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := m.Current()
			if c == nil || time.Now().After(c.Leaf.NotAfter) {
				// no certificate rather than an expired one: the server answers 401
				return &tls.Certificate{}, nil
			}
			return c, nil
		},
	}
	out := &rest.Config{
		Host: m.cfg.Server.Host, APIPath: m.cfg.Server.APIPath, UserAgent: m.cfg.Server.UserAgent,
		QPS: m.cfg.Server.QPS, Burst: m.cfg.Server.Burst, Timeout: m.cfg.Server.Timeout,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     tlsConfig,
			DialContext:         m.conns.DialContext,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 25,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		},
	}
	return out, nil
}

// Run renews the certificate when due until ctx is done, asking with the certificate itself
// through client (a client of RESTConfig). A failed renewal is retried with back-off.
func (m *Manager) Run(ctx context.Context, client kubernetes.Interface) {
	backoff := time.Second
	for {
		var wait time.Duration
		if c := m.Current(); c != nil {
			wait = time.Until(m.cfg.RenewAt(c.Leaf.NotBefore, c.Leaf.NotAfter))
			slog.Info("kubelet certificate renewal scheduled", "node", m.cfg.NodeName, "file", m.path, "expires", c.Leaf.NotAfter, "renewIn", wait.Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		for {
			err := m.request(ctx, client)
			if err == nil {
				backoff = time.Second
				break
			}
			if ctx.Err() != nil {
				return
			}
			slog.Warn("renewing the kubelet certificate", "file", m.path, "node", m.cfg.NodeName, "err", err, "retryIn", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Minute)
		}
	}
}

// jitteredRenewal is upstream's deadline: somewhere in 70–90% of the certificate's life.
func jitteredRenewal(notBefore, notAfter time.Time) time.Time {
	life := notAfter.Sub(notBefore)
	n, _ := rand.Int(rand.Reader, big.NewInt(1000))
	fraction := 0.7 + 0.2*float64(n.Int64())/1000
	return notBefore.Add(time.Duration(float64(life) * fraction))
}

// request asks for a new certificate with a new key through client, waits for it, stores it
// and makes it current.
func (m *Manager) request(ctx context.Context, client kubernetes.Interface) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	subject := &pkix.Name{CommonName: "system:node:" + m.cfg.NodeName, Organization: []string{"system:nodes"}}
	signer := certificatesv1.KubeAPIServerClientKubeletSignerName
	usages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	var dnsNames []string
	var ips []net.IP
	if id := m.cfg.Identity; id != nil {
		subject, signer = id, certificatesv1.KubeAPIServerClientSignerName
	}
	if s := m.cfg.Serving; s != nil {
		signer, dnsNames, ips = certificatesv1.KubeletServingSignerName, s.DNSNames, s.IPAddresses
		usages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	}
	csrPEM, err := cert.MakeCSR(key, subject, dnsNames, ips)
	if err != nil {
		return err
	}
	var duration *time.Duration
	if m.cfg.Duration > 0 {
		duration = &m.cfg.Duration
	}
	// a generated name: each request is new, as upstream's "node-csr-" names
	name, uid, err := csr.RequestCertificateWithContext(ctx, client, csrPEM, "", signer, duration, usages, key)
	if err != nil {
		return err
	}
	certPEM, err := csr.WaitForCertificate(ctx, client, name, uid)
	if err != nil {
		return fmt.Errorf("certificate signing request %s: %w", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	pair := append(bytes.Clone(certPEM), pemBlock("EC PRIVATE KEY", keyDER)...)
	c, err := parsePair(pair)
	if err != nil {
		return fmt.Errorf("issued certificate: %w", err)
	}
	if err := writeFileAtomic(m.path, pair); err != nil {
		return err
	}
	m.mu.Lock()
	m.current = c
	m.mu.Unlock()
	// connections authenticated with the old certificate go; the next ones use the new
	m.conns.CloseAll()
	slog.Info("kubelet certificate issued", "node", m.cfg.NodeName, "signer", signer, "csr", name, "expires", c.Leaf.NotAfter)
	return nil
}

func loadPair(path string) (*tls.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parsePair(b)
}

// parsePair reads a certificate and its key from one PEM file.
func parsePair(b []byte) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(b, b)
	if err != nil {
		return nil, err
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

func pemBlock(blockType string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
}

// writeFileAtomic replaces path with data (mode 0600) so that a crash leaves the old file or
// the new one, never half of either.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kubelet-client-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
