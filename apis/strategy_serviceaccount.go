package apis

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// serviceAccountStrategy is upstream's service account strategy: references to secrets keep
// only the name.
type serviceAccountStrategy struct{}

// ServiceAccountStrategy is the strategy of service accounts.
var ServiceAccountStrategy = serviceAccountStrategy{}

var _ Strategy = serviceAccountStrategy{}

func (serviceAccountStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	cleanSecretReferences(obj.(*corev1.ServiceAccount))
}

func (serviceAccountStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateServiceAccount(obj.(*corev1.ServiceAccount))
}

func (serviceAccountStrategy) PrepareForUpdate(_ context.Context, obj, _ runtime.Object) {
	cleanSecretReferences(obj.(*corev1.ServiceAccount))
}

func (serviceAccountStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateServiceAccountUpdate(obj.(*corev1.ServiceAccount), old.(*corev1.ServiceAccount))
}

func (serviceAccountStrategy) AllowCreateOnUpdate() bool      { return false }
func (serviceAccountStrategy) AllowUnconditionalUpdate() bool { return true }

func cleanSecretReferences(sa *corev1.ServiceAccount) {
	for i, ref := range sa.Secrets {
		sa.Secrets[i] = corev1.ObjectReference{Name: ref.Name}
	}
}
