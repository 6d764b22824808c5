package admissionpolicy

import (
	"context"
	"errors"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func paramKindGVK(pk *admissionregistrationv1.ParamKind) schema.GroupVersionKind {
	gv, _ := schema.ParseGroupVersion(pk.APIVersion)
	return gv.WithKind(pk.Kind)
}

// errParamsNotFound is the configuration error of a binding whose params are missing and
// whose parameterNotFoundAction is Deny.
var errParamsNotFound = errors.New("no params found for policy binding with `Deny` parameterNotFoundAction")

// params returns the objects a binding evaluates its policy with, each once: nil (one
// evaluation with params null) when the policy has no paramKind or the binding no paramRef;
// none when the params are missing and parameterNotFoundAction is Allow.
func (p *Policies) params(ctx context.Context, pk *admissionregistrationv1.ParamKind, ref *admissionregistrationv1.ParamRef, requestNamespace string) ([]runtime.Object, error) {
	if pk == nil || ref == nil {
		return []runtime.Object{nil}, nil
	}
	gvk := paramKindGVK(pk)
	src, ok := p.cfg.Params(gvk)
	if !ok {
		return nil, &policyError{err: paramKindError(pk)}
	}
	ns := ""
	if src.Namespaced() {
		ns = ref.Namespace
		if ns == "" {
			if requestNamespace == "" {
				return nil, fmt.Errorf("cannot use namespaced paramRef in policy binding that matches cluster-scoped resources")
			}
			ns = requestNamespace
		}
	} else if ref.Namespace != "" {
		return nil, fmt.Errorf("paramRef.namespace must not be provided for a cluster-scoped `paramKind`")
	}
	var params []runtime.Object
	switch {
	case ref.Name != "":
		obj, err := src.Get(ctx, ns, ref.Name)
		switch {
		case err == nil:
			params = []runtime.Object{obj}
		case apierrors.IsNotFound(err):
		default:
			return nil, err
		}
	case ref.Selector != nil:
		sel, err := metav1.LabelSelectorAsSelector(ref.Selector)
		if err != nil {
			return nil, err
		}
		if params, err = src.List(ctx, ns, sel); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("one of name or selector must be provided")
	}
	if len(params) == 0 && ref.ParameterNotFoundAction != nil && *ref.ParameterNotFoundAction == admissionregistrationv1.DenyAction {
		return nil, errParamsNotFound
	}
	for i, obj := range params {
		params[i] = withTypeMeta(obj, gvk)
	}
	return params, nil
}

// withTypeMeta makes sure a param shows its apiVersion and kind to CEL: objects read from
// storage may carry none.
func withTypeMeta(obj runtime.Object, gvk schema.GroupVersionKind) runtime.Object {
	if obj == nil || !obj.GetObjectKind().GroupVersionKind().Empty() {
		return obj
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u = u.DeepCopy()
		u.SetGroupVersionKind(gvk)
		return u
	}
	obj = obj.DeepCopyObject()
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj
}

// policyError marks a configuration error of the policy itself (not of one binding).
type policyError struct{ err error }

func (e *policyError) Error() string { return e.err.Error() }
func (e *policyError) Unwrap() error { return e.err }
