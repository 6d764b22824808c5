package apis

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// secretStrategy is upstream's secret strategy. stringData is write-only: it is merged into data
// (its keys win) and never stored, which upstream does when converting to its internal type.
type secretStrategy struct{}

// SecretStrategy is the strategy of secrets.
var SecretStrategy = secretStrategy{}

var _ Strategy = secretStrategy{}

func (secretStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	foldStringData(obj.(*corev1.Secret))
}

func (secretStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateSecret(obj.(*corev1.Secret))
}

func (secretStrategy) PrepareForUpdate(_ context.Context, obj, _ runtime.Object) {
	foldStringData(obj.(*corev1.Secret))
}

func (secretStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateSecretUpdate(obj.(*corev1.Secret), old.(*corev1.Secret))
}

func (secretStrategy) AllowCreateOnUpdate() bool      { return false }
func (secretStrategy) AllowUnconditionalUpdate() bool { return true }

// foldStringData moves stringData into data.
func foldStringData(secret *corev1.Secret) {
	if len(secret.StringData) > 0 && secret.Data == nil {
		secret.Data = make(map[string][]byte, len(secret.StringData))
	}
	for k, v := range secret.StringData {
		secret.Data[k] = []byte(v)
	}
	secret.StringData = nil
}
