// Package gctune bounds the Go garbage collector's headroom on large heaps.
//
// With GOGC=100 (Go's default) the heap grows to twice its live objects before each collection,
// and the process's resident memory follows the peak of that. For a control-plane part holding a
// cluster's objects (the API server's watch cache, an informer's store) that doubles the memory
// the cluster costs. Start keeps the headroom at the live heap (GOGC=100) while the heap is
// small, and lowers it smoothly to half the live heap (GOGC=50) once the live heap passes twice
// Floor: more frequent collections, paid only where the memory is large.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Floor is the headroom the collector always keeps when the live heap is larger than it.
const Floor = 128 << 20

// Percent is the GOGC that gives a live heap of live bytes a headroom of max(live/2, Floor),
// and never more than the live heap itself: from 100 below Floor down to 50 from 2×Floor on.
func Percent(live uint64) int {
	if live <= Floor {
		return 100
	}
	headroom := max(live/2, Floor)
	return int(100 * headroom / live)
}

var once sync.Once

// Start adjusts GOGC after every collection to Percent of the live heap, for the rest of the
// process. It does nothing (and reports false) when GOGC or GOMEMLIMIT is set in the
// environment: whoever set them chose for themselves.
func Start() bool {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return false
	}
	once.Do(func() {
		t := &tuner{}
		t.samples[0].Name = "/gc/heap/live:bytes"
		t.samples[1].Name = "/gc/gogc:percent"
		arm(t)
	})
	return true
}

type tuner struct {
	samples [2]metrics.Sample
}

// sentinel is garbage whose finalizer runs after the collection that finds it: a hook into
// every GC cycle. It holds a pointer so that the tiny allocator does not batch it with other
// objects, which would delay its finalizer.
type sentinel struct{ t *tuner }

func arm(t *tuner) {
	runtime.SetFinalizer(&sentinel{t: t}, func(s *sentinel) {
		s.t.adjust()
		arm(s.t)
	})
}

func (t *tuner) adjust() {
	metrics.Read(t.samples[:])
	live, gogc := t.samples[0].Value, t.samples[1].Value
	if live.Kind() != metrics.KindUint64 || gogc.Kind() != metrics.KindUint64 {
		return
	}
	// small steps are not worth a change: each one recomputes the collector's pacing
	p, now := Percent(live.Uint64()), int(gogc.Uint64())
	if p < now-2 || p > now+2 || (p == 100) != (now == 100) {
		debug.SetGCPercent(p)
	}
}
