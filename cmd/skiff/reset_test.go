package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestADataDirTakesOneSkiffUpAtATime(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockDataDir(dir)
	if !errors.Is(err, errDataDirInUse) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("a second lock: %v, want errDataDirInUse naming pid %d", err, os.Getpid())
	}
	unlock()
	again, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("a lock after unlock: %v", err)
	}
	again()
}

func TestResetRefusesWhileSkiffUpRunsAndTouchesNothing(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = runReset(t.Context(), dir, &bytes.Buffer{})
	if !errors.Is(err, errDataDirInUse) || !strings.Contains(err.Error(), "stop it first") {
		t.Errorf("reset while locked: %v, want a refusal that says to stop skiff up", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kubeconfig")); err != nil {
		t.Errorf("a refused reset removed files: %v", err)
	}
}
