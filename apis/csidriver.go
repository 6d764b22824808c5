package apis

import (
	"strings"

	storagev1 "k8s.io/api/storage/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// CSIDrivers, CSINodes and VolumeAttachments (storage.k8s.io/v1): what CSI drivers and the
// attach/detach machinery read and write. skiff runs no CSI driver of its own; these are
// stored and validated as upstream's so that drivers installed into the cluster work.

const csiNodeIDMaxLength = 192

func defaultCSIDriver(d *storagev1.CSIDriver) {
	s := &d.Spec
	if s.AttachRequired == nil {
		s.AttachRequired = ptr.To(true)
	}
	if s.PodInfoOnMount == nil {
		s.PodInfoOnMount = ptr.To(false)
	}
	if s.StorageCapacity == nil {
		s.StorageCapacity = ptr.To(false)
	}
	if s.FSGroupPolicy == nil {
		s.FSGroupPolicy = ptr.To(storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy)
	}
	if len(s.VolumeLifecycleModes) == 0 {
		s.VolumeLifecycleModes = []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent}
	}
	if s.RequiresRepublish == nil {
		s.RequiresRepublish = ptr.To(false)
	}
	if s.SELinuxMount == nil {
		s.SELinuxMount = ptr.To(false)
	}
}

var (
	supportedFSGroupPolicies = sets.New(storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy, storagev1.FileFSGroupPolicy, storagev1.NoneFSGroupPolicy)
	supportedLifecycleModes  = sets.New(storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral)
)

// ValidateCSIDriver checks a new CSIDriver as upstream does.
func ValidateCSIDriver(d *storagev1.CSIDriver) field.ErrorList {
	allErrs := validateCSIDriverName(d.Name, field.NewPath("name"))
	allErrs = append(allErrs, ValidateObjectMeta(&d.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)...)
	specPath := field.NewPath("spec")
	s := &d.Spec
	for _, required := range []struct {
		name string
		set  bool
	}{
		{"attachRequired", s.AttachRequired != nil}, {"podInfoOnMount", s.PodInfoOnMount != nil},
		{"storageCapacity", s.StorageCapacity != nil}, {"requiresRepublish", s.RequiresRepublish != nil},
	} {
		if !required.set {
			allErrs = append(allErrs, field.Required(specPath.Child(required.name), ""))
		}
	}
	if p := s.FSGroupPolicy; p != nil && !supportedFSGroupPolicies.Has(*p) {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("fsGroupPolicy"), *p, sets.List(supportedFSGroupPolicies)))
	}
	for _, m := range s.VolumeLifecycleModes {
		if !supportedLifecycleModes.Has(m) {
			allErrs = append(allErrs, field.NotSupported(specPath.Child("volumeLifecycleModes"), m, sets.List(supportedLifecycleModes)))
		}
	}
	audiences := sets.New[string]()
	for i, tr := range s.TokenRequests {
		p := specPath.Child("tokenRequests").Index(i)
		if audiences.Has(tr.Audience) {
			allErrs = append(allErrs, field.Duplicate(p.Child("audience"), tr.Audience))
		}
		audiences.Insert(tr.Audience)
		if e := tr.ExpirationSeconds; e != nil {
			if *e < 600 {
				allErrs = append(allErrs, field.Invalid(p.Child("expirationSeconds"), *e, "may not specify a duration less than 10 minutes"))
			} else if *e > 1<<32 {
				allErrs = append(allErrs, field.Invalid(p.Child("expirationSeconds"), *e, "may not specify a duration larger than 2^32 seconds"))
			}
		}
	}
	return allErrs
}

// ValidateCSIDriverUpdate checks d replacing old: whether volumes are attached, and in which
// lifecycle modes, never change.
func ValidateCSIDriverUpdate(d, old *storagev1.CSIDriver) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&d.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, ValidateCSIDriver(d)...)
	specPath := field.NewPath("spec")
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(d.Spec.AttachRequired, old.Spec.AttachRequired, specPath.Child("attachRequired"))...)
	return append(allErrs, apivalidation.ValidateImmutableField(d.Spec.VolumeLifecycleModes, old.Spec.VolumeLifecycleModes, specPath.Child("volumeLifecycleModes"))...)
}

// CSIDriverStrategy is the strategy of CSIDrivers.
var CSIDriverStrategy = simpleStrategy(ValidateCSIDriver, ValidateCSIDriverUpdate)

func csiDriverTable() *TablePrinter {
	doc := storagev1.CSIDriverSpec{}.SwaggerDoc()
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "AttachRequired", Type: "boolean", Description: doc["attachRequired"]},
		{Name: "PodInfoOnMount", Type: "boolean", Description: doc["podInfoOnMount"]},
		{Name: "StorageCapacity", Type: "boolean", Description: doc["storageCapacity"]},
		{Name: "TokenRequests", Type: "string", Description: doc["tokenRequests"]},
		{Name: "RequiresRepublish", Type: "boolean", Description: doc["requiresRepublish"]},
		{Name: "Modes", Type: "string", Description: doc["volumeLifecycleModes"]},
		ageColumn,
	}, func(d *storagev1.CSIDriver) metav1.TableRow {
		tokens := "<unset>"
		if d.Spec.TokenRequests != nil {
			var auds []string
			for _, t := range d.Spec.TokenRequests {
				auds = append(auds, t.Audience)
			}
			tokens = strings.Join(auds, ",")
		}
		var modes []string
		for _, m := range d.Spec.VolumeLifecycleModes {
			modes = append(modes, string(m))
		}
		modesCell := strings.Join(modes, ",")
		if modesCell == "" {
			modesCell = "<none>"
		}
		return cells(d.Name, ptr.Deref(d.Spec.AttachRequired, true), ptr.Deref(d.Spec.PodInfoOnMount, false),
			ptr.Deref(d.Spec.StorageCapacity, false), tokens, ptr.Deref(d.Spec.RequiresRepublish, false), modesCell,
			translateTimestampSince(d.CreationTimestamp))
	})
}

// ValidateCSINode checks a new CSINode as upstream does.
func ValidateCSINode(n *storagev1.CSINode) field.ErrorList {
	allErrs := ValidateObjectMeta(&n.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	driversPath := field.NewPath("spec", "drivers")
	names := sets.New[string]()
	for i, d := range n.Spec.Drivers {
		p := driversPath.Index(i)
		allErrs = append(allErrs, validateCSIDriverName(d.Name, p.Child("name"))...)
		if names.Has(d.Name) {
			allErrs = append(allErrs, field.Duplicate(p.Child("name"), d.Name))
		}
		names.Insert(d.Name)
		if d.NodeID == "" {
			allErrs = append(allErrs, field.Required(p.Child("nodeID"), ""))
		} else if len(d.NodeID) > csiNodeIDMaxLength {
			allErrs = append(allErrs, field.TooLong(p.Child("nodeID"), d.NodeID, csiNodeIDMaxLength))
		}
		keys := sets.New[string]()
		for j, k := range d.TopologyKeys {
			kp := p.Child("topologyKeys").Index(j)
			if k == "" {
				allErrs = append(allErrs, field.Required(kp, ""))
			}
			if keys.Has(k) {
				allErrs = append(allErrs, field.Duplicate(kp, k))
			}
			keys.Insert(k)
			for _, msg := range validation.IsQualifiedName(k) {
				allErrs = append(allErrs, field.Invalid(kp, k, msg))
			}
		}
		if a := d.Allocatable; a != nil && a.Count != nil && *a.Count < 0 {
			allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*a.Count), p.Child("allocatable", "count"))...)
		}
	}
	return allErrs
}

// ValidateCSINodeUpdate checks n replacing old: a driver once registered keeps its node ID,
// topology keys and allocatable count.
func ValidateCSINodeUpdate(n, old *storagev1.CSINode) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&n.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, ValidateCSINode(n)...)
	driversPath := field.NewPath("spec", "drivers")
	for _, od := range old.Spec.Drivers {
		for i, d := range n.Spec.Drivers {
			if d.Name != od.Name {
				continue
			}
			p := driversPath.Index(i)
			if d.NodeID != od.NodeID {
				allErrs = append(allErrs, field.Invalid(p.Child("nodeID"), d.NodeID, errImmutable))
			}
			if !apiequality.Semantic.DeepEqual(d.TopologyKeys, od.TopologyKeys) {
				allErrs = append(allErrs, field.Invalid(p.Child("topologyKeys"), d.TopologyKeys, errImmutable))
			}
			if !apiequality.Semantic.DeepEqual(d.Allocatable, od.Allocatable) {
				allErrs = append(allErrs, field.Invalid(p.Child("allocatable"), d.Allocatable, errImmutable))
			}
		}
	}
	return allErrs
}

// CSINodeStrategy is the strategy of CSINodes.
var CSINodeStrategy = simpleStrategy(ValidateCSINode, ValidateCSINodeUpdate)

func csiNodeTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Drivers", Type: "integer", Description: "Drivers indicates the number of CSI drivers registered on the node"},
		ageColumn,
	}, func(n *storagev1.CSINode) metav1.TableRow {
		return cells(n.Name, int64(len(n.Spec.Drivers)), translateTimestampSince(n.CreationTimestamp))
	})
}

// ValidateVolumeAttachment checks a new VolumeAttachment as upstream does.
func ValidateVolumeAttachment(va *storagev1.VolumeAttachment) field.ErrorList {
	allErrs := ValidateObjectMeta(&va.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	specPath := field.NewPath("spec")
	allErrs = append(allErrs, validateCSIDriverName(va.Spec.Attacher, specPath.Child("attacher"))...)
	srcPath := specPath.Child("source")
	sources := 0
	if name := va.Spec.Source.PersistentVolumeName; name != nil {
		if *name == "" {
			allErrs = append(allErrs, field.Required(srcPath.Child("persistentVolumeName"), "must specify non empty persistentVolumeName"))
		}
		sources++
	}
	if va.Spec.Source.InlineVolumeSpec != nil {
		sources++
	}
	switch {
	case sources == 0:
		allErrs = append(allErrs, field.Required(srcPath, "must specify exactly one of inlineVolumeSpec and persistentVolumeName"))
	case sources > 1:
		allErrs = append(allErrs, field.Forbidden(srcPath, "must specify exactly one of inlineVolumeSpec and persistentVolumeName"))
	}
	if va.Spec.NodeName == "" {
		allErrs = append(allErrs, field.Required(specPath.Child("nodeName"), ""))
	}
	return allErrs
}

// ValidateVolumeAttachmentUpdate checks va replacing old: the spec never changes.
func ValidateVolumeAttachmentUpdate(va, old *storagev1.VolumeAttachment) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&va.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, ValidateVolumeAttachment(va)...)
	if !apiequality.Semantic.DeepEqual(va.Spec, old.Spec) {
		allErrs = append(allErrs, field.Invalid(field.NewPath("spec"), va.Spec, errImmutable))
	}
	return allErrs
}

var volumeAttachmentKind = SpecAndStatus[*storagev1.VolumeAttachment]{
	PrepareForCreate: func(va *storagev1.VolumeAttachment) { va.Generation = 0 },
	PrepareForUpdate: func(va, old *storagev1.VolumeAttachment) { va.Generation = old.Generation },
	Validate:         ValidateVolumeAttachment,
	ValidateUpdate:   ValidateVolumeAttachmentUpdate,
	ValidateStatusUpdate: func(va, old *storagev1.VolumeAttachment) field.ErrorList {
		return ValidateObjectMetaUpdate(&va.ObjectMeta, &old.ObjectMeta, metadataPath)
	},
}

// VolumeAttachmentStrategy and VolumeAttachmentStatusStrategy are the strategies of
// volumeattachments and volumeattachments/status.
var VolumeAttachmentStrategy, VolumeAttachmentStatusStrategy = volumeAttachmentKind.Strategies()

func volumeAttachmentTable() *TablePrinter {
	specDoc := storagev1.VolumeAttachmentSpec{}.SwaggerDoc()
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Attacher", Type: "string", Format: "name", Description: specDoc["attacher"]},
		{Name: "PV", Type: "string", Description: storagev1.VolumeAttachmentSource{}.SwaggerDoc()["persistentVolumeName"]},
		{Name: "Node", Type: "string", Description: specDoc["nodeName"]},
		{Name: "Attached", Type: "boolean", Description: storagev1.VolumeAttachmentStatus{}.SwaggerDoc()["attached"]},
		ageColumn,
	}, func(va *storagev1.VolumeAttachment) metav1.TableRow {
		return cells(va.Name, va.Spec.Attacher, ptr.Deref(va.Spec.Source.PersistentVolumeName, ""), va.Spec.NodeName,
			va.Status.Attached, translateTimestampSince(va.CreationTimestamp))
	})
}
