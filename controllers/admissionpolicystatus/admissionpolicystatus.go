// Package admissionpolicystatus is the ValidatingAdmissionPolicy status controller: for each
// new generation of a policy it type-checks the policy's validation and message expressions
// against the OpenAPI schemas of the kinds its matchConstraints name (and of its paramKind),
// and records the warnings in status.typeChecking.expressionWarnings with
// status.observedGeneration, as upstream's validatingadmissionpolicy-status-controller does.
//
// It runs in the controller manager, as upstream's does: type checking reads the server's
// published OpenAPI v3 documents and discovery like any client, needs nothing of the server's
// memory, and can be slow for a policy matching many kinds, which a write must never wait for.
// The type checking itself is k8s.io/apiserver's TypeChecker over the schemas the server
// publishes. It writes only policies' status, by server-side apply under its own field manager.
package admissionpolicystatus

import (
	"context"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	admissionregistrationinformers "k8s.io/client-go/informers/admissionregistration/v1"
	"k8s.io/client-go/kubernetes"
	admissionregistrationlisters "k8s.io/client-go/listers/admissionregistration/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics, as upstream's.
	Name = "validatingadmissionpolicy-status-controller"
	// FieldManager owns the status the controller applies, upstream's name for it.
	FieldManager = "validatingadmissionpolicy-status"
)

// Checker type-checks a policy; *validating.TypeChecker is one.
type Checker interface {
	Check(policy *admissionregistrationv1.ValidatingAdmissionPolicy) []admissionregistrationv1.ExpressionWarning
}

var _ Checker = &validating.TypeChecker{}

// Controller is the ValidatingAdmissionPolicy status controller.
type Controller struct {
	client  kubernetes.Interface
	lister  admissionregistrationlisters.ValidatingAdmissionPolicyLister
	checker Checker
	synced  []cache.InformerSynced
	queue   controllers.Queue
	metrics *controllers.Metrics
}

// NewTypeChecker is the type checker of a server reached by client: schemas from its OpenAPI
// v3 documents, kinds from its discovery through mapper.
func NewTypeChecker(client kubernetes.Interface, mapper meta.RESTMapper) *validating.TypeChecker {
	return &validating.TypeChecker{
		SchemaResolver: &resolver.ClientDiscoveryResolver{Discovery: client.Discovery()},
		RestMapper:     mapper,
	}
}

// New makes the controller on a shared policy informer.
func New(informer admissionregistrationinformers.ValidatingAdmissionPolicyInformer, client kubernetes.Interface, checker Checker, r controllers.Reporting) (*Controller, error) {
	c := &Controller{
		client:  client,
		lister:  informer.Lister(),
		checker: checker,
		synced:  []cache.InformerSynced{informer.Informer().HasSynced},
		queue:   controllers.NewQueue(Name, r),
		metrics: r.Metrics,
	}
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run type-checks policies with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

// sync records the type checking of the named policy's generation, unless it has been
// recorded already.
func (c *Controller) sync(ctx context.Context, key string) error {
	policy, err := c.lister.Get(key)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if policy.Generation <= policy.Status.ObservedGeneration {
		return nil
	}
	warnings := c.checker.Check(policy)
	typeChecking := admissionregistrationv1ac.TypeChecking()
	for _, w := range warnings {
		typeChecking.WithExpressionWarnings(admissionregistrationv1ac.ExpressionWarning().WithFieldRef(w.FieldRef).WithWarning(w.Warning))
	}
	status := admissionregistrationv1ac.ValidatingAdmissionPolicy(policy.Name).WithStatus(
		admissionregistrationv1ac.ValidatingAdmissionPolicyStatus().WithObservedGeneration(policy.Generation).WithTypeChecking(typeChecking))
	_, err = c.client.AdmissionregistrationV1().ValidatingAdmissionPolicies().ApplyStatus(ctx, status,
		metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	return err
}
