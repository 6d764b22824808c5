package apiserver_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// claimOf is a claim of class asking for size.
func claimOf(name, class, size string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(class),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
}

func TestBadStorageInputGetsUpstreamsAnswerAndStoresNothing(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	for _, sc := range []*storagev1.StorageClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "fixed"}, Provisioner: "example.com/fixed"},
		{ObjectMeta: metav1.ObjectMeta{Name: "growing"}, Provisioner: "example.com/growing", AllowVolumeExpansion: ptr.To(true)},
	} {
		if _, err := s.Client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// claims as the PV controller leaves them once bound: phase Bound, the capacity they got
	bound := func(name, class string) *corev1.PersistentVolumeClaim {
		pvc, err := s.Client.CoreV1().PersistentVolumeClaims("default").Create(ctx, claimOf(name, class, "1Gi"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pvc.Status.Phase = corev1.ClaimBound
		pvc.Status.AccessModes = pvc.Spec.AccessModes
		pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
		if pvc, err = s.Client.CoreV1().PersistentVolumeClaims("default").UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		return pvc
	}
	fixed, growing := bound("fixed", "fixed"), bound("growing", "growing")
	pending, err := s.Client.CoreV1().PersistentVolumeClaims("default").Create(ctx, claimOf("pending", "growing", "1Gi"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resized := func(pvc *corev1.PersistentVolumeClaim, size string) func() error {
		return func() error {
			pvc := pvc.DeepCopy()
			pvc.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse(size)
			_, err := s.Client.CoreV1().PersistentVolumeClaims("default").Update(ctx, pvc, metav1.UpdateOptions{})
			return err
		}
	}
	twoSources := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "two"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/srv/two"},
				NFS:      &corev1.NFSVolumeSource{Server: "192.0.2.1", Path: "/exports/two"},
			},
		},
	}
	badMode := claimOf("sometimes", "fixed", "1Gi")
	badMode.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{"ReadWriteSometimes"}
	badModePV := twoSources.DeepCopy()
	badModePV.Name, badModePV.Spec.NFS, badModePV.Spec.AccessModes = "sometimes", nil, []corev1.PersistentVolumeAccessMode{"ReadWriteSometimes"}

	cases := []struct {
		name    string
		write   func() error
		code    int32
		reason  metav1.StatusReason
		message string
	}{
		{"a bound claim shrinks to less than it has", resized(growing, "512Mi"),
			422, metav1.StatusReasonInvalid, `PersistentVolumeClaim "growing" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than status.capacity`},
		{"a bound claim of a class without allowVolumeExpansion shrinks", resized(fixed, "512Mi"),
			422, metav1.StatusReasonInvalid, `PersistentVolumeClaim "fixed" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than status.capacity`},
		{"a bound claim of a class without allowVolumeExpansion grows", resized(fixed, "2Gi"),
			403, metav1.StatusReasonForbidden, `persistentvolumeclaims "fixed" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize`},
		{"a claim not yet bound shrinks", resized(pending, "512Mi"),
			422, metav1.StatusReasonInvalid, "PersistentVolumeClaim \"pending\" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n"},
		{"a claim with an access mode that does not exist", func() error {
			_, err := s.Client.CoreV1().PersistentVolumeClaims("default").Create(ctx, badMode, metav1.CreateOptions{})
			return err
		}, 422, metav1.StatusReasonInvalid, `PersistentVolumeClaim "sometimes" is invalid: spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"`},
		{"a volume with an access mode that does not exist", func() error {
			_, err := s.Client.CoreV1().PersistentVolumes().Create(ctx, badModePV, metav1.CreateOptions{})
			return err
		}, 422, metav1.StatusReasonInvalid, `PersistentVolume "sometimes" is invalid: spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"`},
		{"a volume with two sources", func() error {
			_, err := s.Client.CoreV1().PersistentVolumes().Create(ctx, twoSources, metav1.CreateOptions{})
			return err
		}, 422, metav1.StatusReasonInvalid, `PersistentVolume "two" is invalid: spec.nfs: Forbidden: may not specify more than 1 volume type`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdSnapshot(t, s)
			err := tc.write()
			var se *apierrors.StatusError
			if !asStatus(err, &se) {
				t.Fatalf("error %v (%T), want a Status", err, err)
			}
			st := se.ErrStatus
			if st.Code != tc.code || st.Reason != tc.reason {
				t.Errorf("code %d reason %q, want %d %q (message %q)", st.Code, st.Reason, tc.code, tc.reason, st.Message)
			}
			// a message ending in a newline is followed by a diff of the specs, in Go's words
			if strings.HasSuffix(tc.message, "\n") && strings.HasPrefix(st.Message, tc.message) {
				st.Message = tc.message
			}
			if st.Message != tc.message {
				t.Errorf("message\n got %q\nwant %q", st.Message, tc.message)
			}
			if after := etcdSnapshot(t, s); !sameSnapshot(before, after) {
				t.Errorf("etcd changed by a rejected request: %v", snapshotDiff(before, after))
			}
		})
	}

	// what a class with allowVolumeExpansion lets a bound claim do: grow, and shrink back
	// towards what it has (upstream's recovery from a failed expansion)
	if err := resized(growing, "2Gi")(); err != nil {
		t.Fatalf("a bound claim of a class with allowVolumeExpansion may grow: %v", err)
	}
	growing, _ = s.Client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "growing", metav1.GetOptions{})
	if err := resized(growing, "1536Mi")(); err != nil {
		t.Errorf("a claim may shrink back to more than its capacity: %v", err)
	}
}
