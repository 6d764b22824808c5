package apiserver_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// A joining node reads kube-public/cluster-info before it has any credentials (kubeadm's
// token discovery): the request reaches authorization as system:anonymous, and RBAC decides.
func TestAnonymousMayReadClusterInfoOnlyWhenRBACAllowsIt(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	for _, name := range []string{"cluster-info", "other"} {
		if _, err := s.Client.CoreV1().ConfigMaps("kube-public").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"kubeconfig": "x"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.PKI.CAPool}}}
	get := func(name string) (int, string) {
		t.Helper()
		resp, err := client.Get(s.URL + "/api/v1/namespaces/kube-public/configmaps/" + name)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("cluster-info"); code != http.StatusForbidden {
		t.Errorf("cluster-info without the Role: %d %s, want 403", code, body)
	}
	if _, err := s.Client.RbacV1().Roles("kube-public").Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:bootstrap-signer-clusterinfo"},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"cluster-info"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.RbacV1().RoleBindings("kube-public").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:bootstrap-signer-clusterinfo"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "kubeadm:bootstrap-signer-clusterinfo"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "system:anonymous"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// the authorizer reads RBAC from its watch caches: the binding arrives shortly
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		code, _ := get("cluster-info")
		return code == http.StatusOK, nil
	}); err != nil {
		code, body := get("cluster-info")
		t.Errorf("cluster-info with the Role: %d %s, want 200", code, body)
	}
	if code, body := get("other"); code != http.StatusUnauthorized {
		t.Errorf("another ConfigMap without credentials: %d %s, want 401", code, body)
	}
}
