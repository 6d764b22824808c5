// Package tokencleaner is upstream's token cleaner: it deletes bootstrap token Secrets
// (type bootstrap.kubernetes.io/token in kube-system) once their expiration has passed, so that
// the join tokens `skiff token create` hands out do not pile up. An expired token already
// stops authenticating and signing; this only removes its Secret.
//
// It deletes nothing but expired bootstrap token Secrets, each only as the version it judged
// (a UID precondition), and never one without an expiration.
package tokencleaner

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstrapsecrets "k8s.io/cluster-bootstrap/util/secrets"

	"github.com/skiff-dev/skiff/controllers"
)

// Name is the controller's name in logs and metrics.
const Name = "token-cleaner"

// Controller deletes expired bootstrap tokens.
type Controller struct {
	client  kubernetes.Interface
	factory informers.SharedInformerFactory
	secrets corelisters.SecretLister
	synced  []cache.InformerSynced
	queue   controllers.Queue
	metrics *controllers.Metrics
	now     func() time.Time
}

// New makes a cleaner that reads and deletes through client, watching only the bootstrap
// token Secrets of kube-system with an informer of its own, as upstream's.
func New(client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(metav1.NamespaceSystem),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("type", string(bootstrapapi.SecretTypeBootstrapToken)).String()
		}))
	secrets := factory.Core().V1().Secrets()
	c := &Controller{
		client: client, factory: factory, secrets: secrets.Lister(),
		synced:  []cache.InformerSynced{secrets.Informer().HasSynced},
		queue:   controllers.NewQueue(Name, r),
		metrics: r.Metrics,
		now:     time.Now,
	}
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := secrets.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, cur any) { enqueue(cur) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run cleans until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	c.factory.Start(ctx.Done())
	defer c.factory.Shutdown()
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

// sync deletes the Secret key names if it is an expired bootstrap token, and otherwise looks
// again when it expires.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	s, err := c.secrets.Secrets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if s.Type != bootstrapapi.SecretTypeBootstrapToken {
		return nil
	}
	left, expired := bootstrapsecrets.GetExpiration(s, c.now())
	if !expired {
		if left > 0 {
			c.queue.AddAfter(key, left)
		}
		return nil
	}
	err = c.client.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(s.UID))})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or replaced by another Secret of that name: its own sync judges it
	}
	return err
}
