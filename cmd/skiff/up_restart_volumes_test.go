package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/controllers"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// waitUsable waits until skiff up's node is Ready and the default namespace has its
// ServiceAccount, what a pod needs to be created and run.
func waitUsable(t *testing.T, client kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) == 0 || !controllers.IsNodeReady(&nodes.Items[0]) {
			return false, nil
		}
		_, err = client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal("skiff up's node never became Ready with a default ServiceAccount")
	}
}

// runToCompletion runs script in a pod with the claim "data" at /data and returns its log.
func runToCompletion(t *testing.T, client kubernetes.Interface, name, script string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "c", Image: "skiff.local/busybox:1", ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", script}, VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var phase corev1.PodPhase
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pod, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		phase = pod.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
	}); err != nil || phase != corev1.PodSucceeded {
		t.Fatalf("pod %s: phase %q", name, phase)
	}
	logs, err := client.CoreV1().Pods("default").GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(logs)
}

// What a pod wrote to a claim of the default (local-path) class is there for the next pod
// after skiff up stops and starts again on the same data dir.
func TestSkiffUpKeepsVolumeDataAcrossRestart(t *testing.T) {
	requireContainerd(t)
	bin := buildSkiff(t)
	dataDir := shortTempDir(t, "skiff-up-")
	t.Cleanup(func() { reapUnder(t, dataDir) })
	imageDir := t.TempDir()
	writeBusybox(t, filepath.Join(imageDir, "busybox.tar"), "skiff.local/busybox:1", false)
	port := freePort(t)

	first := startSkiffUp(t, bin, dataDir, port, "--image-dir", imageDir)
	t.Cleanup(func() { first.terminate(t) })
	first.waitFor(t, "ready")
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	waitUsable(t, client)
	ctx := context.Background()
	if _, err := client.CoreV1().PersistentVolumeClaims("default").Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("8Mi")}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runToCompletion(t, client, "writer", "echo kept > /data/file")
	first.terminate(t)

	second := startSkiffUp(t, bin, dataDir, port, "--image-dir", imageDir)
	t.Cleanup(func() { second.terminate(t) })
	second.waitFor(t, "ready")
	waitUsable(t, client)
	if got := runToCompletion(t, client, "reader", "cat /data/file"); got != "kept\n" {
		t.Errorf("after the restart the claim holds %q, want what the first pod wrote", got)
	}
}
