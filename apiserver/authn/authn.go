// Package authn tells who sent a request: a verified client certificate, a bearer token from a
// static token file, a service-account token (a JWT signed with the cluster's service-account
// key), or any union of such authenticators, as upstream's kube-apiserver does. It also signs
// service-account tokens, so that the issuer and the authenticator agree on one format.
//
// It only identifies. It never authorizes, never writes a response, and never treats a request
// it cannot identify as an error: "no credentials of mine" (ok false, nil error) is distinct
// from "credentials presented but invalid" (an error), and the caller decides between 401 and
// anonymous access.
package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"slices"
)

// Well-known user and group names, as upstream's k8s.io/apiserver/pkg/authentication/user.
const (
	// AllAuthenticated is the group every authenticated user is in.
	AllAuthenticated = "system:authenticated"
	// AllUnauthenticated is the group of the anonymous user.
	AllUnauthenticated = "system:unauthenticated"
	// Anonymous is the name of the user of a request that presents no credentials.
	Anonymous = "system:anonymous"
	// SystemPrivilegedGroup is bound to cluster-admin by upstream's RBAC bootstrap policy.
	SystemPrivilegedGroup = "system:masters"
)

// User is an authenticated identity.
type User struct {
	Name   string
	UID    string
	Groups []string
	// Extra is what else the authenticator knows of the user (the pod a service-account
	// token is bound to), by upstream's keys; nil when nothing.
	Extra map[string][]string
}

// AnonymousUser is who a request without credentials is, when anonymous access is allowed.
func AnonymousUser() *User {
	return &User{Name: Anonymous, Groups: []string{AllUnauthenticated}}
}

// Authenticator identifies the sender of a request.
type Authenticator interface {
	// Authenticate returns the request's user and true when it carries valid credentials of
	// this authenticator's kind; false and a nil error when it carries none of that kind; and
	// an error when it carries such credentials but they are not valid (unknown token,
	// certificate not signed by the CA, expired). The user it returns is in the group
	// system:authenticated.
	Authenticate(r *http.Request) (*User, bool, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(r *http.Request) (*User, bool, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(r *http.Request) (*User, bool, error) { return f(r) }

var _ Authenticator = AuthenticatorFunc(nil)

// union tries authenticators in order.
type union []Authenticator

var _ Authenticator = union(nil)

// Union is an authenticator that tries each of authenticators in order and answers with the
// first that identifies the request. An authenticator's error does not stop the others (a
// request may carry a stale token and a good certificate); when none identifies the request,
// the errors are returned joined, or ok false and nil when there were none.
func Union(authenticators ...Authenticator) Authenticator {
	return union(slices.Clone(authenticators))
}

func (u union) Authenticate(r *http.Request) (*User, bool, error) {
	var errs []error
	for _, a := range u {
		user, ok, err := a.Authenticate(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			return withAuthenticatedGroup(user), true, nil
		}
	}
	return nil, false, errors.Join(errs...)
}

// New is the API server's authenticator: client certificates signed by a CA in clientCA (nil
// for none), then bearer tokens from tokenFile (empty for none), then service-account tokens
// (nil for none), in upstream's order.
func New(clientCA *x509.CertPool, tokenFile string, serviceAccounts *ServiceAccountTokens) (Authenticator, error) {
	var authenticators []Authenticator
	if clientCA != nil {
		authenticators = append(authenticators, NewX509(clientCA))
	}
	if tokenFile != "" {
		tokens, err := LoadTokenFile(tokenFile)
		if err != nil {
			return nil, err
		}
		authenticators = append(authenticators, tokens)
	}
	if serviceAccounts != nil {
		authenticators = append(authenticators, serviceAccounts)
	}
	return Union(authenticators...), nil
}

// withAuthenticatedGroup adds system:authenticated to user's groups, unless the user is
// already in it or in system:unauthenticated (as upstream's AuthenticatedGroupAdder).
func withAuthenticatedGroup(user *User) *User {
	for _, g := range user.Groups {
		if g == AllAuthenticated || g == AllUnauthenticated {
			return user
		}
	}
	out := *user
	out.Groups = append(slices.Clip(user.Groups), AllAuthenticated)
	return &out
}

type userKey struct{}

// WithUser returns a context carrying user, for the handlers after authentication.
func WithUser(ctx context.Context, user *User) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

// UserFrom returns the user WithUser put in ctx.
func UserFrom(ctx context.Context) (*User, bool) {
	user, ok := ctx.Value(userKey{}).(*User)
	return user, ok && user != nil
}
