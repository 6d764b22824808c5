package openapi

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"time"

	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// definitionWriter writes, for Go types, the definitions upstream's openapi-gen generates
// (k8s.io/kubernetes pkg/generated/openapi), keyed by model name as kube-openapi's builders
// look them up: the type itself, then every type it refers to.
type definitionWriter struct {
	ref   common.ReferenceCallback
	merge *mergeSchema
	defs  map[string]common.OpenAPIDefinition
}

// writeDefinitions returns the definitions of the given types and of everything they refer
// to, with references made by ref.
func writeDefinitions(ref common.ReferenceCallback, merge *mergeSchema, roots []reflect.Type) map[string]common.OpenAPIDefinition {
	w := &definitionWriter{ref: ref, merge: merge, defs: map[string]common.OpenAPIDefinition{}}
	for _, t := range roots {
		w.define(t)
	}
	return w.defs
}

// modelName is the name kube-openapi knows a Go type by: its generated OpenAPIModelName
// ("io.k8s.api.core.v1.Pod"), or its package path and name.
func modelName(t reflect.Type) string {
	return util.GetCanonicalTypeName(reflect.New(t).Elem().Interface())
}

// definitionName is the name a model is defined under in a document.
func definitionName(model string) string {
	if strings.Contains(model, "/") {
		return util.ToRESTFriendlyName(model)
	}
	return model
}

var (
	swaggerDocType     = reflect.TypeFor[interface{ SwaggerDoc() map[string]string }]()
	openAPITypeType    = reflect.TypeFor[interface{ OpenAPISchemaType() []string }]()
	openAPIFormatType  = reflect.TypeFor[interface{ OpenAPISchemaFormat() string }]()
	openAPIV3OneOfType = reflect.TypeFor[interface{ OpenAPIV3OneOfTypes() []string }]()
	jsonUnmarshalType  = reflect.TypeFor[json.Unmarshaler]()
	timeType           = reflect.TypeFor[time.Time]()
)

// swaggerDoc is the type's generated documentation: "" describes the type, every other key
// the field of that json name.
func swaggerDoc(t reflect.Type) map[string]string {
	if doc, ok := missingSwaggerDocs[t]; ok {
		return doc
	}
	if t.Implements(swaggerDocType) {
		return reflect.New(t).Elem().Interface().(interface{ SwaggerDoc() map[string]string }).SwaggerDoc()
	}
	if reflect.PointerTo(t).Implements(swaggerDocType) {
		return reflect.New(t).Interface().(interface{ SwaggerDoc() map[string]string }).SwaggerDoc()
	}
	return nil
}

// describe is a documentation string as openapi-gen writes descriptions: the generated
// swagger docs keep a trailing blank where the comment ended.
func describe(doc map[string]string, key string) string {
	return strings.TrimSpace(doc[key])
}

// define writes the definition of a struct type (and of those it refers to) and returns its
// model name.
func (w *definitionWriter) define(t reflect.Type) string {
	name := modelName(t)
	if _, ok := w.defs[name]; ok {
		return name
	}
	w.defs[name] = common.OpenAPIDefinition{} // reserved: types may refer to themselves
	doc := swaggerDoc(t)

	// Types that marshal themselves (Time, Quantity, IntOrString, ...) declare their own
	// schema type and format, and for OpenAPI v3 the alternatives they accept.
	if t.Implements(openAPITypeType) && t.Implements(openAPIFormatType) {
		v := reflect.New(t).Elem().Interface()
		v2 := spec.Schema{SchemaProps: spec.SchemaProps{
			Description: describe(doc, ""),
			Type:        v.(interface{ OpenAPISchemaType() []string }).OpenAPISchemaType(),
			Format:      v.(interface{ OpenAPISchemaFormat() string }).OpenAPISchemaFormat(),
		}}
		if !t.Implements(openAPIV3OneOfType) {
			w.defs[name] = common.OpenAPIDefinition{Schema: v2}
			return name
		}
		v3 := spec.Schema{SchemaProps: spec.SchemaProps{
			Description: v2.Description,
			OneOf:       common.GenerateOpenAPIV3OneOfSchema(v.(interface{ OpenAPIV3OneOfTypes() []string }).OpenAPIV3OneOfTypes()),
			Format:      v2.Format,
		}}
		w.defs[name] = common.EmbedOpenAPIDefinitionIntoV2Extension(
			common.OpenAPIDefinition{Schema: v3}, common.OpenAPIDefinition{Schema: v2})
		return name
	}

	s := spec.Schema{SchemaProps: spec.SchemaProps{
		Description: describe(doc, ""),
		Type:        []string{"object"},
	}}
	deps := map[string]bool{}
	props := map[string]spec.Schema{}
	var required []string
	w.members(t, name, props, &required, deps)
	if len(props) > 0 {
		s.Properties = props
	}
	s.Required = required
	if ext := w.merge.structExtensions(name); ext != nil {
		s.Extensions = ext
	}
	def := common.OpenAPIDefinition{Schema: s}
	for dep := range deps {
		def.Dependencies = append(def.Dependencies, dep)
	}
	sort.Strings(def.Dependencies)
	w.defs[name] = def
	return name
}

// members writes the properties of a struct's fields, those of inlined embedded structs
// included, and collects the names of required ones in field order. owner is the model the
// properties end up in.
func (w *definitionWriter) members(t reflect.Type, owner string, props map[string]spec.Schema, required *[]string, deps map[string]bool) {
	doc := swaggerDoc(t)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, tagged := f.Tag.Lookup("json")
		if f.Anonymous && tagged && (tag == "" || strings.HasPrefix(tag, ",")) {
			inner := f.Type
			for inner.Kind() == reflect.Pointer {
				inner = inner.Elem()
			}
			if inner.Kind() == reflect.Struct {
				w.members(inner, owner, props, required, deps)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		opts := strings.Split(tag, ",")
		name := opts[0]
		switch {
		case name == "-":
			continue
		case name == "" && !tagged:
			name = f.Name
		case name == "":
			continue
		}
		omitEmpty := strings.HasSuffix(tag, ",omitempty") || strings.Contains(tag, ",omitempty,")
		// Upstream reads +optional and +required markers, which reflection cannot see; absent
		// those it goes by omitempty. A pointer without omitempty is an optional field in
		// every such case in k8s.io/api but one, so pointers count as optional.
		if !omitEmpty && f.Type.Kind() != reflect.Pointer {
			*required = append(*required, name)
		}
		props[name] = w.property(f, opts, omitEmpty, describe(doc, name), owner, name, deps)
	}
}

// property is the schema of one field, as openapi-gen's generateProperty writes it.
func (w *definitionWriter) property(f reflect.StructField, opts []string, omitEmpty bool, description, owner, name string, deps map[string]bool) spec.Schema {
	s := spec.Schema{SchemaProps: spec.SchemaProps{Description: description}}
	ext := spec.Extensions{}
	for k, v := range w.merge.fieldExtensions(owner, name) {
		ext[k] = v
	}
	if v := f.Tag.Get("patchMergeKey"); v != "" {
		ext[extPatchMergeKey] = v
	}
	if v := f.Tag.Get("patchStrategy"); v != "" {
		ext[extPatchStrategy] = v
	}
	if len(ext) > 0 {
		s.Extensions = ext
	}
	if len(opts) > 1 && opts[1] == "string" {
		s.Type = []string{"string"}
		return s
	}
	if def, known := w.merge.fieldDefault(owner, name); known {
		s.Default = def
	} else {
		s.Default = enforcedDefault(f.Type, omitEmpty)
	}
	w.schemaOf(f.Type, &s, deps)
	return s
}

// schemaOf fills in the type of a value of Go type t: a simple type and format, an object of
// additional properties for a map, an array for a slice, a reference for a struct. Interfaces
// get no type at all.
func (w *definitionWriter) schemaOf(t reflect.Type, s *spec.Schema, deps map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if typ, format := simpleTypeFormat(t); typ != "" {
		s.Type = []string{typ}
		s.Format = format
		return
	}
	switch t.Kind() {
	case reflect.Map:
		elem := &spec.Schema{}
		w.schemaOf(t.Elem(), elem, deps)
		s.Type = []string{"object"}
		s.AdditionalProperties = &spec.SchemaOrBool{Allows: true, Schema: elem}
	case reflect.Slice, reflect.Array:
		elem := &spec.Schema{}
		w.schemaOf(t.Elem(), elem, deps)
		s.Type = []string{"array"}
		s.Items = &spec.SchemaOrArray{Schema: elem}
	case reflect.Struct:
		name := w.define(t)
		deps[name] = true
		s.Ref = w.ref(name)
	}
}

// simpleTypeFormat is kube-openapi's type and format for Go's builtin types (and types
// defined on them), or "" for everything else.
func simpleTypeFormat(t reflect.Type) (string, string) {
	if t == timeType {
		return "string", "date-time"
	}
	switch t.Kind() {
	case reflect.String:
		return "string", ""
	case reflect.Bool:
		return "boolean", ""
	case reflect.Int8, reflect.Uint8:
		return "integer", "byte"
	case reflect.Int, reflect.Int16, reflect.Int32, reflect.Uint, reflect.Uint16:
		return "integer", "int32"
	case reflect.Int64, reflect.Uint32, reflect.Uint64:
		return "integer", "int64"
	case reflect.Float64:
		return "number", "double"
	case reflect.Float32:
		return "number", "float"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "string", "byte"
		}
	}
	return "", ""
}

// enforcedDefault is openapi-gen's default for a field whose definition has no +default
// marker: an empty object for a struct value, the zero value of a builtin type the json
// encoding never omits, nothing for pointers, maps, slices and types that unmarshal
// themselves (whose zero value is null).
func enforcedDefault(t reflect.Type, omitEmpty bool) interface{} {
	switch t.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Array, reflect.Interface:
		return nil
	case reflect.Struct:
		if reflect.PointerTo(t).Implements(jsonUnmarshalType) {
			return nil
		}
		if t.NumField() == 1 && t.Field(0).Anonymous {
			return enforcedDefault(t.Field(0).Type, omitEmpty)
		}
		return map[string]interface{}{}
	}
	if omitEmpty {
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		return ""
	case reflect.Bool:
		return false
	default:
		return 0.
	}
}
