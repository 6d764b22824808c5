package customresource

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// PrepareForCreate does to a new custom resource what upstream's strategy does before
// validating it: with a status subresource the status a client sent is dropped (status is
// written through the subresource), and generation is 1.
func (v *Version) PrepareForCreate(obj *unstructured.Unstructured) {
	if v.subresources != nil && v.subresources.Status != nil {
		delete(obj.Object, "status")
	}
	obj.SetGeneration(1)
}

// PrepareForUpdate does to an update what upstream's strategy does: with a status subresource
// the status stays the old one, and generation moves on when anything outside metadata changed
// (otherwise it stays the old one).
func (v *Version) PrepareForUpdate(obj, old *unstructured.Unstructured) {
	if v.subresources != nil && v.subresources.Status != nil {
		if status, ok := old.Object["status"]; ok {
			obj.Object["status"] = status
		} else {
			delete(obj.Object, "status")
		}
	}
	obj.SetGeneration(old.GetGeneration())
	if !equality.Semantic.DeepEqual(withoutMetadata(obj.Object), withoutMetadata(old.Object)) {
		obj.SetGeneration(old.GetGeneration() + 1)
	}
}

// PrepareForStatusUpdate does to a write of the status subresource what upstream's status
// strategy does: obj becomes old with obj's status (or none) and obj's managed fields, so
// that a status write changes nothing else.
func (v *Version) PrepareForStatusUpdate(obj, old *unstructured.Unstructured) {
	status, ok := obj.Object["status"]
	managedFields := obj.GetManagedFields()
	*obj = *old.DeepCopy()
	obj.SetManagedFields(managedFields)
	if ok {
		obj.Object["status"] = status
	} else {
		delete(obj.Object, "status")
	}
}

func withoutMetadata(obj map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(obj))
	for k, val := range obj {
		if k != "metadata" {
			out[k] = val
		}
	}
	return out
}

// standardFinalizers are the finalizers Kubernetes itself uses, which need no domain.
var standardFinalizers = sets.New(metav1.FinalizerOrphanDependents, metav1.FinalizerDeleteDependents, string(corev1.FinalizerKubernetes))

// Warnings are the warnings upstream returns on a create (old nil) or an update of a custom
// resource: for each finalizer the write adds that is not a qualified name, or that is not
// domain-qualified (`metadata.finalizers: "foo": prefer a domain-qualified finalizer name to
// avoid accidental conflicts with other finalizer writers`).
func (v *Version) Warnings(obj, old *unstructured.Unstructured) []string {
	added := sets.New(obj.GetFinalizers()...)
	if old != nil {
		added = added.Difference(sets.New(old.GetFinalizers()...))
	}
	fldPath := field.NewPath("metadata", "finalizers")
	var warnings []string
	for _, finalizer := range sets.List(added) {
		for _, msg := range validation.IsQualifiedName(finalizer) {
			warnings = append(warnings, fmt.Sprintf("%s: %q: %s", fldPath, finalizer, msg))
		}
		if !strings.Contains(finalizer, "/") && !standardFinalizers.Has(finalizer) {
			if strings.Contains(finalizer, ".") {
				warnings = append(warnings, fmt.Sprintf("%s: %q: prefer a domain-qualified finalizer name including a path (/) to avoid accidental conflicts with other finalizer writers", fldPath, finalizer))
			} else {
				warnings = append(warnings, fmt.Sprintf("%s: %q: prefer a domain-qualified finalizer name to avoid accidental conflicts with other finalizer writers", fldPath, finalizer))
			}
		}
	}
	return warnings
}
