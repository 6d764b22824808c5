package etcd3

import (
	"context"
	"sync"
	"time"
)

// revisionReads coalesces reads of etcd's current revision. A consistent read needs a
// revision fetched after the read arrived; every read that arrives before a fetch starts can
// share that fetch's answer, so concurrent consistent reads cost one etcd round trip between
// them rather than one each.
type revisionReads struct {
	fetch func(ctx context.Context) (int64, error)

	mu      sync.Mutex
	next    *revisionCall // not yet started: new reads join it
	running bool          // a goroutine is fetching
}

type revisionCall struct {
	done chan struct{}
	rev  int64
	err  error
}

// get returns a revision read from etcd after get was called.
func (r *revisionReads) get(ctx context.Context) (int64, error) {
	r.mu.Lock()
	if r.next == nil {
		r.next = &revisionCall{done: make(chan struct{})}
	}
	call := r.next
	if !r.running {
		r.running = true
		go r.loop()
	}
	r.mu.Unlock()
	select {
	case <-call.done:
		return call.rev, call.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// loop fetches for the waiting call, then for the reads that arrived meanwhile, until none
// are left.
func (r *revisionReads) loop() {
	for {
		r.mu.Lock()
		call := r.next
		r.next = nil
		if call == nil {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		call.rev, call.err = r.fetch(ctx)
		cancel()
		close(call.done)
	}
}
