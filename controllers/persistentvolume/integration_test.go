package persistentvolume_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/localpath"
	"github.com/skiff-dev/skiff/controllers/persistentvolume"
)

// startStorage starts an API server, the PV controller and a local-path provisioner for node
// "node-a" keeping its directories in the returned directory.
func startStorage(t *testing.T) (kubernetes.Interface, string) {
	t.Helper()
	s := apiservertest.Start(t)
	dir := t.TempDir()
	factory := informers.NewSharedInformerFactory(s.Client, 0)
	pvc, err := persistentvolume.New(factory.Core().V1().PersistentVolumes(), factory.Core().V1().PersistentVolumeClaims(),
		factory.Storage().V1().StorageClasses(), factory.Core().V1().Pods(), s.Client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	lp, err := localpath.New(factory.Core().V1().PersistentVolumes(), factory.Core().V1().PersistentVolumeClaims(),
		factory.Storage().V1().StorageClasses(), s.Client, controllers.Reporting{}, localpath.Options{NodeName: "node-a", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	wg.Go(func() { pvc.Run(ctx, 2) })
	wg.Go(func() { lp.Run(ctx, 1) })
	t.Cleanup(func() { cancel(); wg.Wait(); factory.Shutdown() })
	return s.Client, dir
}

func eventually(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 60*time.Second, true, cond); err != nil {
		t.Fatalf("never: %s (%v)", what, err)
	}
}

func newClaim(name string, class *string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			StorageClassName: class,
		},
	}
}

func TestClaimBindsAVolumeThatIsRetainedAfterTheClaimGoes(t *testing.T) {
	client, _ := startStorage(t)
	ctx := context.Background()
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "disk-1"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/disk-1"}},
		},
	}
	created, err := client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain || created.Finalizers[0] != apis.PVProtectionFinalizer {
		t.Fatalf("created volume: %+v %v", created.Spec, created.Finalizers)
	}
	claim, err := client.CoreV1().PersistentVolumeClaims("default").Create(ctx, newClaim("data", ptr.To("")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if claim.Finalizers[0] != apis.PVCProtectionFinalizer {
		t.Fatalf("claim finalizers %v", claim.Finalizers)
	}
	eventually(t, "the claim is Bound to disk-1", func(ctx context.Context) (bool, error) {
		c, err := client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data", metav1.GetOptions{})
		size := c.Status.Capacity[corev1.ResourceStorage]
		return err == nil && c.Status.Phase == corev1.ClaimBound && c.Spec.VolumeName == "disk-1" && size.String() == "2Gi", err
	})
	eventually(t, "disk-1 is Bound", func(ctx context.Context) (bool, error) {
		v, err := client.CoreV1().PersistentVolumes().Get(ctx, "disk-1", metav1.GetOptions{})
		return err == nil && v.Status.Phase == corev1.VolumeBound && v.Spec.ClaimRef.UID == claim.UID, err
	})

	if err := client.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the claim, used by no pod, is gone", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	eventually(t, "disk-1 is Released and kept", func(ctx context.Context) (bool, error) {
		v, err := client.CoreV1().PersistentVolumes().Get(ctx, "disk-1", metav1.GetOptions{})
		return err == nil && v.Status.Phase == corev1.VolumeReleased, err
	})
	if err := client.CoreV1().PersistentVolumes().Delete(ctx, "disk-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "disk-1, bound to no claim, is deleted", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().PersistentVolumes().Get(ctx, "disk-1", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

func TestDefaultClassClaimGetsALocalDirectoryOnTheSelectedNodeDeletedWithIt(t *testing.T) {
	client, dir := startStorage(t)
	ctx := context.Background()
	if err := localpath.EnsureDefaultStorageClass(ctx, client); err != nil {
		t.Fatal(err)
	}
	claim, err := client.CoreV1().PersistentVolumeClaims("default").Create(ctx, newClaim("cache", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ptr.Deref(claim.Spec.StorageClassName, "") != localpath.DefaultClassName {
		t.Fatalf("DefaultStorageClass gave the claim class %v", claim.Spec.StorageClassName)
	}
	// what the scheduler does when the claim's first pod is bound to node-a
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{persistentvolume.AnnSelectedNode: "node-a"}}})
	if _, err := client.CoreV1().PersistentVolumeClaims("default").Patch(ctx, "cache", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	pvName := "pvc-" + string(claim.UID)
	eventually(t, "the claim is Bound to its provisioned volume", func(ctx context.Context) (bool, error) {
		c, err := client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "cache", metav1.GetOptions{})
		return err == nil && c.Status.Phase == corev1.ClaimBound && c.Spec.VolumeName == pvName, err
	})
	pv, err := client.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pv.Spec.Local == nil || filepath.Dir(pv.Spec.Local.Path) != dir || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		!persistentvolume.VolumeNodeAffinityMatches(pv, map[string]string{corev1.LabelHostname: "node-a"}) ||
		persistentvolume.VolumeNodeAffinityMatches(pv, map[string]string{corev1.LabelHostname: "node-b"}) {
		t.Fatalf("provisioned volume %+v", pv.Spec)
	}
	if st, err := os.Stat(pv.Spec.Local.Path); err != nil || !st.IsDir() {
		t.Fatalf("no directory for the volume: %v", err)
	}

	// the claim grows: its class allows it
	c, _ := client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "cache", metav1.GetOptions{})
	c.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("3Gi")
	if _, err := client.CoreV1().PersistentVolumeClaims("default").Update(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the claim has 3Gi", func(ctx context.Context) (bool, error) {
		c, err := client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "cache", metav1.GetOptions{})
		size := c.Status.Capacity[corev1.ResourceStorage]
		return err == nil && size.String() == "3Gi", err
	})

	if err := client.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "cache", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the volume is deleted with the claim", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if _, err := os.Stat(pv.Spec.Local.Path); !os.IsNotExist(err) {
		t.Errorf("the volume's directory is still there: %v", err)
	}
}

func TestBadStorageInputIsRefusedAndNothingStored(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	twoSources := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "two"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/a"}, NFS: &corev1.NFSVolumeSource{Server: "nfs", Path: "/b"}},
		},
	}
	_, err := s.Client.CoreV1().PersistentVolumes().Create(ctx, twoSources, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || err.Error() != `PersistentVolume "two" is invalid: spec.nfs: Forbidden: may not specify more than 1 volume type` {
		t.Errorf("two sources: %v", err)
	}
	bad := newClaim("bad", nil)
	bad.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{"ReadWriteSometimes"}
	_, err = s.Client.CoreV1().PersistentVolumeClaims("default").Create(ctx, bad, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `spec.accessModes: Unsupported value: "ReadWriteSometimes"`) {
		t.Errorf("invalid access mode: %v", err)
	}
	list, err := s.Client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("stored: %v %v", list, err)
	}

	// a claim bound to 2Gi may not shrink to what it has
	claim, err := s.Client.CoreV1().PersistentVolumeClaims("default").Create(ctx, newClaim("sized", ptr.To("")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	claim.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound,
		Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}
	claim, err = s.Client.CoreV1().PersistentVolumeClaims("default").UpdateStatus(ctx, claim, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	claim.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("500Mi")
	_, err = s.Client.CoreV1().PersistentVolumeClaims("default").Update(ctx, claim, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) || err.Error() != `PersistentVolumeClaim "sized" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than status.capacity` {
		t.Errorf("shrinking claim: %v", err)
	}
}
