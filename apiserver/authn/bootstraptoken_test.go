package authn

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func bootstrapSecret(id string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: BootstrapTokenSecretPrefix + id, Namespace: "kube-system"},
		Type:       BootstrapTokenSecretType,
		Data:       map[string][]byte{},
	}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func TestBootstrapTokensAuthenticateOnlyValidUnexpiredAuthenticationTokens(t *testing.T) {
	now := time.Now()
	secrets := map[string]*corev1.Secret{
		"good": bootstrapSecret("abcdef", map[string]string{"token-id": "abcdef", "token-secret": "0123456789abcdef",
			"usage-bootstrap-authentication": "true", "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
			"expiration": now.Add(time.Hour).Format(time.RFC3339)}),
		"expired": bootstrapSecret("expird", map[string]string{"token-id": "expird", "token-secret": "0123456789abcdef",
			"usage-bootstrap-authentication": "true", "expiration": now.Add(-time.Minute).Format(time.RFC3339)}),
		"signing-only": bootstrapSecret("signed", map[string]string{"token-id": "signed", "token-secret": "0123456789abcdef",
			"usage-bootstrap-signing": "true"}),
		"bad-group": bootstrapSecret("badgrp", map[string]string{"token-id": "badgrp", "token-secret": "0123456789abcdef",
			"usage-bootstrap-authentication": "true", "auth-extra-groups": "system:masters"}),
	}
	get := func(_ context.Context, ns, name string) (*corev1.Secret, error) {
		for _, s := range secrets {
			if s.Namespace == ns && s.Name == name {
				return s, nil
			}
		}
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
	}
	b := NewBootstrapTokens(get)
	try := func(token string) (*User, bool, error) {
		r, _ := http.NewRequest("GET", "/api", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		return b.Authenticate(r)
	}
	user, ok, err := try("abcdef.0123456789abcdef")
	if err != nil || !ok {
		t.Fatalf("valid token: %v %v", ok, err)
	}
	if user.Name != "system:bootstrap:abcdef" ||
		!slices.Equal(user.Groups, []string{"system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token", "system:authenticated"}) {
		t.Errorf("valid token is %q %v", user.Name, user.Groups)
	}
	for _, token := range []string{"abcdef.0123456789abcdee", "expird.0123456789abcdef", "signed.0123456789abcdef", "badgrp.0123456789abcdef", "nosuch.0123456789abcdef"} {
		if _, ok, err := try(token); ok || err == nil {
			t.Errorf("%s: ok %v err %v, want refused", token, ok, err)
		}
	}
	if _, ok, err := try("not-a-bootstrap-token"); ok || err != nil {
		t.Errorf("another kind of token: ok %v err %v, want not judged", ok, err)
	}
}
