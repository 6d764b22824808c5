// Package serviceaccount is the ServiceAccount controller: every active namespace has a
// "default" ServiceAccount, made again if deleted, as upstream's. It never deletes or changes
// a ServiceAccount.
package serviceaccount

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "serviceaccount"
	// DefaultServiceAccountName is the ServiceAccount every namespace gets.
	DefaultServiceAccountName = "default"
)

// Controller is the ServiceAccount controller.
type Controller struct {
	client   kubernetes.Interface
	saLister corelisters.ServiceAccountLister
	nsLister corelisters.NamespaceLister
	synced   []cache.InformerSynced
	queue    controllers.Queue
	metrics  *controllers.Metrics
	// ensure are the ServiceAccounts every namespace has.
	ensure []string
}

// New makes a ServiceAccount controller on shared informers of ServiceAccounts and namespaces.
func New(saInformer coreinformers.ServiceAccountInformer, nsInformer coreinformers.NamespaceInformer, client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client:   client,
		saLister: saInformer.Lister(),
		nsLister: nsInformer.Lister(),
		synced:   []cache.InformerSynced{saInformer.Informer().HasSynced, nsInformer.Informer().HasSynced},
		queue:    controllers.NewQueue(Name, r),
		metrics:  r.Metrics,
		ensure:   []string{DefaultServiceAccountName},
	}
	if _, err := saInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.serviceAccountDeleted}); err != nil {
		return nil, err
	}
	if _, err := nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.namespaceChanged,
		UpdateFunc: func(_, cur any) { c.namespaceChanged(cur) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run keeps every namespace's ServiceAccounts with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) serviceAccountDeleted(obj any) {
	sa, ok := obj.(*corev1.ServiceAccount)
	if !ok {
		t, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if sa, ok = t.Obj.(*corev1.ServiceAccount); !ok {
			return
		}
	}
	c.queue.Add(sa.Namespace)
}

func (c *Controller) namespaceChanged(obj any) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		c.queue.Add(ns.Name)
	}
}

// sync creates the ServiceAccounts the namespace named key lacks, unless it is terminating.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, err := c.nsLister.Get(key)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.Status.Phase != corev1.NamespaceActive && ns.Status.Phase != "" {
		return nil // terminating: nothing new goes in
	}
	var failures []error
	for _, name := range c.ensure {
		switch _, err := c.saLister.ServiceAccounts(ns.Name).Get(name); {
		case err == nil:
			continue
		case !apierrors.IsNotFound(err):
			return err
		}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}
		_, err := c.client.CoreV1().ServiceAccounts(ns.Name).Create(ctx, sa, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) && !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			failures = append(failures, err)
		}
	}
	return errors.Join(failures...)
}
