package etcd3

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

func TestConcurrentRevisionReadsShareFetchesThatStartedAfterThem(t *testing.T) {
	var revision, fetches atomic.Int64
	release := make(chan struct{})
	r := &revisionReads{fetch: func(context.Context) (int64, error) {
		fetches.Add(1)
		<-release
		return revision.Load(), nil
	}}
	const readers = 50
	var wg sync.WaitGroup
	results := make(chan [2]int64, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			before := revision.Add(1) // a write this read must observe
			rev, err := r.get(context.Background())
			if err != nil {
				t.Error(err)
			}
			results <- [2]int64{before, rev}
		}()
	}
	// let the fetches finish one by one while readers keep arriving
	allDone := ctxDone(&wg)
	go func() {
		for {
			select {
			case release <- struct{}{}:
			case <-allDone:
				return
			}
		}
	}()
	wg.Wait()
	close(results)
	for res := range results {
		if res[1] < res[0] {
			t.Errorf("read observed revision %d before a write at %d", res[1], res[0])
		}
	}
	if n := fetches.Load(); n >= readers {
		t.Errorf("%d fetches for %d concurrent reads: nothing shared", n, readers)
	}
}

// ctxDone is closed once wg is done.
func ctxDone(wg *sync.WaitGroup) <-chan struct{} {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	return ch
}
