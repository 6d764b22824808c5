package apiserver

import (
	"context"
	"log/slog"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	k8sadmission "k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/admissionpolicy"
	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
	"github.com/skiff-dev/skiff/registry"
)

// The server's side of ValidatingAdmissionPolicies (apiserver/admissionpolicy does the
// judging): it feeds the policies and bindings from their watch caches, gives the policies
// namespaces, params from any served resource (custom resources too) and the authorizer, and
// runs them on every create and update once the strategy has validated it, as upstream's
// validating admission runs after validation.

// newAdmissionPolicies builds the server's policies, reading through its own stores.
func (s *Server) newAdmissionPolicies() *admissionpolicy.Policies {
	return admissionpolicy.New(admissionpolicy.Config{
		Namespace: func(ctx context.Context, name string) (*corev1.Namespace, error) {
			obj, err := cachedThenConsistentGet(ctx, s.builtinStore(corev1.SchemeGroupVersion, "namespaces"), "", name)
			if err != nil {
				return nil, err
			}
			return obj.(*corev1.Namespace), nil
		},
		Params: func(gvk schema.GroupVersionKind) (admissionpolicy.ParamSource, bool) {
			res := s.current().set.ForKind(gvk)
			if res == nil {
				return nil, false
			}
			h := s.current().handler(res.GroupVersion, res.Name)
			if h == nil {
				return nil, false
			}
			return paramStore{h.store}, true
		},
		Equivalents: func(gvr schema.GroupVersionResource) []admissionpolicy.Resource {
			set := s.current().set
			own := set.Lookup(gvr.GroupVersion(), gvr.Resource)
			if own == nil || own.StorageKey == "" {
				return nil
			}
			var out []admissionpolicy.Resource
			for _, r := range set.All() {
				if r != own && r.StorageKey == own.StorageKey {
					out = append(out, admissionpolicy.Resource{Resource: r.GroupVersionResource(), Kind: r.GroupVersionKind()})
				}
			}
			return out
		},
		Convert:          convertForPolicy,
		TypeConverter:    s.policyTypeConverter,
		FromUnstructured: s.policyFromUnstructured,
		Authorizer:       policyAuthorizer{s},
		Warn:             addWarning,
		Annotate: func(ctx context.Context, key, value string) {
			if ev := auditEventFrom(ctx); ev != nil {
				if ev.Annotations == nil {
					ev.Annotations = map[string]string{}
				}
				ev.Annotations[key] = value
			}
		},
	})
}

// withAdmissionPolicies runs the policies after a resource's other validating admission
// (next): on creates and updates of the resource and its subresources made by requests. The
// deletion marks a delete writes are not judged here.
func (s *Server) withAdmissionPolicies(res *apis.Resource, next func(ctx context.Context, obj, old runtime.Object) error) func(ctx context.Context, obj, old runtime.Object) error {
	return func(ctx context.Context, obj, old runtime.Object) error {
		if next != nil {
			if err := next(ctx, obj, old); err != nil {
				return err
			}
		}
		ri := requestInfoFrom(ctx)
		if s.policies == nil || !s.policies.Active() || ri == nil || !ri.IsResourceRequest || !isMutating(ri.Verb) ||
			ri.Verb == "delete" || ri.Verb == "deletecollection" || !judgedHere[ri.Subresource] {
			return nil
		}
		op := k8sadmission.Update
		if old == nil {
			op = k8sadmission.Create
		}
		obj, err := servedVersion(res, obj)
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		if old != nil {
			if old, err = servedVersion(res, old); err != nil {
				return apierrors.NewInternalError(err)
			}
		}
		m, _ := meta.Accessor(obj)
		ns, name, kind := m.GetNamespace(), m.GetName(), res.GroupVersionKind()
		if ri.Subresource == "scale" && res.Scale != nil {
			// a scale write is judged as the Scale it writes, as upstream's
			if obj, old, err = scalesOf(res, obj, old); err != nil {
				return apierrors.NewInternalError(err)
			}
			kind = autoscalingv1.SchemeGroupVersion.WithKind("Scale")
		}
		attrs := k8sadmission.NewAttributesRecord(obj, old, kind, ns, name,
			res.GroupVersionResource(), ri.Subresource, op, nil, isDryRunAnswer(ctx), admissionUser(ctx))
		return s.policies.Validate(ctx, attrs)
	}
}

// judgedHere are the subresources whose writes policies see as a write of the object itself
// (or, for scale, of its Scale), as upstream's admission shows them. Creates of pods/binding
// and pods/eviction, and CONNECTs, are judged with their own objects before they reach the
// store (admitOtherKind).
var judgedHere = map[string]bool{"": true, "status": true, "scale": true, "finalize": true, "ephemeralcontainers": true, "resize": true}

// scalesOf are the Scales of the new and old objects of a scale write.
func scalesOf(res *apis.Resource, obj, old runtime.Object) (runtime.Object, runtime.Object, error) {
	scale, err := registry.ScaleOf(res, obj)
	if err != nil {
		return nil, nil, err
	}
	scale.SetGroupVersionKind(autoscalingv1.SchemeGroupVersion.WithKind("Scale"))
	if old == nil {
		return scale, nil, nil
	}
	oldScale, err := registry.ScaleOf(res, old)
	if err != nil {
		return nil, nil, err
	}
	oldScale.SetGroupVersionKind(autoscalingv1.SchemeGroupVersion.WithKind("Scale"))
	return scale, oldScale, nil
}

// admitPolicyDelete runs the policies on a delete of ns/name, with the stored object (old, or
// read when nil) as oldObject, before it is deleted.
func (h *resourceHandler) admitPolicyDelete(ctx context.Context, ns, name string, old runtime.Object, opts *metav1.DeleteOptions) error {
	if h.policies == nil || !h.policies.Active() {
		return nil
	}
	if old == nil {
		var err error
		if old, err = h.store.Get(ctx, ns, name, &metav1.GetOptions{}); err != nil {
			return nil // the store answers a missing object itself
		}
	}
	attrs := k8sadmission.NewAttributesRecord(nil, old, h.res.GroupVersionKind(), ns, name,
		h.res.GroupVersionResource(), "", k8sadmission.Delete, opts, len(opts.DryRun) > 0, admissionUser(ctx))
	return h.policies.Validate(ctx, attrs)
}

// servedVersion returns a stored object in the version the request was served in (the
// registry hands admission objects in their storage version).
func servedVersion(res *apis.Resource, obj runtime.Object) (runtime.Object, error) {
	if res.StorageVersion == res.GroupVersion || res.Unstructured {
		return obj, nil
	}
	return convertForPolicy(obj, res.GroupVersionKind())
}

// convertForPolicy converts a copy of obj to kind's version.
func convertForPolicy(obj runtime.Object, kind schema.GroupVersionKind) (runtime.Object, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		// custom resources have one schema for all versions (conversion None)
		u = u.DeepCopy()
		u.SetGroupVersionKind(kind)
		return u, nil
	}
	out, err := apis.Scheme.ConvertToVersion(obj.DeepCopyObject(), kind.GroupVersion())
	if err != nil {
		return nil, err
	}
	out.GetObjectKind().SetGroupVersionKind(kind)
	return out, nil
}

// admissionUser is the request's user as admission sees it.
func admissionUser(ctx context.Context) user.Info {
	u, ok := authn.UserFrom(ctx)
	if !ok || u == nil {
		return &user.DefaultInfo{}
	}
	return &user.DefaultInfo{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}
}

// policyAuthorizer answers CEL's authorizer checks with the server's own authorization chain.
type policyAuthorizer struct{ s *Server }

var _ authorizer.UnconditionalAuthorizer = policyAuthorizer{}

func (a policyAuthorizer) Authorize(ctx context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	var u authn.User
	if info := attrs.GetUser(); info != nil {
		u = authn.User{Name: info.GetName(), UID: info.GetUID(), Groups: info.GetGroups(), Extra: info.GetExtra()}
	}
	d, reason, err := a.s.authz.chain.Authorize(ctx, authz.Attributes{
		User: u, Verb: attrs.GetVerb(), ResourceRequest: attrs.IsResourceRequest(),
		APIGroup: attrs.GetAPIGroup(), APIVersion: attrs.GetAPIVersion(), Resource: attrs.GetResource(),
		Subresource: attrs.GetSubresource(), Namespace: attrs.GetNamespace(), Name: attrs.GetName(), Path: attrs.GetPath(),
	})
	switch d {
	case authz.DecisionAllow:
		return authorizer.DecisionAllow, reason, err
	case authz.DecisionDeny:
		return authorizer.DecisionDeny, reason, err
	}
	return authorizer.DecisionNoOpinion, reason, err
}

// paramStore reads params from a served resource's registry store: its watch cache, with a
// miss confirmed by a consistent read, so a param created a moment ago is found.
type paramStore struct{ store *registry.Store }

func (p paramStore) Namespaced() bool { return p.store.Resource.Namespaced }

func (p paramStore) Get(ctx context.Context, ns, name string) (runtime.Object, error) {
	return cachedThenConsistentGet(ctx, p.store, ns, name)
}

func (p paramStore) List(ctx context.Context, ns string, sel labels.Selector) ([]runtime.Object, error) {
	list, err := p.store.List(ctx, ns, registry.ListOptions{Label: sel, ResourceVersion: "0"})
	if err != nil {
		return nil, err
	}
	return meta.ExtractList(list)
}

func cachedThenConsistentGet(ctx context.Context, store *registry.Store, ns, name string) (runtime.Object, error) {
	obj, err := store.Get(ctx, ns, name, &metav1.GetOptions{ResourceVersion: "0"})
	if apierrors.IsNotFound(err) {
		obj, err = store.Get(ctx, ns, name, &metav1.GetOptions{})
	}
	return obj, err
}

// startAdmissionPolicies loads the policies and bindings (validating and mutating) stored now, so that the server
// enforces them from its first request, then follows their changes until ctx is done.
func (s *Server) startAdmissionPolicies(ctx context.Context) error {
	gv := admissionregistrationv1.SchemeGroupVersion
	policies := s.builtinStore(gv, "validatingadmissionpolicies")
	bindings := s.builtinStore(gv, "validatingadmissionpolicybindings")
	feed := func(ev watch.EventType, obj runtime.Object) {
		switch o := obj.(type) {
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			if ev == watch.Deleted {
				s.policies.RemovePolicy(o.Name)
			} else {
				s.policies.SetPolicy(o)
			}
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			if ev == watch.Deleted {
				s.policies.RemoveBinding(o.Name)
			} else {
				s.policies.SetBinding(o)
			}
		case *admissionregistrationv1.MutatingAdmissionPolicy:
			if ev == watch.Deleted {
				s.policies.RemoveMutatingPolicy(o.Name)
			} else {
				s.policies.SetMutatingPolicy(o)
			}
		case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
			if ev == watch.Deleted {
				s.policies.RemoveMutatingBinding(o.Name)
			} else {
				s.policies.SetMutatingBinding(o)
			}
		}
	}
	stores := []*registry.Store{policies, bindings,
		s.builtinStore(gv, "mutatingadmissionpolicies"), s.builtinStore(gv, "mutatingadmissionpolicybindings")}
	var revisions []string
	for _, store := range stores {
		rv, err := s.loadPolicyObjects(ctx, store, feed)
		if err != nil {
			return err
		}
		revisions = append(revisions, rv)
	}
	for i, store := range stores {
		go s.followPolicyObjects(ctx, store, revisions[i], feed)
	}
	return nil
}

// loadPolicyObjects feeds every stored object of store and returns the list's revision. Each
// load replaces what was held of the kind, so objects deleted while no watch ran go too.
func (s *Server) loadPolicyObjects(ctx context.Context, store *registry.Store, feed func(watch.EventType, runtime.Object)) (string, error) {
	list, err := store.List(ctx, "", registry.ListOptions{})
	if err != nil {
		return "", err
	}
	items, _ := meta.ExtractList(list)
	names := make([]string, 0, len(items))
	for _, it := range items {
		m, _ := meta.Accessor(it)
		names = append(names, m.GetName())
	}
	s.policies.Retain(store.Resource.Kind, names)
	for _, it := range items {
		feed(watch.Added, it)
	}
	lm, _ := meta.ListAccessor(list)
	return lm.GetResourceVersion(), nil
}

// followPolicyObjects feeds the watch's events, and lists again whenever the watch ends.
func (s *Server) followPolicyObjects(ctx context.Context, store *registry.Store, rv string, feed func(watch.EventType, runtime.Object)) {
	for ctx.Err() == nil {
		if rv == "" {
			var err error
			if rv, err = s.loadPolicyObjects(ctx, store, feed); err != nil {
				slog.Warn("listing admission policies", "resource", store.Resource.Name, "err", err)
				sleepCtx(ctx, time.Second)
				continue
			}
		}
		w, err := store.Watch(ctx, "", registry.ListOptions{ResourceVersion: rv})
		if err != nil {
			rv = ""
			sleepCtx(ctx, time.Second)
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				break
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			feed(ev.Type, ev.Object)
		}
		w.Stop()
		rv = ""
	}
}
