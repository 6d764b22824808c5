package apis

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// namespaceStrategy is upstream's namespace strategy: a namespace starts Active with the
// "kubernetes" finalizer (which the namespace controller removes once the namespace is empty),
// spec.finalizers change only through namespaces/finalize and status only through
// namespaces/status, and the kubernetes.io/metadata.name label always equals the name.
type namespaceStrategy struct{}

// NamespaceStrategy is the strategy of namespaces.
var NamespaceStrategy = namespaceStrategy{}

var _ Strategy = namespaceStrategy{}

func (namespaceStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	ns := obj.(*corev1.Namespace)
	ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	// Required on create, but not defaulting: the controller removes it over the namespace's life.
	hasKubernetes := false
	for _, f := range ns.Spec.Finalizers {
		if f == corev1.FinalizerKubernetes {
			hasKubernetes = true
			break
		}
	}
	if !hasKubernetes {
		ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
	}
	labelNamespaceName(ns)
}

func (namespaceStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateNamespace(obj.(*corev1.Namespace))
}

func (namespaceStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	ns.Spec.Finalizers = oldNS.Spec.Finalizers
	ns.Status = oldNS.Status
	labelNamespaceName(ns)
}

func (namespaceStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	ns := obj.(*corev1.Namespace)
	allErrs := ValidateNamespace(ns)
	return append(allErrs, ValidateNamespaceUpdate(ns, old.(*corev1.Namespace))...)
}

func (namespaceStrategy) AllowCreateOnUpdate() bool      { return false }
func (namespaceStrategy) AllowUnconditionalUpdate() bool { return true }

// labelNamespaceName sets the kubernetes.io/metadata.name label to the namespace's name, as
// upstream's canonicalization does after every write (defaulting alone cannot: a generated
// name is not known yet). It needs the final name, so the store must have chosen it.
func labelNamespaceName(ns *corev1.Namespace) {
	if ns.Name == "" {
		return
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[corev1.LabelMetadataName] = ns.Name
}

// namespaceStatusStrategy is the strategy of namespaces/status: the spec comes from the stored
// namespace.
type namespaceStatusStrategy struct{ namespaceStrategy }

// NamespaceStatusStrategy is the strategy of namespaces/status.
var NamespaceStatusStrategy = namespaceStatusStrategy{}

func (namespaceStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	ns := obj.(*corev1.Namespace)
	ns.Spec = old.(*corev1.Namespace).Spec
	labelNamespaceName(ns)
}

func (namespaceStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateNamespaceStatusUpdate(obj.(*corev1.Namespace), old.(*corev1.Namespace))
}

// namespaceFinalizeStrategy is the strategy of namespaces/finalize, through which the namespace
// controller removes spec finalizers: status comes from the stored namespace.
type namespaceFinalizeStrategy struct{ namespaceStrategy }

// NamespaceFinalizeStrategy is the strategy of namespaces/finalize.
var NamespaceFinalizeStrategy = namespaceFinalizeStrategy{}

func (namespaceFinalizeStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	ns := obj.(*corev1.Namespace)
	ns.Status = old.(*corev1.Namespace).Status
	labelNamespaceName(ns)
}

func (namespaceFinalizeStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateNamespaceFinalizeUpdate(obj.(*corev1.Namespace), old.(*corev1.Namespace))
}

// markNamespaceTerminating is what the first delete of a namespace sets beyond its
// deletionTimestamp: the Terminating phase, which refuses new content.
func markNamespaceTerminating(obj runtime.Object) {
	obj.(*corev1.Namespace).Status.Phase = corev1.NamespaceTerminating
}

// namespaceFinalized reports whether the namespace controller is done with a namespace.
func namespaceFinalized(obj runtime.Object) bool {
	return len(obj.(*corev1.Namespace).Spec.Finalizers) == 0
}
