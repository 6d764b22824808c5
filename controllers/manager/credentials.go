package manager

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/oauth2"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
)

// Service-account credentials, as upstream's --use-service-account-credentials: each
// controller talks to the API server as its own ServiceAccount in kube-system, which the
// default policy binds to system:controller:<name>, so that a controller can do only what its
// job needs. The manager's own identity (system:kube-controller-manager) makes the accounts,
// requests their tokens and runs the shared informers.

// serviceAccountNamespace holds the controllers' accounts.
const serviceAccountNamespace = "kube-system"

// tokenLifetime is how long each controller token lives; it is renewed at four fifths of it.
const tokenLifetime = time.Hour

// serviceAccountConfig is cfg without its own credentials, authenticating as the
// ServiceAccount kube-system/name instead (made if missing), with a token requested through
// client and renewed before it expires.
func serviceAccountConfig(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, name string) (*rest.Config, error) {
	accounts := client.CoreV1().ServiceAccounts(serviceAccountNamespace)
	if _, err := accounts.Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: serviceAccountNamespace}}
		if _, err := accounts.Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("service account %s/%s: %w", serviceAccountNamespace, name, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("service account %s/%s: %w", serviceAccountNamespace, name, err)
	}
	src := &serviceAccountTokenSource{ctx: ctx, client: client, name: name}
	// the first token now, so that a controller that cannot get one does not start
	if _, err := src.Token(); err != nil {
		return nil, err
	}
	out := rest.AnonymousClientConfig(cfg)
	out.QPS, out.Burst, out.UserAgent = cfg.QPS, cfg.Burst, cfg.UserAgent+"/"+name
	out.WrapTransport = transport.TokenSourceWrapTransport(oauth2.ReuseTokenSource(nil, src))
	return out, nil
}

// serviceAccountTokenSource requests tokens of one ServiceAccount.
type serviceAccountTokenSource struct {
	ctx    context.Context
	client kubernetes.Interface
	name   string

	mu   sync.Mutex
	last *oauth2.Token
}

var _ oauth2.TokenSource = (*serviceAccountTokenSource)(nil)

// Token returns a fresh token, reported to expire at four fifths of its life so that the
// caching source asks again in time.
func (s *serviceAccountTokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last != nil && time.Until(s.last.Expiry) > 0 {
		return s.last, nil
	}
	seconds := int64(tokenLifetime / time.Second)
	tr, err := s.client.CoreV1().ServiceAccounts(serviceAccountNamespace).CreateToken(s.ctx, s.name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token of service account %s/%s: %w", serviceAccountNamespace, s.name, err)
	}
	issued := time.Now()
	life := tr.Status.ExpirationTimestamp.Sub(issued)
	s.last = &oauth2.Token{AccessToken: tr.Status.Token, TokenType: "Bearer", Expiry: issued.Add(life * 4 / 5)}
	return s.last, nil
}
