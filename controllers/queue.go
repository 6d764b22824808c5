package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Queue is a rate-limited queue of object keys ("namespace/name", or "name" for cluster-scoped
// objects): a key is never handed to two workers at once, and a key added many times while it
// waits is synced once.
type Queue = workqueue.TypedRateLimitingInterface[string]

// SyncFunc makes the world match the spec of the object a key names. An error asks for the key
// again later, with exponential back-off; RequeueAfter asks for it at a given time without
// counting as a failure.
type SyncFunc func(ctx context.Context, key string) error

// NewQueue makes a queue with upstream's default controller rate limiting (per-key exponential
// back-off from 5ms to 1000s, and 10 qps with bursts of 100 overall), reporting its metrics
// under name.
func NewQueue(name string, r Reporting) Queue {
	return NewQueueWithRateLimiter(name, workqueue.DefaultTypedControllerRateLimiter[string](), r)
}

// NewQueueWithRateLimiter makes a queue with the given rate limiting.
func NewQueueWithRateLimiter(name string, limiter workqueue.TypedRateLimiter[string], r Reporting) Queue {
	cfg := workqueue.TypedRateLimitingQueueConfig[string]{Name: name}
	if r.Metrics != nil {
		cfg.MetricsProvider = r.Metrics
	}
	return workqueue.NewTypedRateLimitingQueueWithConfig(limiter, cfg)
}

// requeueAfter is the error of a sync that is not finished and not failing either.
type requeueAfter struct {
	after  time.Duration
	reason error
}

func (e *requeueAfter) Error() string {
	return fmt.Sprintf("requeue after %v: %v", e.after, e.reason)
}

func (e *requeueAfter) Unwrap() error { return e.reason }

// RequeueAfter is what a sync returns when it has done what it can for now and must look again
// after d (a namespace waiting for its pods' grace periods): the key's failure count is reset
// and the key comes back after d.
func RequeueAfter(d time.Duration, reason error) error {
	return &requeueAfter{after: d, reason: reason}
}

// Workers runs a controller's sync over its queue.
type Workers struct {
	// Name names the controller in logs and metrics ("replicaset").
	Name    string
	Queue   Queue
	Sync    SyncFunc
	Metrics *Metrics
	// Synced are the informers whose caches must be filled before the first key is synced.
	Synced []cache.InformerSynced
}

// Run logs the controller's start and stop, waits for the Synced caches, then runs n workers
// until ctx is done, then shuts the queue down and returns once every worker has finished its
// current key. If ctx ends before the caches are filled it shuts the queue down and returns.
func (w Workers) Run(ctx context.Context, n int) {
	slog.Info("starting controller", "controller", w.Name)
	defer slog.Info("stopped controller", "controller", w.Name)
	if len(w.Synced) > 0 && !cache.WaitForNamedCacheSync(w.Name, ctx.Done(), w.Synced...) {
		w.Queue.ShutDown()
		return
	}
	if n < 1 {
		n = 1
	}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for w.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	w.Queue.ShutDown()
	wg.Wait()
}

// processNext syncs one key; it reports false once the queue is shut down.
func (w Workers) processNext(ctx context.Context) bool {
	key, quit := w.Queue.Get()
	if quit {
		return false
	}
	defer w.Queue.Done(key)
	start := time.Now()
	err := w.Sync(ctx, key)
	var later *requeueAfter
	switch {
	case err == nil:
		w.Metrics.observeSync(w.Name, "success", time.Since(start))
		w.Queue.Forget(key)
	case errors.As(err, &later):
		w.Metrics.observeSync(w.Name, "requeue", time.Since(start))
		w.Queue.Forget(key)
		w.Queue.AddAfter(key, later.after)
	default:
		w.Metrics.observeSync(w.Name, "error", time.Since(start))
		if ctx.Err() == nil {
			slog.Info("sync failed, will retry", "controller", w.Name, "key", key, "err", err)
		}
		w.Queue.AddRateLimited(key)
	}
	return true
}
