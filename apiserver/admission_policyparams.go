package apiserver

import (
	"context"
	"fmt"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
)

// A policy's params are read with the server's rights, so upstream lets only those who may
// read them point a policy at them: writing a policy with a paramKind needs "get" on every
// object of that kind, and a binding with a paramRef needs "get" on the object it names (or
// "list" of those its selector picks). A refusal is the 422 upstream's strategies give, with a
// Forbidden cause at spec.paramKind or spec.paramRef. An unchanged paramKind or paramRef (and
// policy) is not asked again, and system:masters is never asked.

// authorizePolicyParamsWrite checks a create (old nil) or update of a validating or mutating
// admission policy or binding.
func (s *Server) authorizePolicyParamsWrite(ctx context.Context, obj, old runtime.Object) error {
	cur, ok := policyParams(obj)
	if !ok {
		return nil
	}
	u, ok := authn.UserFrom(ctx)
	if !ok || slices.Contains(u.Groups, authn.SystemPrivilegedGroup) {
		return nil
	}
	prev, updated := policyParams(old)
	var (
		err error
		at  *field.Path
	)
	switch {
	case cur.policies == "": // a policy
		if cur.paramKind == nil || (updated && prev.paramKind != nil && *prev.paramKind == *cur.paramKind) {
			return nil
		}
		at, err = field.NewPath("spec", "paramKind"), s.authorizeParamKind(ctx, *u, cur.paramKind)
	default: // a binding
		if cur.paramRef == nil || (updated && apiequality.Semantic.DeepEqual(prev.paramRef, cur.paramRef) && prev.policyName == cur.policyName) {
			return nil
		}
		at, err = field.NewPath("spec", "paramRef"), s.authorizeParamRef(ctx, *u, cur.policies, cur.policyName, cur.paramRef)
	}
	if err == nil {
		return nil
	}
	return apis.NewInvalid(schema.GroupKind{Group: admissionregistrationv1.GroupName, Kind: cur.kind}, cur.name,
		field.ErrorList{field.Forbidden(at, err.Error())})
}

// params is what a policy (paramKind) or binding (policies, policyName, paramRef) says of
// its params.
type params struct {
	kind, name           string
	paramKind            *admissionregistrationv1.ParamKind
	policies, policyName string
	paramRef             *admissionregistrationv1.ParamRef
}

func policyParams(obj runtime.Object) (params, bool) {
	switch o := obj.(type) {
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		return params{kind: "ValidatingAdmissionPolicy", name: o.Name, paramKind: o.Spec.ParamKind}, true
	case *admissionregistrationv1.MutatingAdmissionPolicy:
		return params{kind: "MutatingAdmissionPolicy", name: o.Name, paramKind: o.Spec.ParamKind}, true
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		return params{kind: "ValidatingAdmissionPolicyBinding", name: o.Name,
			policies: "validatingadmissionpolicies", policyName: o.Spec.PolicyName, paramRef: o.Spec.ParamRef}, true
	case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
		return params{kind: "MutatingAdmissionPolicyBinding", name: o.Name,
			policies: "mutatingadmissionpolicies", policyName: o.Spec.PolicyName, paramRef: o.Spec.ParamRef}, true
	}
	return params{}, false
}

// paramResource is the group, version and resource of a paramKind, or "*" for what cannot be
// told (upstream then asks for the right on everything), and why not.
func (s *Server) paramResource(pk *admissionregistrationv1.ParamKind) (group, version, resource string, err error) {
	group, version, resource = "*", "*", "*"
	gv, err := schema.ParseGroupVersion(pk.APIVersion)
	if err != nil {
		return group, version, resource, fmt.Errorf("unable to parse paramKind %v", pk)
	}
	group, version = gv.Group, gv.Version
	res := s.current().set.ForKind(gv.WithKind(pk.Kind))
	if res == nil {
		return group, version, resource, fmt.Errorf("unable to resolve paramKind %v", pk)
	}
	return group, version, res.Name, nil
}

// authorizeParamKind asks whether u may get every object of the paramKind.
func (s *Server) authorizeParamKind(ctx context.Context, u authn.User, pk *admissionregistrationv1.ParamKind) error {
	group, version, resource, _ := s.paramResource(pk)
	attrs := authz.Attributes{User: u, Verb: "get", ResourceRequest: true, APIGroup: group, APIVersion: version,
		Resource: resource, Namespace: "*", Name: "*"}
	d, _, err := s.authz.chain.Authorize(ctx, attrs)
	if err != nil {
		return err
	}
	if d != authz.DecisionAllow {
		return fmt.Errorf(`user %v must have "get" permission on all objects of the referenced paramKind (kind=%s, apiVersion=%s)`,
			upstreamUser(u), pk.Kind, pk.APIVersion)
	}
	return nil
}

// authorizeParamRef asks whether u may get the object ref names (list, with a selector) of the
// paramKind of the binding's policy; without the policy, or with a paramKind that cannot be
// resolved, it asks for the right on every resource, as upstream.
func (s *Server) authorizeParamRef(ctx context.Context, u authn.User, policies, policyName string, ref *admissionregistrationv1.ParamRef) error {
	group, version, resource := "*", "*", "*"
	why := ""
	obj, err := s.builtinStore(admissionregistrationv1.SchemeGroupVersion, policies).Get(ctx, "", policyName, &metav1.GetOptions{})
	if err != nil {
		why = "unable to get policy " + policyName
	} else if pk, _ := policyParams(obj); pk.paramKind != nil {
		var resolveErr error
		if group, version, resource, resolveErr = s.paramResource(pk.paramKind); resolveErr != nil {
			why = resolveErr.Error()
		}
	}
	verb := "get"
	if ref.Name == "" {
		verb = "list"
	}
	attrs := authz.Attributes{User: u, Verb: verb, ResourceRequest: true, APIGroup: group, APIVersion: version,
		Resource: resource, Namespace: ref.Namespace, Name: ref.Name}
	d, _, err := s.authz.chain.Authorize(ctx, attrs)
	if err != nil {
		return fmt.Errorf("failed to authorize request: %w", err)
	}
	if d == authz.DecisionAllow {
		return nil
	}
	if why != "" {
		return fmt.Errorf(`%s to determine minimum required permissions and user %v does not have "%v" permission for all groups, versions and resources`,
			why, upstreamUser(u), verb)
	}
	return fmt.Errorf(`user %v does not have "%v" permission on the object referenced by paramRef`, upstreamUser(u), verb)
}

// upstreamUser is u as upstream's messages print a user: its user.DefaultInfo.
func upstreamUser(u authn.User) *user.DefaultInfo {
	return &user.DefaultInfo{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}
}
