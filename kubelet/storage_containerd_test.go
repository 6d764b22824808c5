package kubelet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/localpath"
	"github.com/skiff-dev/skiff/controllers/persistentvolume"
	"github.com/skiff-dev/skiff/kubelet/kubelettest"
)

// startStorageControllers runs the PV controller and node-real's local-path provisioner,
// keeping its volumes in the returned directory, with the default class local-path.
func startStorageControllers(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	dir := t.TempDir()
	factory := informers.NewSharedInformerFactory(client, 0)
	pvc, err := persistentvolume.New(factory.Core().V1().PersistentVolumes(), factory.Core().V1().PersistentVolumeClaims(),
		factory.Storage().V1().StorageClasses(), factory.Core().V1().Pods(), client, controllers.Reporting{})
	if err != nil {
		t.Fatal(err)
	}
	lp, err := localpath.New(factory.Core().V1().PersistentVolumes(), factory.Core().V1().PersistentVolumeClaims(),
		factory.Storage().V1().StorageClasses(), client, controllers.Reporting{}, localpath.Options{NodeName: "node-real", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := localpath.EnsureDefaultStorageClass(context.Background(), client); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	wg.Go(func() { pvc.Run(ctx, 1) })
	wg.Go(func() { lp.Run(ctx, 1) })
	t.Cleanup(func() { cancel(); wg.Wait(); factory.Shutdown() })
	return dir
}

func claimPod(name, script string) *v1.Pod {
	pod := kubelettest.BusyboxPod(name, script)
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	pod.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{
		PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
	return pod
}

func podSucceeded(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded }

func TestRealPodWritesThroughItsClaimToTheNodesDirectoryAndTheNextPodReadsIt(t *testing.T) {
	s, n := newRealNode(t)
	ctx := context.Background()
	dir := startStorageControllers(t, s.Client)
	claim := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "default"},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:   v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("64Mi")}},
		},
	}
	claim, err := s.Client.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// the pod is on the node before its claim is bound: the kubelet waits for the binding
	writer := n.CreatePod(claimPod("writer", "echo kept > /data/greeting && id -u > /data/by"))
	n.WaitPod(writer, "waiting for its claim", func(p *v1.Pod) bool {
		for _, e := range n.Events(p) {
			if strings.HasPrefix(e, `Warning FailedMount MountVolume.SetUp failed for volume "data" : PVC default/data has non-bound phase ("Pending")`) {
				return true
			}
		}
		return false
	})
	// what the scheduler writes when it binds a pod of this WaitForFirstConsumer claim
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{persistentvolume.AnnSelectedNode: "node-real"}}})
	if _, err := s.Client.CoreV1().PersistentVolumeClaims("default").Patch(ctx, "data", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	n.WaitPod(writer, "succeeded", podSucceeded)

	matches, _ := filepath.Glob(filepath.Join(dir, "pvc-"+string(claim.UID)+"_default_data", "greeting"))
	if len(matches) != 1 {
		t.Fatalf("no greeting in the node's directory %s", dir)
	}
	if b, err := os.ReadFile(matches[0]); err != nil || string(b) != "kept\n" {
		t.Fatalf("greeting on the node: %q %v", b, err)
	}

	// a later pod finds what the first wrote
	reader := n.CreatePod(claimPod("reader", "cat /data/greeting"))
	n.WaitPod(reader, "succeeded", podSucceeded)
	if _, logs := n.KubeletGet("/containerLogs/default/reader/main"); logs != "kept\n" {
		t.Errorf("reader saw %q", logs)
	}

	// the claim goes with its pods, and its volume and directory with it (reclaimPolicy Delete)
	for _, name := range []string{"writer", "reader"} {
		if err := s.Client.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Client.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := s.Client.CoreV1().PersistentVolumes().Get(ctx, "pvc-"+string(claim.UID), metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal("the claim's volume was never deleted")
	}
	if _, err := os.Stat(filepath.Dir(matches[0])); !os.IsNotExist(err) {
		t.Errorf("the volume's directory is still on the node: %v", err)
	}
}

// bindClaimToNode writes what the scheduler writes when it binds the first pod of a
// WaitForFirstConsumer claim, so that the local-path provisioner makes its volume on node-real.
func bindClaimToNode(t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{persistentvolume.AnnSelectedNode: "node-real"}}})
	if _, err := client.CoreV1().PersistentVolumeClaims("default").Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test with what it last saw.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		var ok bool
		ok, last = cond()
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s never happened; last seen:\n%s", what, last)
	}
}

// claimVolumeStats is the "data" volume of the pod in the kubelet's /stats/summary.
func claimVolumeStats(t *testing.T, n *kubelettest.Node, pod string) (*statsapi.VolumeStats, string) {
	t.Helper()
	code, body := n.KubeletGet("/stats/summary")
	if code != 200 {
		t.Fatalf("/stats/summary: %d %s", code, body)
	}
	var summary statsapi.Summary
	if err := json.Unmarshal([]byte(body), &summary); err != nil {
		t.Fatalf("/stats/summary: %v\n%s", err, body)
	}
	for _, p := range summary.Pods {
		if p.PodRef.Name != pod {
			continue
		}
		for i := range p.VolumeStats {
			if p.VolumeStats[i].Name == "data" {
				return &p.VolumeStats[i], body
			}
		}
	}
	return nil, body
}

func TestRealPodsClaimIsInTheVolumeStatsWhileItRunsAndAnAttachableVolumeIsInUse(t *testing.T) {
	s, n := newRealNode(t)
	ctx := context.Background()
	startStorageControllers(t, s.Client)
	claim := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "default"},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:   v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("64Mi")}},
		},
	}
	if _, err := s.Client.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bindClaimToNode(t, s.Client, "data")
	// a CSI volume whose driver has no CSIDriver object needs attaching: in use while a pod wants it
	csiPV := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "attached"},
		Spec: v1.PersistentVolumeSpec{
			Capacity:               v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:            []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: "disk.example.com", VolumeHandle: "vol-7"}},
			ClaimRef:               &v1.ObjectReference{Namespace: "default", Name: "attached"},
			StorageClassName:       "",
		},
	}
	if _, err := s.Client.CoreV1().PersistentVolumes().Create(ctx, csiPV, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	csiClaim := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "attached", Namespace: "default"},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes:      []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:        v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")}},
			StorageClassName: ptr.To(""),
			VolumeName:       "attached",
		},
	}
	if _, err := s.Client.CoreV1().PersistentVolumeClaims("default").Create(ctx, csiClaim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	runner := n.CreatePod(claimPod("runner", "echo hello > /data/greeting; sleep 3600"))
	n.WaitPod(runner, "running", kubelettest.PodReady)
	waiter := claimPod("waiter", "sleep 3600")
	waiter.Spec.Volumes[0].PersistentVolumeClaim.ClaimName = "attached"
	waiter = n.CreatePod(waiter)
	n.WaitEvent(waiter, `Warning FailedMount MountVolume.SetUp failed for volume "data" : volume "attached": only local and hostPath volumes can be mounted on skiff nodes`)

	// the node reports the CSI volume in use, and not the local one: local volumes are not attachable
	inUse := func() (bool, string) {
		node, err := s.Client.CoreV1().Nodes().Get(ctx, "node-real", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		got := fmt.Sprint(node.Status.VolumesInUse)
		return got == "[kubernetes.io/csi/disk.example.com^vol-7]", got
	}
	waitFor(t, "the CSI volume in the node's volumesInUse", inUse)

	// the running pod's claim is in /stats/summary and on /metrics
	vs, body := claimVolumeStats(t, n, "runner")
	if vs == nil {
		t.Fatalf("no volume data for the running pod in /stats/summary:\n%s", body)
	}
	if vs.PVCRef == nil || *vs.PVCRef != (statsapi.PVCReference{Name: "data", Namespace: "default"}) {
		t.Errorf("pvcRef %+v", vs.PVCRef)
	}
	if *vs.CapacityBytes == 0 || *vs.UsedBytes == 0 || *vs.Inodes == 0 || *vs.AvailableBytes > *vs.CapacityBytes {
		t.Errorf("the claim's volume measures capacity %d, available %d, used %d, inodes %d",
			*vs.CapacityBytes, *vs.AvailableBytes, *vs.UsedBytes, *vs.Inodes)
	}
	_, metrics := n.KubeletGet("/metrics")
	for _, name := range []string{"capacity_bytes", "available_bytes", "used_bytes", "inodes", "inodes_free", "inodes_used"} {
		series := `kubelet_volume_stats_` + name + `{namespace="default",persistentvolumeclaim="data"} `
		if !strings.Contains(metrics, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if strings.Contains(metrics, `persistentvolumeclaim="attached"`) {
		t.Errorf("/metrics has stats of a volume that was never mounted")
	}

	// once the pods are gone, so are their volumes from the stats and the node's status
	for _, name := range []string{"runner", "waiter"} {
		if err := s.Client.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "an empty volumesInUse", func() (bool, string) {
		ok, got := inUse()
		return !ok && got == "[]", got
	})
	waitFor(t, "the claim gone from /stats/summary and /metrics", func() (bool, string) {
		vs, body := claimVolumeStats(t, n, "runner")
		_, metrics := n.KubeletGet("/metrics")
		return vs == nil && !strings.Contains(metrics, "kubelet_volume_stats_capacity_bytes{"), body
	})
}
