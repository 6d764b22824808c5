package apiserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
	"github.com/skiff-dev/skiff/bench/benchpods"
	"github.com/skiff-dev/skiff/registry/storage/etcd3"
)

// BenchmarkListPods is skiff-bench's LIST of 5,000 pods against an in-process server, one
// request at a time over client-go's HTTPS transport, the body read to the end and thrown away:
// CPU time and allocations per LIST (client and server, which share the process), steadier
// than the bench's wall time on a busy machine. The pods are written to etcd directly, in the
// shape the server stores them, and reach the server through its watch cache.
func BenchmarkListPods(b *testing.B) {
	s := apiservertest.Start(b)
	const ns, pods = "default", 5000
	putPods(b, s.Etcd, ns, pods)
	hc, err := rest.HTTPClientFor(s.Config)
	if err != nil {
		b.Fatal(err)
	}
	list := func(b *testing.B, accept, rv string) {
		url := s.URL + "/api/v1/namespaces/" + ns + "/pods"
		if rv != "" {
			url += "?resourceVersion=" + rv
		}
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Accept", accept)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("LIST: %d, %v", resp.StatusCode, err)
		}
		b.SetBytes(n)
	}
	// the first LIST of each format fills the item-encoding cache
	for _, accept := range []string{runtime.ContentTypeJSON, runtime.ContentTypeProtobuf} {
		for {
			l, err := s.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{ResourceVersion: "0"})
			if err != nil {
				b.Fatal(err)
			}
			if len(l.Items) == pods {
				break
			}
		}
		list(b, accept, "")
	}
	for _, format := range []struct{ name, accept string }{
		{"json", runtime.ContentTypeJSON},
		{"protobuf", runtime.ContentTypeProtobuf},
	} {
		for _, rv := range []string{"", "0"} {
			b.Run(fmt.Sprintf("%s/rv=%q", format.name, rv), func(b *testing.B) {
				b.ReportAllocs()
				cpu := processCPU(b)
				for b.Loop() {
					list(b, format.accept, rv)
				}
				reportCPUPerOp(b, cpu)
			})
		}
	}
}

// processCPU is the CPU time the process (client and server) has used so far. On a shared
// machine the wall time per op says as much about the neighbours as about the code; the CPU
// time per op (reportCPUPerOp) is steadier.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPUPerOp reports the process's CPU time since start per op, as cpu-ms/op.
func reportCPUPerOp(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU(b)-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// putPods writes n pods of skiff-bench's shape, as the server stores them, straight to etcd,
// a hundred to a transaction.
func putPods(b *testing.B, etcd *clientv3.Client, ns string, n int) {
	for i := 0; i < n; i += 100 {
		var ops []clientv3.Op
		for j := i; j < min(i+100, n); j++ {
			p := benchpods.Stored(benchpods.Small(benchpods.Name("", j), j), ns, j)
			p.ResourceVersion = ""
			value, err := etcd3.Encode(p)
			if err != nil {
				b.Fatal(err)
			}
			ops = append(ops, clientv3.OpPut("/registry/pods/"+ns+"/"+p.Name, string(value)))
		}
		if _, err := etcd.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
