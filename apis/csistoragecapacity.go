package apis

import (
	storagev1 "k8s.io/api/storage/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// storage.k8s.io/v1 CSIStorageCapacity: how much storage a CSI driver offers to the nodes of a
// topology for one StorageClass, as the driver's external provisioner publishes it. skiff
// stores and validates it as upstream; its scheduler does not yet read it.

// ValidateCSIStorageCapacity checks a new CSIStorageCapacity as upstream does.
func ValidateCSIStorageCapacity(c *storagev1.CSIStorageCapacity) field.ErrorList {
	allErrs := ValidateObjectMeta(&c.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	allErrs = append(allErrs, metav1validation.ValidateLabelSelector(c.NodeTopology, metav1validation.LabelSelectorValidationOptions{}, field.NewPath("nodeTopology"))...)
	for _, msg := range apivalidation.NameIsDNSSubdomain(c.StorageClassName, false) {
		allErrs = append(allErrs, field.Invalid(field.NewPath("storageClassName"), c.StorageClassName, msg))
	}
	if c.Capacity != nil && c.Capacity.Sign() < 0 {
		allErrs = append(allErrs, field.Invalid(field.NewPath("capacity"), c.Capacity.String(), "must be greater than or equal to 0"))
	}
	if c.MaximumVolumeSize != nil && c.MaximumVolumeSize.Sign() < 0 {
		allErrs = append(allErrs, field.Invalid(field.NewPath("maximumVolumeSize"), c.MaximumVolumeSize.String(), "must be greater than or equal to 0"))
	}
	return allErrs
}

// ValidateCSIStorageCapacityUpdate checks c replacing old: the topology and the class are
// what the object is about, and never change; the capacities do.
func ValidateCSIStorageCapacityUpdate(c, old *storagev1.CSIStorageCapacity) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&c.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, ValidateCSIStorageCapacity(c)...)
	if !apiequality.Semantic.DeepEqual(c.NodeTopology, old.NodeTopology) {
		allErrs = append(allErrs, field.Invalid(field.NewPath("nodeTopology"), c.NodeTopology, errImmutable))
	}
	if c.StorageClassName != old.StorageClassName {
		allErrs = append(allErrs, field.Invalid(field.NewPath("storageClassName"), c.StorageClassName, errImmutable))
	}
	return allErrs
}

// CSIStorageCapacityStrategy is the strategy of CSIStorageCapacities.
var CSIStorageCapacityStrategy = simpleStrategy(ValidateCSIStorageCapacity, ValidateCSIStorageCapacityUpdate)

func csiStorageCapacityTable() *TablePrinter {
	doc := storagev1.CSIStorageCapacity{}.SwaggerDoc()
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "StorageClassName", Type: "string", Description: doc["storageClassName"]},
		{Name: "Capacity", Type: "string", Description: doc["capacity"]},
	}, func(c *storagev1.CSIStorageCapacity) metav1.TableRow {
		capacity := "<unset>"
		if c.Capacity != nil {
			capacity = c.Capacity.String()
		}
		return cells(c.Name, c.StorageClassName, capacity)
	})
}
