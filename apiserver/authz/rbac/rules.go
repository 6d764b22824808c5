package rbac

import (
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/skiff-dev/skiff/apiserver/authz"
)

// RulesAllow reports whether any of rules allows the request, by upstream's matching.
func RulesAllow(a authz.Attributes, rules ...rbacv1.PolicyRule) bool {
	for i := range rules {
		if RuleAllows(a, &rules[i]) {
			return true
		}
	}
	return false
}

// RuleAllows reports whether rule allows the request, as upstream's RBAC matches:
//   - verbs and apiGroups match exactly or by "*";
//   - resources match "*", the resource itself, "resource/subresource" for a subresource,
//     or "*/subresource" for that subresource of any resource;
//   - resourceNames, when any, must hold the request's name (so never a list or a create);
//   - nonResourceURLs match the path exactly, by "*", or by a prefix ending in "*".
func RuleAllows(a authz.Attributes, rule *rbacv1.PolicyRule) bool {
	if !matchesOrStar(rule.Verbs, a.Verb) {
		return false
	}
	if !a.ResourceRequest {
		return nonResourceURLMatches(rule.NonResourceURLs, a.Path)
	}
	combined := a.Resource
	if a.Subresource != "" {
		combined += "/" + a.Subresource
	}
	return matchesOrStar(rule.APIGroups, a.APIGroup) &&
		resourceMatches(rule.Resources, combined, a.Subresource) &&
		resourceNameMatches(rule.ResourceNames, a.Name)
}

func matchesOrStar(set []string, v string) bool {
	for _, s := range set {
		if s == "*" || s == v {
			return true
		}
	}
	return false
}

func resourceMatches(rules []string, combined, subresource string) bool {
	for _, r := range rules {
		switch {
		case r == rbacv1.ResourceAll, r == combined:
			return true
		case subresource != "" && len(r) == len(subresource)+2 && strings.HasPrefix(r, "*/") && r[2:] == subresource:
			return true
		}
	}
	return false
}

func resourceNameMatches(names []string, name string) bool {
	if len(names) == 0 {
		return true
	}
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

func nonResourceURLMatches(urls []string, path string) bool {
	for _, u := range urls {
		switch {
		case u == rbacv1.NonResourceAll, u == path:
			return true
		case strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimRight(u, "*")):
			return true
		}
	}
	return false
}
