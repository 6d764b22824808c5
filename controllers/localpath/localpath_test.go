package localpath

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/persistentvolume"
)

func releasedVolume(name, node, path string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{persistentvolume.AnnDynamicallyProvisioned: Provisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: path}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeReleased},
	}
}

func TestDeleteRemovesOnlyItsOwnNodesDirectoriesUnderItsDir(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	ours, theirs := filepath.Join(dir, "pvc-1_ns_a"), filepath.Join(dir, "pvc-2_ns_b")
	for _, d := range []string{ours, theirs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	client := fake.NewClientset(
		releasedVolume("pvc-1", "node-a", ours),
		releasedVolume("pvc-2", "node-b", theirs),
		releasedVolume("pvc-3", "node-a", outside),
	)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(factory.Core().V1().PersistentVolumes(), factory.Core().V1().PersistentVolumeClaims(),
		factory.Storage().V1().StorageClasses(), client, controllers.Reporting{}, Options{NodeName: "node-a", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory.Start(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), c.synced...)
	for _, name := range []string{"pvc-1", "pvc-2", "pvc-3"} {
		if err := c.sync(ctx, "volume/"+name); err != nil {
			t.Fatalf("sync %s: %v", name, err)
		}
	}
	if _, err := os.Stat(ours); !os.IsNotExist(err) {
		t.Errorf("this node's released volume's directory is still there: %v", err)
	}
	if _, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-1", metav1.GetOptions{}); err == nil {
		t.Error("this node's released volume was not deleted")
	}
	if _, err := os.Stat(theirs); err != nil {
		t.Errorf("another node's directory was touched: %v", err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("a directory outside the provisioner's was removed: %v", err)
	}
	for _, name := range []string{"pvc-2", "pvc-3"} {
		if _, err := client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s was deleted: %v", name, err)
		}
	}
}
