package authz

import (
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/skiff-dev/skiff/apiserver/authn"
)

// ReviewAttributes are the attributes an access review (SubjectAccessReview,
// LocalSubjectAccessReview, SelfSubjectAccessReview) asks about for user, as upstream reads
// them: the resource attributes when set, otherwise the non-resource ones, verbs as given.
// A field selector the review carries (raw or as requirements) is kept when it parses; one
// that does not is left out, so it can only narrow what the Node mode allows.
func ReviewAttributes(user authn.User, res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes) Attributes {
	a := Attributes{User: user}
	switch {
	case res != nil:
		a.ResourceRequest = true
		a.Verb, a.APIGroup, a.APIVersion = res.Verb, res.Group, res.Version
		a.Resource, a.Subresource, a.Namespace, a.Name = res.Resource, res.Subresource, res.Namespace, res.Name
		if fs := res.FieldSelector; fs != nil {
			if fs.RawSelector != "" {
				if sel, err := fields.ParseSelector(fs.RawSelector); err == nil {
					a.FieldSelector = sel.Requirements()
				}
			} else {
				for _, r := range fs.Requirements {
					if r.Operator == metav1.FieldSelectorOpIn && len(r.Values) == 1 {
						a.FieldSelector = append(a.FieldSelector, fields.Requirement{Field: r.Key, Operator: selection.Equals, Value: r.Values[0]})
					}
				}
			}
		}
	case nonRes != nil:
		a.Verb, a.Path = nonRes.Verb, nonRes.Path
	}
	return a
}

// ReviewUser is the user a SubjectAccessReview asks about.
func ReviewUser(spec authorizationv1.SubjectAccessReviewSpec) authn.User {
	u := authn.User{Name: spec.User, UID: spec.UID, Groups: spec.Groups}
	for k, v := range spec.Extra {
		if u.Extra == nil {
			u.Extra = map[string][]string{}
		}
		u.Extra[k] = v
	}
	return u
}
