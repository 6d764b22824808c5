package customresource

import (
	"context"
	"fmt"
	"math"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/operation"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/common"
	"k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
)

// Validate validates a custom resource of this version to be created, as upstream's custom
// resource strategy does, in its order and words:
//
//   - kind and apiVersion must be this version's ("kind: Invalid value: ...: must be Foo"); on
//     a mismatch nothing else is checked;
//   - metadata as for any object (name a DNS subdomain, generateName, namespace when namespaced
//     and none when not, labels, annotations, finalizers, owner references);
//   - the OpenAPI v3 schema: types, required, enum, pattern, lengths, bounds, multipleOf,
//     formats, int-or-string, nullable, additionalProperties, oneOf/anyOf/allOf/not
//     ("spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer:
//     "string"");
//   - the scale subresource's replicas paths (non-negative, at most 2^31-1);
//   - embedded resources' apiVersion, kind and metadata;
//   - x-kubernetes-list-type set and map uniqueness ("Duplicate value: ...");
//   - the x-kubernetes-validations CEL rules, with their message or messageExpression, reason
//     and fieldPath, unless an earlier error makes them meaningless (a wrong type, a missing
//     required field, an unsupported value, a too long or too large value), in which case
//     upstream's "some validation rules were not checked because the object was invalid;
//     correct the existing errors to complete validation" stands in for them.
func (v *Version) Validate(ctx context.Context, obj *unstructured.Unstructured) field.ErrorList {
	if errs := v.validateTypeMeta(obj); len(errs) > 0 {
		return errs
	}
	var errs field.ErrorList
	errs = append(errs, v.validateObjectMeta(ctx, operation.Create, obj, nil)...)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj.UnstructuredContent(), v.validator)...)
	errs = append(errs, v.validateScaleSpec(obj)...)
	errs = append(errs, v.validateScaleStatus(obj)...)

	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, obj.Object, v.structural, false)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, v.structural, obj.Object)...)
	return append(errs, v.validateRules(ctx, errs, obj.Object, nil)...)
}

// ValidateUpdate validates an update of old to obj as upstream's custom resource strategy does:
// the checks of Validate, with metadata validated as an update (immutable namespace, uid,
// creationTimestamp...), transition rules (those using oldSelf) evaluated against old, and
// ratcheting: a schema or CEL error in a part of the object the update left unchanged is not
// reported, nor are list set/map duplicates the old object already had.
func (v *Version) ValidateUpdate(ctx context.Context, obj, old *unstructured.Unstructured) field.ErrorList {
	if errs := v.validateTypeMeta(obj); len(errs) > 0 {
		return errs
	}
	correlated := common.NewCorrelatedObject(obj.Object, old.Object, &model.Structural{Structural: v.structural})

	var errs field.ErrorList
	errs = append(errs, v.validateObjectMeta(ctx, operation.Update, obj, old)...)
	errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(nil, obj.UnstructuredContent(), old.UnstructuredContent(), v.validator, apiservervalidation.WithRatcheting(correlated))...)
	errs = append(errs, v.validateScaleSpec(obj)...)
	errs = append(errs, v.validateScaleStatus(obj)...)

	// embedded objects are checked the same on create and update
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, obj.Object, v.structural, false)...)
	if oldErrs := structurallisttype.ValidateListSetsAndMaps(nil, v.structural, old.Object); len(oldErrs) == 0 {
		errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, v.structural, obj.Object)...)
	}
	return append(errs, v.validateRules(ctx, errs, obj.Object, old.Object, cel.WithRatcheting(correlated))...)
}

// ValidateStatusUpdate validates a write of the status subresource, as upstream's status
// strategy does: kind, apiVersion and the metadata update, status against the schema of
// status alone (errors under "status."), the scale subresource's status replicas path, list
// set/map uniqueness (unless the old object already broke it) and every CEL rule, with
// ratcheting. obj is expected to be old with only its status replaced (PrepareForStatusUpdate).
func (v *Version) ValidateStatusUpdate(ctx context.Context, obj, old *unstructured.Unstructured) field.ErrorList {
	if errs := v.validateTypeMeta(obj); len(errs) > 0 {
		return errs
	}
	correlated := common.NewCorrelatedObject(obj.Object, old.Object, &model.Structural{Structural: v.structural})

	var errs field.ErrorList
	errs = append(errs, v.validateObjectMeta(ctx, operation.Update, obj, old)...)
	if status, ok := obj.Object["status"]; ok {
		var options []apiservervalidation.ValidationOption
		if v.structural != nil {
			options = append(options, apiservervalidation.WithRatcheting(correlated.Key("status")))
		}
		errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(field.NewPath("status"), status, old.Object["status"], v.statusValidator, options...)...)
	}
	errs = append(errs, v.validateScaleStatus(obj)...)
	if newErrs := structurallisttype.ValidateListSetsAndMaps(nil, v.structural, obj.Object); len(newErrs) > 0 {
		if oldErrs := structurallisttype.ValidateListSetsAndMaps(nil, v.structural, old.Object); len(oldErrs) == 0 {
			errs = append(errs, newErrs...)
		}
	}
	return append(errs, v.validateRules(ctx, errs, obj.Object, old.Object, cel.WithRatcheting(correlated))...)
}

// validateRules runs the CEL rules, or says why it did not: upstream evaluates no rule on an
// object that already failed a check the rules rely on (their inputs' types and presence).
func (v *Version) validateRules(ctx context.Context, errs field.ErrorList, obj, old map[string]interface{}, opts ...cel.Option) field.ErrorList {
	if v.celValidator == nil {
		return nil
	}
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return field.ErrorList{field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")}
		}
	}
	var oldObj interface{}
	if old != nil {
		oldObj = old
	}
	ruleErrs, _ := v.celValidator.Validate(ctx, nil, v.structural, obj, oldObj, celconfig.RuntimeCELCostBudget, opts...)
	return ruleErrs
}

func (v *Version) validateTypeMeta(obj *unstructured.Unstructured) field.ErrorList {
	var errs field.ErrorList
	if obj.GetKind() != v.gvk.Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), obj.GetKind(), fmt.Sprintf("must be %v", v.gvk.Kind)))
	}
	if want := v.gvk.Group + "/" + v.gvk.Version; obj.GetAPIVersion() != want {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), obj.GetAPIVersion(), fmt.Sprintf("must be %v", want)))
	}
	return errs
}

// validateObjectMeta validates the custom resource's metadata as upstream's custom resource
// validator does: names are DNS subdomains.
func (v *Version) validateObjectMeta(ctx context.Context, op operation.Type, obj, old *unstructured.Unstructured) field.ErrorList {
	metadata, errs := objectMeta(obj)
	if len(errs) > 0 {
		return errs
	}
	beta := utilfeature.DefaultFeatureGate.Enabled(features.DeclarativeValidationBeta)
	if op == operation.Create {
		return apimachineryvalidation.ValidateObjectMetaDeclaratively(ctx, op, metadata, nil, v.namespaced, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"), beta)
	}
	oldMetadata, errs := objectMeta(old)
	if len(errs) > 0 {
		return errs
	}
	return apimachineryvalidation.ValidateObjectMetaDeclaratively(ctx, op, metadata, oldMetadata, v.namespaced, nil, field.NewPath("metadata"), beta)
}

// objectMeta reads an unstructured object's metadata into ObjectMeta.
func objectMeta(obj *unstructured.Unstructured) (*metav1.ObjectMeta, field.ErrorList) {
	if obj == nil || obj.Object == nil || obj.Object["metadata"] == nil {
		return &metav1.ObjectMeta{}, nil
	}
	raw := obj.Object["metadata"]
	m, ok := raw.(map[string]interface{})
	if !ok {
		return nil, field.ErrorList{field.Invalid(field.NewPath("metadata"), raw, fmt.Sprintf("expected map[string]interface{}, got %T", raw))}
	}
	meta := &metav1.ObjectMeta{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, meta); err != nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath("metadata"), raw, err.Error())}
	}
	return meta, nil
}

// validateScaleSpec checks the scale subresource's spec replicas path holds a valid count.
func (v *Version) validateScaleSpec(obj *unstructured.Unstructured) field.ErrorList {
	if v.scale == nil {
		return nil
	}
	return validateReplicas(obj, v.scale.SpecReplicasPath)
}

// validateScaleStatus checks the scale subresource's status replicas and label selector paths.
func (v *Version) validateScaleStatus(obj *unstructured.Unstructured) field.ErrorList {
	if v.scale == nil {
		return nil
	}
	errs := validateReplicas(obj, v.scale.StatusReplicasPath)
	if v.scale.LabelSelectorPath != nil {
		p := *v.scale.LabelSelectorPath
		selector, _, err := unstructured.NestedString(obj.Object, splitPath(p)...)
		if err != nil {
			errs = append(errs, field.Invalid(field.NewPath(p), selector, err.Error()))
		}
	}
	return errs
}

func validateReplicas(obj *unstructured.Unstructured, path string) field.ErrorList {
	replicas, _, err := unstructured.NestedInt64(obj.Object, splitPath(path)...)
	switch {
	case err != nil:
		return field.ErrorList{field.Invalid(field.NewPath(path), replicas, err.Error())}
	case replicas < 0:
		return field.ErrorList{field.Invalid(field.NewPath(path), replicas, "should be a non-negative integer")}
	case replicas > math.MaxInt32:
		return field.ErrorList{field.Invalid(field.NewPath(path), replicas, fmt.Sprintf("should be less than or equal to %v", math.MaxInt32))}
	}
	return nil
}

// splitPath splits a scale subresource's path (".spec.replicas"), ignoring the leading period.
func splitPath(path string) []string {
	return strings.Split(strings.TrimPrefix(path, "."), ".")
}
