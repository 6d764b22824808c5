package tokencleaner

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/controllers"
)

func token(id, expiration string) *corev1.Secret {
	data := map[string][]byte{"token-id": []byte(id), "token-secret": []byte("0123456789abcdef")}
	if expiration != "" {
		data["expiration"] = []byte(expiration)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "bootstrap-token-" + id, UID: types.UID("uid-" + id)},
		Type:       "bootstrap.kubernetes.io/token", Data: data,
	}
}

func TestOnlyExpiredBootstrapTokensAreDeleted(t *testing.T) {
	past, future := time.Now().Add(-time.Minute).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339)
	opaque := token("opaque", past)
	opaque.Type = corev1.SecretTypeOpaque
	client := fake.NewClientset(token("expird", past), token("future", future), token("forevr", ""), opaque)
	c, err := New(client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer c.queue.ShutDown()
	c.factory.Start(ctx.Done())
	c.factory.WaitForCacheSync(ctx.Done())
	for _, id := range []string{"expird", "future", "forevr", "opaque"} {
		if err := c.sync(ctx, "kube-system/bootstrap-token-"+id); err != nil {
			t.Fatal(err)
		}
	}
	for id, wantKept := range map[string]bool{"expird": false, "future": true, "forevr": true, "opaque": true} {
		_, err := client.CoreV1().Secrets("kube-system").Get(ctx, "bootstrap-token-"+id, metav1.GetOptions{})
		if kept := err == nil; kept != wantKept {
			t.Errorf("token %s kept: %v, want %v", id, kept, wantKept)
		}
	}
}
