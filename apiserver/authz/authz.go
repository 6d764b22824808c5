// Package authz decides whether a user may make a request, as upstream's authorization stage:
// the attributes of a request, the Authorizer interface every mode implements (RBAC, Node,
// AlwaysAllow, AlwaysDeny), and their union in --authorization-mode order, where the first mode
// with an opinion decides.
//
// It only decides. It never identifies a user (that is apiserver/authn), never writes a
// response, and never reads storage itself: each mode gets what it needs through interfaces the
// server backs with its watch caches.
package authz

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/fields"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"github.com/skiff-dev/skiff/apiserver/authn"
)

// Attributes are what an authorizer knows of a request: who asks, and what for.
type Attributes struct {
	// User is who asks; the zero User is nobody, in no group.
	User authn.User
	// Verb is a Kubernetes verb for resource requests (get, list, watch, create, update, patch,
	// delete, deletecollection, or a special one: bind, escalate, impersonate, approve, sign,
	// use), and the lower-cased HTTP method for non-resource requests.
	Verb string
	// ResourceRequest says the request names an API resource; otherwise it is for Path.
	ResourceRequest bool
	APIGroup        string
	APIVersion      string
	Resource        string
	Subresource     string
	// Namespace is empty for cluster-scoped resources and for requests across all namespaces.
	Namespace string
	// Name is empty for create, list, watch and deletecollection.
	Name string
	// Path is the request's URL path, what non-resource rules match.
	Path string
	// FieldSelector is the request's parsed fieldSelector (list and watch), which lets the Node
	// authorizer allow a kubelet's pod list scoped to its own node; nil when none.
	FieldSelector fields.Requirements
}

// Decision is an authorizer's answer, in upstream's order and meaning.
type Decision int

const (
	// DecisionDeny forbids the request; no later authorizer is asked.
	DecisionDeny Decision = iota
	// DecisionAllow permits the request; no later authorizer is asked.
	DecisionAllow
	// DecisionNoOpinion leaves the request to the next authorizer, and forbids it when none is
	// left.
	DecisionNoOpinion
)

func (d Decision) String() string {
	switch d {
	case DecisionDeny:
		return "Deny"
	case DecisionAllow:
		return "Allow"
	case DecisionNoOpinion:
		return "NoOpinion"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

// Rules are what a user may do in a namespace, as SelfSubjectRulesReview reports them.
type Rules struct {
	Resource    []authorizationv1.ResourceRule
	NonResource []authorizationv1.NonResourceRule
	// Incomplete says the authorizer cannot enumerate everything it would allow (the Node
	// authorizer, a webhook), so a missing rule does not mean a refusal.
	Incomplete bool
}

// Authorizer is one authorization mode.
type Authorizer interface {
	// Authorize decides a request. The reason says why, for the 403 message and access
	// reviews; it may be set with any decision. An error means the authorizer could not
	// fully evaluate (a role it could not read); the decision it returns with the error still
	// stands (RBAC may allow through another binding), as upstream's.
	Authorize(ctx context.Context, a Attributes) (Decision, string, error)
	// RulesFor lists what user may do in namespace (cluster-wide rules included). An error
	// means the list may lack rules the authorizer could not read; what it returns still
	// holds.
	RulesFor(ctx context.Context, user authn.User, namespace string) (Rules, error)
}

// Union asks each authorizer in order, as upstream's --authorization-mode list: the first Allow
// or Deny decides; when all have no opinion the request is refused with every reason given,
// one a line, and every error.
type Union []Authorizer

var _ Authorizer = Union(nil)

// Authorize returns the first Allow or Deny, with that authorizer's reason and error.
func (u Union) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	var reasons []string
	var errs []error
	for _, az := range u {
		decision, reason, err := az.Authorize(ctx, a)
		if err != nil {
			errs = append(errs, err)
		}
		if reason != "" {
			reasons = append(reasons, reason)
		}
		if decision == DecisionAllow || decision == DecisionDeny {
			return decision, reason, err
		}
	}
	return DecisionNoOpinion, strings.Join(reasons, "\n"), utilerrors.NewAggregate(errs)
}

// RulesFor joins every authorizer's rules; the union is incomplete when any part is.
func (u Union) RulesFor(ctx context.Context, user authn.User, namespace string) (Rules, error) {
	var all Rules
	var errs []error
	for _, az := range u {
		r, err := az.RulesFor(ctx, user, namespace)
		if err != nil {
			errs = append(errs, err)
		}
		all.Resource = append(all.Resource, r.Resource...)
		all.NonResource = append(all.NonResource, r.NonResource...)
		all.Incomplete = all.Incomplete || r.Incomplete
	}
	return all, utilerrors.NewAggregate(errs)
}

// SubjectRulesReviewStatus is the status of a SelfSubjectRulesReview answered with rules and
// the error that came with them.
func SubjectRulesReviewStatus(r Rules, err error) authorizationv1.SubjectRulesReviewStatus {
	st := authorizationv1.SubjectRulesReviewStatus{
		ResourceRules:    r.Resource,
		NonResourceRules: r.NonResource,
		Incomplete:       r.Incomplete,
	}
	if st.ResourceRules == nil {
		st.ResourceRules = []authorizationv1.ResourceRule{}
	}
	if st.NonResourceRules == nil {
		st.NonResourceRules = []authorizationv1.NonResourceRule{}
	}
	if err != nil {
		st.EvaluationError = err.Error()
	}
	return st
}

// everything is the rule set of a user who may do anything.
var everything = Rules{
	Resource:    []authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}},
	NonResource: []authorizationv1.NonResourceRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
}

// AlwaysAllow is the AlwaysAllow mode: every request is allowed.
type AlwaysAllow struct{}

var _ Authorizer = AlwaysAllow{}

func (AlwaysAllow) Authorize(context.Context, Attributes) (Decision, string, error) {
	return DecisionAllow, "", nil
}

func (AlwaysAllow) RulesFor(context.Context, authn.User, string) (Rules, error) {
	return everything, nil
}

// AlwaysDeny is the AlwaysDeny mode: it has no opinion on anything, with upstream's reason.
type AlwaysDeny struct{}

var _ Authorizer = AlwaysDeny{}

func (AlwaysDeny) Authorize(context.Context, Attributes) (Decision, string, error) {
	return DecisionNoOpinion, "Everything is forbidden.", nil
}

func (AlwaysDeny) RulesFor(context.Context, authn.User, string) (Rules, error) {
	return Rules{}, nil
}

// PrivilegedGroups allows every request of a member of any of its groups and has no opinion on
// anyone else. Upstream puts it first in the chain with system:masters, whatever the modes, so
// that the loopback client and admins are never locked out by a broken policy.
type PrivilegedGroups []string

var _ Authorizer = PrivilegedGroups(nil)

func (p PrivilegedGroups) Authorize(_ context.Context, a Attributes) (Decision, string, error) {
	for _, g := range a.User.Groups {
		for _, privileged := range p {
			if g == privileged {
				return DecisionAllow, "", nil
			}
		}
	}
	return DecisionNoOpinion, "", nil
}

// RulesFor lists nothing: upstream's privileged-group authorizer resolves no rules, and RBAC's
// cluster-admin binding of system:masters lists them.
func (PrivilegedGroups) RulesFor(context.Context, authn.User, string) (Rules, error) {
	return Rules{}, nil
}

// Modes are the values --authorization-mode takes, as upstream's.
const (
	ModeAlwaysAllow = "AlwaysAllow"
	ModeAlwaysDeny  = "AlwaysDeny"
	ModeABAC        = "ABAC"
	ModeWebhook     = "Webhook"
	ModeRBAC        = "RBAC"
	ModeNode        = "Node"
)

// ModeNames are every mode upstream accepts, in the order its help text lists them.
var ModeNames = []string{ModeAlwaysAllow, ModeAlwaysDeny, ModeABAC, ModeWebhook, ModeRBAC, ModeNode}

// ValidateModes checks an --authorization-mode list as upstream does: known modes, each once.
// skiff builds no ABAC or Webhook authorizer; the caller refuses those with its own words.
func ValidateModes(modes []string) error {
	var errs []error
	if len(modes) == 0 {
		errs = append(errs, fmt.Errorf("at least one authorization-mode must be passed"))
	}
	seen := map[string]bool{}
	for _, m := range modes {
		known := false
		for _, k := range ModeNames {
			known = known || m == k
		}
		if !known {
			errs = append(errs, fmt.Errorf("authorization-mode %q is not a valid mode", m))
		}
		seen[m] = true
	}
	if len(seen) != len(modes) {
		errs = append(errs, fmt.Errorf("authorization-mode %q has mode specified more than once", modes))
	}
	return utilerrors.NewAggregate(errs)
}
