// Package join is how a machine that knows only a server's address and a bootstrap token
// comes to trust the cluster, as kubeadm's token discovery: it reads the cluster-info
// ConfigMap of kube-public before it trusts the server, believes its kubeconfig only if the
// token's JWS signature of it checks out (the bootstrap signer's, which only holders of the
// token can make) and its CA only if the CA's public key has a pinned hash, then reads it
// again over TLS verified with that CA. It also words the pins (CACertHash) and the cluster-info
// kubeconfig the server publishes (ClusterInfoKubeconfig).
//
// It never sends the token to a server it does not trust yet: the first read is anonymous.
package join

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
	bootstraptokens "k8s.io/cluster-bootstrap/util/tokens"
)

// clusterInfoPath is where the API server serves cluster-info.
const clusterInfoPath = "/api/v1/namespaces/kube-public/configmaps/cluster-info"

// CACertHash is kubeadm's pin of a CA: "sha256:" and the hex SHA-256 of the certificate's
// DER SubjectPublicKeyInfo.
func CACertHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ClusterInfoKubeconfig is cluster-info's kubeconfig, as kubeadm writes it: one cluster,
// named "", at server with caPEM as its CA, and no user.
func ClusterInfoKubeconfig(server string, caPEM []byte) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[""] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	return clientcmd.Write(*cfg)
}

// Discovery says how to find and trust a cluster.
type Discovery struct {
	// Server is the API server's URL (https://HOST:PORT).
	Server string
	// Token is the bootstrap token, ID.SECRET.
	Token string
	// CACertHashes are the accepted pins (CACertHash); the CA must match one of them. None is
	// accepted only with UnsafeSkipCAVerification, which then trusts whichever CA the signed
	// cluster-info names (kubeadm's --discovery-token-unsafe-skip-ca-verification).
	CACertHashes             []string
	UnsafeSkipCAVerification bool
	// RetryInterval is the wait between attempts while the server cannot answer or has not
	// signed cluster-info with the token yet; 5 s when zero.
	RetryInterval time.Duration
}

// ErrUntrusted is a cluster-info that must not be believed: a signature that does not verify,
// or a CA that matches no pin. Discover does not retry it.
var ErrUntrusted = errors.New("cluster-info cannot be trusted")

// Discover returns the cluster's CA certificates (PEM), trying until it has them, ctx is done,
// or what the server sent is untrusted (ErrUntrusted).
func (d Discovery) Discover(ctx context.Context) ([]byte, error) {
	id, secret, err := bootstraptokens.ParseToken(d.Token)
	if err != nil {
		return nil, err
	}
	if len(d.CACertHashes) == 0 && !d.UnsafeSkipCAVerification {
		return nil, errors.New("give the CA's hash (--ca-cert-hash sha256:...) to pin the cluster's CA, " +
			"or accept any CA the token signs (--discovery-token-unsafe-skip-ca-verification)")
	}
	for _, h := range d.CACertHashes {
		if !strings.HasPrefix(h, "sha256:") || len(h) != len("sha256:")+64 {
			return nil, fmt.Errorf("CA hash %q: want sha256:<64 hex digits>", h)
		}
	}
	interval := d.RetryInterval
	if interval == 0 {
		interval = 5 * time.Second
	}
	for {
		ca, err := d.discoverOnce(ctx, id, secret)
		if err == nil || errors.Is(err, ErrUntrusted) {
			return ca, err
		}
		slog.Info("cluster-info not available yet; retrying", "server", d.Server, "err", err, "retryIn", interval)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("discovering the cluster at %s: %w (last: %v)", d.Server, ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

func (d Discovery) discoverOnce(ctx context.Context, id, secret string) ([]byte, error) {
	// not yet trusted: the server's certificate cannot be checked before its CA is known, and
	// nothing secret goes out
	insecure := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // verified by signature and pin below
	cm, err := d.fetch(ctx, insecure)
	if err != nil {
		return nil, err
	}
	content, ok := cm.Data[bootstrapapi.KubeConfigKey]
	if !ok {
		return nil, errors.New("cluster-info has no kubeconfig")
	}
	sig, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id]
	if !ok {
		return nil, fmt.Errorf("cluster-info is not signed with token %s (yet)", id)
	}
	if !jws.DetachedTokenIsValid(sig, content, id, secret) {
		return nil, fmt.Errorf("%w: its signature does not verify with token %s", ErrUntrusted, id)
	}
	caPEM, err := clusterCA(content)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%w: its CA holds no certificate", ErrUntrusted)
	}
	if !d.UnsafeSkipCAVerification {
		if err := d.checkPins(caPEM); err != nil {
			return nil, err
		}
	}
	// again over verified TLS, as kubeadm: the server that holds the CA's key says the same
	again, err := d.fetch(ctx, &tls.Config{RootCAs: pool})
	if err != nil {
		return nil, fmt.Errorf("reading cluster-info with its CA: %w", err)
	}
	if again.Data[bootstrapapi.KubeConfigKey] != content {
		return nil, fmt.Errorf("%w: it changed between the untrusted and the trusted read", ErrUntrusted)
	}
	return caPEM, nil
}

// checkPins is nil when a certificate in caPEM has one of the pinned hashes.
func (d Discovery) checkPins(caPEM []byte) error {
	var seen []string
	for rest := caPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			continue
		}
		h := CACertHash(cert)
		if slices.ContainsFunc(d.CACertHashes, func(p string) bool { return strings.EqualFold(p, h) }) {
			return nil
		}
		seen = append(seen, h)
	}
	return fmt.Errorf("%w: its CA's public key hash %s matches no pinned --ca-cert-hash", ErrUntrusted, strings.Join(seen, ", "))
}

// clusterCA is the CA of the (first) cluster of a cluster-info kubeconfig.
func clusterCA(kubeconfig string) ([]byte, error) {
	cfg, err := clientcmd.Load([]byte(kubeconfig))
	if err != nil {
		return nil, fmt.Errorf("its kubeconfig: %w", err)
	}
	names := make([]string, 0, len(cfg.Clusters))
	for name := range cfg.Clusters {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if ca := cfg.Clusters[name].CertificateAuthorityData; len(ca) > 0 {
			return ca, nil
		}
	}
	return nil, errors.New("its kubeconfig names no CA")
}

// fetch reads cluster-info anonymously over tlsConfig.
func (d Discovery) fetch(ctx context.Context, tlsConfig *tls.Config) (*corev1.ConfigMap, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(d.Server, "/")+clusterInfoPath, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, Proxy: http.ProxyFromEnvironment}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", clusterInfoPath, resp.Status, strings.TrimSpace(string(body)))
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(body, &cm); err != nil {
		return nil, fmt.Errorf("cluster-info: %w", err)
	}
	return &cm, nil
}
