package authz

import (
	"context"
	"errors"
	"testing"

	"github.com/skiff-dev/skiff/apiserver/authn"
)

// fixed answers the same to every request.
type fixed struct {
	decision Decision
	reason   string
	err      error
	rules    Rules
}

func (f fixed) Authorize(context.Context, Attributes) (Decision, string, error) {
	return f.decision, f.reason, f.err
}

func (f fixed) RulesFor(context.Context, authn.User, string) (Rules, error) { return f.rules, f.err }

func TestUnionFirstAllowOrDenyDecides(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		union      Union
		want       Decision
		wantReason string
	}{
		{"allow after no opinion", Union{fixed{decision: DecisionNoOpinion, reason: "not mine"}, fixed{decision: DecisionAllow, reason: "ok"}}, DecisionAllow, "ok"},
		{"deny stops before a later allow", Union{fixed{decision: DecisionDeny, reason: "no"}, fixed{decision: DecisionAllow}}, DecisionDeny, "no"},
		{"allow stops before a later deny", Union{fixed{decision: DecisionAllow}, fixed{decision: DecisionDeny}}, DecisionAllow, ""},
		{"no opinion joins the reasons", Union{fixed{decision: DecisionNoOpinion, reason: "a"}, fixed{decision: DecisionNoOpinion}, fixed{decision: DecisionNoOpinion, reason: "b"}}, DecisionNoOpinion, "a\nb"},
		{"empty union has no opinion", Union{}, DecisionNoOpinion, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, reason, err := tc.union.Authorize(ctx, Attributes{})
			if d != tc.want || reason != tc.wantReason || err != nil {
				t.Errorf("got %v %q %v, want %v %q", d, reason, err, tc.want, tc.wantReason)
			}
		})
	}
}

func TestUnionKeepsErrorsOfAuthorizersWithoutOpinion(t *testing.T) {
	u := Union{fixed{decision: DecisionNoOpinion, err: errors.New("role missing")}, fixed{decision: DecisionNoOpinion, err: errors.New("webhook down")}}
	_, _, err := u.Authorize(context.Background(), Attributes{})
	if err == nil || err.Error() != "[role missing, webhook down]" {
		t.Errorf("err = %v", err)
	}
	u = Union{fixed{decision: DecisionNoOpinion, err: errors.New("role missing")}, AlwaysAllow{}}
	if d, _, err := u.Authorize(context.Background(), Attributes{}); d != DecisionAllow || err != nil {
		t.Errorf("a later allow: %v %v", d, err)
	}
}

func TestUnionRulesJoinAndAreIncompleteWhenAnyPartIs(t *testing.T) {
	u := Union{AlwaysAllow{}, fixed{rules: Rules{Incomplete: true}, err: errors.New("node authorizer does not support user rule resolution")}}
	r, err := u.RulesFor(context.Background(), authn.User{Name: "a"}, "ns")
	if len(r.Resource) != 1 || len(r.NonResource) != 1 || !r.Incomplete {
		t.Errorf("rules = %+v", r)
	}
	st := SubjectRulesReviewStatus(r, err)
	if st.EvaluationError != "node authorizer does not support user rule resolution" || !st.Incomplete {
		t.Errorf("status = %+v", st)
	}
}

func TestEmptyRulesReviewHasEmptyListsNotNull(t *testing.T) {
	st := SubjectRulesReviewStatus(Rules{}, nil)
	if st.ResourceRules == nil || st.NonResourceRules == nil || st.EvaluationError != "" {
		t.Errorf("status = %+v", st)
	}
}

func TestPrivilegedGroupsAllowOnlyTheirMembers(t *testing.T) {
	p := PrivilegedGroups{authn.SystemPrivilegedGroup}
	admin := Attributes{User: authn.User{Name: "admin", Groups: []string{authn.AllAuthenticated, authn.SystemPrivilegedGroup}}, Verb: "delete", ResourceRequest: true, Resource: "nodes"}
	if d, _, _ := p.Authorize(context.Background(), admin); d != DecisionAllow {
		t.Errorf("system:masters member: %v", d)
	}
	admin.User.Groups = []string{authn.AllAuthenticated}
	if d, _, _ := p.Authorize(context.Background(), admin); d != DecisionNoOpinion {
		t.Errorf("non-member: %v", d)
	}
}

func TestAlwaysDenyGivesUpstreamsReason(t *testing.T) {
	d, reason, _ := AlwaysDeny{}.Authorize(context.Background(), Attributes{})
	if d != DecisionNoOpinion || reason != "Everything is forbidden." {
		t.Errorf("%v %q", d, reason)
	}
}

func TestValidateModes(t *testing.T) {
	if err := ValidateModes([]string{"Node", "RBAC"}); err != nil {
		t.Errorf("Node,RBAC: %v", err)
	}
	for wantErr, modes := range map[string][]string{
		"at least one authorization-mode must be passed":                       nil,
		`authorization-mode "Nodes" is not a valid mode`:                       {"Nodes"},
		`authorization-mode ["RBAC" "RBAC"] has mode specified more than once`: {"RBAC", "RBAC"},
	} {
		if err := ValidateModes(modes); err == nil || err.Error() != wantErr {
			t.Errorf("ValidateModes(%q) = %v, want %s", modes, err, wantErr)
		}
	}
}
