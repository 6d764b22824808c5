package apiserver

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"

	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver/authn"
)

// The loopback client is how the server talks to itself as any client would (reconciling the
// default RBAC policy at start), through its whole handler chain but without the network: its
// requests are served in-process. It authenticates with a token made at start and known only
// to this process, as upstream's loopback user system:apiserver in system:masters.

// LoopbackUser is the user of the server's own requests.
const LoopbackUser = "system:apiserver"

// newLoopbackToken makes the loopback client's bearer token.
func newLoopbackToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// loopbackAuthenticator identifies the loopback client's requests.
func loopbackAuthenticator(token string, uid string) authn.Authenticator {
	return authn.AuthenticatorFunc(func(r *http.Request) (*authn.User, bool, error) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			return nil, false, nil
		}
		return &authn.User{Name: LoopbackUser, UID: uid, Groups: []string{authn.SystemPrivilegedGroup, authn.AllAuthenticated}}, true, nil
	})
}

// loopbackConfig reaches this server in-process as the loopback user. It serves requests that
// complete (no watches).
func (s *Server) loopbackConfig() *rest.Config {
	return &rest.Config{
		Host:        "http://loopback.skiff.invalid",
		BearerToken: s.loopbackToken,
		Transport:   inProcessTransport{s},
		UserAgent:   "skiff-apiserver-loopback",
		QPS:         -1,
	}
}

// inProcessTransport serves a request with the server's handler and hands back what it
// wrote.
type inProcessTransport struct{ s *Server }

func (t inProcessTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.s.handler.ServeHTTP(rec, r)
	return rec.Result(), nil
}
