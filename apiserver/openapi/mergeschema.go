package openapi

import (
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/applyconfigurations"
	smdschema "sigs.k8s.io/structured-merge-diff/v6/schema"

	"github.com/skiff-dev/skiff/apis"
)

// mergeSchema is client-go's structured-merge-diff schema of the built-in types. It was
// generated from upstream's OpenAPI definitions, so it still carries what upstream's
// +listType, +listMapKey, +mapType, +structType and +default markers said, which reflection
// over the Go types cannot see.
type mergeSchema struct {
	schema *smdschema.Schema
}

var loadMergeSchema = sync.OnceValues(func() (*mergeSchema, error) {
	// client-go keeps its parser internal; a typed value of any built-in kind carries the
	// whole schema it was parsed with.
	tv, err := applyconfigurations.NewTypeConverter(apis.Scheme).ObjectToTyped(
		&corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}})
	if err != nil {
		return nil, fmt.Errorf("structured-merge-diff schema of the built-in types: %w", err)
	}
	return &mergeSchema{schema: tv.Schema()}, nil
})

// structType is a named struct type's map atom, or nil when the schema does not know it
// (apimachinery's meta types that are never applied, such as Status or WatchEvent).
func (m *mergeSchema) structType(model string) *smdschema.Map {
	if m == nil {
		return nil
	}
	td, ok := m.schema.FindNamedType(model)
	if !ok || td.Map == nil {
		return nil
	}
	return td.Map
}

// structExtensions are the definition-level extensions of a struct: +structType=atomic or
// granular becomes x-kubernetes-map-type.
func (m *mergeSchema) structExtensions(model string) map[string]interface{} {
	st := m.structType(model)
	if st == nil || len(st.Fields) == 0 {
		return nil
	}
	if mt := mapType(st.ElementRelationship); mt != "" {
		return map[string]interface{}{extMapType: mt}
	}
	return nil
}

// fieldDefault is the field's default as upstream's definition states it, and whether the
// schema knows the field at all (when it does not, the caller applies openapi-gen's rule).
func (m *mergeSchema) fieldDefault(model, field string) (def interface{}, known bool) {
	st := m.structType(model)
	if st == nil {
		return nil, false
	}
	f, ok := st.FindField(field)
	if !ok {
		return nil, false
	}
	return f.Default, true
}

// fieldExtensions are the list and map extensions of one field of a struct.
func (m *mergeSchema) fieldExtensions(model, field string) map[string]interface{} {
	st := m.structType(model)
	if st == nil {
		return nil
	}
	f, ok := st.FindField(field)
	if !ok {
		return nil
	}
	tr := f.Type
	switch {
	case tr.Inlined.List != nil:
		l := tr.Inlined.List
		switch {
		case l.ElementRelationship == smdschema.Atomic:
			return map[string]interface{}{extListType: "atomic"}
		case l.ElementRelationship == smdschema.Associative && len(l.Keys) == 0:
			return map[string]interface{}{extListType: "set"}
		case l.ElementRelationship == smdschema.Associative:
			keys := make([]interface{}, len(l.Keys))
			for i, k := range l.Keys {
				keys[i] = k
			}
			return map[string]interface{}{extListType: "map", extListMapKeys: keys}
		}
	case tr.Inlined.Map != nil:
		if mt := mapType(tr.Inlined.Map.ElementRelationship); mt != "" {
			return map[string]interface{}{extMapType: mt}
		}
	case tr.NamedType != nil && tr.ElementRelationship != nil:
		// a +mapType marker on a field of struct type
		if mt := mapType(*tr.ElementRelationship); mt != "" {
			return map[string]interface{}{extMapType: mt}
		}
	}
	return nil
}

func mapType(rel smdschema.ElementRelationship) string {
	switch rel {
	case smdschema.Atomic:
		return "atomic"
	case smdschema.Separable:
		return "granular"
	}
	return ""
}

// Extension names upstream's definitions use.
const (
	extGVK           = "x-kubernetes-group-version-kind"
	extAction        = "x-kubernetes-action"
	extListType      = "x-kubernetes-list-type"
	extListMapKeys   = "x-kubernetes-list-map-keys"
	extMapType       = "x-kubernetes-map-type"
	extPatchStrategy = "x-kubernetes-patch-strategy"
	extPatchMergeKey = "x-kubernetes-patch-merge-key"
)
