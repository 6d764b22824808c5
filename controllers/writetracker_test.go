package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func configMap(name, rv string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: rv}}
}

func TestWriteTrackerWaitsUntilTheCacheShowsEveryWrite(t *testing.T) {
	w := NewWriteTracker[*corev1.ConfigMap]("ConfigMap")
	w.Wrote("ns/a", configMap("a-1", "10"))
	w.Deleted("ns/a", "a-2")

	if err := w.Check("ns/a", []*corev1.ConfigMap{configMap("a-1", "9"), configMap("a-2", "5")}); err == nil {
		t.Fatal("a cache behind the write and still holding the deleted object passed")
	}
	if err := w.Check("ns/a", []*corev1.ConfigMap{configMap("a-1", "10"), configMap("a-2", "5")}); err == nil {
		t.Fatal("a cache still holding the deleted object passed")
	}
	if err := w.Check("ns/a", []*corev1.ConfigMap{configMap("a-1", "11")}); err != nil {
		t.Fatalf("a cache showing both writes: %v", err)
	}
	// what the cache showed is forgotten: an older cache no longer matters
	if err := w.Check("ns/a", nil); err != nil {
		t.Fatalf("after the writes were seen: %v", err)
	}
	if err := w.Check("ns/other", nil); err != nil {
		t.Fatalf("another key: %v", err)
	}
}

func TestWriteTrackerForgetsWritesToObjectsThatAreGone(t *testing.T) {
	w := NewWriteTracker[*corev1.ConfigMap]("ConfigMap")
	w.Wrote("ns/a", configMap("a-1", "10"))
	w.Gone("ns/a", "a-1")
	if err := w.Check("ns/a", nil); err != nil {
		t.Fatalf("a write to an object since deleted: %v", err)
	}
	w.Wrote("ns/a", configMap("a-1", "12"))
	w.Forget("ns/a")
	if err := w.Check("ns/a", nil); err != nil {
		t.Fatalf("a forgotten key: %v", err)
	}
	w.Wrote("ns/a", configMap("a-1", "not-a-number"))
	if err := w.Check("ns/a", nil); err != nil {
		t.Fatalf("a version that is not a number: %v", err)
	}
}
