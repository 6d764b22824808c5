package apis

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// StorageClasses and VolumeAttributesClasses (storage.k8s.io/v1): upstream's defaults,
// validation and columns.

// maxProvisionerParameterSize bounds a class's parameters, keys and values together.
const (
	maxProvisionerParameterSize = 256 * (1 << 10)
	maxProvisionerParameterLen  = 512
	csiDriverNameMaxLength      = 63
)

func defaultStorageClass(sc *storagev1.StorageClass) {
	if sc.ReclaimPolicy == nil {
		sc.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimDelete)
	}
	if sc.VolumeBindingMode == nil {
		sc.VolumeBindingMode = ptr.To(storagev1.VolumeBindingImmediate)
	}
}

var (
	supportedClassReclaimPolicies = sets.New(corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRetain)
	supportedVolumeBindingModes   = sets.New(storagev1.VolumeBindingImmediate, storagev1.VolumeBindingWaitForFirstConsumer)
)

// ValidateStorageClass checks a new class as upstream does.
func ValidateStorageClass(sc *storagev1.StorageClass) field.ErrorList {
	allErrs := ValidateObjectMeta(&sc.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	allErrs = append(allErrs, validateProvisioner(sc.Provisioner, field.NewPath("provisioner"))...)
	allErrs = append(allErrs, validateClassParameters(sc.Parameters, true, field.NewPath("parameters"))...)
	if p := sc.ReclaimPolicy; p != nil && !supportedClassReclaimPolicies.Has(*p) {
		allErrs = append(allErrs, field.NotSupported(field.NewPath("reclaimPolicy"), *p, sets.List(supportedClassReclaimPolicies)))
	}
	if m := sc.VolumeBindingMode; m == nil {
		allErrs = append(allErrs, field.Required(field.NewPath("volumeBindingMode"), ""))
	} else if !supportedVolumeBindingModes.Has(*m) {
		allErrs = append(allErrs, field.NotSupported(field.NewPath("volumeBindingMode"), *m, sets.List(supportedVolumeBindingModes)))
	}
	topoPath := field.NewPath("allowedTopologies")
	for i, term := range sc.AllowedTopologies {
		p := topoPath.Index(i)
		if len(term.MatchLabelExpressions) == 0 {
			allErrs = append(allErrs, field.Required(p, "must contain at least one requirement"))
		}
		keys := sets.New[string]()
		for j, req := range term.MatchLabelExpressions {
			rp := p.Child("matchLabelExpressions").Index(j)
			for _, msg := range validation.IsQualifiedName(req.Key) {
				allErrs = append(allErrs, field.Invalid(rp.Child("key"), req.Key, msg))
			}
			if len(req.Values) == 0 {
				allErrs = append(allErrs, field.Required(rp.Child("values"), "must specify as least one value"))
			}
			if keys.Has(req.Key) {
				allErrs = append(allErrs, field.Duplicate(rp.Child("key"), req.Key))
			}
			keys.Insert(req.Key)
		}
	}
	return allErrs
}

// ValidateStorageClassUpdate checks sc replacing old: only metadata and
// allowVolumeExpansion, mount options and topologies may change.
func ValidateStorageClassUpdate(sc, old *storagev1.StorageClass) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&sc.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, ValidateStorageClass(sc)...)
	if !apiequality.Semantic.DeepEqual(sc.Parameters, old.Parameters) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("parameters"), "updates to parameters are forbidden."))
	}
	if sc.Provisioner != old.Provisioner {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("provisioner"), "updates to provisioner are forbidden."))
	}
	if !apiequality.Semantic.DeepEqual(sc.ReclaimPolicy, old.ReclaimPolicy) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("reclaimPolicy"), "updates to reclaimPolicy are forbidden."))
	}
	return append(allErrs, apivalidation.ValidateImmutableField(sc.VolumeBindingMode, old.VolumeBindingMode, field.NewPath("volumeBindingMode"))...)
}

func validateProvisioner(provisioner string, fldPath *field.Path) field.ErrorList {
	if provisioner == "" {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	var allErrs field.ErrorList
	for _, msg := range validation.IsQualifiedName(strings.ToLower(provisioner)) {
		allErrs = append(allErrs, field.Invalid(fldPath, provisioner, msg))
	}
	return allErrs
}

// validateClassParameters: no empty key, and not too much of them (StorageClasses also bound
// how many there are).
func validateClassParameters(params map[string]string, limitCount bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if limitCount && len(params) > maxProvisionerParameterLen {
		allErrs = append(allErrs, field.TooLong(fldPath, "", maxProvisionerParameterLen))
		return allErrs
	}
	total := 0
	for k, v := range params {
		if k == "" {
			allErrs = append(allErrs, field.Invalid(fldPath, k, "field can not be empty."))
		}
		total += len(k) + len(v)
	}
	if total > maxProvisionerParameterSize {
		allErrs = append(allErrs, field.TooLong(fldPath, "", maxProvisionerParameterSize))
	}
	return allErrs
}

// validateCSIDriverName is upstream's: a lower-case DNS subdomain of at most 63 characters.
func validateCSIDriverName(name string, fldPath *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	var allErrs field.ErrorList
	if len(name) > csiDriverNameMaxLength {
		allErrs = append(allErrs, field.TooLong(fldPath, name, csiDriverNameMaxLength))
	}
	for _, msg := range validation.IsDNS1123Subdomain(strings.ToLower(name)) {
		allErrs = append(allErrs, field.Invalid(fldPath, name, msg))
	}
	return allErrs
}

// StorageClassStrategy is the strategy of storage classes: objects without status.
var StorageClassStrategy = simpleStrategy(ValidateStorageClass, ValidateStorageClassUpdate)

func storageClassTable() *TablePrinter {
	doc := storagev1.StorageClass{}.SwaggerDoc()
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Provisioner", Type: "string", Description: doc["provisioner"]},
		{Name: "ReclaimPolicy", Type: "string", Description: doc["reclaimPolicy"]},
		{Name: "VolumeBindingMode", Type: "string", Description: doc["volumeBindingMode"]},
		{Name: "AllowVolumeExpansion", Type: "string", Description: doc["allowVolumeExpansion"]},
		ageColumn,
	}, func(sc *storagev1.StorageClass) metav1.TableRow {
		name := sc.Name
		if IsDefaultStorageClass(&sc.ObjectMeta) {
			name += " (default)"
		}
		reclaim, binding := string(corev1.PersistentVolumeReclaimDelete), string(storagev1.VolumeBindingImmediate)
		if sc.ReclaimPolicy != nil {
			reclaim = string(*sc.ReclaimPolicy)
		}
		if sc.VolumeBindingMode != nil {
			binding = string(*sc.VolumeBindingMode)
		}
		return cells(name, sc.Provisioner, reclaim, binding, ptr.Deref(sc.AllowVolumeExpansion, false), translateTimestampSince(sc.CreationTimestamp))
	})
}

// ValidateVolumeAttributesClass checks a new VolumeAttributesClass as upstream does.
func ValidateVolumeAttributesClass(vac *storagev1.VolumeAttributesClass) field.ErrorList {
	allErrs := ValidateObjectMeta(&vac.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	allErrs = append(allErrs, validateCSIDriverName(vac.DriverName, field.NewPath("driverName"))...)
	return append(allErrs, validateClassParameters(vac.Parameters, false, field.NewPath("parameters"))...)
}

// ValidateVolumeAttributesClassUpdate checks vac replacing old: driver and parameters are
// fixed.
func ValidateVolumeAttributesClassUpdate(vac, old *storagev1.VolumeAttributesClass) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&vac.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, ValidateVolumeAttributesClass(vac)...)
	if !apiequality.Semantic.DeepEqual(vac.Parameters, old.Parameters) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("parameters"), "updates to parameters are forbidden."))
	}
	if vac.DriverName != old.DriverName {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("driverName"), "updates to driverName are forbidden."))
	}
	return allErrs
}

// VolumeAttributesClassStrategy is the strategy of VolumeAttributesClasses.
var VolumeAttributesClassStrategy = simpleStrategy(ValidateVolumeAttributesClass, ValidateVolumeAttributesClassUpdate)

func volumeAttributesClassTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "DriverName", Type: "string", Description: storagev1.VolumeAttributesClass{}.SwaggerDoc()["driverName"]},
		ageColumn,
	}, func(vac *storagev1.VolumeAttributesClass) metav1.TableRow {
		return cells(vac.Name, vac.DriverName, translateTimestampSince(vac.CreationTimestamp))
	})
}

// errImmutable is upstream's detail for a spec that may not change.
const errImmutable = "field is immutable"

// objectStrategy is the strategy of a kind without status: whatever a client writes is kept,
// and validated by the two functions.
type objectStrategy[T runtime.Object] struct {
	validate       func(T) field.ErrorList
	validateUpdate func(obj, old T) field.ErrorList
}

func simpleStrategy[T runtime.Object](validate func(T) field.ErrorList, validateUpdate func(obj, old T) field.ErrorList) Strategy {
	return objectStrategy[T]{validate, validateUpdate}
}

func (objectStrategy[T]) PrepareForCreate(context.Context, runtime.Object) {}
func (s objectStrategy[T]) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return s.validate(obj.(T))
}
func (objectStrategy[T]) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}
func (s objectStrategy[T]) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return s.validateUpdate(obj.(T), old.(T))
}
func (objectStrategy[T]) AllowCreateOnUpdate() bool      { return false }
func (objectStrategy[T]) AllowUnconditionalUpdate() bool { return true }
