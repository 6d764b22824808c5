package kubelet_test

import (
	"context"
	"encoding/json"
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
