package customresource

import (
	"fmt"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/client-go/util/jsonpath"
)

// Version is one version of a CustomResourceDefinition compiled for serving: its structural
// schema, schema validators, CEL programs, printer columns, selectable fields and type
// converter, built once by NewVersion and read-only afterwards, so that one Version may serve
// any number of requests at once. A changed CRD needs a new Version.
//
// The kind's names are the CRD's spec.names; serve a Version only once the CRD's names are
// accepted (status.acceptedNames equal to them), as upstream does.
type Version struct {
	crd  *apiextensionsv1.CustomResourceDefinition
	name string
	gvk  schema.GroupVersionKind

	namespaced bool
	// preserveUnknownFields is the CRD's legacy spec.preserveUnknownFields: nothing is pruned.
	preserveUnknownFields bool

	// structural is the version's schema in structural form with defaults pruned, or nil
	// when the version has none (or, with preserveUnknownFields, a non-structural one).
	structural      *structuralschema.Structural
	validator       apiservervalidation.SchemaValidator
	statusValidator apiservervalidation.SchemaValidator
	// celValidator runs the x-kubernetes-validations rules; nil when the schema has none.
	celValidator *cel.Validator

	subresources *apiextensionsv1.CustomResourceSubresources
	scale        *apiextensions.CustomResourceSubresourceScale

	columns     []metav1.TableColumnDefinition
	columnPaths []*jsonpath.JSONPath

	selectable []selectableField

	// jsonPathMu serialises evaluations of columnPaths and selectable: a parsed JSONPath keeps
	// state while it walks an object (range and end nodes), so one may not walk two at once.
	jsonPathMu sync.Mutex

	typeConverter managedfields.TypeConverter
}

// NewVersion compiles version versionName of crd. crd should have passed ValidateCRD: a
// schema that is not structural (unless the CRD preserves unknown fields) or that cannot be
// turned into a validator is an error.
func NewVersion(crd *apiextensionsv1.CustomResourceDefinition, versionName string) (*Version, error) {
	tc, err := newTypeConverter(crd)
	if err != nil {
		return nil, err
	}
	return newVersion(crd.DeepCopy(), versionName, tc)
}

// NewVersions compiles every version of crd that is served or stored, by version name. The
// versions share one type converter, which knows the kinds of all of them (managed fields
// are converted between versions).
func NewVersions(crd *apiextensionsv1.CustomResourceDefinition) (map[string]*Version, error) {
	crd = crd.DeepCopy()
	tc, err := newTypeConverter(crd)
	if err != nil {
		return nil, err
	}
	versions := map[string]*Version{}
	for _, v := range crd.Spec.Versions {
		if !v.Served && !v.Storage {
			continue
		}
		if versions[v.Name], err = newVersion(crd, v.Name, tc); err != nil {
			return nil, err
		}
	}
	return versions, nil
}

func newVersion(crd *apiextensionsv1.CustomResourceDefinition, versionName string, tc managedfields.TypeConverter) (*Version, error) {
	var spec *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range crd.Spec.Versions {
		if crd.Spec.Versions[i].Name == versionName {
			spec = &crd.Spec.Versions[i]
		}
	}
	if spec == nil {
		return nil, fmt.Errorf("version %s not found in CustomResourceDefinition %s", versionName, crd.Name)
	}
	v := &Version{
		crd:                   crd,
		name:                  versionName,
		gvk:                   schema.GroupVersionKind{Group: crd.Spec.Group, Version: versionName, Kind: crd.Spec.Names.Kind},
		namespaced:            crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
		preserveUnknownFields: crd.Spec.PreserveUnknownFields,
		subresources:          spec.Subresources,
		typeConverter:         tc,
	}

	var internalSchema *apiextensions.JSONSchemaProps
	if spec.Schema != nil {
		internal := &apiextensions.CustomResourceValidation{}
		if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(spec.Schema, internal, nil); err != nil {
			return nil, fmt.Errorf("failed converting CRD validation to internal version: %v", err)
		}
		internalSchema = internal.OpenAPIV3Schema
	}

	// The structural schema drives pruning, defaulting, embedded metadata, list types and CEL.
	// Its defaults are pruned as upstream does before serving, since the defaults of a schema
	// are themselves pruned of unknown fields.
	s, err := structuralschema.NewStructural(internalSchema)
	if err != nil && !v.preserveUnknownFields {
		return nil, fmt.Errorf("the schema of version %s is not structural: %v", versionName, err)
	}
	if err == nil && s != nil && !v.preserveUnknownFields {
		s = s.DeepCopy()
		if err := structuraldefaulting.PruneDefaults(s); err != nil {
			return nil, fmt.Errorf("failed to prune defaults of version %s: %v", versionName, err)
		}
	}
	if err == nil {
		v.structural = s
	}

	if v.validator, _, err = apiservervalidation.NewSchemaValidator(internalSchema); err != nil {
		return nil, err
	}
	if spec.Subresources != nil && spec.Subresources.Status != nil && internalSchema != nil {
		// the status subresource validates only against the status schema
		if statusSchema, ok := internalSchema.Properties["status"]; ok {
			if v.statusValidator, _, err = apiservervalidation.NewSchemaValidator(&statusSchema); err != nil {
				return nil, err
			}
		}
	}
	if spec.Subresources != nil && spec.Subresources.Scale != nil {
		v.scale = &apiextensions.CustomResourceSubresourceScale{}
		if err := apiextensionsv1.Convert_v1_CustomResourceSubresourceScale_To_apiextensions_CustomResourceSubresourceScale(spec.Subresources.Scale, v.scale, nil); err != nil {
			return nil, err
		}
	}
	if v.structural != nil {
		// compiles every rule once; nil when there are none
		v.celValidator = cel.NewValidator(v.structural, true, celconfig.PerCallLimit)
	}

	v.columns, v.columnPaths = compileColumns(spec.AdditionalPrinterColumns)
	v.selectable = compileSelectableFields(spec.SelectableFields)
	return v, nil
}

// GroupVersionKind is the kind of the version's objects.
func (v *Version) GroupVersionKind() schema.GroupVersionKind { return v.gvk }

// Name is the version's name ("v1").
func (v *Version) Name() string { return v.name }

// Namespaced says whether the custom resources live in namespaces.
func (v *Version) Namespaced() bool { return v.namespaced }

// Subresources are the version's status and scale subresources (nil for none).
func (v *Version) Subresources() *apiextensionsv1.CustomResourceSubresources {
	return v.subresources
}

// Deprecated reports whether the version is deprecated, with the warning each request made in
// it carries (see Warning).
func (v *Version) Deprecated() (bool, string) {
	w := Warning(v.crd, v.name)
	return w != "", w
}
