package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 100},
		{64 << 20, 100},
		{Floor, 100},
		{Floor * 3 / 2, 66},
		{2 * Floor, 50},
		{8 * Floor, 50},
	} {
		if got := Percent(c.live); got != c.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}

// With GOGC in the environment Start leaves the collector alone; without, a live heap over
// twice Floor brings GOGC down to 50 after the next collection.
func TestStart(t *testing.T) {
	t.Setenv("GOGC", "100")
	if Start() {
		t.Fatal("Start tuned the collector although GOGC is set")
	}
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(100)
	if !Start() {
		t.Fatal("Start did not tune the collector")
	}
	live := make([][]byte, 0, 3*Floor>>20)
	for range cap(live) {
		live = append(live, make([]byte, 1<<20))
	}
	// the finalizer runs on its own goroutine after the collection that frees the sentinel
	gogc := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	for deadline := time.Now().Add(30 * time.Second); ; {
		runtime.GC()
		metrics.Read(gogc)
		if gogc[0].Value.Uint64() == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d with %d MiB live, want 50", gogc[0].Value.Uint64(), len(live))
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(live)
}
