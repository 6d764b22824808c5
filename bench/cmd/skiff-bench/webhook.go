package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http/httptest"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// The webhook scenario (--scenario webhook) measures what one validating admission webhook
// costs a write: --pods ConfigMaps are created with no webhook configured, then a no-op
// validating webhook (controller-runtime's admission package, served by the bench itself on
// 127.0.0.1 over TLS) is registered for ConfigMap creates in the bench's namespace and as
// many ConfigMaps are created again. The webhook's configuration is deleted at the end.

// noopWebhook serves a validating webhook that allows everything, counting its calls, and
// returns its URL and caBundle.
func noopWebhook(calls *atomic.Int64) (*httptest.Server, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skiff-bench-webhook"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	srv := httptest.NewUnstartedServer(&admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		calls.Add(1)
		return admission.Allowed("")
	})})
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{"h2", "http/1.1"}}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	return srv, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func (l *load) webhookScenario(ctx context.Context) error {
	configMaps := l.client.CoreV1().ConfigMaps(l.ns)
	createAll := func(phase, prefix string) {
		lat, errs, wall := l.parallel(ctx, phase, l.opts.pods, func(ctx context.Context, i int) error {
			_, err := configMaps.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: prefix + podName(i)},
				Data:       gadgetData(i),
			}, metav1.CreateOptions{})
			return err
		})
		l.addRow(newRow(phase, lat, errs.count(), wall), errs)
	}
	createAll("create configmap, no webhook", "plain-")

	var calls atomic.Int64
	srv, ca, err := noopWebhook(&calls)
	if err != nil {
		return err
	}
	defer srv.Close()
	url := srv.URL + "/validate"
	none := admissionregistrationv1.SideEffectClassNone
	configs := l.client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	cfg, err := configs.Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "skiff-bench-"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         "noop.bench.skiff.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": l.ns}},
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("registering the webhook: %w", err)
	}
	defer func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := configs.Delete(cleanup, cfg.Name, metav1.DeleteOptions{}); err != nil {
			fmt.Fprintf(l.progress, "warning: deleting webhook configuration %s: %v\n", cfg.Name, err)
		}
	}()
	// the configuration reaches the server's cache a moment later: wait for the first call
	for i := 0; calls.Load() == 0; i++ {
		if i == 200 || ctx.Err() != nil {
			return fmt.Errorf("the webhook was never called")
		}
		if _, err := configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "marker-"}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := calls.Load()
	createAll("create configmap, 1 validating webhook", "hooked-")
	fmt.Fprintf(l.progress, "the webhook was called %d times\n", calls.Load()-before)
	return nil
}
