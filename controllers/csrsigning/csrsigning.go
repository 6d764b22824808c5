// Package csrsigning is the CertificateSigningRequest signing controller: it issues the
// certificates of approved requests to the kubernetes.io signers (kube-apiserver-client,
// kube-apiserver-client-kubelet, kubelet-serving and legacy-unknown) with the cluster CA, as
// upstream's csrsigning controller. A request that breaks its signer's rules gets the Failed
// condition instead.
//
// It never signs a request that is not approved, is denied or failed, or already has a
// certificate, and never one for a signer it does not know (another signer's controller
// serves that one).
package csrsigning

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	certificatesinformers "k8s.io/client-go/informers/certificates/v1"
	"k8s.io/client-go/kubernetes"
	certificateslisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/controllers"
)

// Name is the controller's name in --controllers, logs and metrics.
const Name = "certificatesigningrequest-signing"

// DefaultDuration is upstream's --cluster-signing-duration: the longest a certificate lives.
const DefaultDuration = 365 * 24 * time.Hour

// backdate is how far before now a certificate becomes valid, so that machines whose clocks
// lag a little accept it at once, as upstream's.
const backdate = 5 * time.Minute

// CA is the certificate authority that signs, and the longest life it gives a certificate.
type CA struct {
	Certificate *x509.Certificate
	Key         crypto.Signer
	// Duration is the longest a certificate lives (DefaultDuration when zero); a request's
	// expirationSeconds may ask for less, never for more.
	Duration time.Duration
}

// LoadCA reads a CA certificate and its private key from PEM files (upstream's
// --cluster-signing-cert-file and --cluster-signing-key-file).
func LoadCA(certFile, keyFile string) (*CA, error) {
	certs, err := cert.CertsFromFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	key, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", keyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s cannot sign", keyFile)
	}
	return &CA{Certificate: certs[0], Key: signer}, nil
}

// Controller is the signing controller.
type Controller struct {
	client  kubernetes.Interface
	lister  certificateslisters.CertificateSigningRequestLister
	synced  []cache.InformerSynced
	queue   controllers.Queue
	metrics *controllers.Metrics
	ca      *CA
	now     func() time.Time
}

// New makes a signing controller on a shared CertificateSigningRequest informer.
func New(informer certificatesinformers.CertificateSigningRequestInformer, client kubernetes.Interface, ca *CA, r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client:  client,
		lister:  informer.Lister(),
		synced:  []cache.InformerSynced{informer.Informer().HasSynced},
		queue:   controllers.NewQueue(Name, r),
		metrics: r.Metrics,
		ca:      ca,
		now:     time.Now,
	}
	enqueue := func(obj any) {
		if key, err := controllers.KeyOf(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, cur any) { enqueue(cur) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run signs with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

// HasCondition reports whether the request has a condition of type t with status True.
func HasCondition(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// sync issues the certificate of the request named by key, or fails it.
func (c *Controller) sync(ctx context.Context, key string) error {
	cached, err := c.lister.Get(key)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !HasCondition(cached, certificatesv1.CertificateApproved) || HasCondition(cached, certificatesv1.CertificateDenied) ||
		HasCondition(cached, certificatesv1.CertificateFailed) || len(cached.Status.Certificate) > 0 {
		return nil
	}
	req, err := apis.ParseCSR(cached.Spec.Request)
	if err != nil {
		return fmt.Errorf("unable to parse csr %q: %v", cached.Name, err)
	}
	csr := cached.DeepCopy()
	known, invalid := validateForSigner(csr.Spec.SignerName, req, csr.Spec.Usages)
	if !known {
		return nil
	}
	if invalid != nil {
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateFailed, Status: corev1.ConditionTrue,
			Reason: "SignerValidationFailure", Message: invalid.Error(), LastUpdateTime: metav1.Now(),
		})
		if _, err := c.client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, csr, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("error adding failure condition for csr: %v", err)
		}
		return nil
	}
	certPEM, err := c.sign(req, csr.Spec.Usages, csr.Spec.ExpirationSeconds)
	if err != nil {
		return fmt.Errorf("error auto signing csr: %v", err)
	}
	csr.Status.Certificate = certPEM
	_, err = c.client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, csr, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// duration is how long a certificate lives: the signer's longest, or what the request asks
// if shorter, but never less than ten minutes (twice the backdating).
func (c *Controller) duration(expirationSeconds *int32) time.Duration {
	longest := c.ca.Duration
	if longest == 0 {
		longest = DefaultDuration
	}
	if expirationSeconds == nil {
		return longest
	}
	const shortest = 10 * time.Minute
	switch asked := time.Duration(*expirationSeconds) * time.Second; {
	case asked > longest:
		return longest
	case asked < shortest:
		return shortest
	default:
		return asked
	}
}

// sign makes the certificate of req with the CA: the request's subject and names, its usages,
// valid from a little before now for duration, and never past the CA's own end.
func (c *Controller) sign(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage, expirationSeconds *int32) ([]byte, error) {
	ku, eku, err := x509Usages(usages)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := c.now()
	notAfter := now.Add(c.duration(expirationSeconds))
	if caEnd := c.ca.Certificate.NotAfter; notAfter.After(caEnd) {
		notAfter = caEnd
	}
	if !notAfter.After(now) {
		return nil, errors.New("the signer has expired")
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               req.Subject,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
		EmailAddresses:        req.EmailAddresses,
		URIs:                  req.URIs,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		IsCA:                  false,
		AuthorityKeyId:        c.ca.Certificate.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca.Certificate, req.PublicKey, c.ca.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
