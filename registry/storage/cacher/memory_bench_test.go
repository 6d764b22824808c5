package cacher

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/bench/benchpods"
	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

const podPrefix = "/registry/pods/"

// storedPods is how many pods the memory measurements store: skiff-bench's default.
const storedPods = 5000

// BenchmarkWatchCacheBytesPerPod measures what one stored pod costs the watch cache, in heap
// bytes after GC: the pods are written to etcd, then held by a pod cache, which is then stopped
// and dropped; the heap it held, over the pods, is the figure. "listed" is a cache that read
// the pods when it started (its objects only); "watched" one that was running while they were
// created (objects and their events in the history). Run with -benchtime=1x.
func BenchmarkWatchCacheBytesPerPod(b *testing.B) {
	shapes := []struct {
		name string
		pod  func(i int) *corev1.Pod
	}{
		{"small", func(i int) *corev1.Pod { return benchpods.Small(benchpods.Name("", i), i) }},
		{"deployment", benchpods.Deployment},
	}
	for _, shape := range shapes {
		for _, started := range []string{"listed", "watched"} {
			b.Run(shape.name+"/"+started, func(b *testing.B) {
				for b.Loop() {
					b.ReportMetric(watchCacheBytesPerPod(b, shape.pod, started == "watched"), "bytes/pod")
				}
			})
		}
	}
}

func watchCacheBytesPerPod(b *testing.B, pod func(i int) *corev1.Pod, watched bool) float64 {
	e, err := etcd3.StartEmbedded(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	store := etcd3.New(e.Client)
	start := func() *Cacher {
		c, err := New(context.Background(), store, e.Client, podPrefix,
			func() k8sruntime.Object { return &corev1.Pod{} },
			func() k8sruntime.Object { return &corev1.PodList{} },
			WithIndexedField("spec.nodeName", func(o k8sruntime.Object) string { return o.(*corev1.Pod).Spec.NodeName }))
		if err != nil {
			b.Fatal(err)
		}
		if err := c.waitReady(context.Background()); err != nil {
			b.Fatal(err)
		}
		return c
	}
	var c *Cacher
	if watched {
		c = start()
	}
	createPods(b, store, pod)
	if !watched {
		c = start()
	}
	for c.Count() < storedPods {
		runtime.Gosched()
	}
	held := heapAfterGC()
	c.Stop()
	c = nil
	return float64(held-heapAfterGC()) / storedPods
}

// createPods writes storedPods pods (as the server stores them) to etcd, 16 at a time.
func createPods(b *testing.B, store *etcd3.Store, pod func(i int) *corev1.Pod) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < storedPods; i += 16 {
				p := benchpods.Stored(pod(i), "bench", i)
				p.ResourceVersion = ""
				if err := store.Create(context.Background(), podPrefix+"bench/"+p.Name, p, &corev1.Pod{}); err != nil {
					errs <- fmt.Errorf("create %s: %w", p.Name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
