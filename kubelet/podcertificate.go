package kubelet

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"sync"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podCertificates holds, per pod, the private key and request of each podCertificate source:
// the key never leaves this kubelet but in the pod's volume, and one request is made per key.
// A pod's entries go with the pod (forget).
type podCertificates struct {
	mu      sync.Mutex
	sources map[types.UID]map[string]*podCertificateSource
}

// podCertificateSource is one source's key and, once made, the request that asks for it.
type podCertificateSource struct {
	keyPEM  []byte
	stub    []byte
	request string // the PodCertificateRequest's name, "" until created
}

func (c *podCertificates) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sources, uid)
}

// newPodCertificateKey makes a private key of one of the podCertificate key types, and the
// empty stub CSR signed by it that proves its holder asks.
func newPodCertificateKey(keyType string) (keyPEM, stub []byte, err error) {
	var key crypto.Signer
	switch keyType {
	case "RSA3072":
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	case "RSA4096":
		key, err = rsa.GenerateKey(rand.Reader, 4096)
	case "ECDSAP256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ECDSAP384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ECDSAP521":
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ED25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, nil, fmt.Errorf("unknown key type %q", keyType)
	}
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	stub, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), stub, nil
}

// podCertificateFiles computes the files of a podCertificate source: it makes the key and the
// PodCertificateRequest the first time, and fails (the mount is retried) until a signer has
// issued it. A denied or failed request is reported as such.
func (m *volumeManager) podCertificateFiles(ctx context.Context, pod *v1.Pod, volume string, index int, src *v1.PodCertificateProjection, mode os.FileMode, files map[string]volumeFile) error {
	certs := &m.k.podCerts
	key := fmt.Sprintf("%s/%d", volume, index)
	certs.mu.Lock()
	if certs.sources == nil {
		certs.sources = map[types.UID]map[string]*podCertificateSource{}
	}
	if certs.sources[pod.UID] == nil {
		certs.sources[pod.UID] = map[string]*podCertificateSource{}
	}
	s := certs.sources[pod.UID][key]
	if s == nil {
		keyPEM, stub, err := newPodCertificateKey(src.KeyType)
		if err != nil {
			certs.mu.Unlock()
			return err
		}
		s = &podCertificateSource{keyPEM: keyPEM, stub: stub}
		certs.sources[pod.UID][key] = s
	}
	certs.mu.Unlock()

	pcrs := m.k.client.CertificatesV1().PodCertificateRequests(pod.Namespace)
	if s.request == "" {
		req, err := m.podCertificateRequest(ctx, pod, src, s.stub)
		if err != nil {
			return err
		}
		created, err := pcrs.Create(ctx, req, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("while creating PodCertificateRequest: %w", err)
		}
		s.request = created.Name
	}
	pcr, err := pcrs.Get(ctx, s.request, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("while getting PodCertificateRequest %q: %w", s.request, err)
	}
	for _, c := range pcr.Status.Conditions {
		switch c.Type {
		case "Denied", "Failed":
			return fmt.Errorf("PodCertificateRequest %q was %s: %s", s.request, c.Type, c.Message)
		}
	}
	if pcr.Status.CertificateChain == "" {
		return fmt.Errorf("PodCertificateRequest %q is not issued yet", s.request)
	}
	chain := []byte(pcr.Status.CertificateChain)
	if src.CredentialBundlePath != "" {
		files[src.CredentialBundlePath] = volumeFile{append(append([]byte{}, s.keyPEM...), chain...), mode}
	}
	if src.KeyPath != "" {
		files[src.KeyPath] = volumeFile{s.keyPEM, mode}
	}
	if src.CertificateChainPath != "" {
		files[src.CertificateChainPath] = volumeFile{chain, mode}
	}
	return nil
}

// podCertificateRequest is the request for one source of pod: who asks (pod, service account,
// node, with their UIDs), of whom, for how long, with which key.
func (m *volumeManager) podCertificateRequest(ctx context.Context, pod *v1.Pod, src *v1.PodCertificateProjection, stub []byte) (*certificatesv1.PodCertificateRequest, error) {
	saName := pod.Spec.ServiceAccountName
	if saName == "" {
		saName = "default"
	}
	sa, err := m.k.client.CoreV1().ServiceAccounts(pod.Namespace).Get(ctx, saName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("while getting service account: %w", err)
	}
	node, err := m.k.client.CoreV1().Nodes().Get(ctx, m.k.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("while getting node: %w", err)
	}
	return &certificatesv1.PodCertificateRequest{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "req-" + pod.Name + "-",
			// the request goes with its pod
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}},
		},
		Spec: certificatesv1.PodCertificateRequestSpec{
			SignerName: src.SignerName, PodName: pod.Name, PodUID: pod.UID,
			ServiceAccountName: saName, ServiceAccountUID: sa.UID,
			NodeName: types.NodeName(m.k.cfg.NodeName), NodeUID: node.UID,
			MaxExpirationSeconds: src.MaxExpirationSeconds, StubPKCS10Request: stub,
			UnverifiedUserAnnotations: src.UserAnnotations,
		},
	}, nil
}
