package apiserver_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/bench/benchpods"
	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

// BenchmarkWatchFanOut is skiff-bench's watch delivery against an in-process server: 100
// watches of one pod (field selector metadata.name, from the pod's resourceVersion) over
// client-go's HTTPS transport (one HTTP/2 connection, as client-go shares it), and one op is
// one update of the pod, written to etcd directly (the server's own write path is not
// measured), until every watcher has read its event's frame. The frames are read, not
// decoded: CPU time and allocations per op are the server's fan-out, HTTP/2 and TLS (both
// ends), and the readers'.
func BenchmarkWatchFanOut(b *testing.B) {
	const ns, watchers = "default", 100
	for _, format := range []struct{ name, accept string }{
		{"json", runtime.ContentTypeJSON},
		{"protobuf", runtime.ContentTypeProtobuf},
	} {
		b.Run(format.name, func(b *testing.B) {
			s := apiservertest.Start(b)
			pod := benchpods.Stored(benchpods.Small(benchpods.Name("", 0), 0), ns, 0)
			pod.ResourceVersion = ""
			key := "/registry/pods/" + ns + "/" + pod.Name
			put := func(seq int) int64 {
				pod.Annotations = map[string]string{"bench.skiff.dev/seq": strconv.Itoa(seq)}
				value, err := etcd3.Encode(pod)
				if err != nil {
					b.Fatal(err)
				}
				resp, err := s.Etcd.Put(context.Background(), key, string(value))
				if err != nil {
					b.Fatal(err)
				}
				return resp.Header.Revision
			}
			start := put(0)
			hc, err := rest.HTTPClientFor(s.Config)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			frames := make(chan struct{}, watchers)
			var readers sync.WaitGroup
			defer func() { cancel(); readers.Wait() }()
			url := fmt.Sprintf("%s/api/v1/namespaces/%s/pods?watch=true&fieldSelector=metadata.name%%3D%s&resourceVersion=%d",
				s.URL, ns, pod.Name, start)
			for range watchers {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Accept", format.accept)
				resp, err := hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("watch: %s", resp.Status)
				}
				readers.Add(1)
				go func() {
					defer readers.Done()
					defer resp.Body.Close()
					readFrames(resp.Body, format.accept == runtime.ContentTypeProtobuf, frames)
				}()
			}
			// a warm-up update proves every watch delivers
			put(1)
			awaitFrames(frames, watchers)
			b.ReportAllocs()
			cpu := processCPU(b)
			seq := 2
			for b.Loop() {
				put(seq)
				seq++
				awaitFrames(frames, watchers)
			}
			reportCPUPerOp(b, cpu)
		})
	}
}

// readFrames reads a watch stream's frames (newline-ended JSON or length-prefixed protobuf)
// and signals each on frames, until the stream ends.
func readFrames(body io.Reader, protobuf bool, frames chan<- struct{}) {
	r := bufio.NewReaderSize(body, 64<<10)
	var length [4]byte
	for {
		if protobuf {
			if _, err := io.ReadFull(r, length[:]); err != nil {
				return
			}
			if _, err := r.Discard(int(binary.BigEndian.Uint32(length[:]))); err != nil {
				return
			}
		} else {
			for {
				_, err := r.ReadSlice('\n')
				if err == nil {
					break
				}
				if err != bufio.ErrBufferFull {
					return
				}
			}
		}
		frames <- struct{}{}
	}
}

func awaitFrames(frames <-chan struct{}, n int) {
	for range n {
		<-frames
	}
}
