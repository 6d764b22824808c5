package apiserver

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/skiff-dev/skiff/apis"
)

// Server-side apply (PATCH with Content-Type application/apply-patch+yaml) merges a client's
// applied configuration into the live object and records which manager owns which fields,
// with apimachinery's field manager: fields another manager owns with another value are a
// 409 conflict unless the apply forces, and fields the manager applied before but leaves out
// now are removed. An apply to a missing object creates it (201).

// serverSideApply merges the applied configuration in the request body into current (an
// empty object when creating), as upstream's applyPatcher.
func (p *patchRequest) serverSideApply(ctx context.Context, current runtime.Object) (runtime.Object, error) {
	if p.fm == nil {
		return nil, unsupportedMediaType(string(p.patchType))
	}
	live := current
	if live == nil {
		obj, err := p.newObject()
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		live = obj
	}
	applied := &unstructured.Unstructured{Object: map[string]any{}}
	if err := yaml.Unmarshal(p.body, &applied.Object); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding YAML: %v", err))
	}
	obj, err := p.fm.Apply(live, applied, p.opts.manager, p.opts.force)
	if err != nil {
		var se apierrors.APIStatus
		if errors.As(err, &se) {
			return nil, err
		}
		// upstream answers the field manager's other failures (a field the kind does not
		// have among them) with a reasonless 500 carrying its words
		return nil, unknownStatus(err)
	}
	// the configuration is unstructured, so only duplicate fields are left to find
	if checksFields(p.opts.validation) {
		if err := yaml.UnmarshalStrict(p.body, &map[string]any{}); err != nil {
			if p.opts.validation == metav1.FieldValidationStrict {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("error strict decoding YAML: %v", err))
			}
			addStrictDecodingWarnings(ctx, []error{err})
		}
	}
	return obj, nil
}

// applyCreates is the strategy of an apply to the resource itself: whatever the resource
// says of a PUT to a missing object, an apply creates it (upstream's forceAllowCreate).
type applyCreates struct{ apis.Strategy }

var _ apis.Strategy = applyCreates{}

func (applyCreates) AllowCreateOnUpdate() bool { return true }
