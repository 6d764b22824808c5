package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestEtcdSnapshotSavedUnderWritesRestoresEveryAcknowledgedObject saves a snapshot of a running
// skiff up while a client keeps creating ConfigMaps, restores it into a fresh data directory,
// and finds there every ConfigMap acknowledged before the save began, and none that was never
// written.
func TestEtcdSnapshotSavedUnderWritesRestoresEveryAcknowledgedObject(t *testing.T) {
	bin := buildSkiff(t)
	dataDir := t.TempDir()
	port := freePort(t)
	up := startSkiffUp(t, bin, dataDir, port, "--container-runtime-endpoint=fake", "--disable-ingress")
	up.waitFor(t, "ready")
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	var (
		mu      sync.Mutex
		acked   []string
		stop    = make(chan struct{})
		written sync.WaitGroup
	)
	written.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("load-%d", i)
			if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"i": name},
			}, metav1.CreateOptions{}); err != nil {
				t.Errorf("create %s: %v", name, err)
				return
			}
			mu.Lock()
			acked = append(acked, name)
			mu.Unlock()
		}
	})
	ackedBeforeSave := func() []string {
		for {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n >= 20 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), acked...)
	}()

	out, err := exec.Command(bin, "etcd-snapshot", "save", "--data-dir", dataDir, "--name", "under-load").CombinedOutput()
	if err != nil {
		t.Fatalf("etcd-snapshot save: %v\n%s", err, out)
	}
	file := strings.TrimSpace(string(out[strings.LastIndexByte(strings.TrimSpace(string(out)), '\n')+1:]))
	if !strings.HasPrefix(file, filepath.Join(dataDir, "snapshots", "under-load-")) {
		t.Errorf("snapshot written to %q, want DATA_DIR/snapshots/under-load-NODE-TIME", file)
	}
	close(stop)
	written.Wait()

	if out, err := exec.Command(bin, "etcd-snapshot", "restore", "--data-dir", dataDir, file).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "is running with data directory") {
		t.Errorf("restore into the data dir of a running skiff up: %v\n%s\nwant a refusal", err, out)
	}
	up.interrupt(t)

	fresh := t.TempDir()
	if out, err := exec.Command(bin, "etcd-snapshot", "restore", "--data-dir", fresh, file).CombinedOutput(); err != nil {
		t.Fatalf("etcd-snapshot restore: %v\n%s", err, out)
	}
	restored := startSkiffUp(t, bin, fresh, port, "--container-runtime-endpoint=fake", "--disable-ingress")
	restored.waitFor(t, "ready")
	cfg, err = clientcmd.BuildConfigFromFlags("", filepath.Join(fresh, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	client = kubernetes.NewForConfigOrDie(cfg)
	list, err := client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, cm := range list.Items {
		if strings.HasPrefix(cm.Name, "load-") {
			found[cm.Name] = cm.Data["i"] == cm.Name
		}
	}
	for _, name := range ackedBeforeSave {
		if !found[name] {
			t.Errorf("%s, acknowledged before the save, is missing or changed after the restore", name)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	attempted := map[string]bool{}
	for _, name := range acked {
		attempted[name] = true
	}
	for name := range found {
		// the create in flight when the writer stopped may be in, unacknowledged: at most one
		if !attempted[name] && name != fmt.Sprintf("load-%d", len(acked)) {
			t.Errorf("%s after the restore was never written", name)
		}
	}
	t.Logf("%d acknowledged before the save, %d in all, %d restored", len(ackedBeforeSave), len(acked), len(found))
	restored.interrupt(t)
}
