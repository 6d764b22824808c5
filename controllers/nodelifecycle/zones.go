package nodelifecycle

import (
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/flowcontrol"
)

// zoneState is how a zone's nodes fare, as upstream: it sets how fast nodes of the zone are
// tainted NoExecute (and so how fast their pods are evicted).
type zoneState string

const (
	stateInitial           zoneState = "Initial"
	stateNormal            zoneState = "Normal"
	stateFullDisruption    zoneState = "FullDisruption"
	statePartialDisruption zoneState = "PartialDisruption"
)

// zoneKey is upstream's zone key of a node: region and zone labels.
func zoneKey(n *corev1.Node) string {
	region := n.Labels[corev1.LabelTopologyRegion]
	if region == "" {
		region = n.Labels[corev1.LabelFailureDomainBetaRegion]
	}
	zone := n.Labels[corev1.LabelTopologyZone]
	if zone == "" {
		zone = n.Labels[corev1.LabelFailureDomainBetaZone]
	}
	if region == "" && zone == "" {
		return ""
	}
	return region + ":\x00:" + zone
}

// taintQueue holds the nodes of one zone waiting for their NoExecute taint, handed out no
// faster than its rate limiter allows: when many nodes fail at once, their pods are not all
// evicted at once.
type taintQueue struct {
	mu      sync.Mutex
	limiter flowcontrol.RateLimiter
	queue   []queuedNode
	set     map[string]bool
}

type queuedNode struct {
	name  string
	added time.Time
	// retryAt: a failed attempt waits until then.
	retryAt time.Time
}

func newTaintQueue(qps float32) *taintQueue {
	return &taintQueue{limiter: limiterFor(qps), set: map[string]bool{}}
}

func limiterFor(qps float32) flowcontrol.RateLimiter {
	if qps <= 0 {
		return flowcontrol.NewFakeNeverRateLimiter()
	}
	return flowcontrol.NewTokenBucketRateLimiter(qps, 1)
}

// add queues a node once; it reports whether it was new.
func (q *taintQueue) add(name string, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.set[name] {
		return false
	}
	q.set[name] = true
	q.queue = append(q.queue, queuedNode{name: name, added: now})
	return true
}

func (q *taintQueue) remove(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.set[name] {
		return
	}
	delete(q.set, name)
	for i, n := range q.queue {
		if n.name == name {
			q.queue = append(q.queue[:i], q.queue[i+1:]...)
			break
		}
	}
}

// swapLimiter changes the rate, as the zone's state changes.
func (q *taintQueue) swapLimiter(qps float32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.limiter.Stop()
	q.limiter = limiterFor(qps)
}

// try hands out nodes, oldest first, while the rate allows; fn says whether it is done with a
// node, or when to try it again.
func (q *taintQueue) try(now time.Time, fn func(name string) (done bool, retryAfter time.Duration)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	sort.SliceStable(q.queue, func(i, j int) bool { return q.queue[i].added.Before(q.queue[j].added) })
	for i := 0; i < len(q.queue); {
		n := q.queue[i]
		if now.Before(n.retryAt) {
			i++
			continue
		}
		if !q.limiter.TryAccept() {
			return
		}
		done, after := fn(n.name)
		if done {
			delete(q.set, n.name)
			q.queue = append(q.queue[:i], q.queue[i+1:]...)
			continue
		}
		q.queue[i].retryAt = now.Add(after)
		i++
	}
}

func (q *taintQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}
