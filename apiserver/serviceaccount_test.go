package apiserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/apiserver/authn"
)

// signingKey gives the server a service-account key the test also holds, so that the test
// can sign tokens the server would never issue (expired ones).
func signingKey(t *testing.T) (*ecdsa.PrivateKey, apiservertest.Option) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key, func(c *apiserver.Config) { c.ServiceAccountSigningKey = key }
}

// asToken is a clientset that presents only token: no client certificate.
func asToken(t *testing.T, s *apiservertest.Server, token string) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(&rest.Config{
		Host: s.URL, BearerToken: token, QPS: -1,
		TLSClientConfig: rest.TLSClientConfig{CAFile: s.PKI.CACertFile},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// whoami asks the server who token is, as `kubectl auth whoami` does.
func whoami(t *testing.T, s *apiservertest.Server, token string) (authenticationv1.UserInfo, error) {
	t.Helper()
	r, err := asToken(t, s, token).AuthenticationV1().SelfSubjectReviews().Create(context.Background(),
		&authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	return r.Status.UserInfo, nil
}

// eventuallyUnauthorized waits until token is refused with 401: the server reads the objects
// a token names from its watch cache, which learns of a deletion a moment after etcd.
func eventuallyUnauthorized(t *testing.T, s *apiservertest.Server, token string) {
	t.Helper()
	var err error
	for range 200 {
		if _, err = whoami(t, s, token); apierrors.IsUnauthorized(err) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("token still accepted (last error %v), want 401", err)
}

func mustCreateNamespace(t *testing.T, s *apiservertest.Server, name string) {
	t.Helper()
	if _, err := s.Client.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func mustCreateServiceAccount(t *testing.T, s *apiservertest.Server, ns string, sa *corev1.ServiceAccount) *corev1.ServiceAccount {
	t.Helper()
	out, err := s.Client.CoreV1().ServiceAccounts(ns).Create(context.Background(), sa, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func requestToken(t *testing.T, s *apiservertest.Server, ns, name string, spec authenticationv1.TokenRequestSpec) *authenticationv1.TokenRequest {
	t.Helper()
	tr, err := s.Client.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("CreateToken %s/%s: %v", ns, name, err)
	}
	return tr
}

// jwtPayload decodes the claims of a token without verifying it.
func jwtPayload(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTokenRequestIssuesTokenThatAuthenticatesAsServiceAccount(t *testing.T) {
	s := apiservertest.Start(t)
	mustCreateNamespace(t, s, "team")
	sa := mustCreateServiceAccount(t, s, "team", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}})

	before := time.Now().Truncate(time.Second)
	tr := requestToken(t, s, "team", "builder", authenticationv1.TokenRequestSpec{})
	if tr.Name != "builder" || tr.Namespace != "team" || tr.UID != sa.UID {
		t.Errorf("answer metadata = %s/%s uid %s, want team/builder uid %s", tr.Namespace, tr.Name, tr.UID, sa.UID)
	}
	if got := ptr.Deref(tr.Spec.ExpirationSeconds, 0); got != 3600 {
		t.Errorf("spec.expirationSeconds = %d, want the default 3600", got)
	}
	if !slices.Equal(tr.Spec.Audiences, []string{apiserver.DefaultServiceAccountIssuer}) {
		t.Errorf("spec.audiences = %v, want the issuer", tr.Spec.Audiences)
	}
	if exp := tr.Status.ExpirationTimestamp.Time; exp.Before(before.Add(time.Hour)) || tr.Status.Token == "" {
		t.Errorf("status = expiration %v, token %q; want a token good for an hour", exp, tr.Status.Token)
	}

	claims := jwtPayload(t, tr.Status.Token)
	if claims["iss"] != apiserver.DefaultServiceAccountIssuer || claims["sub"] != "system:serviceaccount:team:builder" {
		t.Errorf("iss, sub = %v, %v", claims["iss"], claims["sub"])
	}
	if exp, _ := claims["exp"].(float64); int64(exp) != tr.Status.ExpirationTimestamp.Unix() {
		t.Errorf("exp = %v, want status.expirationTimestamp %d", claims["exp"], tr.Status.ExpirationTimestamp.Unix())
	}
	k8s, _ := claims["kubernetes.io"].(map[string]any)
	if k8s["namespace"] != "team" || !reflect.DeepEqual(k8s["serviceaccount"], map[string]any{"name": "builder", "uid": string(sa.UID)}) {
		t.Errorf("kubernetes.io claim = %v", k8s)
	}
	for _, c := range []string{"aud", "iat", "nbf", "jti"} {
		if _, ok := claims[c]; !ok {
			t.Errorf("no %s claim in %v", c, claims)
		}
	}

	user, err := whoami(t, s, tr.Status.Token)
	if err != nil {
		t.Fatal(err)
	}
	want := authenticationv1.UserInfo{
		Username: "system:serviceaccount:team:builder", UID: string(sa.UID),
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"},
		// as upstream, the token's jti names the credential
		Extra: map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/credential-id": {fmt.Sprintf("JTI=%v", claims["jti"])}},
	}
	if !reflect.DeepEqual(user, want) {
		t.Errorf("whoami = %+v, want %+v", user, want)
	}
	// the token works for ordinary requests too, as far as RBAC grants the account
	saClient := asToken(t, s, tr.Status.Token)
	if _, err := saClient.CoreV1().ServiceAccounts("team").Get(context.Background(), "builder", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("get with the token of an account bound to nothing: %v, want 403", err)
	}
	grantServiceAccount(t, s.Client, "team", "builder", rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"serviceaccounts"}})
	eventually(t, "get with the token", func() error {
		_, err := saClient.CoreV1().ServiceAccounts("team").Get(context.Background(), "builder", metav1.GetOptions{})
		return err
	})
}

func TestTokenRequestRefusals(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	mustCreateNamespace(t, s, "team")
	mustCreateServiceAccount(t, s, "team", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}})
	sas := s.Client.CoreV1().ServiceAccounts("team")

	_, err := sas.CreateToken(ctx, "nobody", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) || err.Error() != `serviceaccounts "nobody" not found` {
		t.Errorf("token of a missing account: %v, want 404", err)
	}

	_, err = sas.CreateToken(ctx, "builder", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](300)}}, metav1.CreateOptions{})
	wantMsg := `TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes`
	if !apierrors.IsInvalid(err) || err.Error() != wantMsg {
		t.Errorf("5 minute token: %v, want 422 %q", err, wantMsg)
	}

	// a pod of the namespace's default account
	if _, err := s.Client.CoreV1().Pods("team").Create(ctx, testPod("web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = sas.CreateToken(ctx, "builder", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web"}}}, metav1.CreateOptions{})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `cannot bind token for serviceaccount "builder" to pod running with different serviceaccount name.`) {
		t.Errorf("token bound to another account's pod: %v, want 400", err)
	}
	_, err = sas.CreateToken(ctx, "builder", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "ConfigMap", APIVersion: "v1", Name: "x"}}}, metav1.CreateOptions{})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "cannot bind token to object of type /v1, Kind=ConfigMap") {
		t.Errorf("token bound to a config map: %v, want 400", err)
	}
}

func TestServiceAccountTokenStopsWorkingWhenAccountGoesOrIsRecreated(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	mustCreateNamespace(t, s, "team")
	mustCreateServiceAccount(t, s, "team", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}})
	token := requestToken(t, s, "team", "builder", authenticationv1.TokenRequestSpec{}).Status.Token
	if _, err := whoami(t, s, token); err != nil {
		t.Fatal(err)
	}
	if err := s.Client.CoreV1().ServiceAccounts("team").Delete(ctx, "builder", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyUnauthorized(t, s, token)

	// an account of the same name is another account: the old token does not speak for it
	mustCreateServiceAccount(t, s, "team", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}})
	if _, err := whoami(t, s, token); !apierrors.IsUnauthorized(err) {
		t.Errorf("token of the deleted account for the recreated one: %v, want 401", err)
	}
	fresh := requestToken(t, s, "team", "builder", authenticationv1.TokenRequestSpec{}).Status.Token
	if _, err := whoami(t, s, fresh); err != nil {
		t.Errorf("token of the recreated account: %v", err)
	}
}

func TestPodBoundTokenStopsWorkingWhenPodGoes(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	mustCreateNamespace(t, s, "team")
	mustCreateServiceAccount(t, s, "team", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}})
	p := testPod("web")
	p.Spec.ServiceAccountName = "builder"
	pod, err := s.Client.CoreV1().Pods("team").Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sas := s.Client.CoreV1().ServiceAccounts("team")
	_, err = sas.CreateToken(ctx, "builder", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web", UID: types.UID("not-the-pod")}}}, metav1.CreateOptions{})
	if !apierrors.IsConflict(err) {
		t.Errorf("token bound to a pod by a stale uid: %v, want 409", err)
	}

	tr := requestToken(t, s, "team", "builder", authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web", UID: pod.UID}})
	k8s, _ := jwtPayload(t, tr.Status.Token)["kubernetes.io"].(map[string]any)
	if !reflect.DeepEqual(k8s["pod"], map[string]any{"name": "web", "uid": string(pod.UID)}) {
		t.Errorf("pod claim = %v", k8s["pod"])
	}
	if user, err := whoami(t, s, tr.Status.Token); err != nil || user.Username != "system:serviceaccount:team:builder" {
		t.Fatalf("whoami = %+v, %v", user, err)
	}
	if err := s.Client.CoreV1().Pods("team").Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	eventuallyUnauthorized(t, s, tr.Status.Token)
}

func TestForgedExpiredAndForeignAudienceTokensAreUnauthorized(t *testing.T) {
	key, withKey := signingKey(t)
	s := apiservertest.Start(t, withKey)
	mustCreateNamespace(t, s, "team")
	sa := mustCreateServiceAccount(t, s, "team", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}})

	sign := func(key *ecdsa.PrivateKey, issuedAt, expiry time.Time, audiences ...string) string {
		t.Helper()
		issuer, err := authn.NewTokenIssuer(apiserver.DefaultServiceAccountIssuer, key)
		if err != nil {
			t.Fatal(err)
		}
		token, err := issuer.Issue(authn.ServiceAccountToken{
			Namespace: "team", ServiceAccount: authn.ObjectRef{Name: "builder", UID: string(sa.UID)},
			Audiences: audiences, IssuedAt: issuedAt, Expiry: expiry,
		})
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	now := time.Now()
	// the test holds the server's key: a token it signs is as good as the server's own
	if _, err := whoami(t, s, sign(key, now, now.Add(time.Hour), apiserver.DefaultServiceAccountIssuer)); err != nil {
		t.Fatalf("token signed with the server's key: %v", err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	foreignAudience := requestToken(t, s, "team", "builder", authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}}).Status.Token
	cases := map[string]string{
		"expired":          sign(key, now.Add(-2*time.Hour), now.Add(-time.Hour), apiserver.DefaultServiceAccountIssuer),
		"forged":           sign(other, now, now.Add(time.Hour), apiserver.DefaultServiceAccountIssuer),
		"foreign audience": foreignAudience,
		"garbage":          "not-a-token",
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := whoami(t, s, token)
			if !apierrors.IsUnauthorized(err) || err.Error() != "Unauthorized" {
				t.Errorf("whoami = %v, want 401 Unauthorized", err)
			}
		})
	}
}

func TestDiscoveryListsServiceAccountTokenSubresource(t *testing.T) {
	s := apiservertest.Start(t)
	list, err := s.Client.Discovery().ServerResourcesForGroupVersion("v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list.APIResources {
		if r.Name != "serviceaccounts/token" {
			continue
		}
		if r.Group != "authentication.k8s.io" || r.Version != "v1" || r.Kind != "TokenRequest" ||
			!r.Namespaced || !slices.Equal(r.Verbs, []string{"create"}) {
			t.Errorf("serviceaccounts/token = %+v", r)
		}
		return
	}
	t.Error("discovery does not list serviceaccounts/token")
}

// tokenKubeconfig writes a kubeconfig that authenticates with token alone.
func tokenKubeconfig(t *testing.T, s *apiservertest.Server, token string) string {
	t.Helper()
	ca, err := os.ReadFile(s.PKI.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["skiff"] = &clientcmdapi.Cluster{Server: s.URL, CertificateAuthorityData: ca}
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "skiff", AuthInfo: "sa"}
	cfg.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestKubectlCreateTokenAndWhoami(t *testing.T) {
	s := apiservertest.Start(t)
	mustCreateNamespace(t, s, "team")
	mustCreateServiceAccount(t, s, "team", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}})
	kubeconfig := adminKubeconfig(t, s)
	for _, bin := range kubectlBinaries(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			run := kubectlRunner(t, bin, kubeconfig, nil)
			token := strings.TrimSpace(run("create", "token", "builder", "-n", "team", "--duration=20m", "--audience=skiff", "--audience="+apiserver.DefaultServiceAccountIssuer))
			claims := jwtPayload(t, token)
			if aud, _ := claims["aud"].([]any); len(aud) != 2 || aud[0] != "skiff" {
				t.Errorf("aud = %v, want the two asked for", claims["aud"])
			}
			if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 1200 {
				t.Errorf("exp - iat = %v, want 1200", exp-iat)
			}
			if user, err := whoami(t, s, token); err != nil || user.Username != "system:serviceaccount:team:builder" {
				t.Errorf("whoami with kubectl's token = %+v, %v", user, err)
			}
			out, err := kubectlCommand(t, bin, kubeconfig, nil)("create", "token", "builder", "-n", "team", "--duration=5m")
			if err == nil || !strings.Contains(out, "may not specify a duration less than 10 minutes") {
				t.Errorf("create token --duration=5m: %v\n%s", err, out)
			}
		})
	}
	// whoami is served at authentication.k8s.io/v1 from kubectl 1.28 on: the one on PATH
	tr := requestToken(t, s, "team", "builder", authenticationv1.TokenRequestSpec{})
	out := kubectlRunner(t, kubectlOnPath(t), tokenKubeconfig(t, s, tr.Status.Token), nil)("auth", "whoami")
	for _, want := range []string{"system:serviceaccount:team:builder", "system:serviceaccounts:team", "system:authenticated"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl auth whoami does not say %q:\n%s", want, out)
		}
	}
}
