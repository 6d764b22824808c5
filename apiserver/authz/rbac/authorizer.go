// Package rbac is the RBAC authorization mode (rbac.authorization.k8s.io/v1): it allows a
// request when a Role or ClusterRole bound to the user, by a RoleBinding in the request's
// namespace or by a ClusterRoleBinding, has a rule that matches it, and it keeps users from
// granting through roles and bindings more than they hold themselves (escalation prevention,
// and the bind and escalate verbs). Matching, reasons and refusal messages are upstream's,
// word for word.
//
// RBAC only ever allows or has no opinion; it never denies, so that a later mode may still
// allow. It reads policy through PolicySource and never writes anything.
package rbac

import (
	"context"
	"fmt"
	"strconv"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
)

// serviceAccountUsernamePrefix starts the user name of every service account,
// system:serviceaccount:NAMESPACE:NAME.
const serviceAccountUsernamePrefix = "system:serviceaccount:"

// Authorizer is the RBAC mode.
type Authorizer struct {
	source PolicySource
}

var _ authz.Authorizer = (*Authorizer)(nil)

// New returns the RBAC mode reading policy from source.
func New(source PolicySource) *Authorizer {
	return &Authorizer{source: source}
}

// Authorize allows the request when a bound rule matches it, with upstream's reason
// (`RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "z"`); otherwise it has
// no opinion, and its reason lists the roles and bindings it could not read.
func (r *Authorizer) Authorize(_ context.Context, a authz.Attributes) (authz.Decision, string, error) {
	var allowedBy string
	var errs []error
	r.visitRules(a.User, a.Namespace, func(source fmt.Stringer, rule *rbacv1.PolicyRule, err error) bool {
		if err != nil {
			errs = append(errs, err)
			return true
		}
		if RuleAllows(a, rule) {
			allowedBy = source.String()
			return false
		}
		return true
	})
	if allowedBy != "" {
		return authz.DecisionAllow, "RBAC: allowed by " + allowedBy, nil
	}
	if len(errs) > 0 {
		return authz.DecisionNoOpinion, fmt.Sprintf("RBAC: %v", utilerrors.NewAggregate(errs)), nil
	}
	return authz.DecisionNoOpinion, "", nil
}

// RulesFor lists the rules bound to user in namespace, cluster-wide ones first, one review
// rule per policy rule, as upstream's SelfSubjectRulesReview shows them.
func (r *Authorizer) RulesFor(_ context.Context, user authn.User, namespace string) (authz.Rules, error) {
	policyRules, err := r.PolicyRulesFor(user, namespace)
	var out authz.Rules
	for _, p := range policyRules {
		if len(p.Resources) > 0 {
			out.Resource = append(out.Resource, authorizationv1.ResourceRule{
				Verbs: p.Verbs, APIGroups: p.APIGroups, Resources: p.Resources, ResourceNames: p.ResourceNames,
			})
		}
		if len(p.NonResourceURLs) > 0 {
			out.NonResource = append(out.NonResource, authorizationv1.NonResourceRule{Verbs: p.Verbs, NonResourceURLs: p.NonResourceURLs})
		}
	}
	return out, err
}

// PolicyRulesFor returns every rule bound to user in namespace (only cluster-wide ones when
// namespace is empty). The error lists the roles and bindings that could not be read; the
// rules returned are the others.
func (r *Authorizer) PolicyRulesFor(user authn.User, namespace string) ([]rbacv1.PolicyRule, error) {
	var rules []rbacv1.PolicyRule
	var errs []error
	r.visitRules(user, namespace, func(_ fmt.Stringer, rule *rbacv1.PolicyRule, err error) bool {
		if err != nil {
			errs = append(errs, err)
		} else {
			rules = append(rules, *rule)
		}
		return true
	})
	return rules, utilerrors.NewAggregate(errs)
}

// RoleRefRules returns the rules of the role a binding in bindingNamespace refers to (empty for
// a ClusterRoleBinding).
func (r *Authorizer) RoleRefRules(ref rbacv1.RoleRef, bindingNamespace string) ([]rbacv1.PolicyRule, error) {
	switch ref.Kind {
	case "Role":
		role, err := r.source.GetRole(bindingNamespace, ref.Name)
		if err != nil {
			return nil, err
		}
		return role.Rules, nil
	case "ClusterRole":
		role, err := r.source.GetClusterRole(ref.Name)
		if err != nil {
			return nil, err
		}
		return role.Rules, nil
	}
	return nil, fmt.Errorf("unsupported role reference kind: %q", ref.Kind)
}

// visitRules calls visit with each rule bound to user, from ClusterRoleBindings and then from
// RoleBindings in namespace, and with each error met on the way, until visit returns false.
func (r *Authorizer) visitRules(user authn.User, namespace string, visit func(source fmt.Stringer, rule *rbacv1.PolicyRule, err error) bool) {
	// a source with an index of its bindings by subject gives only those that may name the
	// user; appliesTo below still decides, as for a source that lists them all
	indexed, isIndexed := r.source.(subjectIndexed)
	var clusterBindings []*rbacv1.ClusterRoleBinding
	var err error
	if isIndexed {
		clusterBindings, err = indexed.ClusterRoleBindingsFor(user)
	} else {
		clusterBindings, err = r.source.ListClusterRoleBindings()
	}
	if err != nil {
		if !visit(nil, nil, err) {
			return
		}
	}
	for _, b := range clusterBindings {
		i, ok := appliesTo(user, b.Subjects, "")
		if !ok {
			continue
		}
		rules, err := r.RoleRefRules(b.RoleRef, "")
		if err != nil {
			if !visit(nil, nil, err) {
				return
			}
			continue
		}
		source := clusterBindingSource{b, &b.Subjects[i]}
		for j := range rules {
			if !visit(source, &rules[j], nil) {
				return
			}
		}
	}
	if namespace == "" {
		return
	}
	var bindings []*rbacv1.RoleBinding
	if isIndexed {
		bindings, err = indexed.RoleBindingsFor(user, namespace)
	} else {
		bindings, err = r.source.ListRoleBindings(namespace)
	}
	if err != nil {
		visit(nil, nil, err)
		return
	}
	for _, b := range bindings {
		i, ok := appliesTo(user, b.Subjects, namespace)
		if !ok {
			continue
		}
		rules, err := r.RoleRefRules(b.RoleRef, namespace)
		if err != nil {
			if !visit(nil, nil, err) {
				return
			}
			continue
		}
		source := bindingSource{b, &b.Subjects[i]}
		for j := range rules {
			if !visit(source, &rules[j], nil) {
				return
			}
		}
	}
}

// appliesTo returns the index of the first subject that names user, if any. A ServiceAccount
// subject without a namespace means one in the binding's namespace.
func appliesTo(user authn.User, subjects []rbacv1.Subject, namespace string) (int, bool) {
	for i := range subjects {
		if subjectIsUser(user, &subjects[i], namespace) {
			return i, true
		}
	}
	return 0, false
}

func subjectIsUser(user authn.User, s *rbacv1.Subject, namespace string) bool {
	switch s.Kind {
	case rbacv1.UserKind:
		return user.Name == s.Name
	case rbacv1.GroupKind:
		for _, g := range user.Groups {
			if g == s.Name {
				return true
			}
		}
		return false
	case rbacv1.ServiceAccountKind:
		ns := namespace
		if s.Namespace != "" {
			ns = s.Namespace
		}
		if ns == "" {
			return false
		}
		// compares "system:serviceaccount:" + ns + ":" + name without building it
		n := user.Name
		p := serviceAccountUsernamePrefix
		return len(n) == len(p)+len(ns)+1+len(s.Name) &&
			n[:len(p)] == p && n[len(p):len(p)+len(ns)] == ns && n[len(p)+len(ns)] == ':' && n[len(p)+len(ns)+1:] == s.Name
	}
	return false
}

// clusterBindingSource names the ClusterRoleBinding that allowed a request, in upstream's words.
type clusterBindingSource struct {
	binding *rbacv1.ClusterRoleBinding
	subject *rbacv1.Subject
}

// String is `ClusterRoleBinding "name" of ClusterRole "role" to User "alice"`, as upstream's
// %q formatting words it. Every allowed request words its reason, so it is appended into one
// buffer rather than formatted.
func (d clusterBindingSource) String() string {
	return describeBinding("ClusterRoleBinding ", d.binding.Name, "", d.binding.RoleRef, d.subject, "")
}

// bindingSource names the RoleBinding that allowed a request, as "name/namespace" like upstream.
type bindingSource struct {
	binding *rbacv1.RoleBinding
	subject *rbacv1.Subject
}

func (d bindingSource) String() string {
	return describeBinding("RoleBinding ", d.binding.Name, d.binding.Namespace, d.binding.RoleRef, d.subject, d.binding.Namespace)
}

// describeBinding words a binding (name, and "/namespace" when namespace is not empty), its
// role and the subject that named the user.
func describeBinding(kind, name, namespace string, ref rbacv1.RoleRef, s *rbacv1.Subject, bindingNamespace string) string {
	b := make([]byte, 0, 64+len(name)+len(namespace)+len(ref.Name)+len(s.Name)+len(s.Namespace))
	b = append(b, kind...)
	if namespace != "" {
		b = strconv.AppendQuote(b, name+"/"+namespace)
	} else {
		b = strconv.AppendQuote(b, name)
	}
	b = append(b, " of "...)
	b = append(b, ref.Kind...)
	b = append(b, ' ')
	b = strconv.AppendQuote(b, ref.Name)
	b = append(b, " to "...)
	b = append(b, describeSubject(s, bindingNamespace)...)
	return string(b)
}

func describeSubject(s *rbacv1.Subject, bindingNamespace string) string {
	if s.Kind == rbacv1.ServiceAccountKind {
		ns := s.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		return s.Kind + " " + strconv.Quote(s.Name+"/"+ns)
	}
	return s.Kind + " " + strconv.Quote(s.Name)
}
