package apiserver

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// admitClaimStorageClass is upstream's DefaultStorageClass for a new claim: a claim that names
// no class (neither storageClassName, not even "", nor the beta annotation) gets the default
// class, the newest one if several are marked default. Without a default class it is left as
// it is.
func (a admission) admitClaimStorageClass(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if a.storageClasses == nil || !a.enabled("DefaultStorageClass") || pvc.Spec.StorageClassName != nil {
		return nil
	}
	if _, ok := pvc.Annotations[apis.BetaStorageClassAnnotation]; ok {
		return nil
	}
	list, err := a.storageClasses.List(ctx, "", registry.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return err
	}
	var chosen *storagev1.StorageClass
	for i := range list.(*storagev1.StorageClassList).Items {
		sc := &list.(*storagev1.StorageClassList).Items[i]
		if !apis.IsDefaultStorageClass(&sc.ObjectMeta) {
			continue
		}
		if chosen == nil || sc.CreationTimestamp.After(chosen.CreationTimestamp.Time) ||
			(sc.CreationTimestamp.Equal(&chosen.CreationTimestamp) && sc.Name < chosen.Name) {
			chosen = sc
		}
	}
	if chosen != nil {
		name := chosen.Name
		pvc.Spec.StorageClassName = &name
	}
	return nil
}

// admitStorageProtection is upstream's StorageObjectInUseProtection: every new claim and
// volume carries its protection finalizer, which the PV controller lifts once no pod uses
// the claim (no claim is bound to the volume).
func (a admission) admitStorageProtection(obj interface{ GetFinalizers() []string }, finalizer string, set func([]string)) {
	if !a.enabled("StorageObjectInUseProtection") || slices.Contains(obj.GetFinalizers(), finalizer) {
		return
	}
	set(append(obj.GetFinalizers(), finalizer))
}

// admitClaimResize is upstream's PersistentVolumeClaimResize: a claim may ask for more storage
// only when it is bound and its class (the same before and after) allows volume expansion.
// Shrinking is validation's to judge, not this plugin's.
func (a admission) admitClaimResize(ctx context.Context, obj, old runtime.Object) error {
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	oldPVC, oldOK := old.(*corev1.PersistentVolumeClaim)
	if !ok || !oldOK || a.storageClasses == nil || !a.enabled("PersistentVolumeClaimResize") {
		return nil
	}
	newSize, oldSize := pvc.Spec.Resources.Requests[corev1.ResourceStorage], oldPVC.Spec.Resources.Requests[corev1.ResourceStorage]
	if newSize.Cmp(oldSize) <= 0 {
		return nil
	}
	gr := schema.GroupResource{Resource: "persistentvolumeclaims"}
	if oldPVC.Status.Phase != corev1.ClaimBound {
		return apierrors.NewForbidden(gr, pvc.Name, fmt.Errorf("Only bound persistent volume claims can be expanded"))
	}
	if !a.classAllowsExpansion(ctx, claimClass(pvc), claimClass(oldPVC)) {
		return apierrors.NewForbidden(gr, pvc.Name, fmt.Errorf("only dynamically provisioned pvc can be resized and "+
			"the storageclass that provisions the pvc must support resize"))
	}
	return nil
}

// claimClass is the claim's class as upstream reads it: the beta annotation before the field.
func claimClass(pvc *corev1.PersistentVolumeClaim) string {
	if class, ok := pvc.Annotations[apis.BetaStorageClassAnnotation]; ok {
		return class
	}
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return ""
}

func (a admission) classAllowsExpansion(ctx context.Context, class, oldClass string) bool {
	if class == "" || class != oldClass {
		return false
	}
	obj, err := a.storageClasses.Get(ctx, "", class, &metav1.GetOptions{ResourceVersion: "0"})
	if err != nil {
		return false
	}
	sc := obj.(*storagev1.StorageClass)
	return sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion
}
