package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/webhook"
	"github.com/skiff-dev/skiff/registry"
)

// The admission webhooks (package webhook) are called from the registry store of each
// resource: mutating ones through Store.Mutate, after the built-in mutating plugins and
// before the strategy and validation; validating ones through Store.Admit, after validation
// and before storage. Both see the object in the version the client used.

func init() {
	metricsRegistry.MustRegister(webhook.Collectors()...)
}

// webhookConfigurations reads the configurations from informers on the server's watch caches.
type webhookConfigurations struct {
	validating, mutating cache.SharedIndexInformer
}

var _ webhook.Configurations = webhookConfigurations{}

func (c webhookConfigurations) ValidatingWebhookConfigurations() []*admissionregistrationv1.ValidatingWebhookConfiguration {
	items := c.validating.GetStore().List()
	out := make([]*admissionregistrationv1.ValidatingWebhookConfiguration, 0, len(items))
	for _, it := range items {
		out = append(out, it.(*admissionregistrationv1.ValidatingWebhookConfiguration))
	}
	return out
}

func (c webhookConfigurations) MutatingWebhookConfigurations() []*admissionregistrationv1.MutatingWebhookConfiguration {
	items := c.mutating.GetStore().List()
	out := make([]*admissionregistrationv1.MutatingWebhookConfiguration, 0, len(items))
	for _, it := range items {
		out = append(out, it.(*admissionregistrationv1.MutatingWebhookConfiguration))
	}
	return out
}

// newWebhookDispatcher builds the dispatcher of the admission webhooks. Its informers start
// and sync with the authorization informers, before the server serves.
func (s *Server) newWebhookDispatcher() *webhook.Dispatcher {
	configs := webhookConfigurations{
		validating: s.storeInformer(admissionregistrationv1.SchemeGroupVersion, "validatingwebhookconfigurations", &admissionregistrationv1.ValidatingWebhookConfiguration{}),
		mutating:   s.storeInformer(admissionregistrationv1.SchemeGroupVersion, "mutatingwebhookconfigurations", &admissionregistrationv1.MutatingWebhookConfiguration{}),
	}
	s.authz.informers = append(s.authz.informers, configs.validating, configs.mutating)
	namespaces := s.builtinStore(corev1.SchemeGroupVersion, "namespaces")
	var auditMu sync.Mutex // validating webhooks answer at once
	return &webhook.Dispatcher{
		Configurations: configs,
		NamespaceLabels: func(ctx context.Context, name string) (map[string]string, error) {
			obj, err := namespaces.Get(ctx, "", name, &metav1.GetOptions{ResourceVersion: "0"})
			if err != nil {
				return nil, err
			}
			return obj.(*corev1.Namespace).Labels, nil
		},
		Kinds:      serverKinds{s},
		Clients:    &webhook.Clients{Resolve: s.resolveServiceEndpoint},
		Warn:       addWarning,
		Authorizer: policyAuthorizer{s},
		Annotate: func(ctx context.Context, key, value string) {
			ev := auditEventFrom(ctx)
			if ev == nil {
				return
			}
			auditMu.Lock()
			defer auditMu.Unlock()
			if ev.Annotations == nil {
				ev.Annotations = map[string]string{}
			}
			ev.Annotations[key] = value
		},
	}
}

// resolveServiceEndpoint finds a ready endpoint of a Service's port in its EndpointSlices,
// as upstream's service resolver reaches the Service's pods.
func (s *Server) resolveServiceEndpoint(ctx context.Context, ns, name string, port int32) (string, error) {
	svcObj, err := s.builtinStore(corev1.SchemeGroupVersion, "services").Get(ctx, ns, name, &metav1.GetOptions{ResourceVersion: "0"})
	if err != nil {
		return "", fmt.Errorf("service %s/%s: %w", ns, name, err)
	}
	svc := svcObj.(*corev1.Service)
	var svcPort *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == port {
			svcPort = &svc.Spec.Ports[i]
		}
	}
	if svcPort == nil {
		return "", fmt.Errorf("no service port %d found for service %q", port, name)
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return net.JoinHostPort(svc.Spec.ExternalName, strconv.Itoa(int(port))), nil
	}
	list, err := s.builtinStore(discoveryv1.SchemeGroupVersion, "endpointslices").List(ctx, ns, registry.ListOptions{ResourceVersion: "0",
		Label: labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})})
	if err != nil {
		return "", err
	}
	for _, slice := range list.(*discoveryv1.EndpointSliceList).Items {
		for _, p := range slice.Ports {
			if p.Port == nil || (p.Name != nil && *p.Name != svcPort.Name) {
				continue
			}
			for _, ep := range slice.Endpoints {
				if (ep.Conditions.Ready == nil || *ep.Conditions.Ready) && len(ep.Addresses) > 0 {
					return net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(*p.Port))), nil
				}
			}
		}
	}
	return "", fmt.Errorf("service %q does not have ready endpoints", name)
}

// serverKinds converts objects between the served versions of a resource.
type serverKinds struct{ s *Server }

var _ webhook.Kinds = serverKinds{}

func (k serverKinds) Convert(ctx context.Context, obj runtime.Object, to schema.GroupVersionKind) (runtime.Object, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if u.GroupVersionKind() == to {
			return u, nil
		}
		return k.s.convertCustomResource(ctx, u, to)
	}
	kinds, _, err := apis.Scheme.ObjectKinds(obj)
	if err != nil {
		return nil, err
	}
	for _, gvk := range kinds {
		if gvk == to {
			return obj, nil // the same Go type serves both
		}
	}
	out, err := apis.Scheme.New(to)
	if err != nil {
		return nil, err
	}
	if err := apis.Scheme.Convert(obj, out, nil); err != nil {
		return nil, err
	}
	out.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	return out, nil
}

func (k serverKinds) Decode(data []byte, kind schema.GroupVersionKind) (runtime.Object, error) {
	res := k.s.current().set.ForKind(kind)
	if res == nil {
		// a subresource's own kind (Eviction, Binding, a CONNECT's options)
		obj, err := apis.Scheme.New(kind)
		if err != nil {
			return nil, fmt.Errorf("no served resource of kind %s", kind)
		}
		if err := json.Unmarshal(data, obj); err != nil {
			return nil, err
		}
		apis.Scheme.Default(obj)
		obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
		return obj, nil
	}
	obj := res.New()
	if err := json.Unmarshal(data, obj); err != nil {
		return nil, err
	}
	if res.Unstructured {
		if res.PruneUnknown != nil {
			if _, err := res.PruneUnknown(obj); err != nil {
				return nil, err
			}
		}
	} else {
		obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	}
	if res.Default != nil {
		res.Default(obj)
	}
	return obj, nil
}

// convertCustomResource converts a custom resource to another served version: by its
// definition's conversion webhook, or (strategy None) by changing only its apiVersion.
func (s *Server) convertCustomResource(ctx context.Context, u *unstructured.Unstructured, to schema.GroupVersionKind) (runtime.Object, error) {
	if res := s.current().set.ForKind(to); res != nil && res.ConversionWebhook != nil {
		return s.webhooks.Clients.ConvertCustomResource(ctx, res.ConversionWebhook, u, to.GroupVersion())
	}
	out := u.DeepCopy()
	out.SetAPIVersion(to.GroupVersion().String())
	return out, nil
}

// conversionWebhook is the store's converter of a custom resource whose definition converts
// by webhook, or nil.
func (s *Server) conversionWebhook(res *apis.Resource) func(ctx context.Context, obj *unstructured.Unstructured, to schema.GroupVersion) (*unstructured.Unstructured, error) {
	if res.ConversionWebhook == nil {
		return nil
	}
	conv := res.ConversionWebhook
	return func(ctx context.Context, obj *unstructured.Unstructured, to schema.GroupVersion) (*unstructured.Unstructured, error) {
		return s.webhooks.Clients.ConvertCustomResource(ctx, conv, obj, to)
	}
}

// webhookRequest describes a write to the store of res for the webhooks, or returns nil when
// the write is not a client's request of res (the server's own writes, and subresources that
// write another kind, which admitOtherKind admits before the store). A write of a scale
// subresource is described as a Scale's, its objects left to the caller (scalesOf).
func (s *Server) webhookRequest(ctx context.Context, res *apis.Resource, obj, old runtime.Object, op admissionv1.Operation) *webhook.Request {
	ri := requestInfoFrom(ctx)
	if ri == nil || ri.resource != res {
		return nil
	}
	if deleting := ri.Verb == "delete" || ri.Verb == "deletecollection"; deleting != (op == admissionv1.Delete) {
		return nil // the metadata a delete writes (deletionTimestamp, finalizers) is no update
	}
	kind := res.GroupVersionKind()
	if ri.Subresource != "" {
		sub := res.Subresource(ri.Subresource)
		switch {
		case ri.Subresource == "scale" && res.Scale != nil:
			kind = autoscalingv1.SchemeGroupVersion.WithKind("Scale")
		case sub == nil || sub.Kind != res.Kind || !sub.GroupVersion.Empty():
			return nil
		}
	}
	a := &webhook.Request{
		Resource: res.GroupVersionResource(), Subresource: ri.Subresource, Kind: kind,
		Namespace: ri.Namespace, Name: ri.Name, Object: obj, OldObject: old, DryRun: isDryRunAnswer(ctx),
	}
	if u, ok := authn.UserFrom(ctx); ok {
		a.UserInfo = userInfo(u)
	}
	var dryRun []string
	if a.DryRun {
		dryRun = []string{metav1.DryRunAll}
	}
	switch {
	case op == admissionv1.Delete:
		a.Operation = op // Options are the request's DeleteOptions, set by the caller
	case old == nil:
		a.Operation, a.Options = admissionv1.Create, &metav1.CreateOptions{DryRun: dryRun}
	default:
		a.Operation, a.Options = admissionv1.Update, &metav1.UpdateOptions{DryRun: dryRun}
	}
	if a.Name == "" || ri.Verb == "deletecollection" {
		// a create names its object in the body; a collection's delete each object in turn
		for _, o := range []runtime.Object{obj, old} {
			if m, ok := o.(metav1.Object); ok {
				a.Name = m.GetName()
				break
			}
		}
	}
	for _, other := range s.current().set.All() {
		if other != res && other.StorageKey == res.StorageKey && !other.Review && !other.FromKubelets {
			eq := webhook.Equivalent{Resource: other.GroupVersionResource(), Kind: other.GroupVersionKind()}
			if kind != res.GroupVersionKind() {
				eq.Kind = kind // a Scale is a Scale in every version of its resource
			}
			a.Equivalents = append(a.Equivalents, eq)
		}
	}
	return a
}

// mutateWithWebhooks is a store's Mutate: the mutating admission policies and then the
// mutating webhooks on the served object (admission_mutatingpolicy.go), as upstream orders
// its MutatingAdmissionPolicy and MutatingAdmissionWebhook plugins.
func (s *Server) mutateWithWebhooks(res *apis.Resource) func(ctx context.Context, obj, old runtime.Object) (runtime.Object, error) {
	return func(ctx context.Context, obj, old runtime.Object) (runtime.Object, error) {
		policies := s.policies != nil && s.policies.MutatingActive()
		hooks := s.webhooks != nil && s.webhooks.HasWebhooks(true)
		if !policies && !hooks {
			return obj, nil
		}
		a := s.webhookRequest(ctx, res, obj, old, "")
		if a == nil {
			return obj, nil
		}
		if a.Kind.Kind == "Scale" {
			return s.mutateScale(ctx, res, a, obj, old, hooks)
		}
		if policies {
			return s.mutateWithPoliciesAndWebhooks(ctx, a, hooks)
		}
		return s.webhooks.Mutate(ctx, a)
	}
}

// mutateScale runs the mutating webhooks on the Scale of a scale write and writes the replicas
// they leave back into the object, as upstream's scale subresource applies its admitted Scale.
// Mutating admission policies do not see Scales yet.
func (s *Server) mutateScale(ctx context.Context, res *apis.Resource, a *webhook.Request, obj, old runtime.Object, hooks bool) (runtime.Object, error) {
	if !hooks {
		return obj, nil
	}
	scale, oldScale, err := scalesOf(res, obj, old)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	a.Object, a.OldObject = scale, oldScale
	out, err := s.webhooks.Mutate(ctx, a)
	if err != nil {
		return nil, err
	}
	mutated, ok := out.(*autoscalingv1.Scale)
	if !ok {
		return nil, apierrors.NewInternalError(fmt.Errorf("a mutating webhook's Scale decoded as %T", out))
	}
	if mutated.Spec.Replicas == scale.(*autoscalingv1.Scale).Spec.Replicas {
		return obj, nil
	}
	return registry.SetScaleReplicas(res, obj, mutated.Spec.Replicas)
}

// validateWithWebhooks wraps a store's Admit: after it, the validating webhooks on the
// object in the served version (the store validates the stored one).
func (s *Server) validateWithWebhooks(res *apis.Resource, admit func(ctx context.Context, obj, old runtime.Object) error) func(ctx context.Context, obj, old runtime.Object) error {
	return func(ctx context.Context, obj, old runtime.Object) error {
		if admit != nil {
			if err := admit(ctx, obj, old); err != nil {
				return err
			}
		}
		if s.webhooks == nil || !s.webhooks.HasWebhooks(false) {
			return nil
		}
		a := s.webhookRequest(ctx, res, obj, old, "")
		if a == nil {
			return nil
		}
		if a.Kind.Kind == "Scale" {
			scale, oldScale, err := scalesOf(res, obj, old)
			if err != nil {
				return apierrors.NewInternalError(err)
			}
			a.Object, a.OldObject = scale, oldScale
			return s.webhooks.Validate(ctx, a)
		}
		kinds := serverKinds{s}
		var err error
		if a.Object, err = kinds.Convert(ctx, obj, res.GroupVersionKind()); err != nil {
			return apierrors.NewInternalError(err)
		}
		if old != nil {
			if a.OldObject, err = kinds.Convert(ctx, old, res.GroupVersionKind()); err != nil {
				return apierrors.NewInternalError(err)
			}
		}
		return s.webhooks.Validate(ctx, a)
	}
}

// deleteWithWebhooks is a store's AdmitDelete: the mutating webhooks (which may refuse but
// not change a delete) and then the validating ones, on the object being deleted.
func (s *Server) deleteWithWebhooks(res *apis.Resource) func(ctx context.Context, current runtime.Object, opts *metav1.DeleteOptions) error {
	return func(ctx context.Context, current runtime.Object, opts *metav1.DeleteOptions) error {
		if s.webhooks == nil || (!s.webhooks.HasWebhooks(true) && !s.webhooks.HasWebhooks(false)) {
			return nil
		}
		a := s.webhookRequest(ctx, res, nil, current, admissionv1.Delete)
		if a == nil {
			return nil
		}
		a.Options = opts
		if _, err := s.webhooks.Mutate(ctx, a); err != nil {
			return err
		}
		return s.webhooks.Validate(ctx, a)
	}
}
