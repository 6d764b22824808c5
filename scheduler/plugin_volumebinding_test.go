package scheduler

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/controllers/persistentvolume"
)

func createClaim(t *testing.T, client kubernetes.Interface, name, class string) {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			StorageClassName: ptr.To(class),
		},
	}
	if _, err := client.CoreV1().PersistentVolumeClaims("default").Create(context.Background(), pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func usingClaim(claim string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}
	}
}

func TestVolumeBindingWaitsForClaimsAndSelectsTheNodeOfDelayedOnes(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := context.Background()
	createNode(t, srv.Client, nodeSpec{name: "node-a"})
	createNode(t, srv.Client, nodeSpec{name: "node-b"})
	for _, sc := range []*storagev1.StorageClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "late"}, Provisioner: "example.com/local", VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)},
		{ObjectMeta: metav1.ObjectMeta{Name: "now"}, Provisioner: "example.com/remote"},
	} {
		if _, err := srv.Client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	startScheduler(t, srv, Options{})

	createPod(t, srv.Client, podSpec{name: "missing", mutate: usingClaim("nowhere")})
	pod := waitUnschedulable(t, srv.Client, "default", "missing")
	if msg := podScheduledCondition(pod).Message; !strings.HasPrefix(msg, `0/2 nodes are available: persistentvolumeclaim "nowhere" not found.`) {
		t.Errorf("missing claim: %q", msg)
	}
	createClaim(t, srv.Client, "immediate", "now")
	createPod(t, srv.Client, podSpec{name: "waits", mutate: usingClaim("immediate")})
	pod = waitUnschedulable(t, srv.Client, "default", "waits")
	if msg := podScheduledCondition(pod).Message; !strings.HasPrefix(msg, "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims.") {
		t.Errorf("unbound immediate claim: %q", msg)
	}

	// the claim that was missing appears, delayed: the pod is placed and its node written
	createClaim(t, srv.Client, "nowhere", "late")
	node := waitBound(t, srv.Client, "default", "missing").Spec.NodeName
	pvc, err := srv.Client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "nowhere", metav1.GetOptions{})
	if err != nil || pvc.Annotations[persistentvolume.AnnSelectedNode] != node {
		t.Fatalf("selected node %v, pod on %s (%v)", pvc.Annotations, node, err)
	}
}

func TestBoundLocalVolumeKeepsItsPodsOnItsNode(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := context.Background()
	createNode(t, srv.Client, nodeSpec{name: "node-a", cpu: "8"})
	createNode(t, srv.Client, nodeSpec{name: "node-b", cpu: "1"})
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "on-b"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: "/mnt/b"}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{"node-b"}}},
			}}}},
		},
	}
	if _, err := srv.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createClaim(t, srv.Client, "data", "")
	pvc, _ := srv.Client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data", metav1.GetOptions{})
	pvc.Spec.VolumeName = "on-b"
	if _, err := srv.Client.CoreV1().PersistentVolumeClaims("default").Update(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	startScheduler(t, srv, Options{})
	// node-a has far more room, so only the volume's affinity puts the pod on node-b
	createPod(t, srv.Client, podSpec{name: "db", mutate: usingClaim("data")})
	if got := waitBound(t, srv.Client, "default", "db").Spec.NodeName; got != "node-b" {
		t.Errorf("db went to %s, want node-b where its volume is", got)
	}
}
