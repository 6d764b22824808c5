package authn

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// X509 authenticates a request by its TLS client certificate: a certificate that chains to the
// CA pool for client authentication is the user named by its subject's CN, in the groups named
// by its O values.
//
// It verifies the certificate itself rather than trusting the TLS layer's verified chains, so
// the server may ask for client certificates with tls.RequestClientCert (as upstream does):
// then a bad certificate becomes a 401 the client can read, not a failed handshake.
type X509 struct {
	roots *x509.CertPool

	// verified remembers chains that verified, so that a client's every request does not
	// pay for a signature check (a fifth of a write's CPU otherwise). Entries end with the
	// chain's earliest expiry; the map is dropped whole when it reaches maxVerified.
	mu       sync.Mutex
	verified map[[sha256.Size]byte]verifiedChain
}

type verifiedChain struct {
	user     User
	notAfter time.Time
}

const maxVerified = 4096

var _ Authenticator = (*X509)(nil)

// NewX509 returns an authenticator for client certificates signed by a CA in roots.
func NewX509(roots *x509.CertPool) *X509 {
	return &X509{roots: roots, verified: map[[sha256.Size]byte]verifiedChain{}}
}

// Authenticate implements Authenticator. A request without a client certificate, or whose
// certificate has no CN, is not X509's to judge.
func (a *X509) Authenticate(r *http.Request) (*User, bool, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, false, nil
	}
	leaf := r.TLS.PeerCertificates[0]
	h := sha256.New()
	for _, c := range r.TLS.PeerCertificates {
		h.Write(c.Raw)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	now := time.Now()
	a.mu.Lock()
	cached, ok := a.verified[key]
	a.mu.Unlock()
	if ok && now.Before(cached.notAfter) {
		u := cached.user
		u.Groups = slices.Clone(u.Groups)
		return &u, true, nil
	}
	opts := x509.VerifyOptions{
		Roots:     a.roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(r.TLS.PeerCertificates) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range r.TLS.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := leaf.Verify(opts); err != nil {
		return nil, false, fmt.Errorf("verifying certificate %s failed: %w", certificateIdentifier(leaf), err)
	}
	if leaf.Subject.CommonName == "" {
		return nil, false, nil
	}
	user := withAuthenticatedGroup(&User{
		Name:   leaf.Subject.CommonName,
		Groups: slices.Clone(leaf.Subject.Organization),
	})
	notAfter := leaf.NotAfter
	for _, c := range r.TLS.PeerCertificates[1:] {
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	a.mu.Lock()
	if len(a.verified) >= maxVerified {
		a.verified = map[[sha256.Size]byte]verifiedChain{}
	}
	a.verified[key] = verifiedChain{user: *user, notAfter: notAfter}
	a.mu.Unlock()
	return user, true, nil
}

// certificateIdentifier names a certificate in an error well enough to find it, without its
// contents.
func certificateIdentifier(c *x509.Certificate) string {
	return fmt.Sprintf("SN=%s, SKID=%x, AKID=%x, subject=%q, issuer=%q",
		c.SerialNumber, c.SubjectKeyId, c.AuthorityKeyId, c.Subject.String(), c.Issuer.String())
}
