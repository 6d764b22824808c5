package apiserver

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"

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
