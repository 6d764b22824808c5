package customresource

import (
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Default sets the schema's defaults in obj, a custom resource of this version, in place, as
// upstream does after decoding a request body and after reading from storage: a missing field
// with a default gets it, a null in a non-nullable field with a default too, recursively (a
// defaulted object is defaulted in turn). Call it after Prune, as upstream's decoder does.
func (v *Version) Default(obj map[string]interface{}) {
	if v.structural == nil {
		return
	}
	structuraldefaulting.Default(obj, v.structural)
}

// Prune does to obj, a custom resource of this version, in place, what upstream's decoder does
// to a request body (PruneStored is its storage twin): it removes every field the schema does
// not specify (apiVersion, kind and metadata at the root and in embedded resources are kept,
// anything under x-kubernetes-preserve-unknown-fields too), drops nulls of non-nullable fields
// that have no default, and keeps only the known fields of metadata (and of embedded
// resources' metadata). With the CRD's legacy spec.preserveUnknownFields only metadata is
// coerced.
//
// It returns the paths of the removed fields in upstream's form and order (unknown metadata
// fields first, then the rest sorted: "metadata.foo", "spec.foo", "spec.list[0].bar"), for
// fieldValidation=Warn and Strict: upstream reports each as `unknown field "spec.foo"`. The error is upstream's decoding error for an object
// whose metadata cannot be read (metadata not an object, or a metadata field of the wrong
// type); the server answers it with 400 Bad Request.
func (v *Version) Prune(obj map[string]interface{}) ([]string, error) {
	return v.coerce(obj, false)
}

// PruneStored does to obj, a custom resource of this version read from storage, what
// upstream's storage decoder does: Prune, except that malformed metadata fields (of custom
// resources written before metadata was validated) are dropped rather than refused, and a
// missing generation is repaired to 1. Nothing is reported: stored data is not the client's.
func (v *Version) PruneStored(obj map[string]interface{}) error {
	_, err := v.coerce(obj, true)
	return err
}

// coerce is upstream's schema coercer: it prunes obj and keeps its metadata to the fields
// ObjectMeta knows, returning the paths it removed.
func (v *Version) coerce(obj map[string]interface{}, stored bool) ([]string, error) {
	u := &unstructured.Unstructured{Object: obj}
	// apiVersion, kind and metadata need not be in the schema: keep them aside and restore
	// them as upstream's schema coercer does, metadata reduced to the fields ObjectMeta knows.
	kind, foundKind, err := unstructured.NestedString(obj, "kind")
	if err != nil {
		return nil, err
	}
	apiVersion, foundAPIVersion, err := unstructured.NestedString(obj, "apiVersion")
	if err != nil {
		return nil, err
	}
	objectMeta, foundObjectMeta, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(obj, schemaobjectmeta.ObjectMetaOptions{
		DropMalformedFields:     stored,
		ReturnUnknownFieldPaths: !stored,
	})
	if err != nil {
		return nil, err
	}

	if !v.preserveUnknownFields {
		unknown = append(unknown, structuralpruning.PruneWithOptions(obj, v.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: !stored})...)
		structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, v.structural)
	}
	fieldErr, paths := schemaobjectmeta.CoerceWithOptions(nil, obj, v.structural, false, schemaobjectmeta.CoerceOptions{
		DropInvalidFields:       stored,
		ReturnUnknownFieldPaths: !stored,
	})
	if fieldErr != nil {
		return nil, fieldErr
	}
	unknown = append(unknown, paths...)
	// very old custom resources were stored without a generation
	if stored && objectMeta != nil && objectMeta.Generation == 0 {
		objectMeta.Generation = 1
	}

	if foundKind {
		u.SetKind(kind)
	}
	if foundAPIVersion {
		u.SetAPIVersion(apiVersion)
	}
	if foundObjectMeta {
		if err := schemaobjectmeta.SetObjectMeta(obj, objectMeta); err != nil {
			return nil, err
		}
	}
	return unknown, nil
}
