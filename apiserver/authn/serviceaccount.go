package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Service-account identities, as upstream's k8s.io/apiserver/pkg/authentication/serviceaccount.
const (
	// ServiceAccountUsernamePrefix starts the user name of every service account:
	// system:serviceaccount:<namespace>:<name>.
	ServiceAccountUsernamePrefix = "system:serviceaccount:"
	// AllServiceAccountsGroup is the group of every service account; a service account is
	// also in AllServiceAccountsGroup + ":" + its namespace.
	AllServiceAccountsGroup = "system:serviceaccounts"

	// The extra keys a token bound to a pod adds to its user, and the key naming the token.
	PodNameExtraKey      = "authentication.kubernetes.io/pod-name"
	PodUIDExtraKey       = "authentication.kubernetes.io/pod-uid"
	NodeNameExtraKey     = "authentication.kubernetes.io/node-name"
	NodeUIDExtraKey      = "authentication.kubernetes.io/node-uid"
	CredentialIDExtraKey = "authentication.kubernetes.io/credential-id"
)

// ServiceAccountUsername is the user name of a service account.
func ServiceAccountUsername(namespace, name string) string {
	return ServiceAccountUsernamePrefix + namespace + ":" + name
}

// ServiceAccountGroups are the groups of a service account in namespace.
func ServiceAccountGroups(namespace string) []string {
	return []string{AllServiceAccountsGroup, AllServiceAccountsGroup + ":" + namespace}
}

// ServiceAccountToken is what a service-account token says: which account, for which
// audiences, from when until when, and the objects its life is bound to.
type ServiceAccountToken struct {
	Namespace      string
	ServiceAccount ObjectRef
	// Pod, Secret or Node is the object the token is bound to, if any: the token stops
	// working when it is gone. With Pod, Node is the pod's node, recorded but not checked.
	Pod, Secret, Node *ObjectRef
	Audiences         []string
	IssuedAt, Expiry  time.Time
	// WarnAfter, when set, is when the token should have been renewed although it is valid
	// until Expiry (upstream's extended expiry of projected tokens).
	WarnAfter time.Time
	// ID is the token's jti, unique per token, for audit.
	ID string
}

// ObjectRef names one object by name and uid.
type ObjectRef struct {
	Name string `json:"name,omitempty"`
	UID  string `json:"uid,omitempty"`
}

// tokenClaims is the JWT payload, claim for claim upstream's: the registered claims and the
// private kubernetes.io claim.
type tokenClaims struct {
	jwt.RegisteredClaims
	Kubernetes *kubernetesClaims `json:"kubernetes.io,omitempty"`
}

type kubernetesClaims struct {
	Namespace      string           `json:"namespace,omitempty"`
	ServiceAccount ObjectRef        `json:"serviceaccount"`
	Pod            *ObjectRef       `json:"pod,omitempty"`
	Secret         *ObjectRef       `json:"secret,omitempty"`
	Node           *ObjectRef       `json:"node,omitempty"`
	WarnAfter      *jwt.NumericDate `json:"warnafter,omitempty"`
}

// TokenIssuer signs service-account tokens as JWTs with the cluster's service-account key.
type TokenIssuer struct {
	issuer string
	key    crypto.Signer
	method jwt.SigningMethod
	keyID  string
}

// NewTokenIssuer returns an issuer whose tokens name issuer as iss and are signed with key
// (RSA: RS256; ECDSA: ES256, ES384 or ES512 by curve).
func NewTokenIssuer(issuer string, key crypto.Signer) (*TokenIssuer, error) {
	if issuer == "" {
		return nil, errors.New("service-account token issuer must not be empty")
	}
	method, err := signingMethod(key)
	if err != nil {
		return nil, err
	}
	keyID, err := keyIDOf(key.Public())
	if err != nil {
		return nil, err
	}
	return &TokenIssuer{issuer: issuer, key: key, method: method, keyID: keyID}, nil
}

// Issuer is the iss of the tokens i signs.
func (i *TokenIssuer) Issuer() string { return i.issuer }

// Issue signs a token saying t.
func (i *TokenIssuer) Issue(t ServiceAccountToken) (string, error) {
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.issuer,
			Subject:   ServiceAccountUsername(t.Namespace, t.ServiceAccount.Name),
			Audience:  jwt.ClaimStrings(t.Audiences),
			IssuedAt:  jwt.NewNumericDate(t.IssuedAt),
			NotBefore: jwt.NewNumericDate(t.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(t.Expiry),
			ID:        t.ID,
		},
		Kubernetes: &kubernetesClaims{
			Namespace: t.Namespace, ServiceAccount: t.ServiceAccount,
			Pod: t.Pod, Secret: t.Secret, Node: t.Node,
		},
	}
	if !t.WarnAfter.IsZero() {
		claims.Kubernetes.WarnAfter = jwt.NewNumericDate(t.WarnAfter)
	}
	token := jwt.NewWithClaims(i.method, claims)
	// upstream's header is alg and kid only
	delete(token.Header, "typ")
	token.Header["kid"] = i.keyID
	return token.SignedString(i.key)
}

func signingMethod(key crypto.Signer) (jwt.SigningMethod, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return jwt.SigningMethodRS256, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256, nil
		case elliptic.P384():
			return jwt.SigningMethodES384, nil
		case elliptic.P521():
			return jwt.SigningMethodES512, nil
		}
	}
	return nil, fmt.Errorf("a %T cannot sign service-account tokens (RSA or ECDSA P-256, P-384, P-521 only)", key)
}

// keyIDOf is upstream's key ID: the unpadded base64url SHA-256 of the PKIX public key, so that
// every API server names the same key alike.
func keyIDOf(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// BoundObjectGetter reads an object a token names, of resource "serviceaccounts", "pods" or
// "secrets" in namespace, or "nodes" (namespace empty), so that a token stops authenticating once that object is gone or was
// made anew. An object that does not exist is an error. With latest false it may answer from a
// cache that trails the store by a moment; with latest true it reads the store itself.
type BoundObjectGetter func(ctx context.Context, resource, namespace, name string, latest bool) (metav1.Object, error)

// ServiceAccountTokens authenticates "Authorization: Bearer <jwt>" service-account tokens, as
// upstream's bound service-account token authenticator: signed by a known key, issued by the
// issuer, for one of the audiences, unexpired, and naming a service account (and a bound pod
// or secret) that still exists with the uid the token names.
type ServiceAccountTokens struct {
	issuer    string
	audiences []string
	keys      jwt.VerificationKeySet
	methods   []string
	objects   BoundObjectGetter
	now       func() time.Time
}

var _ Authenticator = (*ServiceAccountTokens)(nil)

// tokenLeeway is the clock skew allowed on exp and nbf, go-jose's default that upstream keeps;
// a deleted object's tokens also live on this long, as upstream's.
const tokenLeeway = time.Minute

// NewServiceAccountTokens returns an authenticator of tokens from issuer for any of audiences,
// signed by a key whose public half is in keys; objects reads what the tokens are bound to.
func NewServiceAccountTokens(issuer string, audiences []string, objects BoundObjectGetter, keys ...crypto.PublicKey) (*ServiceAccountTokens, error) {
	if issuer == "" || len(audiences) == 0 || objects == nil || len(keys) == 0 {
		return nil, errors.New("service-account tokens need an issuer, audiences, a getter and a key")
	}
	a := &ServiceAccountTokens{issuer: issuer, audiences: slices.Clone(audiences), objects: objects, now: time.Now}
	for _, k := range keys {
		switch k.(type) {
		case *rsa.PublicKey:
			a.methods = append(a.methods, jwt.SigningMethodRS256.Alg())
		case *ecdsa.PublicKey:
			a.methods = append(a.methods, jwt.SigningMethodES256.Alg(), jwt.SigningMethodES384.Alg(), jwt.SigningMethodES512.Alg())
		default:
			return nil, fmt.Errorf("a %T cannot verify service-account tokens", k)
		}
		a.keys.Keys = append(a.keys.Keys, k)
	}
	slices.Sort(a.methods)
	a.methods = slices.Compact(a.methods)
	return a, nil
}

// Authenticate implements Authenticator. A bearer token that is not a JWT of this issuer is
// not ServiceAccountTokens' to judge (a token file or another issuer may know it).
func (a *ServiceAccountTokens) Authenticate(r *http.Request) (*User, bool, error) {
	raw, ok := bearerToken(r)
	if !ok || strings.Count(raw, ".") != 2 {
		return nil, false, nil
	}
	var peek tokenClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &peek); err != nil || peek.Issuer != a.issuer {
		return nil, false, nil
	}
	var claims tokenClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return a.keys, nil },
		jwt.WithValidMethods(a.methods),
		jwt.WithIssuer(a.issuer),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithTimeFunc(a.now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, false, errors.New("service account token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, false, errors.New("service account token is not valid yet")
	case err != nil:
		return nil, false, fmt.Errorf("invalid service account token: %w", err)
	}
	if !slices.ContainsFunc(claims.Audience, func(aud string) bool { return slices.Contains(a.audiences, aud) }) {
		return nil, false, fmt.Errorf("token audiences %q is invalid for the target audiences %q", []string(claims.Audience), a.audiences)
	}
	k := claims.Kubernetes
	if k == nil || k.Namespace == "" || k.ServiceAccount.Name == "" || k.ServiceAccount.UID == "" {
		return nil, false, errors.New("service account token claims lack namespace or service account")
	}
	if claims.Subject != ServiceAccountUsername(k.Namespace, k.ServiceAccount.Name) {
		return nil, false, errors.New("service account token subject does not match its claims")
	}
	// the cache answers almost always; a miss or another uid is confirmed with the store, as
	// an account made a moment ago may not have reached the cache yet
	if err := a.checkBound(r.Context(), k, false); err != nil {
		if err = a.checkBound(r.Context(), k, true); err != nil {
			return nil, false, err
		}
	}
	return serviceAccountUser(claims), true, nil
}

// checkBound checks that the objects a token names exist, with the uids it names, and were
// not deleted more than tokenLeeway ago (a pod shutting down gracefully still talks to the API).
func (a *ServiceAccountTokens) checkBound(ctx context.Context, k *kubernetesClaims, latest bool) error {
	deletedBefore := a.now().Add(-tokenLeeway)
	check := func(resource, kind, ns string, ref ObjectRef) error {
		obj, err := a.objects(ctx, resource, ns, ref.Name, latest)
		if err != nil {
			return err
		}
		if d := obj.GetDeletionTimestamp(); d != nil && d.Time.Before(deletedBefore) {
			return fmt.Errorf("%s %s has been deleted", kind, strings.TrimPrefix(ns+"/"+ref.Name, "/"))
		}
		if string(obj.GetUID()) != ref.UID {
			return fmt.Errorf("%s UID (%s) does not match claim (%s)", kind, obj.GetUID(), ref.UID)
		}
		return nil
	}
	if err := check("serviceaccounts", "service account", k.Namespace, k.ServiceAccount); err != nil {
		return err
	}
	switch {
	case k.Pod != nil:
		return check("pods", "pod", k.Namespace, *k.Pod)
	case k.Secret != nil:
		return check("secrets", "secret", k.Namespace, *k.Secret)
	case k.Node != nil:
		return check("nodes", "node", "", *k.Node)
	}
	return nil
}

// serviceAccountUser is the user a valid token authenticates, as upstream's
// ServiceAccountInfo.UserInfo.
func serviceAccountUser(claims tokenClaims) *User {
	k := claims.Kubernetes
	u := &User{
		Name:   ServiceAccountUsername(k.Namespace, k.ServiceAccount.Name),
		UID:    k.ServiceAccount.UID,
		Groups: ServiceAccountGroups(k.Namespace),
	}
	extra := map[string][]string{}
	if k.Pod != nil {
		extra[PodNameExtraKey] = []string{k.Pod.Name}
		extra[PodUIDExtraKey] = []string{k.Pod.UID}
	}
	if k.Node != nil {
		extra[NodeNameExtraKey] = []string{k.Node.Name}
		if k.Node.UID != "" {
			extra[NodeUIDExtraKey] = []string{k.Node.UID}
		}
	}
	if claims.ID != "" {
		extra[CredentialIDExtraKey] = []string{"JTI=" + claims.ID}
	}
	if len(extra) > 0 {
		u.Extra = extra
	}
	return withAuthenticatedGroup(u)
}
