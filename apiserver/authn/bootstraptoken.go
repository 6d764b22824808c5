package authn

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Bootstrap tokens, as upstream's bootstrap token authenticator and kubeadm's join: a token
// "abcdef.0123456789abcdef" is the Secret kube-system/bootstrap-token-abcdef of type
// bootstrap.kubernetes.io/token, whose token-secret is the second half. Its user is
// system:bootstrap:<id> in system:bootstrappers and the groups its auth-extra-groups names.

// Bootstrap token names and keys, as k8s.io/cluster-bootstrap's.
const (
	BootstrapTokenSecretType   corev1.SecretType = "bootstrap.kubernetes.io/token"
	BootstrapTokenSecretPrefix                   = "bootstrap-token-"
	BootstrapTokenUserPrefix                     = "system:bootstrap:"
	BootstrapDefaultGroup                        = "system:bootstrappers"

	BootstrapTokenIDKey          = "token-id"
	BootstrapTokenSecretKey      = "token-secret"
	BootstrapTokenExpirationKey  = "expiration"
	BootstrapTokenUsageAuthKey   = "usage-bootstrap-authentication"
	BootstrapTokenExtraGroupsKey = "auth-extra-groups"
)

var (
	bootstrapTokenPattern = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)
	bootstrapGroupPattern = regexp.MustCompile(`^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$`)
)

// SecretGetter reads a Secret; a missing one is an error for which apierrors.IsNotFound holds.
type SecretGetter func(ctx context.Context, namespace, name string) (*corev1.Secret, error)

// BootstrapTokens authenticates bearer bootstrap tokens against their Secrets in kube-system.
type BootstrapTokens struct {
	secrets SecretGetter
	now     func() time.Time
}

var _ Authenticator = (*BootstrapTokens)(nil)

// NewBootstrapTokens reads the tokens' Secrets through secrets.
func NewBootstrapTokens(secrets SecretGetter) *BootstrapTokens {
	return &BootstrapTokens{secrets: secrets, now: time.Now}
}

// Authenticate implements Authenticator. A bearer token not shaped as a bootstrap token is
// not its to judge; one that is, but whose Secret is missing, expired, not for
// authentication or holds another secret, is an error (upstream only logs why, and so do we
// not tell the client).
func (b *BootstrapTokens) Authenticate(r *http.Request) (*User, bool, error) {
	token, ok := bearerToken(r)
	if !ok {
		return nil, false, nil
	}
	m := bootstrapTokenPattern.FindStringSubmatch(token)
	if m == nil {
		return nil, false, nil
	}
	user, err := b.userOf(r.Context(), m[1], m[2])
	if err != nil {
		return nil, false, errInvalidBearerToken
	}
	r.Header.Del("Authorization")
	return withAuthenticatedGroup(user), true, nil
}

func (b *BootstrapTokens) userOf(ctx context.Context, id, secret string) (*User, error) {
	s, err := b.secrets(ctx, "kube-system", BootstrapTokenSecretPrefix+id)
	if err != nil {
		return nil, err
	}
	if s.DeletionTimestamp != nil || s.Type != BootstrapTokenSecretType {
		return nil, errors.New("not a bootstrap token secret")
	}
	if subtle.ConstantTimeCompare(s.Data[BootstrapTokenSecretKey], []byte(secret)) != 1 {
		return nil, errors.New("token secret does not match")
	}
	if string(s.Data[BootstrapTokenIDKey]) != id {
		return nil, errors.New("token id does not match")
	}
	if exp := string(s.Data[BootstrapTokenExpirationKey]); exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil || !b.now().Before(t) {
			return nil, errors.New("token expired")
		}
	}
	if string(s.Data[BootstrapTokenUsageAuthKey]) != "true" {
		return nil, errors.New("token not marked for authentication")
	}
	groups, err := BootstrapTokenGroups(s)
	if err != nil {
		return nil, err
	}
	return &User{Name: BootstrapTokenUserPrefix + id, Groups: groups}, nil
}

// BootstrapTokenGroups are the groups of a bootstrap token's user: system:bootstrappers and
// its auth-extra-groups, each of which must be a system:bootstrappers:... group.
func BootstrapTokenGroups(s *corev1.Secret) ([]string, error) {
	groups := []string{BootstrapDefaultGroup}
	extra := strings.TrimSpace(string(s.Data[BootstrapTokenExtraGroupsKey]))
	if extra == "" {
		return groups, nil
	}
	for _, g := range strings.Split(extra, ",") {
		g = strings.TrimSpace(g)
		if !bootstrapGroupPattern.MatchString(g) {
			return nil, fmt.Errorf("bootstrap group %q is invalid (must match %s)", g, bootstrapGroupPattern)
		}
		if g != BootstrapDefaultGroup {
			groups = append(groups, g)
		}
	}
	return groups, nil
}
