package apis

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// PodTemplates: a pod template stored on its own. Upstream's defaults, validation, strategy
// and columns.

func defaultPodTemplate(pt *corev1.PodTemplate) { DefaultPodSpec(&pt.Template.Spec) }

// podTemplateStrategy: generation starts at 1 and counts changes of the template.
type podTemplateStrategy struct{}

// PodTemplateStrategy is the strategy of pod templates.
var PodTemplateStrategy = podTemplateStrategy{}

var _ Strategy = podTemplateStrategy{}

func (podTemplateStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	obj.(*corev1.PodTemplate).Generation = 1
}

func (podTemplateStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	pt := obj.(*corev1.PodTemplate)
	allErrs := ValidateObjectMeta(&pt.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, ValidatePodTemplateSpec(&pt.Template, field.NewPath("template"))...)
}

func (podTemplateStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	pt, oldPT := obj.(*corev1.PodTemplate), old.(*corev1.PodTemplate)
	if !apiequality.Semantic.DeepEqual(pt.Template, oldPT.Template) {
		pt.Generation = oldPT.Generation + 1
	}
}

func (podTemplateStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	pt, oldPT := obj.(*corev1.PodTemplate), old.(*corev1.PodTemplate)
	allErrs := ValidateObjectMetaUpdate(&pt.ObjectMeta, &oldPT.ObjectMeta, metadataPath)
	return append(allErrs, ValidatePodTemplateSpec(&pt.Template, field.NewPath("template"))...)
}

func (podTemplateStrategy) AllowCreateOnUpdate() bool      { return false }
func (podTemplateStrategy) AllowUnconditionalUpdate() bool { return true }

func podTemplateTable() *TablePrinter {
	return Columns(
		[]metav1.TableColumnDefinition{
			nameColumn,
			{Name: "Containers", Type: "string", Description: "Names of each container in the template."},
			{Name: "Images", Type: "string", Description: "Images referenced by each container in the template."},
			{Name: "Pod Labels", Type: "string", Description: "The labels for the pod template."},
		},
		func(pt *corev1.PodTemplate) metav1.TableRow {
			names, images := layoutContainerCells(pt.Template.Spec.Containers)
			return cells(pt.Name, names, images, labels.FormatLabels(pt.Template.Labels))
		})
}
