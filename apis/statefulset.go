package apis

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// StatefulSets: upstream's apps/v1 defaults, validation, strategy and columns.

func defaultStatefulSet(sts *appsv1.StatefulSet) {
	spec := &sts.Spec
	if spec.PodManagementPolicy == "" {
		spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	if spec.UpdateStrategy.Type == "" {
		spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
		if spec.UpdateStrategy.RollingUpdate == nil {
			spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
	}
	// an explicit RollingUpdate without parameters keeps none, as upstream's
	if ru := spec.UpdateStrategy.RollingUpdate; spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && ru != nil {
		if ru.Partition == nil {
			ru.Partition = ptr.To[int32](0)
		}
		// MaxUnavailableStatefulSet is on by default since 1.35
		if ru.MaxUnavailable == nil {
			ru.MaxUnavailable = ptr.To(intstr.FromInt32(1))
		}
	}
	if spec.PersistentVolumeClaimRetentionPolicy == nil {
		spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	if spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted == "" {
		spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if spec.PersistentVolumeClaimRetentionPolicy.WhenScaled == "" {
		spec.PersistentVolumeClaimRetentionPolicy.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if spec.Replicas == nil {
		spec.Replicas = ptr.To[int32](1)
	}
	if spec.RevisionHistoryLimit == nil {
		spec.RevisionHistoryLimit = ptr.To[int32](10)
	}
	DefaultPodSpec(&spec.Template.Spec)
	for i := range spec.VolumeClaimTemplates {
		if spec.VolumeClaimTemplates[i].Spec.VolumeMode == nil {
			spec.VolumeClaimTemplates[i].Spec.VolumeMode = ptr.To(corev1.PersistentVolumeFilesystem)
		}
		if spec.VolumeClaimTemplates[i].Status.Phase == "" {
			spec.VolumeClaimTemplates[i].Status.Phase = corev1.ClaimPending
		}
	}
}

// StatefulSetStrategy and StatefulSetStatusStrategy are the strategies of stateful sets and of
// statefulsets/status.
var StatefulSetStrategy, StatefulSetStatusStrategy = SpecAndStatus[*appsv1.StatefulSet]{
	Validate:             ValidateStatefulSet,
	ValidateUpdate:       ValidateStatefulSetUpdate,
	ValidateStatusUpdate: ValidateStatefulSetStatusUpdate,
}.Strategies()

// ValidateStatefulSet checks a new stateful set. Its name is a DNS label: it names its pods,
// whose names are their hostnames.
func ValidateStatefulSet(sts *appsv1.StatefulSet) field.ErrorList {
	allErrs := ValidateObjectMeta(&sts.ObjectMeta, true, apivalidation.NameIsDNSLabel, metadataPath)
	return append(allErrs, validateStatefulSetSpec(&sts.Spec, field.NewPath("spec"))...)
}

// ValidateStatefulSetUpdate checks sts replacing old: only replicas, ordinals, the template,
// the update strategy, the claim retention policy and minReadySeconds may change.
func ValidateStatefulSetUpdate(sts, old *appsv1.StatefulSet) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&sts.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, validateStatefulSetSpec(&sts.Spec, field.NewPath("spec"))...)
	spec := *sts.Spec.DeepCopy()
	spec.Replicas = old.Spec.Replicas
	spec.Template = old.Spec.Template
	spec.UpdateStrategy = old.Spec.UpdateStrategy
	spec.MinReadySeconds = old.Spec.MinReadySeconds
	spec.Ordinals = old.Spec.Ordinals
	spec.PersistentVolumeClaimRetentionPolicy = old.Spec.PersistentVolumeClaimRetentionPolicy
	if !apiequality.Semantic.DeepEqual(spec, old.Spec) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
	}
	return allErrs
}

// ValidateStatefulSetStatusUpdate checks a write to statefulsets/status.
func ValidateStatefulSetStatusUpdate(sts, old *appsv1.StatefulSet) field.ErrorList {
	status, fldPath := sts.Status, field.NewPath("status")
	var allErrs field.ErrorList
	for _, count := range []struct {
		name  string
		value int64
	}{
		{"replicas", int64(status.Replicas)},
		{"readyReplicas", int64(status.ReadyReplicas)},
		{"currentReplicas", int64(status.CurrentReplicas)},
		{"updatedReplicas", int64(status.UpdatedReplicas)},
		{"availableReplicas", int64(status.AvailableReplicas)},
		{"observedGeneration", status.ObservedGeneration},
	} {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(count.value, fldPath.Child(count.name))...)
	}
	if status.CollisionCount != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*status.CollisionCount), fldPath.Child("collisionCount"))...)
	}
	const msg = "cannot be greater than status.replicas"
	if status.ReadyReplicas > status.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("readyReplicas"), status.ReadyReplicas, msg))
	}
	if status.CurrentReplicas > status.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("currentReplicas"), status.CurrentReplicas, msg))
	}
	if status.UpdatedReplicas > status.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("updatedReplicas"), status.UpdatedReplicas, msg))
	}
	if status.AvailableReplicas > status.Replicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("availableReplicas"), status.AvailableReplicas, msg))
	}
	if status.AvailableReplicas > status.ReadyReplicas {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("availableReplicas"), status.AvailableReplicas, "cannot be greater than status.readyReplicas"))
	}
	allErrs = append(allErrs, ValidateObjectMetaUpdate(&sts.ObjectMeta, &old.ObjectMeta, metadataPath)...)
	if old.Status.CollisionCount != nil && (status.CollisionCount == nil || *status.CollisionCount < *old.Status.CollisionCount) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("collisionCount"), ptr.Deref(status.CollisionCount, 0), "cannot be decremented"))
	}
	return allErrs
}

func validateStatefulSetSpec(spec *appsv1.StatefulSetSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch spec.PodManagementPolicy {
	case "":
		allErrs = append(allErrs, field.Required(fldPath.Child("podManagementPolicy"), ""))
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		allErrs = append(allErrs, field.Invalid(fldPath.Child("podManagementPolicy"), spec.PodManagementPolicy,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement)))
	}

	switch spec.UpdateStrategy.Type {
	case "":
		allErrs = append(allErrs, field.Required(fldPath.Child("updateStrategy"), ""))
	case appsv1.OnDeleteStatefulSetStrategyType:
		if spec.UpdateStrategy.RollingUpdate != nil {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("updateStrategy", "rollingUpdate"), spec.UpdateStrategy.RollingUpdate,
				fmt.Sprintf("only allowed for updateStrategy '%s'", appsv1.RollingUpdateStatefulSetStrategyType)))
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := spec.UpdateStrategy.RollingUpdate; ru != nil {
			ruPath := fldPath.Child("updateStrategy", "rollingUpdate")
			allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(ptr.Deref(ru.Partition, 0)), ruPath.Child("partition"))...)
			if ru.MaxUnavailable != nil {
				muPath := ruPath.Child("maxUnavailable")
				allErrs = append(allErrs, validatePositiveIntOrPercent(ru.MaxUnavailable, muPath)...)
				if intOrPercentValue(ru.MaxUnavailable) == 0 {
					allErrs = append(allErrs, field.Invalid(muPath, *ru.MaxUnavailable, "cannot be 0"))
				}
				allErrs = append(allErrs, notMoreThan100Percent(ru.MaxUnavailable, muPath)...)
			}
		}
	default:
		allErrs = append(allErrs, field.Invalid(fldPath.Child("updateStrategy"), spec.UpdateStrategy,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.RollingUpdateStatefulSetStrategyType, appsv1.OnDeleteStatefulSetStrategyType)))
	}

	if p := spec.PersistentVolumeClaimRetentionPolicy; p != nil {
		pPath := fldPath.Child("persistentVolumeClaimRetentionPolicy")
		allErrs = append(allErrs, validateClaimRetentionPolicyType(p.WhenDeleted, pPath.Child("whenDeleted"))...)
		allErrs = append(allErrs, validateClaimRetentionPolicyType(p.WhenScaled, pPath.Child("whenScaled"))...)
	}

	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(ptr.Deref(spec.Replicas, 1)), fldPath.Child("replicas"))...)
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	if spec.Ordinals != nil {
		// upstream's path, one segment with a dot in it
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(spec.Ordinals.Start), fldPath.Child("ordinals.start"))...)
	}

	if spec.Selector == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("selector"), ""))
	} else {
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
		if len(spec.Selector.MatchLabels)+len(spec.Selector.MatchExpressions) == 0 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("selector"), spec.Selector, "empty selector is invalid for statefulset"))
		}
	}
	selector, err := metav1.LabelSelectorAsSelector(spec.Selector)
	if err != nil {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("selector"), spec.Selector, ""))
	} else {
		tPath := fldPath.Child("template")
		if !selector.Empty() && !selector.Matches(labels.Set(spec.Template.Labels)) {
			allErrs = append(allErrs, field.Invalid(tPath.Child("metadata", "labels"), spec.Template.Labels, "`selector` does not match template `labels`"))
		}
		// Upstream checks only the template's metadata here: its spec is checked when the
		// pods are created, with the claims' volumes added.
		allErrs = append(allErrs, metav1validation.ValidateLabels(spec.Template.Labels, tPath.Child("labels"))...)
		allErrs = append(allErrs, apivalidation.ValidateAnnotations(spec.Template.Annotations, tPath.Child("annotations"))...)
		allErrs = append(allErrs, validatePodAnnotations(spec.Template.Annotations, &spec.Template.Spec, tPath.Child("annotations"))...)
	}
	allErrs = append(allErrs, validateWorkloadTemplateRestart(&spec.Template, "StatefulSet", fldPath.Child("template"))...)
	return allErrs
}

func validateClaimRetentionPolicyType(policy appsv1.PersistentVolumeClaimRetentionPolicyType, fldPath *field.Path) field.ErrorList {
	switch policy {
	case appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType:
		return nil
	}
	return field.ErrorList{field.NotSupported(fldPath, policy, []string{
		string(appsv1.RetainPersistentVolumeClaimRetentionPolicyType), string(appsv1.DeletePersistentVolumeClaimRetentionPolicyType)})}
}

func statefulSetTable() *TablePrinter {
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Ready", Type: "string", Description: "Number of the pod with ready state"},
			ageColumn,
			containersColumn,
			imagesColumn,
		},
		func(sts *appsv1.StatefulSet) metav1.TableRow {
			names, images := layoutContainerCells(sts.Spec.Template.Spec.Containers)
			return cells(sts.Name, fmt.Sprintf("%d/%d", int64(sts.Status.ReadyReplicas), int64(ptr.Deref(sts.Spec.Replicas, 0))),
				translateTimestampSince(sts.CreationTimestamp), names, images)
		})
}
