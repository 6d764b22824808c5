package apiserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// TestBenchAdminGetDuringFlood is the bench of bench/README.md's "A cluster-admin GET while
// another user floods the server": it measures, and asserts nothing. It runs only with
// SKIFF_BENCH=1 (about 15 s).
func TestBenchAdminGetDuringFlood(t *testing.T) {
	if os.Getenv("SKIFF_BENCH") == "" {
		t.Skip("a bench: SKIFF_BENCH=1 runs it")
	}
	// a small server (30 seats) so that the flood fills it on a laptop
	s := apiservertest.Start(t, func(c *apiserver.Config) { c.MaxRequestsInFlight, c.MaxMutatingRequestsInFlight = 20, 10 })
	ctx := context.Background()
	bindClusterAdmin(t, s, "flooder")
	for i := 0; i < 500; i++ {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}, Data: map[string]string{"k": strings.Repeat("v", 500)}}
		if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, floodCfg := userClient(t, s, "flooder")
	flooder, err := rest.HTTPClientFor(floodCfg)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := rest.HTTPClientFor(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	get := func(hc *http.Client, path string) int {
		resp, err := hc.Get(s.URL + path)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually(t, "flooder may list", func() error {
		if code := get(flooder, "/api/v1/namespaces/default/configmaps"); code != 200 {
			return fmt.Errorf("%d", code)
		}
		return nil
	})
	floodCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	floodCodes := map[int]int{}
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for floodCtx.Err() == nil {
				code := get(flooder, "/api/v1/namespaces/default/configmaps")
				mu.Lock()
				floodCodes[code]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second) // the flood builds up
	var latencies []time.Duration
	adminCodes := map[int]int{}
	for floodCtx.Err() == nil {
		start := time.Now()
		code := get(admin, "/api/v1/namespaces/default")
		latencies = append(latencies, time.Since(start))
		adminCodes[code]++
	}
	wg.Wait()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	t.Logf("admin GETs: %d, codes %v, p50 %v p90 %v p99 %v max %v; flood LISTs codes %v",
		len(latencies), adminCodes, pct(0.5), pct(0.9), pct(0.99), latencies[len(latencies)-1], floodCodes)
}
