package apis

import (
	"strings"

	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// storagemigration.k8s.io/v1 StorageVersionMigration asks for every object of one resource to
// be rewritten in the current storage version. skiff stores one version per resource, so the
// objects are kept and validated as upstream's; no migrator acts on them yet.

var storageMigrationV1 = storagemigrationv1.SchemeGroupVersion

// ValidateStorageVersionMigration checks a new StorageVersionMigration as upstream does.
func ValidateStorageVersionMigration(svm *storagemigrationv1.StorageVersionMigration) field.ErrorList {
	allErrs := ValidateObjectMeta(&svm.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	resourcePath := field.NewPath("spec", "resource")
	if r := svm.Spec.Resource.Resource; r == "" {
		allErrs = append(allErrs, field.Required(resourcePath.Child("resource"), "resource is required to be set"))
	} else if errs := validation.IsDNS1035Label(r); len(errs) > 0 {
		allErrs = append(allErrs, field.Invalid(resourcePath.Child("resource"), r, strings.Join(errs, ",")))
	}
	if g := svm.Spec.Resource.Group; g != "" {
		if errs := validation.IsDNS1123Subdomain(g); len(errs) > 0 {
			allErrs = append(allErrs, field.Invalid(resourcePath.Child("group"), g, strings.Join(errs, ",")))
		}
	}
	return allErrs
}

// ValidateStorageVersionMigrationUpdate checks svm replacing old: the spec never changes.
func ValidateStorageVersionMigrationUpdate(svm, old *storagemigrationv1.StorageVersionMigration) field.ErrorList {
	allErrs := ValidateStorageVersionMigration(svm)
	allErrs = append(allErrs, ValidateObjectMetaUpdate(&svm.ObjectMeta, &old.ObjectMeta, metadataPath)...)
	return append(allErrs, apivalidation.ValidateImmutableField(svm.Spec, old.Spec, field.NewPath("spec"))...)
}

// ValidateStorageVersionMigrationStatusUpdate checks a status write: a recorded resource
// version stays, and a migration that succeeded or failed stays so.
func ValidateStorageVersionMigrationStatusUpdate(svm, old *storagemigrationv1.StorageVersionMigration) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&svm.ObjectMeta, &old.ObjectMeta, metadataPath)
	statusPath := field.NewPath("status")
	allErrs = append(allErrs, metav1validation.ValidateConditions(svm.Status.Conditions, statusPath.Child("conditions"))...)
	if rv := old.Status.ResourceVersion; rv != "" && rv != svm.Status.ResourceVersion {
		allErrs = append(allErrs, field.Invalid(statusPath.Child("resourceVersion"), svm.Status.ResourceVersion, errImmutable))
	}
	succeeded := migrationCondition(svm, storagemigrationv1.MigrationSucceeded)
	failed := migrationCondition(svm, storagemigrationv1.MigrationFailed)
	conditionsPath := statusPath.Child("conditions")
	if succeeded && failed {
		allErrs = append(allErrs, field.Invalid(conditionsPath, svm.Status.Conditions, "Both success and failed conditions cannot be true at the same time"))
	}
	if migrationCondition(old, storagemigrationv1.MigrationSucceeded) && !succeeded {
		allErrs = append(allErrs, field.Invalid(conditionsPath, svm.Status.Conditions, "Success condition cannot be set to false once it is true"))
	}
	if migrationCondition(old, storagemigrationv1.MigrationFailed) && !failed {
		allErrs = append(allErrs, field.Invalid(conditionsPath, svm.Status.Conditions, "Failed condition cannot be set to false once it is true"))
	}
	return allErrs
}

func migrationCondition(svm *storagemigrationv1.StorageVersionMigration, t storagemigrationv1.MigrationConditionType) bool {
	return meta.IsStatusConditionTrue(svm.Status.Conditions, string(t))
}

// StorageVersionMigrationStrategy and StorageVersionMigrationStatusStrategy are the strategies
// of storageversionmigrations and their status.
var StorageVersionMigrationStrategy, StorageVersionMigrationStatusStrategy = SpecAndStatus[*storagemigrationv1.StorageVersionMigration]{
	Validate:             ValidateStorageVersionMigration,
	ValidateUpdate:       ValidateStorageVersionMigrationUpdate,
	ValidateStatusUpdate: ValidateStorageVersionMigrationStatusUpdate,
}.Strategies()

func storageVersionMigrationTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Description: objectMetaDoc["name"]},
		{Name: "Resource", Type: "string", Description: "GroupResource to migrate"},
		{Name: "Status", Type: "string", Description: "Status of the migration"},
	}, func(svm *storagemigrationv1.StorageVersionMigration) metav1.TableRow {
		status := "Unknown"
		for _, c := range svm.Status.Conditions {
			if c.Status != metav1.ConditionTrue {
				continue
			}
			switch storagemigrationv1.MigrationConditionType(c.Type) {
			case storagemigrationv1.MigrationRunning, storagemigrationv1.MigrationFailed, storagemigrationv1.MigrationSucceeded:
				status = c.Type
			}
		}
		return cells(svm.Name, svm.Spec.Resource.String(), status)
	})
}
