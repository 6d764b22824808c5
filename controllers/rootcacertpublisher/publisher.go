// Package rootcacertpublisher is upstream's root-ca-cert-publisher: every active namespace has a
// ConfigMap kube-root-ca.crt whose ca.crt is the bundle that verifies the API server, so that
// pods can reach kubernetes.default.svc. It rewrites that ConfigMap when someone changes it and
// never touches any other.
package rootcacertpublisher

import (
	"context"
	"errors"
	"maps"

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
	Name = "root-ca-cert-publisher"
	// ConfigMapName is the ConfigMap published in every namespace.
	ConfigMapName = "kube-root-ca.crt"
	// DescriptionAnnotation and Description tell readers what the ConfigMap is for, as upstream.
	DescriptionAnnotation = "kubernetes.io/description"
	Description           = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. " +
		"No other usage is guaranteed across distributions of Kubernetes clusters."
)

// Controller publishes the root CA bundle.
type Controller struct {
	client   kubernetes.Interface
	cmLister corelisters.ConfigMapLister
	nsLister corelisters.NamespaceLister
	synced   []cache.InformerSynced
	queue    controllers.Queue
	metrics  *controllers.Metrics
	rootCA   []byte
}

// New makes a publisher of rootCA (PEM) on shared informers of ConfigMaps and namespaces.
func New(cmInformer coreinformers.ConfigMapInformer, nsInformer coreinformers.NamespaceInformer, client kubernetes.Interface, rootCA []byte, r controllers.Reporting) (*Controller, error) {
	if len(rootCA) == 0 {
		return nil, errors.New("no root CA bundle to publish")
	}
	c := &Controller{
		client:   client,
		cmLister: cmInformer.Lister(),
		nsLister: nsInformer.Lister(),
		synced:   []cache.InformerSynced{cmInformer.Informer().HasSynced, nsInformer.Informer().HasSynced},
		queue:    controllers.NewQueue(Name, r),
		metrics:  r.Metrics,
		rootCA:   rootCA,
	}
	if _, err := cmInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, cur any) { c.configMapChanged(cur) },
		DeleteFunc: c.configMapChanged,
	}); err != nil {
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

// Run publishes with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) configMapChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == ConfigMapName {
		c.queue.Add(cm.Namespace)
	}
}

func (c *Controller) namespaceChanged(obj any) {
	if ns, ok := obj.(*corev1.Namespace); ok && (ns.Status.Phase == corev1.NamespaceActive || ns.Status.Phase == "") {
		c.queue.Add(ns.Name)
	}
}

// sync makes the namespace named key hold the ConfigMap with the bundle.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, err := c.nsLister.Get(key)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.Status.Phase != corev1.NamespaceActive && ns.Status.Phase != "" {
		return nil
	}
	data := map[string]string{"ca.crt": string(c.rootCA)}
	cm, err := c.cmLister.ConfigMaps(key).Get(ConfigMapName)
	switch {
	case apierrors.IsNotFound(err):
		_, err := c.client.CoreV1().ConfigMaps(key).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Annotations: map[string]string{DescriptionAnnotation: Description}},
			Data:       data,
		}, metav1.CreateOptions{})
		// a namespace gone or terminating gets nothing
		if apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		return err
	case err != nil:
		return err
	}
	if maps.Equal(cm.Data, data) && cm.Annotations[DescriptionAnnotation] != "" {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data = data
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[DescriptionAnnotation] = Description
	_, err = c.client.CoreV1().ConfigMaps(key).Update(ctx, cm, metav1.UpdateOptions{})
	return err
}
