package ingress

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// certificates are the key pairs of the Ingresses' spec.tls, by the host names they list.
type certificates struct {
	// byHost holds exact names and "*.suffix" wildcards, lower case.
	byHost map[string]*tls.Certificate
	// anyHost is the certificate of the oldest spec.tls entry that lists no hosts: it answers
	// every name no entry lists.
	anyHost *tls.Certificate
}

// parsedKeyPair is a Secret's key pair as last parsed, kept while its resourceVersion holds.
type parsedKeyPair struct {
	resourceVersion string
	cert            *tls.Certificate
	err             error
}

// buildCertificates loads the Secrets that ings (oldest first wins a host) name in spec.tls,
// and says what is wrong with those it cannot use, keyed for logChanges.
func (c *Controller) buildCertificates(ings []*networkingv1.Ingress) (*certificates, map[string]string) {
	ings = slices.Clone(ings)
	slices.SortFunc(ings, olderFirst)
	out := &certificates{byHost: map[string]*tls.Certificate{}}
	problems := map[string]string{}
	used := map[string]bool{}
	for _, ing := range ings {
		for _, t := range ing.Spec.TLS {
			if t.SecretName == "" {
				continue // TLS on these hosts with the fallback certificate
			}
			key := ing.Namespace + "/" + t.SecretName
			used[key] = true
			cert, err := c.keyPair(ing.Namespace, t.SecretName)
			if err != nil {
				problems["tls secret "+key] = fmt.Sprintf("ingress=%s unusable, another certificate answers its hosts: %v", ing.Namespace+"/"+ing.Name, err)
				continue
			}
			if len(t.Hosts) == 0 && out.anyHost == nil {
				out.anyHost = cert
			}
			for _, h := range t.Hosts {
				h = strings.ToLower(h)
				if _, taken := out.byHost[h]; !taken {
					out.byHost[h] = cert
				}
			}
		}
	}
	for k := range c.keyPairs {
		if !used[k] {
			delete(c.keyPairs, k)
		}
	}
	return out, problems
}

// keyPair parses a kubernetes.io/tls Secret's tls.crt and tls.key, from the cache while the
// Secret is unchanged.
func (c *Controller) keyPair(namespace, name string) (*tls.Certificate, error) {
	secret, err := c.secrets.Secrets(namespace).Get(name)
	if err != nil {
		delete(c.keyPairs, namespace+"/"+name)
		return nil, fmt.Errorf("secret %s/%s: %w", namespace, name, err)
	}
	if p, ok := c.keyPairs[namespace+"/"+name]; ok && p.resourceVersion == secret.ResourceVersion {
		return p.cert, p.err
	}
	p := parsedKeyPair{resourceVersion: secret.ResourceVersion}
	if secret.Type != corev1.SecretTypeTLS {
		p.err = fmt.Errorf("secret %s/%s is of type %q, not %q", namespace, name, secret.Type, corev1.SecretTypeTLS)
	} else if cert, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]); err != nil {
		p.err = fmt.Errorf("secret %s/%s: %w", namespace, name, err)
	} else {
		p.cert = &cert
	}
	c.keyPairs[namespace+"/"+name] = p
	return p.cert, p.err
}

// certificate answers a TLS handshake: the certificate of the SNI name, else of its
// wildcard, else that of a spec.tls entry without hosts, else the self-signed one.
func (c *Controller) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	st := c.current.Load()
	if st == nil || st.certs == nil {
		return c.selfSigned, nil
	}
	name := normalizeHost(hello.ServerName)
	if cert, ok := st.certs.byHost[name]; ok {
		return cert, nil
	}
	if _, suffix, ok := strings.Cut(name, "."); ok {
		if cert, ok := st.certs.byHost["*."+suffix]; ok {
			return cert, nil
		}
	}
	if st.certs.anyHost != nil {
		return st.certs.anyHost, nil
	}
	return c.selfSigned, nil
}

// selfSignedCertificate is the certificate for names no Ingress has one for, as Traefik's
// "TRAEFIK DEFAULT CERT": made at start, never stored, trusted by nobody.
func selfSignedCertificate() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "skiff ingress default certificate"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"ingress.local"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
