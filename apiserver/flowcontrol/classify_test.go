package flowcontrol

import (
	"testing"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap"
)

func suggestedController() *Controller {
	c := NewController(600)
	c.Update(append(bootstrap.MandatoryFlowSchemas, bootstrap.SuggestedFlowSchemas...),
		append(bootstrap.MandatoryPriorityLevelConfigurations, bootstrap.SuggestedPriorityLevelConfigurations...))
	return c
}

func TestRequestsAreClassifiedAsUpstreamsSuggestedConfiguration(t *testing.T) {
	c := suggestedController()
	for _, tc := range []struct {
		name              string
		d                 RequestDigest
		schema, level     string
		wantDistinguisher string
	}{
		{"cluster admin", RequestDigest{User: "admin", Groups: []string{"system:masters", "system:authenticated"}, IsResourceRequest: true, Verb: "get", Resource: "pods", Namespace: "default"}, "exempt", "exempt", ""},
		{"kubelet node status", RequestDigest{User: "system:node:n1", Groups: []string{"system:nodes", "system:authenticated"}, IsResourceRequest: true, Verb: "update", Resource: "nodes", Subresource: "status"}, "system-node-high", "node-high", "system:node:n1"},
		{"kubelet pods", RequestDigest{User: "system:node:n1", Groups: []string{"system:nodes", "system:authenticated"}, IsResourceRequest: true, Verb: "list", Resource: "pods"}, "system-nodes", "system", "system:node:n1"},
		{"scheduler", RequestDigest{User: "system:kube-scheduler", Groups: []string{"system:authenticated"}, IsResourceRequest: true, Verb: "create", Resource: "pods", Subresource: "binding", Namespace: "default"}, "kube-scheduler", "workload-high", "default"},
		{"controller service account in kube-system", RequestDigest{User: "system:serviceaccount:kube-system:deployment-controller", Groups: []string{"system:serviceaccounts"}, IsResourceRequest: true, Verb: "list", APIGroup: "apps", Resource: "deployments"}, "kube-system-service-accounts", "workload-high", ""},
		{"other service account", RequestDigest{User: "system:serviceaccount:team:app", Groups: []string{"system:serviceaccounts"}, IsResourceRequest: true, Verb: "list", Resource: "configmaps", Namespace: "team"}, "service-accounts", "workload-low", "system:serviceaccount:team:app"},
		{"probe by anyone", RequestDigest{User: "system:anonymous", Groups: []string{"system:unauthenticated"}, Verb: "get", Path: "/readyz"}, "probes", "exempt", ""},
		{"probe sub-path", RequestDigest{User: "system:anonymous", Groups: []string{"system:unauthenticated"}, Verb: "get", Path: "/livez/ping"}, "probes", "exempt", ""},
		{"ordinary user", RequestDigest{User: "alice", Groups: []string{"system:authenticated"}, IsResourceRequest: true, Verb: "list", Resource: "configmaps", Namespace: "default"}, "global-default", "global-default", "alice"},
		{"unauthenticated", RequestDigest{User: "system:anonymous", Groups: []string{"system:unauthenticated"}, Verb: "get", Path: "/version"}, "global-default", "global-default", "system:anonymous"},
		{"no group at all", RequestDigest{User: "stray", IsResourceRequest: true, Verb: "get", Resource: "pods", Namespace: "default"}, "catch-all", "catch-all", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := c.Classify(tc.d)
			if cl.FlowSchema.Name != tc.schema || cl.PriorityLevel.Name != tc.level || cl.Flow != tc.wantDistinguisher {
				t.Errorf("got %s/%s flow %q, want %s/%s flow %q", cl.FlowSchema.Name, cl.PriorityLevel.Name, cl.Flow, tc.schema, tc.level, tc.wantDistinguisher)
			}
		})
	}
}

func TestMandatoryObjectsAreImaginedWhenNoneAreStored(t *testing.T) {
	c := NewController(100)
	cl := c.Classify(RequestDigest{User: "u", Groups: []string{"system:masters"}, IsResourceRequest: true, Verb: "get", Resource: "pods", Namespace: "x"})
	if cl.PriorityLevel.Name != "exempt" {
		t.Errorf("system:masters got %s", cl.PriorityLevel.Name)
	}
	cl = c.Classify(RequestDigest{User: "u", Groups: []string{"system:authenticated"}, IsResourceRequest: true, Verb: "get", Resource: "pods", Namespace: "x"})
	if cl.PriorityLevel.Name != "catch-all" {
		t.Errorf("ordinary user got %s", cl.PriorityLevel.Name)
	}
}

func TestDanglingFlowSchemaIsPassedOver(t *testing.T) {
	dangling := &flowcontrolv1.FlowSchema{}
	dangling.Name = "to-nowhere"
	dangling.Spec = flowcontrolv1.FlowSchemaSpec{
		PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "missing"},
		MatchingPrecedence:         1,
		Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
			Subjects:      []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: "*"}}},
			ResourceRules: []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Namespaces: []string{"*"}, ClusterScope: true}},
		}},
	}
	c := NewController(100)
	c.Update([]*flowcontrolv1.FlowSchema{dangling}, nil)
	cl := c.Classify(RequestDigest{User: "bob", IsResourceRequest: true, Verb: "get", Resource: "pods", Namespace: "x"})
	if cl.FlowSchema.Name != "catch-all" {
		t.Errorf("got %s", cl.FlowSchema.Name)
	}
}

func TestResourceRulesMatchScopeAndSubresource(t *testing.T) {
	rule := flowcontrolv1.ResourcePolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods/log"}, Namespaces: []string{"a"}}
	for _, tc := range []struct {
		d    RequestDigest
		want bool
	}{
		{RequestDigest{Verb: "get", Resource: "pods", Subresource: "log", Namespace: "a"}, true},
		{RequestDigest{Verb: "get", Resource: "pods", Namespace: "a"}, false},
		{RequestDigest{Verb: "get", Resource: "pods", Subresource: "log", Namespace: "b"}, false},
		{RequestDigest{Verb: "list", Resource: "pods", Subresource: "log", Namespace: "a"}, false},
		{RequestDigest{Verb: "get", Resource: "pods", Subresource: "log"}, false}, // cluster scope not allowed
	} {
		if got := matchesResourceRule(&rule, tc.d); got != tc.want {
			t.Errorf("%+v: %v", tc.d, got)
		}
	}
}

func TestListSeatsGrowWithStoredObjects(t *testing.T) {
	for _, tc := range []struct {
		stored, limit int64
		want          int
	}{
		{0, 0, 1}, {100, 0, 1}, {101, 0, 2}, {5000, 0, 10}, {5000, 250, 3},
	} {
		if got := ListSeats(tc.stored, tc.limit); got != tc.want {
			t.Errorf("ListSeats(%d, %d) = %d, want %d", tc.stored, tc.limit, got, tc.want)
		}
	}
}

func TestDealtHandsHaveDistinctCards(t *testing.T) {
	for h := uint64(0); h < 2000; h += 7 {
		hand := dealHand(h*2654435761, 64, 8)
		seen := map[int]bool{}
		for _, c := range hand {
			if c < 0 || c >= 64 || seen[c] {
				t.Fatalf("hash %d: hand %v", h, hand)
			}
			seen[c] = true
		}
	}
}
