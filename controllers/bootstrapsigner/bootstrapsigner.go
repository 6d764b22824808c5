// Package bootstrapsigner is upstream's bootstrap signer: it signs the kubeconfig in the
// cluster-info ConfigMap of kube-public with every bootstrap token that may sign (a Secret of
// type bootstrap.kubernetes.io/token in kube-system with usage-bootstrap-signing "true", not
// expired), as a detached JWS under the key jws-kubeconfig-<token-id>. A joining node that
// knows a token fetches cluster-info without credentials and trusts the CA in it only when
// the signature of its token checks out (kubeadm's token discovery, `skiff agent`).
//
// It writes nothing but the jws-kubeconfig-* keys of that one ConfigMap, and never creates it:
// the cluster's installer does (`skiff up`).
package bootstrapsigner

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
	bootstrapsecrets "k8s.io/cluster-bootstrap/util/secrets"

	"github.com/skiff-dev/skiff/controllers"
)

// Name is the controller's name in logs and metrics.
const Name = "bootstrap-signer"

// key is the one key of the queue: there is one ConfigMap to sign.
const key = metav1.NamespacePublic + "/" + bootstrapapi.ConfigMapClusterInfo

// Controller keeps cluster-info's signatures in step with the signing tokens.
type Controller struct {
	client     kubernetes.Interface
	factories  []informers.SharedInformerFactory
	configMaps corelisters.ConfigMapLister
	secrets    corelisters.SecretLister
	synced     []cache.InformerSynced
	queue      controllers.Queue
	metrics    *controllers.Metrics
	now        func() time.Time
}

// New makes a signer that reads and writes through client. It watches only what it needs, as
// upstream's: the cluster-info ConfigMap in kube-public and the bootstrap token Secrets in
// kube-system (the only ones its account may read), with informers of its own.
func New(client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	public := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(metav1.NamespacePublic),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", bootstrapapi.ConfigMapClusterInfo).String()
		}))
	system := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(metav1.NamespaceSystem),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("type", string(bootstrapapi.SecretTypeBootstrapToken)).String()
		}))
	cms, secrets := public.Core().V1().ConfigMaps(), system.Core().V1().Secrets()
	c := &Controller{
		client:     client,
		factories:  []informers.SharedInformerFactory{public, system},
		configMaps: cms.Lister(),
		secrets:    secrets.Lister(),
		synced:     []cache.InformerSynced{cms.Informer().HasSynced, secrets.Informer().HasSynced},
		queue:      controllers.NewQueue(Name, r),
		metrics:    r.Metrics,
		now:        time.Now,
	}
	enqueue := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.queue.Add(key) },
		UpdateFunc: func(any, any) { c.queue.Add(key) },
		DeleteFunc: func(any) { c.queue.Add(key) },
	}
	if _, err := cms.Informer().AddEventHandler(enqueue); err != nil {
		return nil, err
	}
	if _, err := secrets.Informer().AddEventHandler(enqueue); err != nil {
		return nil, err
	}
	return c, nil
}

// Run signs until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	for _, f := range c.factories {
		f.Start(ctx.Done())
		defer f.Shutdown()
	}
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

// sync makes cluster-info's jws-kubeconfig-* keys exactly the signatures of its kubeconfig by
// the signing tokens. A token that expires later is signed now and its signature dropped by
// the sync at its expiry.
func (c *Controller) sync(ctx context.Context, _ string) error {
	cm, err := c.configMaps.ConfigMaps(metav1.NamespacePublic).Get(bootstrapapi.ConfigMapClusterInfo)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	content, ok := cm.Data[bootstrapapi.KubeConfigKey]
	if !ok {
		return nil // nothing to sign, as upstream
	}
	tokens, nextExpiry, err := c.signingTokens()
	if err != nil {
		return err
	}
	want := map[string]string{}
	for id, secret := range tokens {
		sig, err := jws.ComputeDetachedSignature(content, id, secret)
		if err != nil {
			return fmt.Errorf("signing cluster-info with token %s: %w", id, err)
		}
		want[bootstrapapi.JWSSignatureKeyPrefix+id] = sig
	}
	have := map[string]string{}
	for k, v := range cm.Data {
		if strings.HasPrefix(k, bootstrapapi.JWSSignatureKeyPrefix) {
			have[k] = v
		}
	}
	if !maps.Equal(have, want) {
		updated := cm.DeepCopy()
		for k := range have {
			delete(updated.Data, k)
		}
		maps.Copy(updated.Data, want)
		if _, err := c.client.CoreV1().ConfigMaps(metav1.NamespacePublic).Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	if !nextExpiry.IsZero() {
		c.queue.AddAfter(key, nextExpiry.Sub(c.now())+time.Second)
	}
	return nil
}

// signingTokens are the tokens that may sign, by id, and the earliest of their expiries.
func (c *Controller) signingTokens() (map[string]string, time.Time, error) {
	secrets, err := c.secrets.Secrets(metav1.NamespaceSystem).List(labels.Everything())
	if err != nil {
		return nil, time.Time{}, err
	}
	now := c.now()
	tokens := map[string]string{}
	var next time.Time
	for _, s := range secrets {
		id, secret, ok := signingToken(s, now)
		if !ok {
			continue
		}
		tokens[id] = secret
		if left, expired := bootstrapsecrets.GetExpiration(s, now); !expired && left > 0 {
			if at := now.Add(left); next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	return tokens, next, nil
}

// signingToken is s's id and secret when s is a bootstrap token that may sign at now: of the
// bootstrap token type, named for its token-id, with a secret, unexpired, and
// usage-bootstrap-signing "true".
func signingToken(s *corev1.Secret, now time.Time) (id, secret string, ok bool) {
	if s.Type != bootstrapapi.SecretTypeBootstrapToken {
		return "", "", false
	}
	id = bootstrapsecrets.GetData(s, bootstrapapi.BootstrapTokenIDKey)
	if nameID, ok := bootstrapsecrets.ParseName(s.Name); !ok || nameID != id {
		return "", "", false
	}
	secret = bootstrapsecrets.GetData(s, bootstrapapi.BootstrapTokenSecretKey)
	if secret == "" || bootstrapsecrets.HasExpired(s, now) {
		return "", "", false
	}
	if bootstrapsecrets.GetData(s, bootstrapapi.BootstrapTokenUsageSigningKey) != "true" {
		return "", "", false
	}
	return id, secret, true
}
