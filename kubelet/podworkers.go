package kubelet

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podWorkers runs one goroutine per pod UID. Everything that can change a pod (a new spec from
// the watch, its deletion from the API, a container exiting, a probe flipping) only records the
// news on the worker and wakes it; the worker syncs the pod one pass at a time, so passes of one
// pod never overlap and a slow runtime delays only its own pod. See FLOW.md.
type podWorkers struct {
	sync syncPodFunc

	mu      sync.Mutex
	ctx     context.Context // nil until start
	wg      sync.WaitGroup
	workers map[types.UID]*podWorker
}

// syncPodFunc makes one pass over a pod: it returns when to pass again (0: only when woken)
// and whether the pod is finished, which ends its worker.
type syncPodFunc func(ctx context.Context, w *podWorker) (requeueAfter time.Duration, finished bool)

// podWorker is one pod's worker: the latest word from the API and what its passes remember.
type podWorker struct {
	uid types.UID
	// wake holds at most one pending wake-up: any number of news coalesce into one pass.
	wake chan struct{}

	mu   sync.Mutex
	pod  *v1.Pod
	gone bool // the API no longer has the pod
	// eviction is the eviction manager's decision to evict the pod, nil for none.
	eviction *podEviction

	// state is touched only by the worker's own goroutine.
	state podState
}

func newPodWorkers(sync syncPodFunc) *podWorkers {
	return &podWorkers{sync: sync, workers: map[types.UID]*podWorker{}}
}

// snapshot is the worker's latest pod and whether the API has deleted it.
func (w *podWorker) snapshot() (*v1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.gone
}

func (w *podWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// update records a pod's new spec or status from the API and wakes its worker, starting one
// for a pod not seen before.
func (p *podWorkers) update(pod *v1.Pod) {
	p.mu.Lock()
	w, ok := p.workers[pod.UID]
	if !ok {
		w = &podWorker{uid: pod.UID, wake: make(chan struct{}, 1)}
		p.workers[pod.UID] = w
		if p.ctx != nil {
			p.launch(w)
		}
	}
	p.mu.Unlock()
	w.mu.Lock()
	w.pod = pod
	w.mu.Unlock()
	w.poke()
}

// removed records that the API no longer has the pod.
func (p *podWorkers) removed(uid types.UID) {
	p.mu.Lock()
	w, ok := p.workers[uid]
	p.mu.Unlock()
	if !ok {
		return
	}
	w.mu.Lock()
	w.gone = true
	w.mu.Unlock()
	w.poke()
}

// wake makes the pod's worker pass again soon (a container changed, a probe flipped).
func (p *podWorkers) wake(uid types.UID) {
	p.mu.Lock()
	w, ok := p.workers[uid]
	p.mu.Unlock()
	if ok {
		w.poke()
	}
}

// evict records the eviction manager's decision to evict the pod and wakes its worker.
func (p *podWorkers) evict(uid types.UID, e podEviction) {
	p.mu.Lock()
	w, ok := p.workers[uid]
	p.mu.Unlock()
	if !ok {
		return
	}
	w.mu.Lock()
	w.eviction = &e
	w.mu.Unlock()
	w.poke()
}

// evicting says whether the pod is being evicted.
func (p *podWorkers) evicting(uid types.UID) bool {
	p.mu.Lock()
	w, ok := p.workers[uid]
	p.mu.Unlock()
	if !ok {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.eviction != nil
}

// evictionOf is the eviction recorded for the worker's pod, nil for none.
func (w *podWorker) evictionOf() *podEviction {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.eviction
}

func (p *podWorkers) has(uid types.UID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.workers[uid]
	return ok
}

// count is how many pods have a worker.
func (p *podWorkers) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.workers)
}

// start runs the workers of the pods recorded so far, and from now on each new pod's at once.
func (p *podWorkers) start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ctx = ctx
	for _, w := range p.workers {
		p.launch(w)
	}
}

// wait returns once every worker has stopped (after start's ctx is done).
func (p *podWorkers) wait() { p.wg.Wait() }

// launch starts w's goroutine; p.mu is held.
func (p *podWorkers) launch(w *podWorker) {
	ctx := p.ctx
	p.wg.Go(func() {
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			case <-timer.C:
			}
			requeue, finished := p.sync(ctx, w)
			if finished {
				p.mu.Lock()
				delete(p.workers, w.uid)
				p.mu.Unlock()
				return
			}
			timer.Stop()
			if requeue > 0 {
				timer.Reset(requeue)
			}
		}
	})
}
