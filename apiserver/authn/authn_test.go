package authn_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/apiserver/authn"
	"github.com/skiff-dev/skiff/apiserver/certs"
)

// newPKI makes a cluster PKI: a CA with serving and admin certificates.
func newPKI(t *testing.T) *certs.PKI {
	t.Helper()
	p, err := certs.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func clientCert(t *testing.T, p *certs.PKI, user string, groups ...string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := p.ClientCertificate(user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// requestWithCert is a request as a TLS server hands it over after a client presented cert.
func requestWithCert(cert tls.Certificate) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://127.0.0.1/api", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}}
	return r
}

func writeTokenFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func bearer(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://127.0.0.1/api", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

func wantUser(t *testing.T, got *authn.User, ok bool, err error, want authn.User) {
	t.Helper()
	if err != nil || !ok {
		t.Fatalf("Authenticate = ok %v, err %v; want user %+v", ok, err, want)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Authenticate = %+v, want %+v", *got, want)
	}
}

// TestClientCertificateOverTLSAuthenticatesCNAndOrganizations runs the authenticator behind a
// real TLS server that asks for, but does not itself verify, client certificates.
func TestClientCertificateOverTLSAuthenticatesCNAndOrganizations(t *testing.T) {
	p := newPKI(t)
	a := authn.NewX509(p.CAPool)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok, err := a.Authenticate(r)
		switch {
		case err != nil:
			http.Error(w, err.Error(), http.StatusUnauthorized)
		case !ok:
			http.Error(w, "no credentials", http.StatusUnauthorized)
		default:
			json.NewEncoder(w).Encode(user)
		}
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{p.ServingCert},
		ClientAuth:   tls.RequestClientCert,
	}
	srv.StartTLS()
	defer srv.Close()

	get := func(cert *tls.Certificate) (int, string) {
		t.Helper()
		cfg := &tls.Config{RootCAs: p.CAPool}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		defer client.CloseIdleConnections()
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	code, body := get(&p.AdminCert)
	var user authn.User
	if err := json.Unmarshal([]byte(body), &user); code != http.StatusOK || err != nil {
		t.Fatalf("admin certificate: %d %s", code, body)
	}
	want := authn.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}}
	if !reflect.DeepEqual(user, want) {
		t.Errorf("admin certificate authenticated as %+v, want %+v", user, want)
	}

	stranger := clientCert(t, newPKI(t), "admin", "system:masters")
	if code, body := get(&stranger); code != http.StatusUnauthorized || !strings.Contains(body, "verifying certificate") {
		t.Errorf("certificate from another CA: %d %s, want 401 verifying certificate ... failed", code, body)
	}

	if code, body := get(nil); code != http.StatusUnauthorized || !strings.Contains(body, "no credentials") {
		t.Errorf("no certificate: %d %s, want no credentials", code, body)
	}
}

func TestClientCertificateWithSeveralGroups(t *testing.T) {
	p := newPKI(t)
	r := requestWithCert(clientCert(t, p, "system:node:n1", "system:nodes", "team-a"))
	user, ok, err := authn.NewX509(p.CAPool).Authenticate(r)
	wantUser(t, user, ok, err, authn.User{
		Name:   "system:node:n1",
		Groups: []string{"system:nodes", "team-a", "system:authenticated"},
	})
}

func TestServingCertificateIsNotAClientCertificate(t *testing.T) {
	p := newPKI(t)
	_, ok, err := authn.NewX509(p.CAPool).Authenticate(requestWithCert(p.ServingCert))
	if ok || err == nil {
		t.Fatalf("serving certificate as a client: ok %v err %v, want an error", ok, err)
	}
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.IncompatibleUsage {
		t.Errorf("error = %v, want incompatible key usage", err)
	}
}

func TestRequestWithoutTLSHasNoCertificateCredentials(t *testing.T) {
	p := newPKI(t)
	r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/api", nil)
	r.TLS = nil
	if user, ok, err := authn.NewX509(p.CAPool).Authenticate(r); ok || err != nil {
		t.Errorf("plain HTTP request: %+v %v %v, want not ok and no error", user, ok, err)
	}
}

func TestTokenFileAuthenticatesBearerToken(t *testing.T) {
	path := writeTokenFile(t, `s3cret,alice,1001,"dev,ops"
other-token,bob,1002
`)
	tokens, err := authn.LoadTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}

	r := bearer("s3cret")
	user, ok, err := tokens.Authenticate(r)
	wantUser(t, user, ok, err, authn.User{Name: "alice", UID: "1001", Groups: []string{"dev", "ops", "system:authenticated"}})
	if h := r.Header.Get("Authorization"); h != "" {
		t.Errorf("Authorization header left on the request after authentication: %q", h)
	}

	user, ok, err = tokens.Authenticate(bearer("other-token"))
	wantUser(t, user, ok, err, authn.User{Name: "bob", UID: "1002", Groups: []string{"system:authenticated"}})

	// a second request for the same token gets its own groups slice
	user, _, _ = tokens.Authenticate(bearer("s3cret"))
	user.Groups[0] = "changed"
	again, _, _ := tokens.Authenticate(bearer("s3cret"))
	if again.Groups[0] != "dev" {
		t.Errorf("a caller changing a returned user changed the next one: %v", again.Groups)
	}
}

func TestUnknownBearerTokenIsInvalid(t *testing.T) {
	tokens, err := authn.LoadTokenFile(writeTokenFile(t, "s3cret,alice,1001\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := bearer("s3cre")
	_, ok, err := tokens.Authenticate(r)
	if ok || err == nil || err.Error() != "invalid bearer token" {
		t.Fatalf("unknown token: ok %v err %v, want invalid bearer token", ok, err)
	}
	if r.Header.Get("Authorization") == "" {
		t.Error("Authorization header removed from a request that did not authenticate")
	}
}

func TestRequestWithoutBearerTokenIsNotTheTokenFilesToJudge(t *testing.T) {
	tokens, err := authn.LoadTokenFile(writeTokenFile(t, "s3cret,alice,1001\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, header := range []string{"", "Basic YWxpY2U6cHc=", "Bearer", "Bearer ", "Bearer  s3cret"} {
		r := httptest.NewRequest(http.MethodGet, "https://127.0.0.1/api", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		if user, ok, err := tokens.Authenticate(r); ok || err != nil {
			t.Errorf("Authorization %q: %+v %v %v, want not ok and no error", header, user, ok, err)
		}
	}
	// the scheme is case-insensitive
	r := httptest.NewRequest(http.MethodGet, "https://127.0.0.1/api", nil)
	r.Header.Set("Authorization", "bearer s3cret")
	if _, ok, err := tokens.Authenticate(r); !ok || err != nil {
		t.Errorf("lower-case bearer scheme: ok %v err %v", ok, err)
	}
}

func TestTokenFileFormat(t *testing.T) {
	t.Run("fewer than three columns is an error", func(t *testing.T) {
		_, err := authn.LoadTokenFile(writeTokenFile(t, "s3cret,alice\n"))
		if err == nil || !strings.Contains(err.Error(), "at least 3 columns") {
			t.Fatalf("LoadTokenFile = %v, want at least 3 columns", err)
		}
	})
	t.Run("empty token skipped, later duplicate wins", func(t *testing.T) {
		tokens, err := authn.LoadTokenFile(writeTokenFile(t, ",nobody,0\nt,first,1\n\nt,second,2\n"))
		if err != nil {
			t.Fatal(err)
		}
		user, ok, err := tokens.Authenticate(bearer("t"))
		wantUser(t, user, ok, err, authn.User{Name: "second", UID: "2", Groups: []string{"system:authenticated"}})
	})
	t.Run("missing file is an error", func(t *testing.T) {
		if _, err := authn.LoadTokenFile(filepath.Join(t.TempDir(), "none.csv")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("LoadTokenFile = %v, want not exist", err)
		}
	})
}

func TestUnionAnswersWithFirstAuthenticatorThatKnowsTheRequest(t *testing.T) {
	p := newPKI(t)
	tokens, err := authn.LoadTokenFile(writeTokenFile(t, "s3cret,alice,1001\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := authn.Union(authn.NewX509(p.CAPool), tokens)

	// certificate and token: the certificate, tried first, wins
	r := requestWithCert(clientCert(t, p, "carol"))
	r.Header.Set("Authorization", "Bearer s3cret")
	user, ok, err := a.Authenticate(r)
	wantUser(t, user, ok, err, authn.User{Name: "carol", Groups: []string{"system:authenticated"}})

	// a bad certificate does not hide a good token
	r = requestWithCert(clientCert(t, newPKI(t), "mallory"))
	r.Header.Set("Authorization", "Bearer s3cret")
	user, ok, err = a.Authenticate(r)
	wantUser(t, user, ok, err, authn.User{Name: "alice", UID: "1001", Groups: []string{"system:authenticated"}})

	// no credentials at all
	if user, ok, err := a.Authenticate(bearer("")); ok || err != nil {
		t.Errorf("no credentials: %+v %v %v, want not ok and no error", user, ok, err)
	}

	// only bad credentials: every error is reported
	r = requestWithCert(clientCert(t, newPKI(t), "mallory"))
	r.Header.Set("Authorization", "Bearer wrong")
	_, ok, err = a.Authenticate(r)
	if ok || err == nil || !strings.Contains(err.Error(), "verifying certificate") ||
		!strings.Contains(err.Error(), "invalid bearer token") {
		t.Errorf("bad certificate and bad token: ok %v err %v, want both errors", ok, err)
	}
}

func TestUnionAddsAuthenticatedGroupOnce(t *testing.T) {
	inner := authn.AuthenticatorFunc(func(*http.Request) (*authn.User, bool, error) {
		return &authn.User{Name: "u", Groups: []string{"g"}}, true, nil
	})
	already := authn.AuthenticatorFunc(func(*http.Request) (*authn.User, bool, error) {
		return &authn.User{Name: "v", Groups: []string{"system:authenticated", "g"}}, true, nil
	})
	r := httptest.NewRequest(http.MethodGet, "/", nil)

	user, ok, err := authn.Union(inner).Authenticate(r)
	wantUser(t, user, ok, err, authn.User{Name: "u", Groups: []string{"g", "system:authenticated"}})
	user, ok, err = authn.Union(already).Authenticate(r)
	wantUser(t, user, ok, err, authn.User{Name: "v", Groups: []string{"system:authenticated", "g"}})
}

func TestNewFromClientCAAndTokenFile(t *testing.T) {
	p := newPKI(t)
	path := writeTokenFile(t, "s3cret,alice,1001\n")

	a, err := authn.New(p.CAPool, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	user, ok, err := a.Authenticate(requestWithCert(p.AdminCert))
	wantUser(t, user, ok, err, authn.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}})
	user, ok, err = a.Authenticate(bearer("s3cret"))
	wantUser(t, user, ok, err, authn.User{Name: "alice", UID: "1001", Groups: []string{"system:authenticated"}})

	none, err := authn.New(nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := none.Authenticate(requestWithCert(p.AdminCert)); ok || err != nil {
		t.Errorf("authenticator with no sources: ok %v err %v, want neither", ok, err)
	}

	if _, err := authn.New(nil, filepath.Join(t.TempDir(), "missing.csv"), nil); err == nil {
		t.Error("New with a missing token file succeeded")
	}
}

func TestUserTravelsInContext(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if _, ok := authn.UserFrom(r.Context()); ok {
		t.Fatal("a fresh request carries a user")
	}
	ctx := authn.WithUser(r.Context(), authn.AnonymousUser())
	user, ok := authn.UserFrom(ctx)
	if !ok || user.Name != "system:anonymous" || !reflect.DeepEqual(user.Groups, []string{"system:unauthenticated"}) {
		t.Errorf("UserFrom = %+v %v, want the anonymous user", user, ok)
	}
}
