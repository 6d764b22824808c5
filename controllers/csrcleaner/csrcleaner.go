// Package csrcleaner is the CertificateSigningRequest cleaner: every hour it deletes the
// requests that are done with, after upstream's intervals: pending ones a day after creation,
// denied, failed and issued ones an hour after that condition was last updated, and any whose
// issued certificate has expired.
//
// It never deletes a request that is still within its interval, and reads nothing but
// requests.
package csrcleaner

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	certificatesinformers "k8s.io/client-go/informers/certificates/v1"
	"k8s.io/client-go/kubernetes"
	certificateslisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"
)

// Name is the controller's name in --controllers and logs.
const Name = "certificatesigningrequest-cleaner"

// Upstream's intervals.
const (
	PollingInterval    = time.Hour
	ApprovedExpiration = time.Hour
	DeniedExpiration   = time.Hour
	FailedExpiration   = time.Hour
	PendingExpiration  = 24 * time.Hour
)

// Controller is the cleaner.
type Controller struct {
	client kubernetes.Interface
	lister certificateslisters.CertificateSigningRequestLister
	synced cache.InformerSynced
	now    func() time.Time
}

// New makes a cleaner on a shared CertificateSigningRequest informer.
func New(informer certificatesinformers.CertificateSigningRequestInformer, client kubernetes.Interface) *Controller {
	return &Controller{client: client, lister: informer.Lister(), synced: informer.Informer().HasSynced, now: time.Now}
}

// Run cleans every PollingInterval until ctx is done; workers is ignored, one pass at a time
// is enough.
func (c *Controller) Run(ctx context.Context, _ int) {
	slog.Info("starting controller", "controller", Name)
	defer slog.Info("stopped controller", "controller", Name)
	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), c.synced) {
		return
	}
	wait.UntilWithContext(ctx, c.clean, PollingInterval)
}

// clean deletes every request that is done with.
func (c *Controller) clean(ctx context.Context) {
	csrs, err := c.lister.List(labels.Everything())
	if err != nil {
		slog.Error("listing certificate signing requests", "controller", Name, "err", err)
		return
	}
	for _, csr := range csrs {
		if !c.doneWith(csr) {
			continue
		}
		err := c.client.CertificatesV1().CertificateSigningRequests().Delete(ctx, csr.Name,
			metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &csr.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			slog.Error("deleting certificate signing request", "controller", Name, "csr", csr.Name, "err", err)
		}
	}
}

// doneWith reports whether a request has outlived its interval.
func (c *Controller) doneWith(csr *certificatesv1.CertificateSigningRequest) bool {
	now := c.now()
	olderThan := func(t metav1.Time, d time.Duration) bool { return !t.IsZero() && now.Sub(t.Time) > d }
	if len(csr.Status.Conditions) == 0 && olderThan(csr.CreationTimestamp, PendingExpiration) {
		return true
	}
	for _, cond := range csr.Status.Conditions {
		switch cond.Type {
		case certificatesv1.CertificateDenied:
			if olderThan(cond.LastUpdateTime, DeniedExpiration) {
				return true
			}
		case certificatesv1.CertificateFailed:
			if olderThan(cond.LastUpdateTime, FailedExpiration) {
				return true
			}
		case certificatesv1.CertificateApproved:
			if len(csr.Status.Certificate) > 0 && olderThan(cond.LastUpdateTime, ApprovedExpiration) {
				return true
			}
			if issuedExpired(csr.Status.Certificate, now) {
				return true
			}
		}
	}
	return false
}

// issuedExpired reports whether a certificate the request was issued has expired.
func issuedExpired(pemData []byte, now time.Time) bool {
	for {
		block, rest := pem.Decode(pemData)
		if block == nil {
			return false
		}
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil && now.After(cert.NotAfter) {
			return true
		}
		pemData = rest
	}
}
