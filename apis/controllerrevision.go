package apis

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	appsv1beta1 "k8s.io/api/apps/v1beta1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ControllerRevisions: the immutable snapshots of a DaemonSet's or StatefulSet's template that
// their controllers keep as history. The data never changes; the revision number does, when a
// rollback makes an old snapshot current again.

type controllerRevisionStrategy struct{}

// ControllerRevisionStrategy is the strategy of controller revisions.
var ControllerRevisionStrategy = controllerRevisionStrategy{}

var _ Strategy = controllerRevisionStrategy{}

func (controllerRevisionStrategy) PrepareForCreate(context.Context, runtime.Object) {}

func (controllerRevisionStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateControllerRevision(obj.(*appsv1.ControllerRevision))
}

func (controllerRevisionStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (controllerRevisionStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateControllerRevisionUpdate(obj.(*appsv1.ControllerRevision), old.(*appsv1.ControllerRevision))
}

func (controllerRevisionStrategy) AllowCreateOnUpdate() bool      { return false }
func (controllerRevisionStrategy) AllowUnconditionalUpdate() bool { return true }

// ValidateControllerRevision checks a new controller revision: data is required and the
// revision is not negative.
func ValidateControllerRevision(cr *appsv1.ControllerRevision) field.ErrorList {
	allErrs := ValidateObjectMeta(&cr.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	if cr.Data.Raw == nil && cr.Data.Object == nil {
		allErrs = append(allErrs, field.Required(field.NewPath("data"), "data is mandatory"))
	}
	return append(allErrs, apivalidation.ValidateNonnegativeField(cr.Revision, field.NewPath("revision"))...)
}

// ValidateControllerRevisionUpdate checks cr replacing old: its data is immutable.
func ValidateControllerRevisionUpdate(cr, old *appsv1.ControllerRevision) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&cr.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, ValidateControllerRevision(cr)...)
	if !sameRevisionData(cr.Data, old.Data) {
		allErrs = append(allErrs, apivalidation.ValidateImmutableField(cr.Data, old.Data, field.NewPath("data"))...)
	}
	return allErrs
}

// sameRevisionData compares data as JSON values: the same object sent again by another client
// may differ in spacing and key order, which is no change.
func sameRevisionData(a, b runtime.RawExtension) bool {
	if bytes.Equal(a.Raw, b.Raw) {
		return true
	}
	var va, vb any
	if json.Unmarshal(a.Raw, &va) != nil || json.Unmarshal(b.Raw, &vb) != nil {
		return false
	}
	return apiequality.Semantic.DeepEqual(va, vb)
}

func controllerRevisionTable() *TablePrinter {
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Controller", Type: "string", Description: "Controller of the object"},
			{Name: "Revision", Type: "string", Description: appsv1beta1.ControllerRevision{}.SwaggerDoc()["revision"]},
			ageColumn,
		},
		func(cr *appsv1.ControllerRevision) metav1.TableRow {
			controller := "<none>"
			if ref := metav1.GetControllerOf(cr); ref != nil {
				// kubectl's kind/name: "daemonset.apps/fluentd"
				gv, _ := schema.ParseGroupVersion(ref.APIVersion)
				controller = strings.ToLower(gv.WithKind(ref.Kind).GroupKind().String()) + "/" + ref.Name
			}
			return cells(cr.Name, controller, cr.Revision, translateTimestampSince(cr.CreationTimestamp))
		})
}
