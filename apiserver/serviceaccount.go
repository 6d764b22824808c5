package apiserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/registry"
)

// DefaultServiceAccountIssuer is the iss of service-account tokens unless Config says
// otherwise, as kubeadm configures upstream's --service-account-issuer.
const DefaultServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// buildAuthenticator makes the server's authenticator, client certificates, the token file
// and service-account tokens, and the issuer TokenRequest signs with. It needs the resources:
// a service-account token authenticates only while the objects it names exist.
func (s *Server) buildAuthenticator() error {
	if s.cfg.ServiceAccountIssuer == "" {
		s.cfg.ServiceAccountIssuer = DefaultServiceAccountIssuer
	}
	if len(s.cfg.APIAudiences) == 0 {
		s.cfg.APIAudiences = []string{s.cfg.ServiceAccountIssuer}
	}
	s.cfg.APIAudiences = slices.Clone(s.cfg.APIAudiences)
	key := s.cfg.ServiceAccountSigningKey
	if key == nil {
		generated, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("service-account signing key: %w", err)
		}
		key = generated
		slog.Warn("no service-account signing key configured: tokens this server issues verify only on it, and only until it stops")
	}
	issuer, err := authn.NewTokenIssuer(s.cfg.ServiceAccountIssuer, key)
	if err != nil {
		return err
	}
	tokens, err := authn.NewServiceAccountTokens(s.cfg.ServiceAccountIssuer, s.cfg.APIAudiences, s.boundObject, key.Public())
	if err != nil {
		return err
	}
	a, err := authn.New(s.cfg.ClientCA, s.cfg.TokenFile, tokens)
	if err != nil {
		return err
	}
	// bootstrap tokens last, as upstream: they are how a new node first asks for its
	// certificate (authn/bootstraptoken.go)
	a = authn.Union(a, authn.NewBootstrapTokens(s.bootstrapTokenSecret))
	discovery, err := newIssuerDiscovery(s.cfg.ServiceAccountIssuer, key.Public())
	if err != nil {
		return err
	}
	s.authn, s.tokenIssuer, s.issuerDiscovery = a, issuer, discovery
	return nil
}

// coreStore is the registry store of a core v1 resource.
func (s *Server) coreStore(resource string) *registry.Store {
	return s.builtinStore(corev1.SchemeGroupVersion, resource)
}

// boundObject is the authenticator's authn.BoundObjectGetter: reads from the watch cache, or
// from etcd when latest.
func (s *Server) boundObject(ctx context.Context, resource, namespace, name string, latest bool) (metav1.Object, error) {
	opts := &metav1.GetOptions{}
	if !latest {
		opts.ResourceVersion = "0"
	}
	obj, err := s.coreStore(resource).Get(ctx, namespace, name, opts)
	if err != nil {
		return nil, err
	}
	return meta.Accessor(obj)
}

var _ authn.BoundObjectGetter = (*Server)(nil).boundObject

// bootstrapTokenSecret reads a bootstrap token's Secret from the watch cache, confirming a
// miss with a read from etcd (a token made a moment ago).
func (s *Server) bootstrapTokenSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	store := s.coreStore("secrets")
	obj, err := store.Get(ctx, namespace, name, &metav1.GetOptions{ResourceVersion: "0"})
	if apierrors.IsNotFound(err) {
		obj, err = store.Get(ctx, namespace, name, &metav1.GetOptions{})
	}
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Secret), nil
}
