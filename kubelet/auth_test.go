package kubelet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

func TestKubeletRequestAttributesFollowUpstreamPathMapping(t *testing.T) {
	cases := []struct {
		method, path string
		verb         string
		subresources []string
	}{
		{"POST", "/exec/default/web/main", "create", []string{"proxy"}},
		{"GET", "/exec/default/web/6d1c/main", "get", []string{"proxy"}},
		{"POST", "/attach/default/web/main", "create", []string{"proxy"}},
		{"POST", "/portForward/default/web", "create", []string{"proxy"}},
		{"GET", "/containerLogs/default/web/main", "get", []string{"proxy"}},
		{"POST", "/run/default/web/main", "create", []string{"proxy"}},
		{"GET", "/stats/summary", "get", []string{"stats"}},
		{"GET", "/stats", "get", []string{"stats"}},
		{"GET", "/metrics", "get", []string{"metrics"}},
		{"GET", "/metrics/resource", "get", []string{"metrics"}},
		{"GET", "/metrics/cadvisor", "get", []string{"metrics"}},
		{"GET", "/logs/syslog", "get", []string{"log"}},
		{"POST", "/checkpoint/default/web/main", "create", []string{"checkpoint"}},
		{"GET", "/pods", "get", []string{"pods", "proxy"}},
		{"GET", "/runningpods/", "get", []string{"pods", "proxy"}},
		{"GET", "/healthz", "get", []string{"healthz", "proxy"}},
		{"GET", "/healthz/syncloop", "get", []string{"healthz", "proxy"}},
		{"GET", "/configz", "get", []string{"configz", "proxy"}},
		// a path that merely starts like one of the above is proxy
		{"GET", "/metricsfoo", "get", []string{"proxy"}},
		{"GET", "/podsx", "get", []string{"proxy"}},
		{"PUT", "/x", "update", []string{"proxy"}},
		{"PATCH", "/x", "patch", []string{"proxy"}},
		{"DELETE", "/x", "delete", []string{"proxy"}},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.path, nil)
		attrs := requestAttributes(r, "alice", []string{"devs"}, "node-a")
		var subs []string
		for _, a := range attrs {
			subs = append(subs, a.Subresource)
			if a.Verb != c.verb || a.Node != "node-a" || a.User != "alice" || a.Path != c.path {
				t.Errorf("%s %s: %+v, want verb %s on node-a", c.method, c.path, a, c.verb)
			}
		}
		if !slices.Equal(subs, c.subresources) {
			t.Errorf("%s %s: subresources %v, want %v", c.method, c.path, subs, c.subresources)
		}
	}
}

// reviewsAnswering is a clientset whose SubjectAccessReviews allow what allow says, counting
// the reviews asked.
func reviewsAnswering(allow func(authorizationv1.SubjectAccessReviewSpec) bool) (*fake.Clientset, func() []authorizationv1.SubjectAccessReviewSpec) {
	client := fake.NewClientset()
	var mu sync.Mutex
	var asked []authorizationv1.SubjectAccessReviewSpec
	client.PrependReactor("create", "subjectaccessreviews", func(a clienttesting.Action) (bool, runtime.Object, error) {
		review := a.(clienttesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		mu.Lock()
		asked = append(asked, review.Spec)
		mu.Unlock()
		review.Status.Allowed = allow(review.Spec)
		if !review.Status.Allowed {
			review.Status.Reason = "no rule allows it"
		}
		return true, review, nil
	})
	return client, func() []authorizationv1.SubjectAccessReviewSpec {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(asked)
	}
}

func TestWebhookAuthorizerAsksAboutTheNodeAndCachesAnswers(t *testing.T) {
	client, asked := reviewsAnswering(func(s authorizationv1.SubjectAccessReviewSpec) bool { return s.User == "alice" })
	authz := NewWebhookAuthorizer(client.AuthorizationV1().SubjectAccessReviews(), 0, 0)
	now := time.Unix(1000, 0)
	authz.now = func() time.Time { return now }
	ctx := context.Background()
	alice := RequestAttributes{User: "alice", Groups: []string{"devs", groupAuthenticated}, Verb: "create", Subresource: "proxy", Node: "node-a"}
	bob := RequestAttributes{User: "bob", Groups: []string{groupAuthenticated}, Verb: "get", Subresource: "metrics", Node: "node-a"}

	if ok, _, err := authz.Authorize(ctx, alice); !ok || err != nil {
		t.Fatalf("alice: %v %v", ok, err)
	}
	if ok, reason, err := authz.Authorize(ctx, bob); ok || err != nil || reason != "no rule allows it" {
		t.Fatalf("bob: %v %q %v", ok, reason, err)
	}
	got := asked()
	if len(got) != 2 {
		t.Fatalf("%d reviews, want 2", len(got))
	}
	want := authorizationv1.ResourceAttributes{Verb: "create", Version: "v1", Resource: "nodes", Subresource: "proxy", Name: "node-a"}
	if got[0].User != "alice" || !slices.Equal(got[0].Groups, alice.Groups) || *got[0].ResourceAttributes != want {
		t.Errorf("review %+v %+v, want alice asking %+v", got[0], got[0].ResourceAttributes, want)
	}

	// answers are remembered: 30 s for a denial, 5 min for an allowance
	now = now.Add(29 * time.Second)
	authz.Authorize(ctx, alice)
	authz.Authorize(ctx, bob)
	if n := len(asked()); n != 2 {
		t.Errorf("%d reviews within 29 s, want the 2 cached", n)
	}
	now = now.Add(2 * time.Second)
	authz.Authorize(ctx, alice)
	authz.Authorize(ctx, bob)
	if n := len(asked()); n != 3 {
		t.Errorf("%d reviews after 31 s, want 3 (bob's denial asked again)", n)
	}
	now = now.Add(5 * time.Minute)
	authz.Authorize(ctx, alice)
	if n := len(asked()); n != 4 {
		t.Errorf("%d reviews after 5 min, want 4 (alice's allowance asked again)", n)
	}
}

// requestAs is a request over TLS whose verified client certificate names user and groups.
func requestAs(method, path, user string, groups ...string) *http.Request {
	r := httptest.NewRequest(method, path, nil)
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: user, Organization: groups}}
	r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}
	return r
}

func TestKubeletAPIAnswersDeniedRequestsWithUpstreamsForbidden(t *testing.T) {
	client, asked := reviewsAnswering(func(s authorizationv1.SubjectAccessReviewSpec) bool {
		return s.User == "kube-apiserver-kubelet-client" || s.User == "monitor" && s.ResourceAttributes.Subresource == "metrics"
	})
	reached := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached++; w.Write([]byte("ok")) })
	h := withAuth(next, "node-a", true, nil, NewWebhookAuthorizer(client.AuthorizationV1().SubjectAccessReviews(), 0, 0))

	serve := func(r *http.Request) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, strings.TrimSpace(w.Body.String())
	}
	if code, body := serve(requestAs("POST", "/exec/default/web/main", "kube-apiserver-kubelet-client", "system:masters")); code != 200 || body != "ok" {
		t.Errorf("the API server's exec: %d %q", code, body)
	}
	if code, _ := serve(requestAs("GET", "/metrics/resource", "monitor")); code != 200 {
		t.Errorf("monitor's metrics: %d", code)
	}
	code, body := serve(requestAs("POST", "/attach/default/web/main", "monitor"))
	if want := "Forbidden (user=monitor, verb=create, resource=nodes, subresource(s)=[proxy])"; code != http.StatusForbidden || body != want {
		t.Errorf("monitor's attach: %d %q, want 403 %q", code, body, want)
	}
	code, body = serve(requestAs("GET", "/pods", "monitor"))
	if want := "Forbidden (user=monitor, verb=get, resource=nodes, subresource(s)=[pods proxy])"; code != http.StatusForbidden || body != want {
		t.Errorf("monitor's pods: %d %q, want 403 %q", code, body, want)
	}
	if code, body := serve(httptest.NewRequest("GET", "/healthz", nil)); code != http.StatusUnauthorized || body != "Unauthorized" {
		t.Errorf("no certificate: %d %q, want 401 Unauthorized", code, body)
	}
	if reached != 2 {
		t.Errorf("%d requests reached the handler, want the 2 allowed", reached)
	}
	for _, s := range asked() {
		if !slices.Contains(s.Groups, groupAuthenticated) {
			t.Errorf("review for %s without %s: %v", s.User, groupAuthenticated, s.Groups)
		}
	}
}

func TestKubeletAPIAuthorizationErrorIsAnInternalError(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("create", "subjectaccessreviews", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	h := withAuth(http.NotFoundHandler(), "node-a", true, nil, NewWebhookAuthorizer(client.AuthorizationV1().SubjectAccessReviews(), 0, 0))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, requestAs("GET", "/containerLogs/default/web/main", "alice"))
	if want := "Authorization error (user=alice, verb=get, resource=nodes, subresource=proxy)"; w.Code != 500 || strings.TrimSpace(w.Body.String()) != want {
		t.Errorf("%d %q, want 500 %q", w.Code, w.Body.String(), want)
	}
}

func TestKubeletAPIWithoutClientCAServesAnonymousUser(t *testing.T) {
	var user string
	authz := authorizerFunc(func(_ context.Context, a RequestAttributes) (bool, string, error) {
		user = a.User + " " + strings.Join(a.Groups, ",")
		return true, "", nil
	})
	h := withAuth(http.NotFoundHandler(), "node-a", false, nil, authz)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/pods", nil))
	if user != "system:anonymous system:unauthenticated" {
		t.Errorf("user %q", user)
	}
}

type authorizerFunc func(context.Context, RequestAttributes) (bool, string, error)

func (f authorizerFunc) Authorize(ctx context.Context, a RequestAttributes) (bool, string, error) {
	return f(ctx, a)
}

func TestKubeletAPIAuthenticatesBearerTokensWithTokenReview(t *testing.T) {
	client := fake.NewClientset()
	reviews := 0
	client.PrependReactor("create", "tokenreviews", func(a clienttesting.Action) (bool, runtime.Object, error) {
		reviews++
		tr := a.(clienttesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		if tr.Spec.Token == "good" {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true,
				User: authenticationv1.UserInfo{Username: "system:serviceaccount:monitoring:prometheus", Groups: []string{"system:serviceaccounts", "system:authenticated"}}}
		}
		return true, tr, nil
	})
	var asked []RequestAttributes
	authz := authorizerFunc(func(_ context.Context, a RequestAttributes) (bool, string, error) {
		asked = append(asked, a)
		return a.User == "system:serviceaccount:monitoring:prometheus" && a.Subresource == "metrics", "", nil
	})
	h := withAuth(http.NotFoundHandler(), "node-a", true, NewWebhookTokenAuthenticator(client.AuthenticationV1().TokenReviews(), 0), authz)
	serve := func(token string) int {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if code := serve("good"); code != http.StatusNotFound { // allowed, then the empty handler
		t.Errorf("a valid token: %d, want it through to the handler", code)
	}
	if code := serve("good"); code != http.StatusNotFound || reviews != 1 {
		t.Errorf("the same token again: %d after %d reviews, want the cached answer", code, reviews)
	}
	if code := serve("bad"); code != http.StatusUnauthorized {
		t.Errorf("an invalid token: %d, want 401", code)
	}
	if len(asked) == 0 || asked[0].User != "system:serviceaccount:monitoring:prometheus" {
		t.Errorf("authorizer asked about %+v", asked)
	}
}
