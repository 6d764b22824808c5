package apis

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestServiceAccountSecretReferencesKeepOnlyTheName(t *testing.T) {
	sa := &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: "ns"},
		Secrets:    []corev1.ObjectReference{{Kind: "Secret", Namespace: "other", Name: "token", UID: "u"}},
	}
	ServiceAccountStrategy.PrepareForCreate(context.Background(), sa)
	if sa.Secrets[0] != (corev1.ObjectReference{Name: "token"}) {
		t.Errorf("secret reference = %+v, want only the name", sa.Secrets[0])
	}
	old := sa.DeepCopy()
	old.ResourceVersion = "1"
	sa = old.DeepCopy()
	sa.Secrets = append(sa.Secrets, corev1.ObjectReference{Name: "second", FieldPath: "x"})
	ServiceAccountStrategy.PrepareForUpdate(context.Background(), sa, old)
	if sa.Secrets[1] != (corev1.ObjectReference{Name: "second"}) {
		t.Errorf("secret reference = %+v, want only the name", sa.Secrets[1])
	}
	checkErrorStrings(t, ServiceAccountStrategy.ValidateUpdate(context.Background(), sa, old))
}
