package apiserver

import (
	"context"
	"net/http"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/authn"
)

// Reviews are the resources a client creates to ask a question and reads the answer from,
// never stored: who am I (SelfSubjectReview, `kubectl auth whoami`), may I (the access
// reviews, `kubectl auth can-i`), and what may I (SelfSubjectRulesReview, `can-i --list`).
// The answers come from the same authenticator and authorizer that guard every request.

func (s *Server) serveReview(w http.ResponseWriter, r *http.Request, ri *requestInfo, res *apis.Resource) {
	if ri.Verb != "create" || ri.Name != "" {
		writeError(w, r, apierrors.NewMethodNotSupported(res.GroupVersionResource().GroupResource(), ri.Verb))
		return
	}
	h := &resourceHandler{res: res, maxBodyBytes: s.cfg.MaxRequestBodyBytes}
	body, err := h.readBody(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	obj, err := h.decodeBody(r, body, res.GroupVersionKind())
	if err != nil {
		writeError(w, r, err)
		return
	}
	user, _ := authn.UserFrom(r.Context())
	answer, err := s.answerReview(r.Context(), user, obj)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeObject(w, r, http.StatusCreated, res.GroupVersion, answer)
}

func (s *Server) answerReview(ctx context.Context, user *authn.User, obj runtime.Object) (runtime.Object, error) {
	switch review := obj.(type) {
	case *authenticationv1.SelfSubjectReview:
		review.Status.UserInfo = authenticationv1.UserInfo{Username: user.Name, UID: user.UID, Groups: user.Groups}
		for k, v := range user.Extra {
			if review.Status.UserInfo.Extra == nil {
				review.Status.UserInfo.Extra = map[string]authenticationv1.ExtraValue{}
			}
			review.Status.UserInfo.Extra[k] = v
		}
		return review, nil
	case *authorizationv1.SelfSubjectAccessReview:
		allowed, reason, err := s.authz.Authorize(ctx, user, reviewRequest(review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes))
		if err != nil {
			review.Status.EvaluationError = err.Error()
		}
		review.Status.Allowed, review.Status.Reason = allowed, reason
		return review, nil
	case *authorizationv1.SubjectAccessReview:
		subject := &authn.User{Name: review.Spec.User, UID: review.Spec.UID, Groups: review.Spec.Groups}
		allowed, reason, err := s.authz.Authorize(ctx, subject, reviewRequest(review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes))
		if err != nil {
			review.Status.EvaluationError = err.Error()
		}
		review.Status.Allowed, review.Status.Reason = allowed, reason
		return review, nil
	case *authorizationv1.SelfSubjectRulesReview:
		if review.Spec.Namespace == "" {
			return nil, apierrors.NewBadRequest("no namespace on request")
		}
		review.Status = s.authz.RulesFor(user, review.Spec.Namespace)
		return review, nil
	}
	return nil, apierrors.NewBadRequest("not a review")
}

// reviewRequest is the request an access review asks about, as the authorizer sees requests.
func reviewRequest(res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes) *requestInfo {
	if res != nil {
		return &requestInfo{
			IsResourceRequest: true, Verb: res.Verb, APIGroup: res.Group, APIVersion: res.Version,
			Namespace: res.Namespace, Resource: res.Resource, Subresource: res.Subresource, Name: res.Name,
		}
	}
	if nonRes != nil {
		return &requestInfo{Path: nonRes.Path, Verb: strings.ToLower(nonRes.Verb)}
	}
	return &requestInfo{}
}
