package apiserver

import (
	"io"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/bench/benchpods"
)

// BenchmarkEncodingCacheBytesPerPod measures what one stored pod costs the encoding cache, in
// heap bytes after GC, after skiff-bench's reads of 5,000 pods: a GET of each (JSON, as the
// creates' answers are too), a JSON LIST and a protobuf LIST of them all. Run with
// -benchtime=1x.
func BenchmarkEncodingCacheBytesPerPod(b *testing.B) {
	const pods = 5000
	for _, shape := range []struct {
		name string
		pod  func(i int) *corev1.Pod
	}{
		{"small", func(i int) *corev1.Pod { return benchpods.Small(benchpods.Name("", i), i) }},
		{"deployment", benchpods.Deployment},
	} {
		b.Run(shape.name, func(b *testing.B) {
			list := &corev1.PodList{}
			for i := range pods {
				list.Items = append(list.Items, *benchpods.Stored(shape.pod(i), "bench", i))
			}
			jsonInfo, protoInfo := serializerFor(k8sruntime.ContentTypeJSON), serializerFor(k8sruntime.ContentTypeProtobuf)
			saved := encoded
			defer func() { encoded = saved }()
			for b.Loop() {
				encoded = &encodingCache{entries: map[encodedKey][]byte{}}
				before := heapAfterGC()
				for i := range list.Items {
					if _, err := encodeObject(&list.Items[i], jsonInfo, corev1.SchemeGroupVersion); err != nil {
						b.Fatal(err)
					}
				}
				if err := writeJSONList(io.Discard, func() {}, list, jsonInfo, corev1.SchemeGroupVersion); err != nil {
					b.Fatal(err)
				}
				if err := writeProtobufList(io.Discard, func() {}, list, protoInfo, corev1.SchemeGroupVersion); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(heapAfterGC()-before)/pods, "bytes/pod")
				b.ReportMetric(float64(encoded.size)/pods, "encoded-bytes/pod")
			}
		})
	}
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
