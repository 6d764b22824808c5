package customresource

import (
	"context"
	"fmt"
	"sort"

	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// scheme knows apiextensions.k8s.io's internal, v1 and v1beta1 types with upstream's
// conversions and v1 defaulting. Upstream validates a CRD in its internal form (converted from
// the version the request was made in), so its field paths are those of the internal type:
// a schema shared by every version is reported under spec.validation, as upstream does.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	install.Install(s)
	return s
}()

// DefaultCRD applies upstream's apiextensions.k8s.io/v1 defaults to crd in place: the singular
// name (the kind in lower case), the list kind (kind + "List"), conversion strategy None, the
// conversion webhook service port 443, and status.storedVersions (the storage version) when
// empty.
func DefaultCRD(crd *apiextensionsv1.CustomResourceDefinition) {
	scheme.Default(crd)
}

// internalCRD converts a v1 CRD to the internal form upstream's validation reads.
func internalCRD(crd *apiextensionsv1.CustomResourceDefinition) (*apiextensions.CustomResourceDefinition, error) {
	out := &apiextensions.CustomResourceDefinition{}
	if err := scheme.Convert(crd.DeepCopy(), out, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// conversionFailed reports a CRD that cannot even be converted to the internal form (a
// schema default or example that is not JSON); upstream's decoder would have refused it.
func conversionFailed(err error) field.ErrorList {
	return field.ErrorList{field.Invalid(field.NewPath("spec"), nil, fmt.Sprintf("failed to convert to internal version: %v", err))}
}

// ValidateCRD validates a CustomResourceDefinition to be created, with upstream's checks and
// words: metadata.name must be spec.names.plural+"."+spec.group, the group, scope and names,
// the versions (exactly one storage version, unique names, status.storedVersions), each
// version's schema (which must be structural, have valid defaults and compiling CEL rules
// within the cost limits), selectableFields, additionalPrinterColumns, subresources (scale
// paths) and conversion. crd is expected to be defaulted (DefaultCRD) and prepared
// (PrepareCRDForCreate) as upstream does before it validates.
func ValidateCRD(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	in, err := internalCRD(crd)
	if err != nil {
		return conversionFailed(err)
	}
	return crdvalidation.ValidateCustomResourceDefinition(ctx, in)
}

// ValidateCRDUpdate validates an update of old to crd with upstream's checks: those of
// ValidateCRD, relaxed where the old object already broke them (non-structural schemas,
// unpruned defaults, CEL cost of unchanged schemas, too many selectable fields), plus the
// immutable scope and group, and immutable names once the CRD is Established.
func ValidateCRDUpdate(ctx context.Context, crd, old *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	in, err := internalCRD(crd)
	if err != nil {
		return conversionFailed(err)
	}
	oldIn, err := internalCRD(old)
	if err != nil {
		return conversionFailed(err)
	}
	return crdvalidation.ValidateCustomResourceDefinitionUpdate(ctx, in, oldIn)
}

// ValidateCRDStatusUpdate validates a write of the status subresource of a CRD: the metadata
// update and the status (accepted names, conditions), as upstream's status strategy does.
func ValidateCRDStatusUpdate(ctx context.Context, crd, old *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	in, err := internalCRD(crd)
	if err != nil {
		return conversionFailed(err)
	}
	oldIn, err := internalCRD(old)
	if err != nil {
		return conversionFailed(err)
	}
	return crdvalidation.ValidateUpdateCustomResourceDefinitionStatus(ctx, in, oldIn)
}

// PrepareCRDForCreate does what upstream's CRD strategy does to a new CRD before validating
// it: the status a client sent is dropped, generation is 1, and the storage version is
// recorded in status.storedVersions.
func PrepareCRDForCreate(crd *apiextensionsv1.CustomResourceDefinition) {
	crd.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
	crd.Generation = 1
	recordStorageVersion(crd)
}

// PrepareCRDForUpdate does what upstream's CRD strategy does to an update: the status is the
// old one (status is written through the status subresource), generation moves on when the
// spec changed, and a new storage version is added to status.storedVersions.
func PrepareCRDForUpdate(crd, old *apiextensionsv1.CustomResourceDefinition) {
	crd.Status = *old.Status.DeepCopy()
	crd.Generation = old.Generation
	if !equality.Semantic.DeepEqual(old.Spec, crd.Spec) {
		crd.Generation = old.Generation + 1
	}
	recordStorageVersion(crd)
}

// PrepareCRDForStatusUpdate does what upstream's CRD status strategy does: a status write
// changes only the status; the spec is the old one.
func PrepareCRDForStatusUpdate(crd, old *apiextensionsv1.CustomResourceDefinition) {
	crd.Spec = *old.Spec.DeepCopy()
}

func recordStorageVersion(crd *apiextensionsv1.CustomResourceDefinition) {
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			if !apihelpers.IsStoredVersion(crd, v.Name) {
				crd.Status.StoredVersions = append(crd.Status.StoredVersions, v.Name)
			}
			break
		}
	}
}

// CRDWarnings are the warnings upstream's CRD strategy returns on a create (old nil) or an
// update: each format the schemas use that upstream does not recognise (`unrecognized format
// "uuid7"`), and each x-kubernetes-list-type set of objects or lists; on update only those the
// old CRD did not already have.
func CRDWarnings(crd, old *apiextensionsv1.CustomResourceDefinition) []string {
	in, err := internalCRD(crd)
	if err != nil {
		return nil
	}
	formats := unrecognizedFormats(&in.Spec)
	setWarnings := nonScalarListTypeSetWarnings(&in.Spec)
	seenFormats, seenSets := sets.New[string](), sets.New[string]()
	if old != nil {
		if oldIn, err := internalCRD(old); err == nil {
			seenFormats.Insert(unrecognizedFormats(&oldIn.Spec)...)
			seenSets.Insert(nonScalarListTypeSetWarnings(&oldIn.Spec)...)
		}
	}
	var warnings []string
	for _, f := range formats {
		if !seenFormats.Has(f) {
			warnings = append(warnings, fmt.Sprintf("unrecognized format %q", f))
		}
	}
	for _, w := range setWarnings {
		if !seenSets.Has(w) {
			warnings = append(warnings, w)
		}
	}
	return warnings
}

func unrecognizedFormats(s *apiextensions.CustomResourceDefinitionSpec) []string {
	compatibility := environment.DefaultCompatibilityVersion()
	var formats []string
	check := func(p *apiextensions.JSONSchemaProps) bool {
		if len(p.Format) > 0 {
			sp := &spec.Schema{SchemaProps: spec.SchemaProps{Format: p.Format, Type: []string{p.Type}}}
			formats = append(formats, apiservervalidation.GetUnrecognizedFormats(sp, compatibility)...)
		}
		return false
	}
	forEachSchema(s, check)
	return formats
}

func nonScalarListTypeSetWarnings(s *apiextensions.CustomResourceDefinitionSpec) []string {
	seen := sets.New[string]()
	forEachSchema(s, func(p *apiextensions.JSONSchemaProps) bool {
		if p.XListType != nil && *p.XListType == "set" && p.Items != nil && p.Items.Schema != nil {
			switch p.Items.Schema.Type {
			case "object", "array":
				seen.Insert(fmt.Sprintf("x-kubernetes-list-type: set for items of type %q is not supported by server-side apply or CEL validation rules", p.Items.Schema.Type))
			}
		}
		return false
	})
	return sets.List(seen)
}

// forEachSchema visits every schema node of the CRD's top-level and per-version schemas.
func forEachSchema(s *apiextensions.CustomResourceDefinitionSpec, visit func(*apiextensions.JSONSchemaProps) bool) {
	if s.Validation != nil && s.Validation.OpenAPIV3Schema != nil {
		crdvalidation.SchemaHas(s.Validation.OpenAPIV3Schema, visit)
	}
	for _, v := range s.Versions {
		if v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
			crdvalidation.SchemaHas(v.Schema.OpenAPIV3Schema, visit)
		}
	}
}

// Warning is the warning upstream attaches to every request made in a deprecated version of
// crd: the version's deprecationWarning when set, otherwise "<group>/<version> <Kind> is
// deprecated", followed by "; use <group>/<newer> <Kind>" naming the newest served,
// non-deprecated version newer than it (by Kubernetes version order), if there is one. It is
// "" for a version that is not deprecated or not in crd.
func Warning(crd *apiextensionsv1.CustomResourceDefinition, versionName string) string {
	for _, v := range crd.Spec.Versions {
		if v.Name != versionName || !v.Deprecated {
			continue
		}
		if v.DeprecationWarning != nil {
			return *v.DeprecationWarning
		}
		msg := fmt.Sprintf("%s/%s %s is deprecated", crd.Spec.Group, versionName, crd.Spec.Names.Kind)
		var newer []string
		for _, o := range crd.Spec.Versions {
			if o.Served && !o.Deprecated && version.CompareKubeAwareVersionStrings(versionName, o.Name) < 0 {
				newer = append(newer, o.Name)
			}
		}
		if len(newer) == 0 {
			return msg
		}
		sort.Slice(newer, func(i, j int) bool { return version.CompareKubeAwareVersionStrings(newer[i], newer[j]) > 0 })
		return msg + fmt.Sprintf("; use %s/%s %s", crd.Spec.Group, newer[0], crd.Spec.Names.Kind)
	}
	return ""
}
