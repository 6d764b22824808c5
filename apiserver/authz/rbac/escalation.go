package rbac

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
)

// Escalation prevention: a user may write a Role or ClusterRole only with rules they already
// hold where the role applies, or with the escalate verb on it; and may bind a role only if
// they hold its rules there, or have the bind verb on it. Members of system:masters may do
// either. Upstream checks this in its RBAC storage; the server calls these checks from the
// strategies of the four kinds, before storing.

var (
	rolesResource               = rbacv1.Resource("roles")
	clusterRolesResource        = rbacv1.Resource("clusterroles")
	roleBindingsResource        = rbacv1.Resource("rolebindings")
	clusterRoleBindingsResource = rbacv1.Resource("clusterrolebindings")
)

// fullAuthority is what a user must hold to set an aggregationRule, which can gather any rule.
var fullAuthority = []rbacv1.PolicyRule{
	{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}},
	{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}},
}

// EscalationCheck decides whether a user may write roles and bindings.
type EscalationCheck struct {
	// Authorizer is the server's whole chain, asked about the escalate and bind verbs.
	Authorizer authz.Authorizer
	// RBAC resolves the rules a user holds and a binding grants.
	RBAC *Authorizer
}

// AuthorizeRoleWrite returns nil when user may create (old nil) or update role, or upstream's
// 403: `roles.rbac.authorization.k8s.io "x" is forbidden: user "u" (groups=[...]) is attempting
// to grant RBAC permissions not currently held:` and the missing rules, one a line.
func (c EscalationCheck) AuthorizeRoleWrite(ctx context.Context, user authn.User, role, old *rbacv1.Role) error {
	if old != nil && onlyGCFieldsChanged(&role.ObjectMeta, &old.ObjectMeta, role.Rules, old.Rules) {
		return nil
	}
	if escalationAllowed(user) || c.escalateAuthorized(ctx, user, rolesResource, role.Namespace, nameOnUpdate(role.Name, old != nil)) {
		return nil
	}
	if err := c.RBAC.ConfirmNoEscalation(user, role.Namespace, role.Rules); err != nil {
		return apierrors.NewForbidden(rolesResource, role.Name, err)
	}
	return nil
}

// AuthorizeClusterRoleWrite returns nil when user may create (old nil) or update role: it
// checks the rules as AuthorizeRoleWrite does cluster-wide, and a new, changed or removed
// aggregationRule needs full authority (`must have cluster-admin privileges to use the
// aggregationRule`).
func (c EscalationCheck) AuthorizeClusterRoleWrite(ctx context.Context, user authn.User, role, old *rbacv1.ClusterRole) error {
	type clusterRoleSpec struct {
		Rules       []rbacv1.PolicyRule
		Aggregation *rbacv1.AggregationRule
	}
	if old != nil && onlyGCFieldsChanged(&role.ObjectMeta, &old.ObjectMeta, clusterRoleSpec{role.Rules, role.AggregationRule}, clusterRoleSpec{old.Rules, old.AggregationRule}) {
		return nil
	}
	if escalationAllowed(user) || c.escalateAuthorized(ctx, user, clusterRolesResource, "", nameOnUpdate(role.Name, old != nil)) {
		return nil
	}
	if err := c.RBAC.ConfirmNoEscalation(user, "", role.Rules); err != nil {
		return apierrors.NewForbidden(clusterRolesResource, role.Name, err)
	}
	// setting, changing or removing an aggregationRule: it can gather anything, or stop a
	// role from being tightened
	aggregated := hasAggregationRule(role) || (old != nil && hasAggregationRule(old))
	aggregationChanged := old == nil || !equality.Semantic.DeepEqual(old.AggregationRule, role.AggregationRule)
	if aggregated && aggregationChanged {
		if err := c.RBAC.ConfirmNoEscalation(user, "", fullAuthority); err != nil {
			return apierrors.NewForbidden(clusterRolesResource, role.Name, errors.New("must have cluster-admin privileges to use the aggregationRule"))
		}
	}
	return nil
}

// AuthorizeRoleBindingWrite returns nil when user may create (old nil) or update binding: with
// bind on the role it refers to in the binding's namespace, or holding its rules there.
func (c EscalationCheck) AuthorizeRoleBindingWrite(ctx context.Context, user authn.User, binding, old *rbacv1.RoleBinding) error {
	if old != nil && onlyGCFieldsChanged(&binding.ObjectMeta, &old.ObjectMeta, bindingSpec{binding.RoleRef, binding.Subjects}, bindingSpec{old.RoleRef, old.Subjects}) {
		return nil
	}
	return c.authorizeBinding(ctx, user, roleBindingsResource, binding.Name, binding.Namespace, binding.RoleRef)
}

// AuthorizeClusterRoleBindingWrite returns nil when user may create (old nil) or update
// binding: with bind on its ClusterRole cluster-wide, or holding its rules cluster-wide.
func (c EscalationCheck) AuthorizeClusterRoleBindingWrite(ctx context.Context, user authn.User, binding, old *rbacv1.ClusterRoleBinding) error {
	if old != nil && onlyGCFieldsChanged(&binding.ObjectMeta, &old.ObjectMeta, bindingSpec{binding.RoleRef, binding.Subjects}, bindingSpec{old.RoleRef, old.Subjects}) {
		return nil
	}
	return c.authorizeBinding(ctx, user, clusterRoleBindingsResource, binding.Name, "", binding.RoleRef)
}

// bindingSpec is what a binding grants; its fields are exported for equality.Semantic.
type bindingSpec struct {
	Ref      rbacv1.RoleRef
	Subjects []rbacv1.Subject
}

func (c EscalationCheck) authorizeBinding(ctx context.Context, user authn.User, gr schema.GroupResource, name, namespace string, ref rbacv1.RoleRef) error {
	if escalationAllowed(user) || c.bindAuthorized(ctx, user, ref, namespace) {
		return nil
	}
	rules, err := c.RBAC.RoleRefRules(ref, namespace)
	if err != nil {
		return apierrors.NewForbidden(gr, name, err)
	}
	if err := c.RBAC.ConfirmNoEscalation(user, namespace, rules); err != nil {
		return apierrors.NewForbidden(gr, name, err)
	}
	return nil
}

// escalationAllowed: system:masters may do anything, since the server's own loopback client is
// in it.
func escalationAllowed(user authn.User) bool {
	for _, g := range user.Groups {
		if g == authn.SystemPrivilegedGroup {
			return true
		}
	}
	return false
}

// nameOnUpdate is the name the escalate check asks about: upstream asks with the request's name,
// which a create does not have.
func nameOnUpdate(name string, update bool) string {
	if update {
		return name
	}
	return ""
}

func (c EscalationCheck) escalateAuthorized(ctx context.Context, user authn.User, gr schema.GroupResource, namespace, name string) bool {
	return c.allowed(ctx, authz.Attributes{
		User: user, Verb: "escalate", ResourceRequest: true,
		APIGroup: gr.Group, APIVersion: "*", Resource: gr.Resource, Namespace: namespace, Name: name,
	})
}

// bindAuthorized asks whether user may bind the role ref refers to, in the binding's namespace
// (empty for a ClusterRoleBinding), so that bind on a ClusterRole can be delegated per
// namespace.
func (c EscalationCheck) bindAuthorized(ctx context.Context, user authn.User, ref rbacv1.RoleRef, namespace string) bool {
	a := authz.Attributes{User: user, Verb: "bind", ResourceRequest: true, Namespace: namespace, APIGroup: ref.APIGroup, Name: ref.Name}
	switch ref.Kind {
	case "ClusterRole":
		a.Resource = "clusterroles"
	case "Role":
		a.Resource = "roles"
	default:
		return false
	}
	return c.allowed(ctx, a)
}

func (c EscalationCheck) allowed(ctx context.Context, a authz.Attributes) bool {
	if c.Authorizer == nil {
		return false
	}
	d, _, err := c.Authorizer.Authorize(ctx, a)
	if err != nil {
		slog.Debug("authorizing an RBAC write", "verb", a.Verb, "resource", a.Resource, "name", a.Name, "err", err)
	}
	return d == authz.DecisionAllow
}

// onlyGCFieldsChanged reports whether an update changes nothing but owner references and
// finalizers, which the garbage collector must be able to write whatever the roles hold.
func onlyGCFieldsChanged(meta, oldMeta *metav1.ObjectMeta, spec, oldSpec any) bool {
	if !equality.Semantic.DeepEqual(spec, oldSpec) {
		return false
	}
	m, o := *meta, *oldMeta
	m.OwnerReferences, o.OwnerReferences = nil, nil
	m.Finalizers, o.Finalizers = nil, nil
	m.ManagedFields, o.ManagedFields = nil, nil
	m.ResourceVersion, o.ResourceVersion = "", ""
	return equality.Semantic.DeepEqual(m, o)
}

func hasAggregationRule(role *rbacv1.ClusterRole) bool {
	return role.AggregationRule != nil && len(role.AggregationRule.ClusterRoleSelectors) > 0
}

// ConfirmNoEscalation returns nil when the rules user holds in namespace cover rules, and
// otherwise upstream's error naming the missing rules, compacted and sorted, one a line.
func (r *Authorizer) ConfirmNoEscalation(user authn.User, namespace string, rules []rbacv1.PolicyRule) error {
	owned, resolveErr := r.PolicyRulesFor(user, namespace)
	covered, missing := Covers(owned, rules)
	if covered {
		return nil
	}
	missing = compactRules(missing)
	descriptions := make([]string, 0, len(missing))
	seen := map[string]bool{}
	for _, m := range missing {
		if d := CompactString(m); !seen[d] {
			seen[d] = true
			descriptions = append(descriptions, d)
		}
	}
	sort.Strings(descriptions)
	msg := fmt.Sprintf("user %q (groups=%q) is attempting to grant RBAC permissions not currently held:\n%s", user.Name, user.Groups, strings.Join(descriptions, "\n"))
	if resolveErr != nil {
		msg += fmt.Sprintf("; resolution errors: %v", []error{resolveErr})
	}
	return errors.New(msg)
}

// Covers reports whether owner rules allow everything servant rules allow, and what they do
// not: each servant rule is broken into one verb on one group/resource/name (or one URL) and
// each piece must be covered by a single owner rule.
func Covers(owner, servant []rbacv1.PolicyRule) (bool, []rbacv1.PolicyRule) {
	var missing []rbacv1.PolicyRule
	for _, s := range servant {
		for _, piece := range breakdownRule(s) {
			covered := false
			for i := range owner {
				if ruleCovers(&owner[i], &piece) {
					covered = true
					break
				}
			}
			if !covered {
				missing = append(missing, piece)
			}
		}
	}
	return len(missing) == 0, missing
}

// breakdownRule splits a rule into rules of one verb each on one group, resource and name, or
// on one non-resource URL.
func breakdownRule(rule rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var pieces []rbacv1.PolicyRule
	for _, group := range rule.APIGroups {
		for _, resource := range rule.Resources {
			for _, verb := range rule.Verbs {
				if len(rule.ResourceNames) == 0 {
					pieces = append(pieces, rbacv1.PolicyRule{APIGroups: []string{group}, Resources: []string{resource}, Verbs: []string{verb}})
					continue
				}
				for _, name := range rule.ResourceNames {
					pieces = append(pieces, rbacv1.PolicyRule{APIGroups: []string{group}, Resources: []string{resource}, Verbs: []string{verb}, ResourceNames: []string{name}})
				}
			}
		}
	}
	for _, url := range rule.NonResourceURLs {
		for _, verb := range rule.Verbs {
			pieces = append(pieces, rbacv1.PolicyRule{NonResourceURLs: []string{url}, Verbs: []string{verb}})
		}
	}
	return pieces
}

func ruleCovers(owner, piece *rbacv1.PolicyRule) bool {
	verbs := has(owner.Verbs, rbacv1.VerbAll) || hasAll(owner.Verbs, piece.Verbs)
	groups := has(owner.APIGroups, rbacv1.APIGroupAll) || hasAll(owner.APIGroups, piece.APIGroups)
	resources := resourcesCover(owner.Resources, piece.Resources)
	urls := urlsCover(owner.NonResourceURLs, piece.NonResourceURLs)
	names := len(owner.ResourceNames) == 0 || (len(piece.ResourceNames) > 0 && hasAll(owner.ResourceNames, piece.ResourceNames))
	return verbs && groups && resources && urls && names
}

func has(set []string, v string) bool {
	for _, s := range set {
		if s == v {
			return true
		}
	}
	return false
}

func hasAll(set, values []string) bool {
	for _, v := range values {
		if !has(set, v) {
			return false
		}
	}
	return true
}

// resourcesCover: "*" covers all, and "*/sub" covers that subresource of every resource.
func resourcesCover(owner, resources []string) bool {
	if has(owner, rbacv1.ResourceAll) {
		return true
	}
	for _, r := range resources {
		if has(owner, r) {
			continue
		}
		_, sub, ok := strings.Cut(r, "/")
		if !ok || !has(owner, "*/"+sub) {
			return false
		}
	}
	return true
}

func urlsCover(owner, urls []string) bool {
	for _, u := range urls {
		covered := false
		for _, o := range owner {
			if o == u || (strings.HasSuffix(o, "*") && strings.HasPrefix(u, strings.TrimRight(o, "*"))) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// compactRules merges rules on the same single group, resource and name into one rule with all
// their verbs, so that a refusal lists `Verbs:["get" "list"]` once rather than a line a verb.
func compactRules(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	type simple struct{ group, resource, name string }
	var out []rbacv1.PolicyRule
	merged := map[simple]int{}
	for _, r := range rules {
		isSimple := len(r.ResourceNames) <= 1 && len(r.NonResourceURLs) == 0 && len(r.APIGroups) == 1 && len(r.Resources) == 1 &&
			reflect.DeepEqual(rbacv1.PolicyRule{APIGroups: r.APIGroups, Resources: r.Resources, Verbs: r.Verbs, ResourceNames: r.ResourceNames}, r)
		if !isSimple {
			out = append(out, r)
			continue
		}
		key := simple{group: r.APIGroups[0], resource: r.Resources[0]}
		if len(r.ResourceNames) == 1 {
			key.name = "/" + r.ResourceNames[0] // apart from the rule without names
		}
		if i, ok := merged[key]; ok {
			out[i].Verbs = append(out[i].Verbs, r.Verbs...)
			continue
		}
		merged[key] = len(out)
		out = append(out, *r.DeepCopy())
	}
	return out
}

// CompactString prints a rule the way upstream's escalation errors do:
// `{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}`.
func CompactString(r rbacv1.PolicyRule) string {
	var parts []string
	add := func(name string, v []string) {
		if len(v) > 0 {
			parts = append(parts, fmt.Sprintf("%s:%q", name, v))
		}
	}
	add("APIGroups", r.APIGroups)
	add("Resources", r.Resources)
	add("NonResourceURLs", r.NonResourceURLs)
	add("ResourceNames", r.ResourceNames)
	add("Verbs", r.Verbs)
	return "{" + strings.Join(parts, ", ") + "}"
}
