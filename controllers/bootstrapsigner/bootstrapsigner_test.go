package bootstrapsigner

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/skiff-dev/skiff/controllers"
)

const kubeconfig = "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    server: https://10.0.0.1:6443\n"

func clusterInfo(extra map[string]string) *corev1.ConfigMap {
	data := map[string]string{"kubeconfig": kubeconfig}
	for k, v := range extra {
		data[k] = v
	}
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-public", Name: "cluster-info"}, Data: data}
}

func token(id, secret string, data map[string]string) *corev1.Secret {
	d := map[string][]byte{"token-id": []byte(id), "token-secret": []byte(secret), "usage-bootstrap-signing": []byte("true")}
	for k, v := range data {
		if v == "" {
			delete(d, k)
			continue
		}
		d[k] = []byte(v)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "bootstrap-token-" + id},
		Type:       "bootstrap.kubernetes.io/token",
		Data:       d,
	}
}

// synced is a signer over a fake clientset holding objects, its caches filled.
func synced(t *testing.T, objects ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objects...)
	c, err := New(client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, f := range c.factories {
		f.Start(ctx.Done())
		f.WaitForCacheSync(ctx.Done())
	}
	t.Cleanup(c.queue.ShutDown)
	return c, client
}

func signedData(t *testing.T, c *Controller, client *fake.Clientset) map[string]string {
	t.Helper()
	if err := c.sync(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	cm, err := client.CoreV1().ConfigMaps("kube-public").Get(context.Background(), "cluster-info", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data
}

func TestClusterInfoIsSignedByEverySigningTokenAndVerifiesWithIt(t *testing.T) {
	c, client := synced(t, clusterInfo(nil),
		token("abcdef", "0123456789abcdef", nil),
		token("ghijkl", "0123456789abcdef", map[string]string{"usage-bootstrap-signing": ""}),
		token("mnopqr", "0123456789abcdef", map[string]string{"expiration": time.Now().Add(-time.Hour).Format(time.RFC3339)}),
		token("stuvwx", "0123456789abcdef", map[string]string{"token-id": "other1"}),
	)
	data := signedData(t, c, client)
	sig, ok := data["jws-kubeconfig-abcdef"]
	if !ok {
		t.Fatalf("no signature of the signing token: %v", data)
	}
	if !jws.DetachedTokenIsValid(sig, kubeconfig, "abcdef", "0123456789abcdef") {
		t.Errorf("signature %q does not verify with the token", sig)
	}
	if jws.DetachedTokenIsValid(sig, kubeconfig, "abcdef", "fedcba9876543210") {
		t.Errorf("signature verifies with another secret")
	}
	for _, id := range []string{"ghijkl", "mnopqr", "stuvwx", "other1"} {
		if _, ok := data["jws-kubeconfig-"+id]; ok {
			t.Errorf("token %s may not sign (no signing usage, expired, or misnamed) but did", id)
		}
	}
	if data["kubeconfig"] != kubeconfig {
		t.Errorf("kubeconfig changed: %q", data["kubeconfig"])
	}
}

func TestSignaturesOfGoneTokensAreRemoved(t *testing.T) {
	c, client := synced(t, clusterInfo(map[string]string{"jws-kubeconfig-zzzzzz": "stale..sig", "other": "kept"}))
	data := signedData(t, c, client)
	if _, ok := data["jws-kubeconfig-zzzzzz"]; ok {
		t.Errorf("the signature of a token that is gone stayed: %v", data)
	}
	if data["other"] != "kept" {
		t.Errorf("a key that is not a signature was touched: %v", data)
	}
}

func TestMissingClusterInfoIsNotCreated(t *testing.T) {
	c, client := synced(t, token("abcdef", "0123456789abcdef", nil))
	if err := c.sync(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ConfigMaps("kube-public").Get(context.Background(), "cluster-info", metav1.GetOptions{}); err == nil {
		t.Error("the signer created cluster-info; the installer makes it")
	}
}
