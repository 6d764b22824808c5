package authz

import (
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/skiff-dev/skiff/apiserver/authn"
)

func TestReviewAttributesOfAResourceReview(t *testing.T) {
	u := ReviewUser(authorizationv1.SubjectAccessReviewSpec{User: "system:node:n1", Groups: []string{"system:nodes"}, Extra: map[string]authorizationv1.ExtraValue{"k": {"v"}}})
	a := ReviewAttributes(u, &authorizationv1.ResourceAttributes{
		Verb: "list", Group: "", Version: "v1", Resource: "pods", Namespace: "",
		FieldSelector: &authorizationv1.FieldSelectorAttributes{RawSelector: "spec.nodeName=n1"},
	}, nil)
	if !a.ResourceRequest || a.Verb != "list" || a.Resource != "pods" || a.User.Name != "system:node:n1" || a.User.Extra["k"][0] != "v" {
		t.Errorf("attributes = %+v", a)
	}
	if len(a.FieldSelector) != 1 || a.FieldSelector[0].Field != "spec.nodeName" || a.FieldSelector[0].Value != "n1" {
		t.Errorf("field selector = %+v", a.FieldSelector)
	}
	a = ReviewAttributes(u, &authorizationv1.ResourceAttributes{Verb: "watch", Resource: "pods",
		FieldSelector: &authorizationv1.FieldSelectorAttributes{Requirements: []metav1.FieldSelectorRequirement{{Key: "spec.nodeName", Operator: metav1.FieldSelectorOpIn, Values: []string{"n1"}}}}}, nil)
	if len(a.FieldSelector) != 1 || a.FieldSelector[0].Operator != selection.Equals || a.FieldSelector[0].Value != "n1" {
		t.Errorf("field selector from requirements = %+v", a.FieldSelector)
	}
}

func TestReviewAttributesOfANonResourceReview(t *testing.T) {
	a := ReviewAttributes(authn.User{Name: "alice"}, nil, &authorizationv1.NonResourceAttributes{Path: "/healthz", Verb: "get"})
	if a.ResourceRequest || a.Path != "/healthz" || a.Verb != "get" {
		t.Errorf("attributes = %+v", a)
	}
}
