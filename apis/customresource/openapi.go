package customresource

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// OpenAPI is the version's OpenAPI as upstream publishes it, built by apiextensions-apiserver's
// own builder with the selectable fields included: the OpenAPI v2 document of the version (its
// kind, list kind and every definition they refer to, the paths of the resource and its
// subresources), with defaults pruned as upstream does before merging it into /openapi/v2,
// and the OpenAPI v3 document of the version, as served under /openapi/v3/apis/<group>/<version>
// (merged there with the other resources of that group version).
func (v *Version) OpenAPI() (*spec.Swagger, *spec3.OpenAPI, error) {
	v2, err := builder.BuildOpenAPIV2(v.crd, v.name, builder.Options{V2: true, IncludeSelectableFields: true})
	if err != nil {
		return nil, nil, err
	}
	// defaults must be pruned for CRDs to merge cleanly with the static spec
	v2.Definitions = handler.PruneDefaults(v2.Definitions)
	v3, err := builder.BuildOpenAPIV3(v.crd, v.name, builder.Options{V2: false, IncludeSelectableFields: true})
	if err != nil {
		return nil, nil, err
	}
	return v2, v3, nil
}

// TypeConverter converts the version's objects to and from structured-merge-diff's typed
// values for server-side apply and managedFields. It is the CRD's: it knows the kinds of every
// version, typed by their schemas (lists by x-kubernetes-list-type and -list-map-keys, maps by
// x-kubernetes-map-type) and metadata by ObjectMeta; fields under
// x-kubernetes-preserve-unknown-fields (and every field of a CRD with the legacy
// spec.preserveUnknownFields) are deduced from the object as upstream does.
func (v *Version) TypeConverter() managedfields.TypeConverter { return v.typeConverter }

// newTypeConverter builds the type converter of a CRD the way upstream builds the one its
// field managers use: from the OpenAPI v3 models of every version of the CRD merged together,
// falling back, as upstream does, to a deduced converter when there are none or they cannot be
// built.
func newTypeConverter(crd *apiextensionsv1.CustomResourceDefinition) (managedfields.TypeConverter, error) {
	var specs []*spec3.OpenAPI
	for _, v := range crd.Spec.Versions {
		s, err := builder.BuildOpenAPIV3(crd, v.Name, builder.Options{})
		if err != nil {
			return managedfields.NewDeducedTypeConverter(), nil
		}
		specs = append(specs, s)
	}
	if len(specs) == 0 {
		return managedfields.NewDeducedTypeConverter(), nil
	}
	merged, err := builder.MergeSpecsV3(specs...)
	if err != nil {
		return managedfields.NewDeducedTypeConverter(), nil
	}
	if merged.Components == nil || len(merged.Components.Schemas) == 0 {
		return managedfields.NewDeducedTypeConverter(), nil
	}
	return managedfields.NewTypeConverter(merged.Components.Schemas, crd.Spec.PreserveUnknownFields)
}
