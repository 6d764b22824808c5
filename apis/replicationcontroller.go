package apis

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// ReplicationControllers: the core v1 ancestor of ReplicaSets, with a plain map as selector.
// Upstream's defaults, validation, strategy and columns.

// defaultReplicationController makes the selector and the labels default to the template's
// labels, and one replica the default, as core v1 does.
func defaultReplicationController(rc *corev1.ReplicationController) {
	if rc.Spec.Template != nil {
		if tl := rc.Spec.Template.Labels; tl != nil {
			if len(rc.Spec.Selector) == 0 {
				rc.Spec.Selector = copyLabels(tl)
			}
			if len(rc.Labels) == 0 {
				rc.Labels = copyLabels(tl)
			}
		}
		DefaultPodSpec(&rc.Spec.Template.Spec)
	}
	if rc.Spec.Replicas == nil {
		rc.Spec.Replicas = ptr.To[int32](1)
	}
}

func copyLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ReplicationControllerStrategy and ReplicationControllerStatusStrategy are the strategies of
// replication controllers (and of their scale subresource) and of their status.
var ReplicationControllerStrategy, ReplicationControllerStatusStrategy = SpecAndStatus[*corev1.ReplicationController]{
	Validate:             ValidateReplicationController,
	ValidateUpdate:       ValidateReplicationControllerUpdate,
	ValidateStatusUpdate: ValidateReplicationControllerStatusUpdate,
}.Strategies()

// ValidateReplicationController checks a new replication controller.
func ValidateReplicationController(rc *corev1.ReplicationController) field.ErrorList {
	allErrs := ValidateObjectMeta(&rc.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateReplicationControllerSpec(&rc.Spec, field.NewPath("spec"))...)
}

// ValidateReplicationControllerUpdate checks rc replacing old. Unlike a ReplicaSet's, its
// selector may change.
func ValidateReplicationControllerUpdate(rc, old *corev1.ReplicationController) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&rc.ObjectMeta, &old.ObjectMeta, metadataPath)
	return append(allErrs, validateReplicationControllerSpec(&rc.Spec, field.NewPath("spec"))...)
}

// ValidateReplicationControllerStatusUpdate checks a write to replicationcontrollers/status.
func ValidateReplicationControllerStatusUpdate(rc, old *corev1.ReplicationController) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&rc.ObjectMeta, &old.ObjectMeta, metadataPath)
	status, fldPath := rc.Status, field.NewPath("status")
	for _, count := range []struct {
		name  string
		value int64
	}{
		{"replicas", int64(status.Replicas)},
		{"fullyLabeledReplicas", int64(status.FullyLabeledReplicas)},
		{"readyReplicas", int64(status.ReadyReplicas)},
		{"availableReplicas", int64(status.AvailableReplicas)},
		{"observedGeneration", status.ObservedGeneration},
	} {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(count.value, fldPath.Child(count.name))...)
	}
	const msg = "cannot be greater than status.replicas"
	if status.FullyLabeledReplicas > status.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("fullyLabeledReplicas"), status.FullyLabeledReplicas, msg))
	}
	if status.ReadyReplicas > status.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("readyReplicas"), status.ReadyReplicas, msg))
	}
	if status.AvailableReplicas > status.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("availableReplicas"), status.AvailableReplicas, msg))
	}
	if status.AvailableReplicas > status.ReadyReplicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("availableReplicas"), status.AvailableReplicas, "cannot be greater than readyReplicas"))
	}
	return allErrs
}

func validateReplicationControllerSpec(spec *corev1.ReplicationControllerSpec, fldPath *field.Path) field.ErrorList {
	allErrs := apivalidation.ValidateNonnegativeField(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))
	selector := labels.Set(spec.Selector).AsSelector()
	if selector.Empty() {
		allErrs = append(allErrs, field.Required(fldPath.Child("selector"), ""))
	}
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(ptr.Deref(spec.Replicas, 1)), fldPath.Child("replicas"))...)
	tPath := fldPath.Child("template")
	if spec.Template == nil {
		return append(allErrs, field.Required(tPath, ""))
	}
	if !selector.Empty() && !selector.Matches(labels.Set(spec.Template.Labels)) {
		allErrs = append(allErrs, field.Invalid(tPath.Child("metadata", "labels"), spec.Template.Labels, "`selector` does not match template `labels`"))
	}
	allErrs = append(allErrs, ValidatePodTemplateSpec(spec.Template, tPath)...)
	return append(allErrs, validateWorkloadTemplateRestart(spec.Template, "ReplicationController", tPath)...)
}

func replicationControllerFields(obj runtime.Object) fields.Set {
	set := objectMetaFields(obj)
	set["status.replicas"] = strconv.Itoa(int(obj.(*corev1.ReplicationController).Status.Replicas))
	return set
}

// rcScale is where replication controllers keep what their scale subresource shows; the
// selector is a map of labels.
var rcScale = &ScalePaths{SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas", LabelSelectorPath: ".spec.selector"}

func replicationControllerTable() *TablePrinter {
	specDoc, statusDoc := corev1.ReplicationControllerSpec{}.SwaggerDoc(), corev1.ReplicationControllerStatus{}.SwaggerDoc()
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Desired", Type: "integer", Description: specDoc["replicas"]},
			{Name: "Current", Type: "integer", Description: statusDoc["replicas"]},
			{Name: "Ready", Type: "integer", Description: statusDoc["readyReplicas"]},
			ageColumn,
			containersColumn,
			imagesColumn,
			{Name: "Selector", Type: "string", Priority: 1, Description: specDoc["selector"]},
		},
		func(rc *corev1.ReplicationController) metav1.TableRow {
			var names, images string
			if rc.Spec.Template != nil {
				names, images = layoutContainerCells(rc.Spec.Template.Spec.Containers)
			}
			return cells(rc.Name, int64(ptr.Deref(rc.Spec.Replicas, 0)), int64(rc.Status.Replicas), int64(rc.Status.ReadyReplicas),
				translateTimestampSince(rc.CreationTimestamp), names, images, labels.FormatLabels(rc.Spec.Selector))
		})
}
