package apis

import (
	nodev1 "k8s.io/api/node/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	corev1 "k8s.io/api/core/v1"
)

// node.k8s.io/v1 RuntimeClass names a container runtime configuration (the CRI handler) a pod
// asks for by spec.runtimeClassName, with the overhead its pods cost beyond their containers
// and the nodes that have it. The RuntimeClass admission plugin copies the last two into pods.

var nodeV1 = nodev1.SchemeGroupVersion

// RuntimeClassStrategy keeps what a client sends; the handler is immutable.
var RuntimeClassStrategy Strategy = asWritten[*nodev1.RuntimeClass]{ValidateRuntimeClass, ValidateRuntimeClassUpdate}

// ValidateRuntimeClass checks a new RuntimeClass as upstream does.
func ValidateRuntimeClass(rc *nodev1.RuntimeClass) field.ErrorList {
	allErrs := ValidateObjectMeta(&rc.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	handlerPath := field.NewPath("handler")
	if rc.Handler == "" {
		allErrs = append(allErrs, field.Required(handlerPath, ""))
	} else {
		for _, msg := range apivalidation.NameIsDNSLabel(rc.Handler, false) {
			allErrs = append(allErrs, field.Invalid(handlerPath, rc.Handler, msg))
		}
	}
	if rc.Overhead != nil {
		overhead := &corev1.ResourceRequirements{Limits: rc.Overhead.PodFixed}
		allErrs = append(allErrs, (&podSpecValidator{}).validateResourceRequirements(overhead, validateContainerResourceName, field.NewPath("overhead"))...)
	}
	if s := rc.Scheduling; s != nil {
		path := field.NewPath("scheduling")
		allErrs = append(allErrs, metav1validation.ValidateLabels(s.NodeSelector, path.Child("nodeSelector"))...)
		allErrs = append(allErrs, validatePodTolerations(s.Tolerations, path.Child("tolerations"))...)
		seen := map[corev1.Toleration]bool{}
		for i, t := range s.Tolerations {
			key := corev1.Toleration{Key: t.Key, Operator: t.Operator, Value: t.Value, Effect: t.Effect}
			if seen[key] {
				allErrs = append(allErrs, field.Duplicate(path.Child("tolerations").Index(i), t))
			}
			seen[key] = true
		}
	}
	return allErrs
}

// ValidateRuntimeClassUpdate checks rc replacing old: the handler may not change.
func ValidateRuntimeClassUpdate(rc, old *nodev1.RuntimeClass) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&rc.ObjectMeta, &old.ObjectMeta, metadataPath)
	return append(allErrs, apivalidation.ValidateImmutableField(rc.Handler, old.Handler, field.NewPath("handler"))...)
}

func runtimeClassTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Handler", Type: "string", Description: "Handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class."},
		ageColumn,
	}, func(rc *nodev1.RuntimeClass) metav1.TableRow {
		return cells(rc.Name, rc.Handler, translateTimestampSince(rc.CreationTimestamp))
	})
}
