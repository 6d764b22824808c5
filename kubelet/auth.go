package kubelet

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
)

// The kubelet API's authentication and authorization, as upstream's kubelet with
// --client-ca-file, --authentication-token-webhook and --authorization-mode=Webhook: a client
// certificate the cluster CA signed names the user (CN) and groups (O), or else a bearer token
// the API server's TokenReview vouches for; each request then becomes a question about the kubelet's
// Node ("may this user get nodes/proxy of node-a?") that the Authorizer answers, with the
// API server's SubjectAccessReview as the webhook. Every path is guarded, /healthz included, as
// on upstream's port 10250.

// Well-known user and group names, as upstream's.
const (
	userAnonymous        = "system:anonymous"
	groupUnauthenticated = "system:unauthenticated"
	groupAuthenticated   = "system:authenticated"
)

// RequestAttributes is a kubelet API request as an authorizer sees it: a verb on a subresource
// of the kubelet's Node.
type RequestAttributes struct {
	User   string
	Groups []string
	// Verb is the API verb of the HTTP method: get, create, update, patch, delete.
	Verb string
	// Subresource of nodes: proxy, stats, metrics, log, checkpoint, pods, healthz, configz.
	Subresource string
	// Node is the kubelet's node name, the Node the request is about.
	Node string
	// Path is the request's path, for logs.
	Path string
}

// Authorizer decides kubelet API requests. err is for a decision that could not be made (the
// API server unreachable), never for a denial.
type Authorizer interface {
	Authorize(ctx context.Context, a RequestAttributes) (allowed bool, reason string, err error)
}

// httpVerb is the API verb of an HTTP method, as upstream's kubelet maps it; "" for any other.
func httpVerb(method string) string {
	switch method {
	case http.MethodGet:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return ""
}

// isSubpath reports whether path is prefix or below it.
func isSubpath(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// requestSubresources are the node subresources that may allow a request to path, the first
// one that allows it wins: upstream's mapping with fine-grained kubelet authorization (GA in
// 1.36), where /pods, /runningpods, /healthz and /configz have a subresource of their own and
// still accept nodes/proxy, and every path not named is nodes/proxy alone (exec, attach,
// portForward, containerLogs, run).
func requestSubresources(path string) []string {
	switch {
	case isSubpath(path, "/stats"):
		return []string{"stats"}
	case isSubpath(path, "/metrics"):
		return []string{"metrics"}
	case isSubpath(path, "/logs"):
		return []string{"log"}
	case isSubpath(path, "/checkpoint"):
		return []string{"checkpoint"}
	case isSubpath(path, "/pods"), isSubpath(path, "/runningpods"):
		return []string{"pods", "proxy"}
	case isSubpath(path, "/healthz"):
		return []string{"healthz", "proxy"}
	case isSubpath(path, "/configz"):
		return []string{"configz", "proxy"}
	}
	return []string{"proxy"}
}

// requestAttributes are the questions that may allow user's request r to node's kubelet, in
// the order they are asked.
func requestAttributes(r *http.Request, user string, groups []string, node string) []RequestAttributes {
	verb := httpVerb(r.Method)
	var out []RequestAttributes
	for _, sub := range requestSubresources(r.URL.Path) {
		out = append(out, RequestAttributes{User: user, Groups: groups, Verb: verb, Subresource: sub, Node: node, Path: r.URL.Path})
	}
	return out
}

// authenticatedUser is who made a request: the verified client certificate's CN and O, else
// the user of its bearer token when tokens is set (upstream's
// --authentication-token-webhook), else the anonymous user when the kubelet verifies no
// certificates. ok is false for a request that must present credentials and did not, or whose
// token is not valid.
func authenticatedUser(r *http.Request, requireCert bool, tokens TokenAuthenticator) (user string, groups []string, ok bool) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return certificateUser(r.TLS.VerifiedChains[0][0])
	}
	if token, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found && tokens != nil {
		user, groups, ok, err := tokens.AuthenticateToken(r.Context(), strings.TrimSpace(token))
		if err != nil {
			slog.Error("kubelet API token review", "err", err)
		}
		if err != nil || !ok {
			return "", nil, false
		}
		return user, groups, true
	}
	if requireCert {
		return "", nil, false
	}
	return userAnonymous, []string{groupUnauthenticated}, true
}

func certificateUser(cert *x509.Certificate) (string, []string, bool) {
	if cert.Subject.CommonName == "" {
		return "", nil, false
	}
	groups := append(slices.Clone(cert.Subject.Organization), groupAuthenticated)
	return cert.Subject.CommonName, groups, true
}

// withAuth guards next: 401 for a request without the credentials the kubelet requires, 403
// with upstream's words for one the authorizer denies, 500 when it cannot decide. authz nil
// allows every authenticated request (upstream's AlwaysAllow).
func withAuth(next http.Handler, node string, requireCert bool, tokens TokenAuthenticator, authz Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, groups, ok := authenticatedUser(r, requireCert, tokens)
		if !ok {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		if authz == nil {
			next.ServeHTTP(w, r)
			return
		}
		attrs := requestAttributes(r, user, groups, node)
		var subresources []string
		for _, a := range attrs {
			subresources = append(subresources, a.Subresource)
			allowed, _, err := authz.Authorize(r.Context(), a)
			if err != nil {
				slog.Error("kubelet API authorization", "user", user, "verb", a.Verb, "subresource", a.Subresource, "err", err)
				http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=nodes, subresource=%s)", user, a.Verb, a.Subresource), http.StatusInternalServerError)
				return
			}
			if allowed {
				next.ServeHTTP(w, r)
				return
			}
		}
		msg := forbiddenMessage(user, attrs[0].Verb, subresources)
		slog.Debug("kubelet API request forbidden", "path", r.URL.Path, "msg", msg)
		http.Error(w, msg, http.StatusForbidden)
	})
}

// forbiddenMessage is upstream's kubelet's 403 body (since fine-grained authorization, every
// subresource that was asked is listed).
func forbiddenMessage(user, verb string, subresources []string) string {
	return fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource(s)=%v)", user, verb, subresources)
}

// TokenAuthenticator tells the user of a bearer token. err is for an answer that could not
// be had (the API server unreachable), never for an invalid token.
type TokenAuthenticator interface {
	AuthenticateToken(ctx context.Context, token string) (user string, groups []string, ok bool, err error)
}

// WebhookTokenAuthenticator answers with the API server's TokenReview
// (authentication.k8s.io/v1), remembering each answer for a while, as upstream's kubelet with
// --authentication-token-webhook (--authentication-token-webhook-cache-ttl 2m).
type WebhookTokenAuthenticator struct {
	reviews authenticationclient.TokenReviewInterface
	ttl     time.Duration
	now     func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cachedUser
}

var _ TokenAuthenticator = (*WebhookTokenAuthenticator)(nil)

type cachedUser struct {
	user    string
	groups  []string
	ok      bool
	expires time.Time
}

// NewWebhookTokenAuthenticator asks reviews, caching answers for ttl (zero: upstream's 2
// minutes).
func NewWebhookTokenAuthenticator(reviews authenticationclient.TokenReviewInterface, ttl time.Duration) *WebhookTokenAuthenticator {
	if ttl == 0 {
		ttl = 2 * time.Minute
	}
	return &WebhookTokenAuthenticator{reviews: reviews, ttl: ttl, now: time.Now, cache: map[[32]byte]cachedUser{}}
}

func (a *WebhookTokenAuthenticator) AuthenticateToken(ctx context.Context, token string) (string, []string, bool, error) {
	// the cache is keyed by a digest, so that tokens are not kept in memory longer than needed
	key := sha256.Sum256([]byte(token))
	now := a.now()
	a.mu.Lock()
	c, found := a.cache[key]
	a.mu.Unlock()
	if found && now.Before(c.expires) {
		return c.user, c.groups, c.ok, nil
	}
	review, err := a.reviews.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return "", nil, false, fmt.Errorf("TokenReview: %w", err)
	}
	c = cachedUser{ok: review.Status.Authenticated, expires: now.Add(a.ttl)}
	if c.ok {
		c.user, c.groups = review.Status.User.Username, review.Status.User.Groups
	}
	a.mu.Lock()
	if len(a.cache) >= maxCachedDecisions {
		clear(a.cache)
	}
	a.cache[key] = c
	a.mu.Unlock()
	return c.user, c.groups, c.ok, nil
}

// WebhookAuthorizer answers with the API server's SubjectAccessReview
// (authorization.k8s.io/v1), remembering each answer for a while as upstream's kubelet does
// (--authorization-webhook-cache-authorized-ttl 5m, -unauthorized-ttl 30s).
type WebhookAuthorizer struct {
	reviews           authorizationclient.SubjectAccessReviewInterface
	allowTTL, denyTTL time.Duration
	now               func() time.Time

	mu    sync.Mutex
	cache map[string]cachedDecision
}

var _ Authorizer = (*WebhookAuthorizer)(nil)

type cachedDecision struct {
	allowed bool
	reason  string
	expires time.Time
}

// maxCachedDecisions bounds the cache; past it, expired answers are dropped, and if none has
// expired, all of them.
const maxCachedDecisions = 4096

// NewWebhookAuthorizer asks reviews, caching allowed answers for allowTTL and denied ones for
// denyTTL (zero: upstream's 5 minutes and 30 seconds).
func NewWebhookAuthorizer(reviews authorizationclient.SubjectAccessReviewInterface, allowTTL, denyTTL time.Duration) *WebhookAuthorizer {
	if allowTTL == 0 {
		allowTTL = 5 * time.Minute
	}
	if denyTTL == 0 {
		denyTTL = 30 * time.Second
	}
	return &WebhookAuthorizer{reviews: reviews, allowTTL: allowTTL, denyTTL: denyTTL, now: time.Now, cache: map[string]cachedDecision{}}
}

func (a *WebhookAuthorizer) Authorize(ctx context.Context, attrs RequestAttributes) (bool, string, error) {
	groups := slices.Clone(attrs.Groups)
	slices.Sort(groups)
	key := strings.Join([]string{attrs.User, strings.Join(groups, ","), attrs.Verb, attrs.Subresource, attrs.Node}, "\x00")
	now := a.now()
	a.mu.Lock()
	d, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(d.expires) {
		return d.allowed, d.reason, nil
	}
	review, err := a.reviews.Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: attrs.User, Groups: attrs.Groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: attrs.Verb, Version: "v1", Resource: "nodes", Subresource: attrs.Subresource, Name: attrs.Node,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("SubjectAccessReview: %w", err)
	}
	// not allowed is denied: the kubelet has no other authorizer to ask, as upstream's with
	// Webhook alone
	d = cachedDecision{allowed: review.Status.Allowed, reason: review.Status.Reason, expires: now.Add(a.denyTTL)}
	if d.allowed {
		d.expires = now.Add(a.allowTTL)
	}
	a.mu.Lock()
	if len(a.cache) >= maxCachedDecisions {
		for k, old := range a.cache {
			if !now.Before(old.expires) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= maxCachedDecisions {
			clear(a.cache)
		}
	}
	a.cache[key] = d
	a.mu.Unlock()
	return d.allowed, d.reason, nil
}
