package podcgroups

import (
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestParentIsUpstreamsCgroupfsLayoutByQOSClass(t *testing.T) {
	for class, want := range map[v1.PodQOSClass]string{
		v1.PodQOSGuaranteed: "/kubepods/podu1",
		v1.PodQOSBurstable:  "/kubepods/burstable/podu1",
		v1.PodQOSBestEffort: "/kubepods/besteffort/podu1",
	} {
		if got := Parent(class, "u1"); got != want {
			t.Errorf("Parent(%s) = %q, want %q", class, got, want)
		}
	}
}

func TestRemoveTreeRemovesNestedDirectoriesDeepestFirstAndKeepsWhatHoldsFiles(t *testing.T) {
	root := t.TempDir()
	pod := filepath.Join(root, "podu1")
	if err := os.MkdirAll(filepath.Join(pod, "container-a", "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(pod, "container-b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := removeTree(pod); err != nil {
		t.Fatalf("removeTree of empty cgroups: %v", err)
	}
	if _, err := os.Stat(pod); !os.IsNotExist(err) {
		t.Errorf("the pod's directory is still there: %v", err)
	}
	if err := removeTree(filepath.Join(root, "never-there")); err != nil {
		t.Errorf("removeTree of a missing directory: %v, want nil", err)
	}
	// a busy cgroup refuses rmdir, as a directory with a file does here
	busy := filepath.Join(root, "podu2")
	if err := os.MkdirAll(busy, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(busy, "cgroup.procs"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := removeTree(busy); err == nil {
		t.Error("removeTree of a directory that cannot go: nil error")
	}
}

func TestRemoveRefusesAUIDThatIsNoSinglePathElement(t *testing.T) {
	if err := Remove("../../etc"); err == nil {
		t.Error("Remove of a UID with a slash: nil error")
	}
	if err := Remove(""); err == nil {
		t.Error("Remove of an empty UID: nil error")
	}
}
