package apis

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

func defaultedVolume() *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv1", ResourceVersion: "3"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data/pv1"}},
		},
	}
	Scheme.Default(pv)
	return pv
}

func defaultedClaim() *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "ns", ResourceVersion: "4"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	Scheme.Default(pvc)
	return pvc
}

func TestPersistentVolumeDefaults(t *testing.T) {
	pv := defaultedVolume()
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain || *pv.Spec.VolumeMode != corev1.PersistentVolumeFilesystem ||
		pv.Status.Phase != corev1.VolumePending || *pv.Spec.HostPath.Type != corev1.HostPathUnset {
		t.Errorf("defaults: %+v %+v", pv.Spec, pv.Status)
	}
	pvc := defaultedClaim()
	if *pvc.Spec.VolumeMode != corev1.PersistentVolumeFilesystem || pvc.Status.Phase != corev1.ClaimPending {
		t.Errorf("claim defaults: %+v %+v", pvc.Spec, pvc.Status)
	}
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Provisioner: "example.com/fast"}
	Scheme.Default(sc)
	if *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete || *sc.VolumeBindingMode != storagev1.VolumeBindingImmediate {
		t.Errorf("class defaults: %+v", sc)
	}
	d := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: "csi.example.com"}}
	Scheme.Default(d)
	if !*d.Spec.AttachRequired || *d.Spec.PodInfoOnMount || *d.Spec.FSGroupPolicy != storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy ||
		!reflect.DeepEqual(d.Spec.VolumeLifecycleModes, []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent}) {
		t.Errorf("CSIDriver defaults: %+v", d.Spec)
	}
	checkFieldErrors(t, ValidateCSIDriver(d))
}

func TestValidatePersistentVolume(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*corev1.PersistentVolume)
		want   []string
	}{
		{name: "valid", change: func(*corev1.PersistentVolume) {}},
		{
			name: "two sources",
			change: func(pv *corev1.PersistentVolume) {
				pv.Spec.NFS = &corev1.NFSVolumeSource{Server: "nfs", Path: "/export"}
			},
			want: []string{"spec.nfs: Forbidden: may not specify more than 1 volume type"},
		},
		{
			name:   "no source",
			change: func(pv *corev1.PersistentVolume) { pv.Spec.HostPath = nil },
			want:   []string{"spec: Required value: must specify a volume type"},
		},
		{
			name: "an unknown access mode",
			change: func(pv *corev1.PersistentVolume) {
				pv.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{"ReadSometimes"}
			},
			want: []string{`spec.accessModes: Unsupported value: "ReadSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"`},
		},
		{
			name: "capacity is storage only",
			change: func(pv *corev1.PersistentVolume) {
				pv.Spec.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
			},
			want: []string{`spec.capacity: Unsupported value: {"cpu":"1"}: supported values: "storage"`},
		},
		{
			name: "a local volume needs node affinity",
			change: func(pv *corev1.PersistentVolume) {
				pv.Spec.HostPath, pv.Spec.Local = nil, &corev1.LocalVolumeSource{Path: "/mnt/disk"}
			},
			want: []string{"spec.nodeAffinity: Required value: Local volume requires node affinity"},
		},
		{
			name:   "an unknown reclaim policy",
			change: func(pv *corev1.PersistentVolume) { pv.Spec.PersistentVolumeReclaimPolicy = "Shred" },
			want:   []string{`spec.persistentVolumeReclaimPolicy: Unsupported value: "Shred": supported values: "Delete", "Recycle", "Retain"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pv := defaultedVolume()
			tc.change(pv)
			checkFieldErrors(t, ValidatePersistentVolume(pv), tc.want...)
		})
	}
}

func TestPersistentVolumeSourceIsImmutable(t *testing.T) {
	old, pv := defaultedVolume(), defaultedVolume()
	pv.Spec.HostPath.Path = "/elsewhere"
	errs := ValidatePersistentVolumeUpdate(pv, old)
	if len(errs) != 1 || errs[0].Field != "spec.persistentvolumesource" ||
		!strings.HasPrefix(errs[0].Detail, "spec.persistentvolumesource is immutable after creation\n") {
		t.Errorf("got %v", errs)
	}
	grown := defaultedVolume()
	grown.Spec.Capacity[corev1.ResourceStorage] = resource.MustParse("2Gi")
	checkFieldErrors(t, ValidatePersistentVolumeUpdate(grown, old))
}

func TestValidatePersistentVolumeClaim(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*corev1.PersistentVolumeClaim)
		want   []string
	}{
		{name: "valid", change: func(*corev1.PersistentVolumeClaim) {}},
		{
			name: "an invalid access mode",
			change: func(pvc *corev1.PersistentVolumeClaim) {
				pvc.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{"ReadWriteSometimes"}
			},
			want: []string{`spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"`},
		},
		{
			name:   "no access mode",
			change: func(pvc *corev1.PersistentVolumeClaim) { pvc.Spec.AccessModes = nil },
			want:   []string{"spec.accessModes: Required value: at least 1 access mode is required"},
		},
		{
			name:   "no storage request",
			change: func(pvc *corev1.PersistentVolumeClaim) { pvc.Spec.Resources.Requests = nil },
			want:   []string{"spec.resources[storage]: Required value"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pvc := defaultedClaim()
			tc.change(pvc)
			checkFieldErrors(t, ValidatePersistentVolumeClaim(pvc), tc.want...)
		})
	}
}

func TestClaimUpdates(t *testing.T) {
	bound := func() *corev1.PersistentVolumeClaim {
		pvc := defaultedClaim()
		pvc.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
		pvc.Spec.VolumeName = "pv1"
		pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound,
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}}
		return pvc
	}
	t.Run("a bound claim may grow", func(t *testing.T) {
		pvc := bound()
		pvc.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("5Gi")
		checkFieldErrors(t, ValidatePersistentVolumeClaimUpdate(pvc, bound()))
	})
	t.Run("but not shrink below what it has", func(t *testing.T) {
		pvc := bound()
		pvc.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("1Gi")
		checkFieldErrors(t, ValidatePersistentVolumeClaimUpdate(pvc, bound()),
			"spec.resources.requests.storage: Forbidden: field can not be less than status.capacity")
	})
	t.Run("volumeName may be set once", func(t *testing.T) {
		old := defaultedClaim()
		pvc := defaultedClaim()
		pvc.Spec.VolumeName = "pv1"
		checkFieldErrors(t, ValidatePersistentVolumeClaimUpdate(pvc, old))
		again := pvc.DeepCopy()
		again.Spec.VolumeName = "pv2"
		errs := ValidatePersistentVolumeClaimUpdate(again, pvc)
		if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n") {
			t.Errorf("got %v", errs)
		}
	})
	t.Run("an unbound claim may not change its size", func(t *testing.T) {
		old := defaultedClaim()
		pvc := defaultedClaim()
		pvc.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("3Gi")
		if errs := ValidatePersistentVolumeClaimUpdate(pvc, old); len(errs) != 1 || errs[0].Field != "spec" {
			t.Errorf("got %v", errs)
		}
	})
}

func TestValidateStorageClass(t *testing.T) {
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "fast", ResourceVersion: "1"}, Provisioner: "example.com/fast", Parameters: map[string]string{"type": "ssd"}}
	Scheme.Default(sc)
	checkFieldErrors(t, ValidateStorageClass(sc))
	bad := sc.DeepCopy()
	bad.Provisioner = ""
	bad.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimRecycle)
	bad.VolumeBindingMode = ptr.To(storagev1.VolumeBindingMode("Later"))
	checkFieldErrors(t, ValidateStorageClass(bad),
		"provisioner: Required value",
		`reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"`,
		`volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", "WaitForFirstConsumer"`)
	changed := sc.DeepCopy()
	changed.Parameters = map[string]string{"type": "hdd"}
	changed.AllowVolumeExpansion = ptr.To(true)
	checkFieldErrors(t, ValidateStorageClassUpdate(changed, sc), "parameters: Forbidden: updates to parameters are forbidden.")
}

func TestValidateVolumeAttachmentNeedsExactlyOneSource(t *testing.T) {
	va := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: "va"},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: "csi.example.com", NodeName: "node-a"}}
	checkFieldErrors(t, ValidateVolumeAttachment(va), "spec.source: Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName")
	va.Spec.Source.PersistentVolumeName = ptr.To("pv1")
	checkFieldErrors(t, ValidateVolumeAttachment(va))
}

func TestPersistentVolumeStatusTimesPhaseChanges(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	defer func(old func() metav1.Time) { nowFunc = old }(nowFunc)
	nowFunc = func() metav1.Time { return at }
	pv := defaultedVolume()
	PersistentVolumeStrategy.PrepareForCreate(context.Background(), pv)
	if pv.Status.Phase != corev1.VolumePending || !pv.Status.LastPhaseTransitionTime.Equal(&at) || pv.Generation != 0 {
		t.Errorf("created: %+v generation %d", pv.Status, pv.Generation)
	}
	later := metav1.NewTime(at.Add(time.Hour))
	nowFunc = func() metav1.Time { return later }
	updated := pv.DeepCopy()
	updated.Status.Phase = corev1.VolumeAvailable
	PersistentVolumeStatusStrategy.PrepareForUpdate(context.Background(), updated, pv)
	if !updated.Status.LastPhaseTransitionTime.Equal(&later) {
		t.Errorf("phase change not timed: %+v", updated.Status)
	}
}

func TestStorageTableCells(t *testing.T) {
	created := metav1.NewTime(time.Now().Add(-5 * time.Minute))
	pv := defaultedVolume()
	pv.CreationTimestamp = created
	pv.Status.Phase = corev1.VolumeBound
	pv.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany, corev1.ReadWriteOnce}
	pv.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: "data"}
	pv.Spec.StorageClassName = "local-path"
	pvc := defaultedClaim()
	pvc.CreationTimestamp = created
	pvc.Spec.VolumeName = "pv1"
	pvc.Spec.StorageClassName = ptr.To("local-path")
	pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local-path", CreationTimestamp: created,
		Annotations: map[string]string{IsDefaultStorageClassAnnotation: "true"}}, Provisioner: "skiff.dev/local-path",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer), AllowVolumeExpansion: ptr.To(true)}
	for _, tc := range []struct {
		p    *TablePrinter
		obj  runtime.Object
		want []interface{}
	}{
		{persistentVolumeTable(), pv, []interface{}{"pv1", "1Gi", "RWO,RWX", "Retain", "Bound", "ns/data", "local-path", "<unset>", "", "5m", "Filesystem"}},
		{persistentVolumeClaimTable(), pvc, []interface{}{"data", "Bound", "pv1", "1Gi", "RWO", "local-path", "<unset>", "5m", "Filesystem"}},
		{storageClassTable(), sc, []interface{}{"local-path (default)", "skiff.dev/local-path", "Delete", "WaitForFirstConsumer", true, "5m"}},
	} {
		got := tc.p.row(tc.obj).Cells
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("cells %#v, want %#v", got, tc.want)
		}
	}
}
