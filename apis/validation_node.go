package apis

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateNode checks a new node (and, with ValidateNodeUpdate, every write to one). Status is
// optional, but what is given must be valid.
func ValidateNode(node *corev1.Node) field.ErrorList {
	allErrs := ValidateObjectMeta(&node.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	allErrs = append(allErrs, validateNodeSpecificAnnotations(node.Annotations, metadataPath.Child("annotations"))...)
	if len(node.Spec.Taints) > 0 {
		// Upstream reports spec taints under metadata.taints; kept for identical messages.
		allErrs = append(allErrs, validateNodeTaints(node.Spec.Taints, metadataPath.Child("taints"))...)
	}
	allErrs = append(allErrs, validateNodeResources(node)...)
	allErrs = append(allErrs, validatePodCIDRs(node.Spec.PodCIDRs, field.NewPath("spec", "podCIDRs"))...)
	return allErrs
}

// ValidateNodeUpdate checks node replacing old: podCIDRs and providerID may only go from empty
// to set, externalID never changes; labels, taints, unschedulable and status may change.
func ValidateNodeUpdate(node, old *corev1.Node) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&node.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, validateNodeSpecificAnnotations(node.Annotations, metadataPath.Child("annotations"))...)
	allErrs = append(allErrs, validateNodeResources(node)...)

	seen := map[corev1.NodeAddress]bool{}
	for i, address := range node.Status.Addresses {
		if seen[address] {
			allErrs = append(allErrs, field.Duplicate(field.NewPath("status", "addresses").Index(i), address))
		}
		seen[address] = true
	}

	const changedOnce = "node updates may not change podCIDR except from \"\" to valid"
	if len(old.Spec.PodCIDRs) > 0 {
		if len(old.Spec.PodCIDRs) != len(node.Spec.PodCIDRs) {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "podCIDRs"), changedOnce))
		} else {
			for i := range old.Spec.PodCIDRs {
				if old.Spec.PodCIDRs[i] != node.Spec.PodCIDRs[i] {
					allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "podCIDRs"), changedOnce))
				}
			}
		}
	}
	if len(old.Spec.ProviderID) > 0 && old.Spec.ProviderID != node.Spec.ProviderID {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "providerID"), "node updates may not change providerID except from \"\" to valid"))
	}
	if len(node.Spec.Taints) > 0 {
		allErrs = append(allErrs, validateNodeTaints(node.Spec.Taints, metadataPath.Child("taints"))...)
	}
	if node.Spec.DoNotUseExternalID != old.Spec.DoNotUseExternalID {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "externalID"), "may not be updated"))
	}
	return allErrs
}

func validateNodeResources(node *corev1.Node) field.ErrorList {
	var allErrs field.ErrorList
	for name, q := range node.Status.Capacity {
		allErrs = append(allErrs, validateResourceQuantityValue(name, q, field.NewPath("status", "capacity", string(name)))...)
	}
	for name, q := range node.Status.Allocatable {
		allErrs = append(allErrs, validateResourceQuantityValue(name, q, field.NewPath("status", "allocatable", string(name)))...)
	}
	return allErrs
}

// validatePodCIDRs checks each CIDR, at most one per IP family, and no repeats.
func validatePodCIDRs(cidrs []string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, cidr := range cidrs {
		allErrs = append(allErrs, validation.IsValidCIDR(fldPath.Index(i), cidr)...)
	}
	if len(cidrs) < 2 {
		return allErrs
	}
	v4, v6 := 0, 0
	for _, cidr := range cidrs {
		ip, _, err := net.ParseCIDR(cidr)
		switch {
		case err != nil:
			allErrs = append(allErrs, field.InternalError(fldPath, fmt.Errorf("invalid PodCIDRs. failed to check with dual stack with error:%v", err)))
			v4, v6 = 0, 0
		case ip.To4() != nil:
			v4++
		default:
			v6++
		}
		if err != nil {
			break
		}
	}
	// Dual stack means one CIDR of each family, and no more.
	if v4 != 1 || v6 != 1 {
		allErrs = append(allErrs, field.Invalid(fldPath, cidrs, "may specify no more than one CIDR for each IP family"))
	}
	seen := map[string]bool{}
	for i, cidr := range cidrs {
		if seen[cidr] {
			allErrs = append(allErrs, field.Duplicate(fldPath.Index(i), cidr))
		}
		seen[cidr] = true
	}
	return allErrs
}

// validateNodeTaints checks keys, values and effects, and that no two taints share a key and
// effect.
func validateNodeTaints(taints []corev1.Taint, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	seen := map[corev1.TaintEffect]map[string]bool{}
	for i, taint := range taints {
		idxPath := fldPath.Index(i)
		allErrs = append(allErrs, metav1validation.ValidateLabelName(taint.Key, idxPath.Child("key"))...)
		if errs := validation.IsValidLabelValue(taint.Value); len(errs) != 0 {
			allErrs = append(allErrs, field.Invalid(idxPath.Child("value"), taint.Value, strings.Join(errs, ";")))
		}
		allErrs = append(allErrs, validateNodeTaintEffect(taint.Effect, idxPath.Child("effect"))...)
		if seen[taint.Effect][taint.Key] {
			dup := field.Duplicate(idxPath, taint)
			dup.Detail = "taints must be unique by key and effect pair"
			allErrs = append(allErrs, dup)
			continue
		}
		if seen[taint.Effect] == nil {
			seen[taint.Effect] = map[string]bool{}
		}
		seen[taint.Effect][taint.Key] = true
	}
	return allErrs
}

func validateNodeTaintEffect(effect corev1.TaintEffect, fldPath *field.Path) field.ErrorList {
	switch effect {
	case "":
		return field.ErrorList{field.Required(fldPath, "")}
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		return nil
	}
	return field.ErrorList{field.NotSupported(fldPath, effect, []corev1.TaintEffect{
		corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute,
	})}
}

// validateNodeSpecificAnnotations checks the two deprecated scheduler annotations whose values
// are JSON a scheduler would read.
func validateNodeSpecificAnnotations(annotations map[string]string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if value := annotations[corev1.TaintsAnnotationKey]; value != "" {
		var taints []corev1.Taint
		if err := json.Unmarshal([]byte(value), &taints); err != nil {
			allErrs = append(allErrs, field.Invalid(fldPath, corev1.TaintsAnnotationKey, err.Error()))
		} else if len(taints) > 0 {
			allErrs = append(allErrs, validateNodeTaints(taints, fldPath.Child(corev1.TaintsAnnotationKey))...)
		}
	}
	if value := annotations[corev1.PreferAvoidPodsAnnotationKey]; value != "" {
		var avoid corev1.AvoidPods
		if err := json.Unmarshal([]byte(value), &avoid); err != nil {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("AvoidPods"), corev1.PreferAvoidPodsAnnotationKey, err.Error()))
			return allErrs
		}
		for i, entry := range avoid.PreferAvoidPods {
			entryPath := fldPath.Child(corev1.PreferAvoidPodsAnnotationKey).Index(i).Child("PodSignature")
			controller := entry.PodSignature.PodController
			switch {
			case controller == nil:
				allErrs = append(allErrs, field.Required(entryPath, ""))
			case controller.Controller == nil || !*controller.Controller:
				allErrs = append(allErrs, field.Invalid(entryPath.Child("PodController", "Controller"), false, "must point to a controller"))
			}
		}
	}
	return allErrs
}
