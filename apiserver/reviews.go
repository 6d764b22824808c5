package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
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
	case *authenticationv1.TokenReview:
		review.Status = s.reviewToken(review.Spec)
		return review, nil
	case *authorizationv1.SelfSubjectAccessReview:
		review.Status = s.accessReviewStatus(ctx, authz.ReviewAttributes(*user, review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes))
		return review, nil
	case *authorizationv1.SubjectAccessReview:
		review.Status = s.accessReviewStatus(ctx, authz.ReviewAttributes(authz.ReviewUser(review.Spec), review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes))
		return review, nil
	case *authorizationv1.LocalSubjectAccessReview:
		ri := requestInfoFrom(ctx)
		if review.Spec.ResourceAttributes == nil || ri == nil || review.Spec.ResourceAttributes.Namespace != ri.Namespace {
			ns := ""
			if review.Spec.ResourceAttributes != nil {
				ns = review.Spec.ResourceAttributes.Namespace
			}
			return nil, apierrors.NewBadRequest(fmt.Sprintf("spec.resourceAttributes.namespace must match namespace: %v", ns))
		}
		review.Status = s.accessReviewStatus(ctx, authz.ReviewAttributes(authz.ReviewUser(review.Spec), review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes))
		return review, nil
	case *authorizationv1.SelfSubjectRulesReview:
		if review.Spec.Namespace == "" {
			return nil, apierrors.NewBadRequest("no namespace on request")
		}
		rules, err := s.authz.chain.RulesFor(ctx, *user, review.Spec.Namespace)
		review.Status = authz.SubjectRulesReviewStatus(rules, err)
		return review, nil
	}
	return nil, apierrors.NewBadRequest("not a review")
}

// reviewToken authenticates a bearer token as a request carrying it would be (token file,
// service-account tokens; never the server's own loopback token), for the audiences the
// server accepts: a review asking only for other audiences is refused.
func (s *Server) reviewToken(spec authenticationv1.TokenReviewSpec) authenticationv1.TokenReviewStatus {
	audiences := s.cfg.APIAudiences
	if len(spec.Audiences) > 0 {
		audiences = nil
		for _, a := range spec.Audiences {
			if slices.Contains(s.cfg.APIAudiences, a) {
				audiences = append(audiences, a)
			}
		}
		if len(audiences) == 0 {
			return authenticationv1.TokenReviewStatus{Error: "token audiences don't match the audiences this server accepts"}
		}
	}
	r, _ := http.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set("Authorization", "Bearer "+spec.Token)
	user, ok, err := s.tokenAuthn.Authenticate(r)
	if err != nil || !ok {
		st := authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
		if err != nil {
			st.Error = err.Error()
		}
		return st
	}
	info := authenticationv1.UserInfo{Username: user.Name, UID: user.UID, Groups: user.Groups}
	for k, v := range user.Extra {
		if info.Extra == nil {
			info.Extra = map[string]authenticationv1.ExtraValue{}
		}
		info.Extra[k] = v
	}
	return authenticationv1.TokenReviewStatus{Authenticated: true, User: info, Audiences: audiences}
}

// accessReviewStatus asks the authorization chain about a, as it asks about every request.
func (s *Server) accessReviewStatus(ctx context.Context, a authz.Attributes) authorizationv1.SubjectAccessReviewStatus {
	decision, reason, err := s.authz.chain.Authorize(ctx, a)
	st := authorizationv1.SubjectAccessReviewStatus{
		Allowed: decision == authz.DecisionAllow,
		Denied:  decision == authz.DecisionDeny,
		Reason:  reason,
	}
	if err != nil {
		st.EvaluationError = err.Error()
	}
	return st
}
