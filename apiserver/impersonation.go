package apiserver

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/authz"
)

// Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): a request carrying the
// Impersonate-* headers acts as the user they name, if its real user may impersonate each part
// of that identity (the impersonate verb on users, groups, serviceaccounts, uids and
// userextras/<key>), as upstream's impersonation filter. The request is then authorized and
// served as the impersonated user.

const serviceAccountUserPrefix = "system:serviceaccount:"

// withImpersonation replaces the request's user with the one its Impersonate-* headers name.
func (s *Server) withImpersonation(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get(authenticationv1.ImpersonateUserHeader)
		groups := r.Header.Values(authenticationv1.ImpersonateGroupHeader)
		uid := r.Header.Get(authenticationv1.ImpersonateUIDHeader)
		extra := map[string][]string{}
		for key, values := range r.Header {
			if k, ok := strings.CutPrefix(key, authenticationv1.ImpersonateUserExtraHeaderPrefix); ok {
				unescaped, err := url.PathUnescape(strings.ToLower(k))
				if err != nil {
					writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("malformed extra key for impersonation request: %v", err)))
					return
				}
				extra[unescaped] = values
			}
		}
		if name == "" && len(groups) == 0 && uid == "" && len(extra) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if name == "" {
			writeError(w, r, apierrors.NewBadRequest("requested impersonation of groups, uid or extra without impersonating a user"))
			return
		}
		requestor, _ := authn.UserFrom(r.Context())
		target := &authn.User{Name: name, UID: uid}
		// what the requestor must be allowed, in upstream's order
		checks := []*requestInfo{}
		if ns, sa, ok := strings.Cut(strings.TrimPrefix(name, serviceAccountUserPrefix), ":"); ok && strings.HasPrefix(name, serviceAccountUserPrefix) {
			checks = append(checks, impersonated("", "serviceaccounts", "", ns, sa))
			if len(groups) == 0 {
				target.Groups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}
			}
		} else {
			checks = append(checks, impersonated("", "users", "", "", name))
		}
		for _, g := range groups {
			checks = append(checks, impersonated("", "groups", "", "", g))
			target.Groups = append(target.Groups, g)
		}
		if uid != "" {
			checks = append(checks, impersonated(authenticationv1.GroupName, "uids", "", "", uid))
		}
		for key, values := range extra {
			for _, v := range values {
				checks = append(checks, impersonated(authenticationv1.GroupName, "userextras", key, "", v))
			}
			if target.Extra == nil {
				target.Extra = map[string][]string{}
			}
			target.Extra[key] = values
		}
		for _, ri := range checks {
			decision, reason, err := s.authz.chain.Authorize(r.Context(), authorizationAttributes(requestor, ri, func(string) string { return "" }))
			if decision != authz.DecisionAllow {
				if err != nil {
					writeError(w, r, apierrors.NewInternalError(err))
					return
				}
				writeError(w, r, forbidden(requestor, ri, reason))
				return
			}
		}
		// as upstream, an impersonated user is authenticated (or, as system:anonymous, not)
		group := authn.AllAuthenticated
		if name == authn.Anonymous {
			group = authn.AllUnauthenticated
		}
		if !slices.Contains(target.Groups, group) {
			target.Groups = append(target.Groups, group)
		}
		for key := range r.Header {
			if strings.HasPrefix(key, "Impersonate-") {
				r.Header.Del(key)
			}
		}
		if rec, ok := w.(*recordingWriter); ok {
			rec.user = target.Name
		}
		if ev := auditEventFrom(r.Context()); ev != nil {
			info := userInfo(target)
			ev.ImpersonatedUser = &info
		}
		next.ServeHTTP(w, r.WithContext(authn.WithUser(r.Context(), target)))
	})
}

// impersonated is the request an impersonation check asks about.
func impersonated(group, resource, subresource, namespace, name string) *requestInfo {
	return &requestInfo{IsResourceRequest: true, Verb: "impersonate", APIGroup: group, Resource: resource,
		Subresource: subresource, Namespace: namespace, Name: name}
}
