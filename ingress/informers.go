package ingress

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Factories are the informer factories the controller reads from: one for the whole
// cluster's Ingresses, IngressClasses, Services and EndpointSlices, one that lists only
// kubernetes.io/tls Secrets (no other Secret is ever read), and one for its own Node.
type Factories struct {
	All, TLSSecrets, Node informers.SharedInformerFactory
}

// NewFactories makes the factories for the controller of nodeName.
func NewFactories(client kubernetes.Interface, nodeName string) Factories {
	return Factories{
		All: informers.NewSharedInformerFactory(client, 0),
		TLSSecrets: informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("type", string(corev1.SecretTypeTLS)).String()
		})),
		Node: informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", nodeName).String()
		})),
	}
}

// NewFromFactories makes the controller on f; start f after.
func NewFromFactories(client kubernetes.Interface, f Factories, cfg Config) (*Controller, error) {
	return New(client, f.All.Networking().V1().Ingresses(), f.All.Networking().V1().IngressClasses(), f.All.Core().V1().Services(),
		f.All.Discovery().V1().EndpointSlices(), f.TLSSecrets.Core().V1().Secrets(), f.Node.Core().V1().Nodes(), cfg)
}

// Start starts every factory's informers until stop is closed.
func (f Factories) Start(stop <-chan struct{}) {
	for _, x := range []informers.SharedInformerFactory{f.All, f.TLSSecrets, f.Node} {
		x.Start(stop)
	}
}

// Shutdown waits for every informer to stop; close Start's channel first.
func (f Factories) Shutdown() {
	for _, x := range []informers.SharedInformerFactory{f.All, f.TLSSecrets, f.Node} {
		x.Shutdown()
	}
}
