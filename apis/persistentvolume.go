package apis

import (
	"context"
	"fmt"
	"k8s.io/apimachinery/pkg/runtime"
	"path"
	"reflect"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// PersistentVolumes and PersistentVolumeClaims: upstream's core/v1 defaults, validation,
// strategies and columns. Binding, reclaiming and provisioning are the PV controller's
// (controllers/persistentvolume); this file only says what may be stored.

// Annotations and finalizers of the storage objects, as upstream names them.
const (
	// BetaStorageClassAnnotation is the storage class of a PV or claim from before
	// storageClassName; it still wins on claims.
	BetaStorageClassAnnotation = "volume.beta.kubernetes.io/storage-class"
	// IsDefaultStorageClassAnnotation marks the class claims without one get.
	IsDefaultStorageClassAnnotation     = "storageclass.kubernetes.io/is-default-class"
	betaIsDefaultStorageClassAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
	// PVCProtectionFinalizer keeps a claim while a pod uses it.
	PVCProtectionFinalizer = "kubernetes.io/pvc-protection"
	// PVProtectionFinalizer keeps a volume while a claim is bound to it.
	PVProtectionFinalizer = "kubernetes.io/pv-protection"
)

// IsDefaultStorageClass says whether a class's metadata marks it the default.
func IsDefaultStorageClass(m *metav1.ObjectMeta) bool {
	return m.Annotations[IsDefaultStorageClassAnnotation] == "true" || m.Annotations[betaIsDefaultStorageClassAnnotation] == "true"
}

// PersistentVolumeClass is a volume's storage class: the beta annotation, else
// storageClassName.
func PersistentVolumeClass(pv *corev1.PersistentVolume) string {
	if c, ok := pv.Annotations[BetaStorageClassAnnotation]; ok {
		return c
	}
	return pv.Spec.StorageClassName
}

// PersistentVolumeClaimClass is a claim's storage class: the beta annotation, else
// storageClassName ("" for none).
func PersistentVolumeClaimClass(pvc *corev1.PersistentVolumeClaim) string {
	if c, ok := pvc.Annotations[BetaStorageClassAnnotation]; ok {
		return c
	}
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return ""
}

func defaultPersistentVolume(pv *corev1.PersistentVolume) {
	if pv.Status.Phase == "" {
		pv.Status.Phase = corev1.VolumePending
	}
	if pv.Spec.PersistentVolumeReclaimPolicy == "" {
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	}
	if pv.Spec.VolumeMode == nil {
		pv.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeFilesystem)
	}
	if h := pv.Spec.HostPath; h != nil && h.Type == nil {
		h.Type = ptr.To(corev1.HostPathUnset)
	}
}

func defaultPersistentVolumeClaim(pvc *corev1.PersistentVolumeClaim) {
	if pvc.Status.Phase == "" {
		pvc.Status.Phase = corev1.ClaimPending
	}
	if pvc.Spec.VolumeMode == nil {
		pvc.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeFilesystem)
	}
}

var (
	supportedReclaimPolicies = sets.New(corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRecycle, corev1.PersistentVolumeReclaimRetain)
	supportedVolumeModes     = sets.New(corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem)
)

// ValidatePersistentVolume checks a new volume as upstream does.
func ValidatePersistentVolume(pv *corev1.PersistentVolume) field.ErrorList {
	allErrs := ValidateObjectMeta(&pv.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validatePersistentVolumeSpec(&pv.Spec, field.NewPath("spec"))...)
}

func validatePersistentVolumeSpec(spec *corev1.PersistentVolumeSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(spec.AccessModes) == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("accessModes"), ""))
	}
	allErrs = append(allErrs, validateAccessModes(spec.AccessModes, fldPath.Child("accessModes"))...)
	capPath := fldPath.Child("capacity")
	if len(spec.Capacity) == 0 {
		allErrs = append(allErrs, field.Required(capPath, ""))
	}
	if _, ok := spec.Capacity[corev1.ResourceStorage]; !ok || len(spec.Capacity) > 1 {
		allErrs = append(allErrs, field.NotSupported(capPath, spec.Capacity, []corev1.ResourceName{corev1.ResourceStorage}))
	}
	for r, qty := range spec.Capacity {
		allErrs = append(allErrs, validatePositiveQuantity(qty, capPath.Key(string(r)))...)
	}
	if p := spec.PersistentVolumeReclaimPolicy; p != "" && !supportedReclaimPolicies.Has(p) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("persistentVolumeReclaimPolicy"), p, sets.List(supportedReclaimPolicies)))
	}
	nodeAffinitySpecified := false
	if na := spec.NodeAffinity; na != nil {
		if na.Required == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child("nodeAffinity", "required"), "must specify required node constraints"))
		} else {
			nodeAffinitySpecified = true
			allErrs = append(allErrs, validateNodeSelector(na.Required, fldPath.Child("nodeAffinity", "required"))...)
		}
	}
	allErrs = append(allErrs, validatePersistentVolumeSource(spec, nodeAffinitySpecified, fldPath)...)
	if spec.HostPath != nil && path.Clean(spec.HostPath.Path) == "/" && spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimRecycle {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("persistentVolumeReclaimPolicy"), "may not be 'recycle' for a hostPath mount of '/'"))
	}
	if spec.StorageClassName != "" {
		allErrs = append(allErrs, podInvalidAll(fldPath.Child("storageClassName"), spec.StorageClassName, apivalidation.NameIsDNSSubdomain(spec.StorageClassName, false))...)
	}
	if spec.VolumeMode != nil && !supportedVolumeModes.Has(*spec.VolumeMode) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("volumeMode"), *spec.VolumeMode, sets.List(supportedVolumeModes)))
	}
	if c := spec.VolumeAttributesClassName; c != nil {
		if *c == "" {
			allErrs = append(allErrs, field.Required(fldPath.Child("volumeAttributesClassName"), "an empty string is disallowed"))
		} else {
			allErrs = append(allErrs, podInvalidAll(fldPath.Child("volumeAttributesClassName"), *c, apivalidation.NameIsDNSSubdomain(*c, false))...)
		}
		if spec.CSI == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child("csi"), "has to be specified when using volumeAttributesClassName"))
		}
	}
	return allErrs
}

// validateAccessModes: every mode known, and ReadWriteOncePod alone.
func validateAccessModes(modes []corev1.PersistentVolumeAccessMode, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	oncePod, others := false, false
	for _, mode := range modes {
		if !podAccessModes.Has(mode) {
			allErrs = append(allErrs, field.NotSupported(fldPath, mode, sets.List(podAccessModes)))
		}
		if mode == corev1.ReadWriteOncePod {
			oncePod = true
		} else if podAccessModes.Has(mode) {
			others = true
		}
	}
	if oncePod && others {
		allErrs = append(allErrs, field.Forbidden(fldPath, "may not use ReadWriteOncePod with other access modes"))
	}
	return allErrs
}

// validatePositiveQuantity is upstream's validateBasicResource and ValidatePositiveQuantityValue.
func validatePositiveQuantity(qty resource.Quantity, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if qty.Value() < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath, qty.Value(), "must be a valid resource quantity"))
	}
	if qty.Cmp(resource.Quantity{}) <= 0 {
		allErrs = append(allErrs, field.Invalid(fldPath, qty.String(), "must be greater than zero"))
	}
	return allErrs
}

// persistentVolumeSources are a volume's source fields in the order upstream checks them, by
// their JSON names: the first one set counts, every later one is refused.
var persistentVolumeSources = []struct{ field, json string }{
	{"HostPath", "hostPath"}, {"GCEPersistentDisk", "gcePersistentDisk"}, {"AWSElasticBlockStore", "awsElasticBlockStore"},
	{"Glusterfs", "glusterfs"}, {"Flocker", "flocker"}, {"NFS", "nfs"}, {"RBD", "rbd"}, {"Quobyte", "quobyte"},
	{"CephFS", "cephFS"}, {"ISCSI", "iscsi"}, {"Cinder", "cinder"}, {"FC", "fc"}, {"FlexVolume", "flexVolume"},
	{"AzureFile", "azureFile"}, {"VsphereVolume", "vsphereVolume"}, {"PhotonPersistentDisk", "photonPersistentDisk"},
	{"PortworxVolume", "portworxVolume"}, {"AzureDisk", "azureDisk"}, {"ScaleIO", "scaleIO"}, {"Local", "local"},
	{"StorageOS", "storageos"}, {"CSI", "csi"},
}

// validatePersistentVolumeSource: exactly one source, and the sources skiff can mount (and
// those CSI drivers use) checked as upstream checks them.
func validatePersistentVolumeSource(spec *corev1.PersistentVolumeSpec, nodeAffinitySpecified bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	src := reflect.ValueOf(spec.PersistentVolumeSource)
	numVolumes := 0
	for _, s := range persistentVolumeSources {
		if src.FieldByName(s.field).IsNil() {
			continue
		}
		// upstream counts flexVolume without checking for an earlier source
		if numVolumes > 0 && s.field != "FlexVolume" {
			allErrs = append(allErrs, field.Forbidden(fldPath.Child(s.json), "may not specify more than 1 volume type"))
			continue
		}
		numVolumes++
		p := fldPath.Child(s.json)
		switch s.field {
		case "HostPath":
			allErrs = append(allErrs, validateHostPathVolume(spec.HostPath, p)...)
		case "Local":
			if spec.Local.Path == "" {
				allErrs = append(allErrs, field.Required(p.Child("path"), ""))
			} else {
				allErrs = append(allErrs, validatePathNoBacksteps(spec.Local.Path, p.Child("path"))...)
			}
			if !nodeAffinitySpecified {
				allErrs = append(allErrs, field.Required(fldPath.Child("nodeAffinity"), "Local volume requires node affinity"))
			}
		case "NFS":
			if spec.NFS.Server == "" {
				allErrs = append(allErrs, field.Required(p.Child("server"), ""))
			}
			if spec.NFS.Path == "" {
				allErrs = append(allErrs, field.Required(p.Child("path"), ""))
			} else if !path.IsAbs(spec.NFS.Path) {
				allErrs = append(allErrs, field.Invalid(p.Child("path"), spec.NFS.Path, "must be an absolute path"))
			}
		case "CSI":
			allErrs = append(allErrs, validateCSIDriverName(spec.CSI.Driver, p.Child("driver"))...)
			if spec.CSI.VolumeHandle == "" {
				allErrs = append(allErrs, field.Required(p.Child("volumeHandle"), ""))
			}
		}
	}
	if numVolumes == 0 {
		allErrs = append(allErrs, field.Required(fldPath, "must specify a volume type"))
	}
	return allErrs
}

// ValidatePersistentVolumeUpdate checks pv replacing old: the source and volume mode never
// change, nor an existing node affinity.
func ValidatePersistentVolumeUpdate(pv, old *corev1.PersistentVolume) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&pv.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, ValidatePersistentVolume(pv)...)
	newSource := pv.Spec.PersistentVolumeSource
	if old.Spec.CSI != nil && old.Spec.CSI.ControllerExpandSecretRef == nil && newSource.CSI != nil && newSource.CSI.ControllerExpandSecretRef != nil {
		// the expand secret may be added later
		csi := *newSource.CSI
		csi.ControllerExpandSecretRef = nil
		newSource.CSI = &csi
	}
	if !apiequality.Semantic.DeepEqual(newSource, old.Spec.PersistentVolumeSource) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "persistentvolumesource"),
			fmt.Sprintf("spec.persistentvolumesource is immutable after creation\n%v", cmp.Diff(old.Spec.PersistentVolumeSource, newSource))))
	}
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(pv.Spec.VolumeMode, old.Spec.VolumeMode, field.NewPath("volumeMode"))...)
	if old.Spec.NodeAffinity != nil && !apiequality.Semantic.DeepEqual(pv.Spec.NodeAffinity, old.Spec.NodeAffinity) {
		allErrs = append(allErrs, field.Invalid(field.NewPath("nodeAffinity"), pv.Spec.NodeAffinity, "field is immutable"))
	}
	if old.Spec.VolumeAttributesClassName != nil && pv.Spec.VolumeAttributesClassName == nil {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "volumeAttributesClassName"), "update from non-nil value to nil is forbidden"))
	}
	return allErrs
}

// ValidatePersistentVolumeStatusUpdate checks a write to persistentvolumes/status.
func ValidatePersistentVolumeStatusUpdate(pv, old *corev1.PersistentVolume) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&pv.ObjectMeta, &old.ObjectMeta, metadataPath)
	if pv.ResourceVersion == "" {
		allErrs = append(allErrs, field.Required(field.NewPath("resourceVersion"), ""))
	}
	return allErrs
}

// ValidatePersistentVolumeClaim checks a new claim as upstream does.
func ValidatePersistentVolumeClaim(pvc *corev1.PersistentVolumeClaim) field.ErrorList {
	allErrs := ValidateObjectMeta(&pvc.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateClaimSpec(&pvc.Spec, field.NewPath("spec"))...)
}

// ValidatePersistentVolumeClaimUpdate checks pvc replacing old: the spec is fixed, except that
// volumeName may be set once, a bound claim may grow (and shrink back towards what it has),
// and volumeAttributesClassName may change.
func ValidatePersistentVolumeClaimUpdate(pvc, old *corev1.PersistentVolumeClaim) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&pvc.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, ValidatePersistentVolumeClaim(pvc)...)
	newSpec, oldSpec := pvc.Spec.DeepCopy(), old.Spec.DeepCopy()
	if old.Spec.VolumeName == "" {
		oldSpec.VolumeName = newSpec.VolumeName
	}
	oldClass, oldAnnotated := old.Annotations[BetaStorageClassAnnotation]
	newClass, newAnnotated := pvc.Annotations[BetaStorageClassAnnotation]
	switch {
	case oldAnnotated && old.Spec.StorageClassName == nil && newSpec.StorageClassName != nil &&
		*newSpec.StorageClassName == oldClass && (!newAnnotated || newClass == oldClass):
		// the annotation's class moves to the field
		newSpec.StorageClassName = nil
	default:
		if newClass != oldClass {
			allErrs = append(allErrs, field.Forbidden(metadataPath.Child("annotations").Key(BetaStorageClassAnnotation), "field is immutable"))
		}
		// a claim without a class may get one (a default class created later)
		if newSpec.StorageClassName != nil && old.Spec.StorageClassName == nil && (!oldAnnotated || *newSpec.StorageClassName == oldClass) {
			newSpec.StorageClassName = oldSpec.StorageClassName
		}
	}
	if pvc.Status.Phase == corev1.ClaimBound && newSpec.Resources.Requests != nil {
		newSpec.Resources.Requests[corev1.ResourceStorage] = old.Spec.Resources.Requests[corev1.ResourceStorage]
	}
	newSpec.VolumeAttributesClassName = oldSpec.VolumeAttributesClassName
	if !apiequality.Semantic.DeepEqual(newSpec, oldSpec) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec"),
			fmt.Sprintf("spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n%v", cmp.Diff(*oldSpec, *newSpec))))
	}
	oldSize, newSize := old.Spec.Resources.Requests[corev1.ResourceStorage], pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	statusSize := old.Status.Capacity[corev1.ResourceStorage]
	// upstream's RecoverVolumeExpansionFailure (on by default): a claim may shrink back
	// towards what it has, never to it or below
	if newSize.Cmp(oldSize) < 0 && newSize.Cmp(statusSize) <= 0 {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "resources", "requests", "storage"), "field can not be less than status.capacity"))
	}
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(pvc.Spec.VolumeMode, old.Spec.VolumeMode, field.NewPath("volumeMode"))...)
	if old.Spec.VolumeAttributesClassName != nil {
		if pvc.Spec.VolumeAttributesClassName == nil {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "volumeAttributesClassName"), "update from non-nil value to nil is forbidden"))
		} else if *pvc.Spec.VolumeAttributesClassName == "" {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "volumeAttributesClassName"), "update from non-nil value to an empty string is forbidden"))
		}
	}
	return allErrs
}

// ValidatePersistentVolumeClaimStatusUpdate checks a write to persistentvolumeclaims/status.
func ValidatePersistentVolumeClaimStatusUpdate(pvc, old *corev1.PersistentVolumeClaim) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&pvc.ObjectMeta, &old.ObjectMeta, metadataPath)
	if pvc.ResourceVersion == "" {
		allErrs = append(allErrs, field.Required(field.NewPath("resourceVersion"), ""))
	}
	if len(pvc.Spec.AccessModes) == 0 {
		allErrs = append(allErrs, field.Required(field.NewPath("Spec", "accessModes"), "")) // upstream's capital S
	}
	capPath := field.NewPath("status", "capacity")
	for r, qty := range pvc.Status.Capacity {
		if qty.Value() < 0 {
			allErrs = append(allErrs, field.Invalid(capPath.Key(string(r)), qty.Value(), "must be a valid resource quantity"))
		}
	}
	return allErrs
}

// nowFunc is the clock of the phase transition times; tests replace it.
var nowFunc = func() metav1.Time { return metav1.NewTime(time.Now().Truncate(time.Second)) }

// persistentVolumeKind: a volume starts Pending, and every phase change is timed, as
// upstream's PersistentVolumeLastPhaseTransitionTime.
var persistentVolumeKind = SpecAndStatus[*corev1.PersistentVolume]{
	PrepareForCreate: func(pv *corev1.PersistentVolume) {
		now := nowFunc()
		pv.Generation = 0 // upstream does not count a volume's spec changes
		pv.Status = corev1.PersistentVolumeStatus{Phase: corev1.VolumePending, LastPhaseTransitionTime: &now}
	},
	PrepareForUpdate:     func(pv, old *corev1.PersistentVolume) { pv.Generation = old.Generation },
	Validate:             ValidatePersistentVolume,
	ValidateUpdate:       ValidatePersistentVolumeUpdate,
	ValidateStatusUpdate: ValidatePersistentVolumeStatusUpdate,
}

// PersistentVolumeStrategy and PersistentVolumeStatusStrategy are the strategies of
// persistentvolumes and persistentvolumes/status.
var PersistentVolumeStrategy, persistentVolumeStatusBase = persistentVolumeKind.Strategies()

// PersistentVolumeStatusStrategy times phase changes written through the status subresource.
var PersistentVolumeStatusStrategy Strategy = persistentVolumeStatusStrategy{persistentVolumeStatusBase}

var persistentVolumeClaimKind = SpecAndStatus[*corev1.PersistentVolumeClaim]{
	PrepareForCreate: func(pvc *corev1.PersistentVolumeClaim) {
		pvc.Generation = 0
		pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
	},
	PrepareForUpdate:     func(pvc, old *corev1.PersistentVolumeClaim) { pvc.Generation = old.Generation },
	Validate:             ValidatePersistentVolumeClaim,
	ValidateUpdate:       ValidatePersistentVolumeClaimUpdate,
	ValidateStatusUpdate: ValidatePersistentVolumeClaimStatusUpdate,
}

// PersistentVolumeClaimStrategy and PersistentVolumeClaimStatusStrategy are the strategies of
// persistentvolumeclaims and persistentvolumeclaims/status.
var PersistentVolumeClaimStrategy, PersistentVolumeClaimStatusStrategy = persistentVolumeClaimKind.Strategies()

// accessModesString is how kubectl prints access modes: "RWO,ROX,RWX,RWOP", each once, in
// that order.
func accessModesString(modes []corev1.PersistentVolumeAccessMode) string {
	have := sets.New(modes...)
	var out []string
	for _, m := range []struct {
		mode  corev1.PersistentVolumeAccessMode
		short string
	}{{corev1.ReadWriteOnce, "RWO"}, {corev1.ReadOnlyMany, "ROX"}, {corev1.ReadWriteMany, "RWX"}, {corev1.ReadWriteOncePod, "RWOP"}} {
		if have.Has(m.mode) {
			out = append(out, m.short)
		}
	}
	return strings.Join(out, ",")
}

func persistentVolumeTable() *TablePrinter {
	specDoc, statusDoc := corev1.PersistentVolumeSpec{}.SwaggerDoc(), corev1.PersistentVolumeStatus{}.SwaggerDoc()
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Capacity", Type: "string", Description: specDoc["capacity"]},
		{Name: "Access Modes", Type: "string", Description: specDoc["accessModes"]},
		{Name: "Reclaim Policy", Type: "string", Description: specDoc["persistentVolumeReclaimPolicy"]},
		{Name: "Status", Type: "string", Description: statusDoc["phase"]},
		{Name: "Claim", Type: "string", Description: specDoc["claimRef"]},
		{Name: "StorageClass", Type: "string", Description: "StorageClass of the pv"},
		{Name: "VolumeAttributesClass", Type: "string", Description: "VolumeAttributesClass of the pv"},
		{Name: "Reason", Type: "string", Description: statusDoc["reason"]},
		ageColumn,
		{Name: "VolumeMode", Type: "string", Priority: 1, Description: specDoc["volumeMode"]},
	}, func(pv *corev1.PersistentVolume) metav1.TableRow {
		claim := ""
		if ref := pv.Spec.ClaimRef; ref != nil {
			claim = ref.Namespace + "/" + ref.Name
		}
		size := pv.Spec.Capacity[corev1.ResourceStorage]
		phase := string(pv.Status.Phase)
		if pv.DeletionTimestamp != nil {
			phase = "Terminating"
		}
		return cells(pv.Name, size.String(), accessModesString(pv.Spec.AccessModes), string(pv.Spec.PersistentVolumeReclaimPolicy),
			phase, claim, PersistentVolumeClass(pv), unsetOr(pv.Spec.VolumeAttributesClassName), pv.Status.Reason,
			translateTimestampSince(pv.CreationTimestamp), unsetOr((*string)(pv.Spec.VolumeMode)))
	})
}

func persistentVolumeClaimTable() *TablePrinter {
	specDoc, statusDoc := corev1.PersistentVolumeClaimSpec{}.SwaggerDoc(), corev1.PersistentVolumeClaimStatus{}.SwaggerDoc()
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Status", Type: "string", Description: statusDoc["phase"]},
		{Name: "Volume", Type: "string", Description: specDoc["volumeName"]},
		{Name: "Capacity", Type: "string", Description: statusDoc["capacity"]},
		{Name: "Access Modes", Type: "string", Description: statusDoc["accessModes"]},
		{Name: "StorageClass", Type: "string", Description: "StorageClass of the pvc"},
		{Name: "VolumeAttributesClass", Type: "string", Description: "VolumeAttributesClass of the pvc"},
		ageColumn,
		{Name: "VolumeMode", Type: "string", Priority: 1, Description: specDoc["volumeMode"]},
	}, func(pvc *corev1.PersistentVolumeClaim) metav1.TableRow {
		phase := string(pvc.Status.Phase)
		if pvc.DeletionTimestamp != nil {
			phase = "Terminating"
		}
		capacity, modes := "", ""
		if pvc.Spec.VolumeName != "" {
			modes = accessModesString(pvc.Status.AccessModes)
			size := pvc.Status.Capacity[corev1.ResourceStorage]
			capacity = size.String()
		}
		return cells(pvc.Name, phase, pvc.Spec.VolumeName, capacity, modes, PersistentVolumeClaimClass(pvc),
			unsetOr(pvc.Spec.VolumeAttributesClassName), translateTimestampSince(pvc.CreationTimestamp), unsetOr((*string)(pvc.Spec.VolumeMode)))
	})
}

// unsetOr is a cell of an optional string: "<unset>" when it is nil.
func unsetOr(s *string) string {
	if s == nil {
		return "<unset>"
	}
	return *s
}

type persistentVolumeStatusStrategy struct{ Strategy }

func (s persistentVolumeStatusStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	s.Strategy.PrepareForUpdate(ctx, obj, old)
	pv, oldPV := obj.(*corev1.PersistentVolume), old.(*corev1.PersistentVolume)
	if pv.Status.Phase != oldPV.Status.Phase {
		now := nowFunc()
		pv.Status.LastPhaseTransitionTime = &now
	}
}
