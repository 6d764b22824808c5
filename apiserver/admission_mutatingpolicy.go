package apiserver

import (
	"context"
	"encoding/json"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	k8sadmission "k8s.io/apiserver/pkg/admission"

	"github.com/skiff-dev/skiff/apiserver/admissionpolicy"
	"github.com/skiff-dev/skiff/apiserver/webhook"
)

// The server's side of MutatingAdmissionPolicies: they run in a store's Mutate, before the
// mutating webhooks, on the object in the version the client wrote. As upstream's admission
// chain, both run once more when the first pass changed the object: the policies and the
// webhooks with reinvocationPolicy IfNeeded whose input changed since they ran.

// mutateWithPoliciesAndWebhooks runs the mutating policies and then the webhooks (when
// any), and when either changed the object, both once more for what needs reinvoking.
func (s *Server) mutateWithPoliciesAndWebhooks(ctx context.Context, a *webhook.Request, hooks bool) (runtime.Object, error) {
	policies, webhooks := &admissionpolicy.Reinvocation{}, &webhook.Reinvocation{}
	for pass := 0; pass < 2; pass++ {
		obj, err := s.policies.Mutate(ctx, policyAttributes(ctx, a), policies)
		if err != nil {
			return nil, err
		}
		a.Object = obj
		if hooks {
			if a.Object, err = s.webhooks.MutatePass(ctx, a, webhooks); err != nil {
				return nil, err
			}
			if webhooks.Changed() {
				policies.Changed()
			}
		}
		if !policies.ShouldReinvoke() {
			break
		}
	}
	return a.Object, nil
}

// policyAttributes are a webhook request's admission attributes, as policies read them.
func policyAttributes(ctx context.Context, a *webhook.Request) k8sadmission.Attributes {
	op := k8sadmission.Update
	switch a.Operation {
	case admissionv1.Create:
		op = k8sadmission.Create
	case admissionv1.Delete:
		op = k8sadmission.Delete
	case admissionv1.Connect:
		op = k8sadmission.Connect
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
