package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/apiserver/authn"
)

const testIssuer = "https://kubernetes.default.svc.cluster.local"

// boundObjects is a store of the objects tokens name, as the API server's cache (cached) and
// its store (latest) would hold them.
type boundObjects struct {
	cached, latest map[string]*metav1.ObjectMeta
}

func newBoundObjects() *boundObjects {
	return &boundObjects{cached: map[string]*metav1.ObjectMeta{}, latest: map[string]*metav1.ObjectMeta{}}
}

// put stores an object in both the cache and the store.
func (b *boundObjects) put(resource, ns, name, uid string) *metav1.ObjectMeta {
	m := &metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}
	b.cached[resource+"/"+ns+"/"+name] = m
	b.latest[resource+"/"+ns+"/"+name] = m
	return m
}

func (b *boundObjects) get(_ context.Context, resource, ns, name string, latest bool) (metav1.Object, error) {
	from := b.cached
	if latest {
		from = b.latest
	}
	m, ok := from[resource+"/"+ns+"/"+name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: resource}, name)
	}
	return m, nil
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

type tokenFixture struct {
	issuer  *authn.TokenIssuer
	tokens  *authn.ServiceAccountTokens
	objects *boundObjects
}

func newTokenFixture(t *testing.T) *tokenFixture {
	t.Helper()
	key := newECKey(t)
	issuer, err := authn.NewTokenIssuer(testIssuer, key)
	if err != nil {
		t.Fatal(err)
	}
	objects := newBoundObjects()
	tokens, err := authn.NewServiceAccountTokens(testIssuer, []string{testIssuer, "skiff"}, objects.get, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &tokenFixture{issuer: issuer, tokens: tokens, objects: objects}
}

// podToken is a token of ns/builder bound to pod ns/web, valid for an hour from now.
func podToken() authn.ServiceAccountToken {
	now := time.Now()
	return authn.ServiceAccountToken{
		Namespace:      "ns",
		ServiceAccount: authn.ObjectRef{Name: "builder", UID: "sa-uid"},
		Pod:            &authn.ObjectRef{Name: "web", UID: "pod-uid"},
		Node:           &authn.ObjectRef{Name: "node-a", UID: "node-uid"},
		Audiences:      []string{testIssuer},
		IssuedAt:       now, Expiry: now.Add(time.Hour),
		ID: "jti-1",
	}
}

func (f *tokenFixture) sign(t *testing.T, tok authn.ServiceAccountToken) string {
	t.Helper()
	raw, err := f.issuer.Issue(tok)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestServiceAccountTokenAuthenticatesAccountWithPodExtras(t *testing.T) {
	f := newTokenFixture(t)
	f.objects.put("serviceaccounts", "ns", "builder", "sa-uid")
	f.objects.put("pods", "ns", "web", "pod-uid")
	user, ok, err := f.tokens.Authenticate(bearer(f.sign(t, podToken())))
	wantUser(t, user, ok, err, authn.User{
		Name:   "system:serviceaccount:ns:builder",
		UID:    "sa-uid",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"},
		Extra: map[string][]string{
			"authentication.kubernetes.io/pod-name":      {"web"},
			"authentication.kubernetes.io/pod-uid":       {"pod-uid"},
			"authentication.kubernetes.io/node-name":     {"node-a"},
			"authentication.kubernetes.io/node-uid":      {"node-uid"},
			"authentication.kubernetes.io/credential-id": {"JTI=jti-1"},
		},
	})
}

func TestServiceAccountTokenClaimsAreUpstreams(t *testing.T) {
	f := newTokenFixture(t)
	raw := f.sign(t, podToken())
	parts := strings.Split(raw, ".")
	var header map[string]any
	var payload map[string]any
	for i, into := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatal(err)
		}
	}
	if header["alg"] != "ES256" || header["kid"] == "" || len(header) != 2 {
		t.Errorf("header = %v, want alg ES256 and kid only", header)
	}
	for _, claim := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "kubernetes.io"} {
		if _, ok := payload[claim]; !ok {
			t.Errorf("payload lacks %s: %v", claim, payload)
		}
	}
	if payload["sub"] != "system:serviceaccount:ns:builder" || payload["iss"] != testIssuer {
		t.Errorf("sub, iss = %v, %v", payload["sub"], payload["iss"])
	}
	k, _ := json.Marshal(payload["kubernetes.io"])
	want := `{"namespace":"ns","node":{"name":"node-a","uid":"node-uid"},"pod":{"name":"web","uid":"pod-uid"},"serviceaccount":{"name":"builder","uid":"sa-uid"}}`
	if string(k) != want {
		t.Errorf("kubernetes.io = %s, want %s", k, want)
	}
}

func TestServiceAccountTokenRefusedWhenBoundObjectsChanged(t *testing.T) {
	cases := map[string]func(o *boundObjects){
		"service account deleted": func(o *boundObjects) {
			delete(o.cached, "serviceaccounts/ns/builder")
			delete(o.latest, "serviceaccounts/ns/builder")
		},
		"service account recreated": func(o *boundObjects) { o.put("serviceaccounts", "ns", "builder", "other-uid") },
		"pod deleted":               func(o *boundObjects) { delete(o.cached, "pods/ns/web"); delete(o.latest, "pods/ns/web") },
		"pod recreated":             func(o *boundObjects) { o.put("pods", "ns", "web", "other-uid") },
		"pod deleted long ago": func(o *boundObjects) {
			o.put("pods", "ns", "web", "pod-uid").DeletionTimestamp = &metav1.Time{Time: time.Now().Add(-2 * time.Minute)}
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			f := newTokenFixture(t)
			f.objects.put("serviceaccounts", "ns", "builder", "sa-uid")
			f.objects.put("pods", "ns", "web", "pod-uid")
			raw := f.sign(t, podToken())
			change(f.objects)
			if user, ok, err := f.tokens.Authenticate(bearer(raw)); err == nil || ok {
				t.Errorf("Authenticate = %v, %v, %v; want an error", user, ok, err)
			}
		})
	}
}

func TestServiceAccountTokenOfPodShuttingDownStillAuthenticates(t *testing.T) {
	f := newTokenFixture(t)
	f.objects.put("serviceaccounts", "ns", "builder", "sa-uid")
	// graceful deletion sets the deletion timestamp to the end of the grace period
	f.objects.put("pods", "ns", "web", "pod-uid").DeletionTimestamp = &metav1.Time{Time: time.Now().Add(30 * time.Second)}
	if _, ok, err := f.tokens.Authenticate(bearer(f.sign(t, podToken()))); err != nil || !ok {
		t.Errorf("Authenticate = %v, %v; want the account", ok, err)
	}
}

func TestServiceAccountTokenConfirmsCacheMissWithStore(t *testing.T) {
	f := newTokenFixture(t)
	f.objects.put("pods", "ns", "web", "pod-uid")
	// an account made a moment ago, not yet in the cache
	f.objects.latest["serviceaccounts/ns/builder"] = &metav1.ObjectMeta{Namespace: "ns", Name: "builder", UID: "sa-uid"}
	if _, ok, err := f.tokens.Authenticate(bearer(f.sign(t, podToken()))); err != nil || !ok {
		t.Errorf("Authenticate = %v, %v; want the account", ok, err)
	}
}

func TestServiceAccountTokenRefusedWhenInvalid(t *testing.T) {
	f := newTokenFixture(t)
	f.objects.put("serviceaccounts", "ns", "builder", "sa-uid")
	f.objects.put("pods", "ns", "web", "pod-uid")
	otherIssuer, err := authn.NewTokenIssuer(testIssuer, newECKey(t))
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaIssuer, err := authn.NewTokenIssuer(testIssuer, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	expired := podToken()
	expired.IssuedAt, expired.Expiry = time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Minute)
	notYet := podToken()
	notYet.IssuedAt = time.Now().Add(10 * time.Minute)
	wrongAudience := podToken()
	wrongAudience.Audiences = []string{"vault"}
	mismatched := podToken()
	mismatched.ServiceAccount.Name = ""

	sign := func(i *authn.TokenIssuer, tok authn.ServiceAccountToken) string {
		raw, err := i.Issue(tok)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good := f.sign(t, podToken())
	// another account's claims under good's signature
	other := podToken()
	other.ServiceAccount = authn.ObjectRef{Name: "root", UID: "root-uid"}
	f.objects.put("serviceaccounts", "ns", "root", "root-uid")
	parts := strings.Split(good, ".")
	cases := map[string]string{
		"expired":              f.sign(t, expired),
		"not yet valid":        f.sign(t, notYet),
		"wrong audience":       f.sign(t, wrongAudience),
		"no account":           f.sign(t, mismatched),
		"forged (another key)": sign(otherIssuer, podToken()),
		"forged (RSA key)":     sign(rsaIssuer, podToken()),
		"payload swapped":      parts[0] + "." + strings.Split(sign(otherIssuer, other), ".")[1] + "." + parts[2],
		"unsigned":             parts[0] + "." + parts[1] + ".",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			if user, ok, err := f.tokens.Authenticate(bearer(raw)); err == nil || ok {
				t.Errorf("Authenticate = %v, %v, %v; want an error", user, ok, err)
			}
		})
	}
}

func TestServiceAccountTokensLeaveOtherBearerTokensAlone(t *testing.T) {
	f := newTokenFixture(t)
	otherIssuer, err := authn.NewTokenIssuer("https://oidc.example.com", newECKey(t))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := otherIssuer.Issue(podToken())
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"static-token", foreign, "a.b.c"} {
		if user, ok, err := f.tokens.Authenticate(bearer(raw)); err != nil || ok {
			t.Errorf("Authenticate(%.20s) = %v, %v, %v; want not mine", raw, user, ok, err)
		}
	}
}

// TestNewTriesServiceAccountTokensAfterTokenFile: a token file that does not know a bearer
// token does not stop the service-account authenticator after it.
func TestNewTriesServiceAccountTokensAfterTokenFile(t *testing.T) {
	f := newTokenFixture(t)
	f.objects.put("serviceaccounts", "ns", "builder", "sa-uid")
	tok := podToken()
	tok.Pod, tok.Node, tok.ID = nil, nil, ""
	a, err := authn.New(newPKI(t).CAPool, writeTokenFile(t, "static,alice,1\n"), f.tokens)
	if err != nil {
		t.Fatal(err)
	}
	user, ok, err := a.Authenticate(bearer(f.sign(t, tok)))
	wantUser(t, user, ok, err, authn.User{
		Name: "system:serviceaccount:ns:builder", UID: "sa-uid",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"},
	})
	if _, ok, err := a.Authenticate(bearer("unknown")); ok || err == nil {
		t.Errorf("unknown token: ok %v, err %v; want an error", ok, err)
	}
}
