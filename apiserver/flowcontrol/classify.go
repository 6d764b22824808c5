package flowcontrol

import (
	"strings"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
)

// RequestDigest is what classification needs to know of a request.
type RequestDigest struct {
	User   string
	Groups []string

	IsResourceRequest bool
	Verb              string
	// APIGroup, Resource, Subresource and Namespace describe a resource request.
	APIGroup, Resource, Subresource, Namespace string
	// Path is the URL path of a non-resource request.
	Path string
}

// MatchesFlowSchema reports whether fs's rules match the request: one rule whose subjects
// and resource or non-resource rules all match, as upstream's matchesFlowSchema.
func MatchesFlowSchema(fs *flowcontrolv1.FlowSchema, d RequestDigest) bool {
	for i := range fs.Spec.Rules {
		if matchesPolicyRule(&fs.Spec.Rules[i], d) {
			return true
		}
	}
	return false
}

func matchesPolicyRule(rule *flowcontrolv1.PolicyRulesWithSubjects, d RequestDigest) bool {
	if !matchesASubject(rule.Subjects, d) {
		return false
	}
	if d.IsResourceRequest {
		for i := range rule.ResourceRules {
			if matchesResourceRule(&rule.ResourceRules[i], d) {
				return true
			}
		}
		return false
	}
	for i := range rule.NonResourceRules {
		if matchesNonResourceRule(&rule.NonResourceRules[i], d) {
			return true
		}
	}
	return false
}

func matchesASubject(subjects []flowcontrolv1.Subject, d RequestDigest) bool {
	for _, s := range subjects {
		switch s.Kind {
		case flowcontrolv1.SubjectKindUser:
			if s.User != nil && (s.User.Name == flowcontrolv1.NameAll || s.User.Name == d.User) {
				return true
			}
		case flowcontrolv1.SubjectKindGroup:
			if s.Group == nil {
				continue
			}
			for _, g := range d.Groups {
				if s.Group.Name == flowcontrolv1.NameAll || s.Group.Name == g {
					return true
				}
			}
		case flowcontrolv1.SubjectKindServiceAccount:
			if s.ServiceAccount == nil {
				continue
			}
			ns, name, ok := serviceAccountOf(d.User)
			if ok && (s.ServiceAccount.Namespace == ns) &&
				(s.ServiceAccount.Name == flowcontrolv1.NameAll || s.ServiceAccount.Name == name) {
				return true
			}
		}
	}
	return false
}

// serviceAccountOf splits "system:serviceaccount:NS:NAME".
func serviceAccountOf(user string) (namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(user, "system:serviceaccount:")
	if !found {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	return namespace, name, ok && namespace != "" && name != "" && !strings.Contains(name, ":")
}

func matchesResourceRule(rule *flowcontrolv1.ResourcePolicyRule, d RequestDigest) bool {
	if !containsOrAll(rule.Verbs, d.Verb, flowcontrolv1.VerbAll) ||
		!containsOrAll(rule.APIGroups, d.APIGroup, flowcontrolv1.APIGroupAll) {
		return false
	}
	resource := d.Resource
	if d.Subresource != "" {
		resource += "/" + d.Subresource
	}
	if !containsOrAll(rule.Resources, resource, flowcontrolv1.ResourceAll) {
		return false
	}
	if d.Namespace == "" {
		return rule.ClusterScope
	}
	return containsOrAll(rule.Namespaces, d.Namespace, flowcontrolv1.NamespaceEvery)
}

func matchesNonResourceRule(rule *flowcontrolv1.NonResourcePolicyRule, d RequestDigest) bool {
	if !containsOrAll(rule.Verbs, d.Verb, flowcontrolv1.VerbAll) {
		return false
	}
	for _, p := range rule.NonResourceURLs {
		if p == flowcontrolv1.NonResourceAll || p == d.Path {
			return true
		}
		// as upstream, "/healthz/*" and "/healthz" both match everything under "/healthz/"
		prefix := strings.TrimSuffix(p, "*")
		if !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		if strings.HasPrefix(d.Path, prefix) {
			return true
		}
	}
	return false
}

func containsOrAll(list []string, v, all string) bool {
	for _, x := range list {
		if x == all || x == v {
			return true
		}
	}
	return false
}

// FlowDistinguisher is the part of a flow's identity the FlowSchema's distinguisher method
// takes from the request: the user, the namespace, or nothing.
func FlowDistinguisher(fs *flowcontrolv1.FlowSchema, d RequestDigest) string {
	if fs.Spec.DistinguisherMethod == nil {
		return ""
	}
	switch fs.Spec.DistinguisherMethod.Type {
	case flowcontrolv1.FlowDistinguisherMethodByUserType:
		return d.User
	case flowcontrolv1.FlowDistinguisherMethodByNamespaceType:
		return d.Namespace
	}
	return ""
}
