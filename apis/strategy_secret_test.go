package apis

import (
	"context"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCreateSecretFoldsStringDataIntoData(t *testing.T) {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"},
		Type:       corev1.SecretTypeBasicAuth,
		Data:       map[string][]byte{"username": []byte("old"), "other": []byte("x")},
		StringData: map[string]string{"username": "admin", "password": "hunter2"},
	}
	SecretStrategy.PrepareForCreate(context.Background(), secret)
	want := map[string][]byte{"username": []byte("admin"), "password": []byte("hunter2"), "other": []byte("x")}
	if !reflect.DeepEqual(secret.Data, want) || secret.StringData != nil {
		t.Errorf("data %q, stringData %v; want %q and none", secret.Data, secret.StringData, want)
	}
	checkErrorStrings(t, SecretStrategy.Validate(context.Background(), secret))
}

func TestUpdateSecretFoldsStringDataAndKeepsType(t *testing.T) {
	old := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", ResourceVersion: "2"}, Type: corev1.SecretTypeOpaque}
	secret := old.DeepCopy()
	secret.StringData = map[string]string{"token": "t"}
	secret.Type = corev1.SecretTypeTLS
	SecretStrategy.PrepareForUpdate(context.Background(), secret, old)
	if string(secret.Data["token"]) != "t" {
		t.Errorf("data = %q", secret.Data)
	}
	checkErrorStrings(t, SecretStrategy.ValidateUpdate(context.Background(), secret, old),
		`type: Invalid value: "kubernetes.io/tls": field is immutable`,
		`data[tls.crt]: Required value`,
		`data[tls.key]: Required value`)
}
