package persistentvolume

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/controllers"
)

// run starts the controller on a fake clientset holding objects; it stops with the test.
func run(t *testing.T, objects ...runtime.Object) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset(objects...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Core().V1().PersistentVolumes(), factory.Core().V1().PersistentVolumeClaims(),
		factory.Storage().V1().StorageClasses(), factory.Core().V1().Pods(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() { defer close(done); c.Run(ctx, 2) }()
	t.Cleanup(func() { cancel(); <-done; factory.Shutdown() })
	return client
}

// eventually waits until cond holds, failing the test if it never does.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("never: %s", what)
	}
}

func volume(name, size string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes:                   modes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data/" + name}},
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable},
	}
}

func claim(name, size string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      modes,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
			StorageClassName: ptr.To(""),
			VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
		},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
	}
}

func getPV(t *testing.T, client *fake.Clientset, name string) *corev1.PersistentVolume {
	pv, err := client.CoreV1().PersistentVolumes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pv
}

func getPVC(t *testing.T, client *fake.Clientset, name string) *corev1.PersistentVolumeClaim {
	pvc, err := client.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pvc
}

func TestClaimBindsTheSmallestVolumeThatSatisfiesIt(t *testing.T) {
	rwo, rwx := corev1.ReadWriteOnce, corev1.ReadWriteMany
	block := volume("block", "1Gi", rwo)
	block.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock)
	client := run(t,
		volume("big", "5Gi", rwo),
		volume("fits", "2Gi", rwo, rwx),
		volume("small", "500Mi", rwo),
		volume("shared-only", "1Gi", rwx),
		block,
		claim("data", "1Gi", rwo),
	)
	eventually(t, "the claim is bound", func() bool { return getPVC(t, client, "data").Status.Phase == corev1.ClaimBound })
	pvc := getPVC(t, client, "data")
	capacity := pvc.Status.Capacity[corev1.ResourceStorage]
	if pvc.Spec.VolumeName != "fits" || capacity.String() != "2Gi" || len(pvc.Status.AccessModes) != 2 ||
		pvc.Annotations[AnnBindCompleted] != "yes" || pvc.Annotations[AnnBoundByController] != "yes" {
		t.Fatalf("claim %+v %+v %v", pvc.Spec, pvc.Status, pvc.Annotations)
	}
	eventually(t, "the volume is Bound", func() bool { return getPV(t, client, "fits").Status.Phase == corev1.VolumeBound })
	pv := getPV(t, client, "fits")
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Name != "data" || ref.Namespace != "ns" || ref.UID != "uid-data" {
		t.Errorf("claimRef %+v", pv.Spec.ClaimRef)
	}
	if getPV(t, client, "big").Spec.ClaimRef != nil {
		t.Error("a second volume was bound")
	}
}

func TestSelectorAndClassChooseTheVolume(t *testing.T) {
	rwo := corev1.ReadWriteOnce
	other := volume("other-class", "1Gi", rwo)
	other.Spec.StorageClassName = "slow"
	labelled := volume("labelled", "3Gi", rwo)
	labelled.Labels = map[string]string{"tier": "gold"}
	pvc := claim("gold", "1Gi", rwo)
	pvc.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}
	client := run(t, other, volume("plain", "1Gi", rwo), labelled, pvc)
	eventually(t, "the claim is bound", func() bool { return getPVC(t, client, "gold").Spec.VolumeName == "labelled" })
}

func TestVolumePreBoundByClaimRefGoesToThatClaim(t *testing.T) {
	rwo := corev1.ReadWriteOnce
	reserved := volume("reserved", "10Gi", rwo)
	reserved.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: "mine"}
	reserved.Status.Phase = corev1.VolumePending
	client := run(t, reserved, volume("exact", "1Gi", rwo), claim("mine", "1Gi", rwo), claim("yours", "10Gi", rwo))
	eventually(t, "mine is bound to its reserved volume", func() bool { return getPVC(t, client, "mine").Spec.VolumeName == "reserved" })
	eventually(t, "reserved is Bound", func() bool { return getPV(t, client, "reserved").Status.Phase == corev1.VolumeBound })
	if pv := getPV(t, client, "reserved"); pv.Spec.ClaimRef.UID != "uid-mine" || pv.Annotations[AnnBoundByController] != "" {
		t.Errorf("claimRef %+v annotations %v", pv.Spec.ClaimRef, pv.Annotations)
	}
	// yours needs 10Gi and only the reserved volume has that much
	time.Sleep(100 * time.Millisecond)
	if getPVC(t, client, "yours").Spec.VolumeName != "" {
		t.Error("a claim took a volume reserved for another")
	}
}

func TestClaimPreBoundByVolumeNameBindsThatVolume(t *testing.T) {
	rwo := corev1.ReadWriteOnce
	pvc := claim("named", "1Gi", rwo)
	pvc.Spec.VolumeName = "wanted"
	client := run(t, volume("wanted", "4Gi", rwo), volume("closer", "1Gi", rwo), pvc)
	eventually(t, "the named volume is bound", func() bool {
		pv := getPV(t, client, "wanted")
		return pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.UID == "uid-named" && pv.Status.Phase == corev1.VolumeBound
	})
	eventually(t, "the claim is Bound", func() bool { return getPVC(t, client, "named").Status.Phase == corev1.ClaimBound })
}

func TestVolumeOfADeletedClaimIsReclaimedAsItsPolicySays(t *testing.T) {
	rwo := corev1.ReadWriteOnce
	gone := &corev1.ObjectReference{Namespace: "ns", Name: "gone", UID: "uid-gone"}
	retained := volume("retained", "1Gi", rwo)
	retained.Spec.ClaimRef, retained.Status.Phase = gone, corev1.VolumeBound
	manual := volume("manual", "1Gi", rwo)
	manual.Spec.ClaimRef, manual.Status.Phase = gone, corev1.VolumeBound
	manual.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimDelete
	provisioned := volume("provisioned", "1Gi", rwo)
	provisioned.Spec.ClaimRef, provisioned.Status.Phase = gone, corev1.VolumeBound
	provisioned.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimDelete
	provisioned.Annotations = map[string]string{AnnDynamicallyProvisioned: "example.com/disk"}
	client := run(t, retained, manual, provisioned)

	eventually(t, "Retain leaves the volume Released", func() bool { return getPV(t, client, "retained").Status.Phase == corev1.VolumeReleased })
	eventually(t, "Delete of a volume nobody provisioned fails", func() bool { return getPV(t, client, "manual").Status.Phase == corev1.VolumeFailed })
	if msg := getPV(t, client, "manual").Status.Message; msg != `error getting deleter volume plugin for volume "manual": no deletable volume plugin matched` {
		t.Errorf("message %q", msg)
	}
	eventually(t, "a provisioned volume waits Released for its provisioner", func() bool {
		return getPV(t, client, "provisioned").Status.Phase == corev1.VolumeReleased
	})
}

func TestClaimProtectionWaitsForThePodsUsingIt(t *testing.T) {
	now := metav1.Now()
	pvc := claim("used", "1Gi", corev1.ReadWriteOnce)
	pvc.DeletionTimestamp, pvc.Finalizers = &now, []string{apis.PVCProtectionFinalizer}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns"},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "used"}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	client := run(t, pvc, pod)
	time.Sleep(200 * time.Millisecond)
	if len(getPVC(t, client, "used").Finalizers) != 1 {
		t.Fatal("the protection went while a running pod uses the claim")
	}
	pod.Status.Phase = corev1.PodSucceeded
	if _, err := client.CoreV1().Pods("ns").UpdateStatus(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the protection is lifted once the pod finished", func() bool { return len(getPVC(t, client, "used").Finalizers) == 0 })
}

func TestVolumeProtectionIsLiftedOnceUnbound(t *testing.T) {
	now := metav1.Now()
	pv := volume("old", "1Gi", corev1.ReadWriteOnce)
	pv.DeletionTimestamp, pv.Finalizers = &now, []string{apis.PVProtectionFinalizer}
	pv.Status.Phase = corev1.VolumeReleased
	client := run(t, pv)
	eventually(t, "the finalizer goes", func() bool { return len(getPV(t, client, "old").Finalizers) == 0 })
}

func TestWaitForFirstConsumerClaimAsksTheProvisionerOnlyOnceANodeIsSelected(t *testing.T) {
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local"}, Provisioner: "example.com/local",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)}
	pvc := claim("late", "1Gi", corev1.ReadWriteOnce)
	pvc.Spec.StorageClassName = ptr.To("local")
	client := run(t, class, pvc)
	time.Sleep(200 * time.Millisecond)
	if got := getPVC(t, client, "late"); got.Annotations[AnnStorageProvisioner] != "" {
		t.Fatalf("provisioner asked before a node was chosen: %v", got.Annotations)
	}
	got := getPVC(t, client, "late")
	got.Annotations = map[string]string{AnnSelectedNode: "node-a"}
	if _, err := client.CoreV1().PersistentVolumeClaims("ns").Update(context.Background(), got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the provisioner is asked", func() bool {
		return getPVC(t, client, "late").Annotations[AnnStorageProvisioner] == "example.com/local"
	})
}
