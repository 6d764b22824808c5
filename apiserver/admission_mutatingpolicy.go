package apiserver

import (
	"context"
	"encoding/json"

	admissionv1 "k8s.io/api/admission/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	k8sadmission "k8s.io/apiserver/pkg/admission"

	"github.com/skiff-dev/skiff/apiserver/admissionpolicy"
	"github.com/skiff-dev/skiff/apiserver/webhook"
)

// The server's side of MutatingAdmissionPolicies: they run in a store's Mutate, before the
// mutating webhooks, on the object in the version the client wrote. Upstream's admission
// chain runs once more when the first pass changed the object; here that second pass
// reinvokes the IfNeeded policies whose input changed since they ran (the webhooks
// reinvoke among themselves inside their own pass).

// mutateWithPoliciesAndWebhooks runs the mutating policies, the webhooks (when any), and
// the policies' reinvocation.
func (s *Server) mutateWithPoliciesAndWebhooks(ctx context.Context, a *webhook.Request, hooks bool) (runtime.Object, error) {
	re := &admissionpolicy.Reinvocation{}
	obj, err := s.policies.Mutate(ctx, policyAttributes(ctx, a), re)
	if err != nil {
		return nil, err
	}
	if hooks {
		a.Object = obj
		out, err := s.webhooks.Mutate(ctx, a)
		if err != nil {
			return nil, err
		}
		if !apiequality.Semantic.DeepEqual(out, obj) {
			re.Changed()
		}
		obj = out
	}
	if !re.ShouldReinvoke() {
		return obj, nil
	}
	a.Object = obj
	return s.policies.Mutate(ctx, policyAttributes(ctx, a), re)
}

// policyAttributes are a webhook request's admission attributes, as policies read them.
func policyAttributes(ctx context.Context, a *webhook.Request) k8sadmission.Attributes {
	op := k8sadmission.Update
	switch a.Operation {
	case admissionv1.Create:
		op = k8sadmission.Create
	case admissionv1.Delete:
		op = k8sadmission.Delete
	}
	return k8sadmission.NewAttributesRecord(a.Object, a.OldObject, a.Kind, a.Namespace, a.Name, a.Resource, a.Subresource,
		op, a.Options, a.DryRun, admissionUser(ctx))
}

// policyTypeConverter is the structured-merge-diff schema of a served kind: a custom
// resource's from its definition, a built-in kind's from client-go's.
func (s *Server) policyTypeConverter(kind schema.GroupVersionKind) managedfields.TypeConverter {
	res := s.current().set.ForKind(kind)
	switch {
	case res == nil:
		return nil
	case res.TypeConverter != nil:
		return res.TypeConverter
	case res.Unstructured:
		return nil
	}
	return sharedTypeConverter()
}

// policyFromUnstructured turns a mutated object into its kind's served object, defaulted
// as a request body is.
func (s *Server) policyFromUnstructured(u *unstructured.Unstructured, kind schema.GroupVersionKind) (runtime.Object, error) {
	data, err := json.Marshal(u)
	if err != nil {
		return nil, err
	}
	return serverKinds{s}.Decode(data, kind)
}
