package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// Backoff after a failed attempt: 1 s, doubling per attempt, at most 10 s (upstream's
// podInitialBackoffDuration and podMaxBackoffDuration). A pod left unschedulable for
// maxUnschedulableDuration is retried anyway, in case an event that would have helped it was
// judged irrelevant.
const (
	initialBackoff           = 1 * time.Second
	maxBackoff               = 10 * time.Second
	maxUnschedulableDuration = 5 * time.Minute
	queueFlushInterval       = 100 * time.Millisecond
)

// Where a queued pod is.
type queueLocation int

const (
	inActive queueLocation = iota + 1
	inBackoff
	inUnschedulable
	inFlight
)

// queuedPod is a pending pod and its history in the queue.
type queuedPod struct {
	info *podInfo
	// timestamp orders pods of equal priority in the active queue: when it last entered.
	timestamp time.Time
	// initialTimestamp is when the pod first entered the queue, for the e2e latency.
	initialTimestamp time.Time
	// attempts counts scheduling attempts; backoff doubles with each.
	attempts int
	// rejectedBy names the plugins that ruled the pod out in its last attempt.
	rejectedBy map[string]struct{}
	// backoffExpires is when the pod's backoff after its last failure ends.
	backoffExpires time.Time
	// gated: the pod has scheduling gates and waits until they are removed.
	gated bool

	where     queueLocation
	heapIndex int
	// cycle is the scheduling cycle in which the pod was last popped.
	cycle int64
	// updatedInFlight and deletedInFlight record informer events that arrived while the pod was
	// being scheduled.
	updatedInFlight bool
	deletedInFlight bool
}

func (qp *queuedPod) key() string { return qp.info.key() }

// clusterEvent is a change in the cluster that may let an unschedulable pod fit.
type clusterEvent int

const (
	eventNodeAdded clusterEvent = iota
	// eventNodeChanged: allocatable, labels, taints or spec.unschedulable changed.
	eventNodeChanged
	eventNodeDeleted
	eventAssignedPodAdded
	// eventAssignedPodChanged: a bound pod's labels changed.
	eventAssignedPodChanged
	eventAssignedPodDeleted
	// eventStorageChanged: a claim, volume or storage class was added or changed.
	eventStorageChanged
)

// mayHelp is the conservative rule that decides which unschedulable pods a cluster event moves
// back to be retried: a pod moves when the event could change the verdict of any plugin that
// rejected it.
//
//   - a node added or changed (allocatable, labels, taints, unschedulable) may help any plugin;
//   - a node deleted changes only topology spreading's domain counts;
//   - a bound pod deleted frees resources and ports, and lifts anti-affinity and spreading;
//   - a bound pod added or relabelled can only satisfy affinity or change spreading;
//   - a claim, volume or class added or changed can only help volume binding.
//
// A pod rejected without any plugin (there were no nodes) moves on node events only.
func (e clusterEvent) mayHelp(rejectedBy map[string]struct{}) bool {
	switch e {
	case eventNodeAdded, eventNodeChanged:
		return true
	}
	for plugin := range rejectedBy {
		switch e {
		case eventNodeDeleted:
			if plugin == podTopologySpreadName {
				return true
			}
		case eventAssignedPodDeleted:
			switch plugin {
			case nodeResourcesFitName, nodePortsName, interPodAffinityName, podTopologySpreadName:
				return true
			}
		case eventStorageChanged:
			if plugin == volumeBindingName {
				return true
			}
		case eventAssignedPodAdded, eventAssignedPodChanged:
			switch plugin {
			case interPodAffinityName, podTopologySpreadName:
				return true
			}
		}
	}
	return false
}

// schedulingQueue holds the pods waiting to be scheduled, in three parts as upstream's
// PriorityQueue: active (ordered by priority, then by when the pod entered), backoff (pods
// that failed recently, ordered by when their backoff ends) and unschedulable (pods that fit
// nowhere, waiting for a cluster event that may help them). It also remembers which pods are
// nominated to which node by preemption.
type schedulingQueue struct {
	mu   sync.Mutex
	cond *sync.Cond
	now  func() time.Time

	active        podHeap
	backoff       podHeap
	unschedulable map[string]*queuedPod
	inFlight      map[string]*queuedPod
	// schedulingCycle counts pops; moveRequestCycle is the cycle of the last cluster event
	// that moved pods. A pod whose attempt began before that event is retried at once
	// instead of waiting for another event.
	schedulingCycle  int64
	moveRequestCycle int64
	closed           bool

	nominator nominator
}

var errQueueClosed = errors.New("scheduling queue closed")

func newSchedulingQueue(now func() time.Time) *schedulingQueue {
	q := &schedulingQueue{
		now:           now,
		unschedulable: make(map[string]*queuedPod),
		inFlight:      make(map[string]*queuedPod),
		nominator:     newNominator(),
	}
	q.active.less = func(a, b *queuedPod) bool {
		if a.info.priority != b.info.priority {
			return a.info.priority > b.info.priority
		}
		return a.timestamp.Before(b.timestamp)
	}
	q.backoff.less = func(a, b *queuedPod) bool { return a.backoffExpires.Before(b.backoffExpires) }
	q.cond = sync.NewCond(&q.mu)
	return q
}

// backoffFor is the backoff after a pod's attempts-th failed attempt.
func backoffFor(attempts int) time.Duration {
	d := initialBackoff
	for i := 1; i < attempts; i++ {
		d *= 2
		if d >= maxBackoff {
			return maxBackoff
		}
	}
	return d
}

// find returns the queued pod with key wherever it is.
func (q *schedulingQueue) find(key string) *queuedPod {
	if qp := q.inFlight[key]; qp != nil {
		return qp
	}
	if qp := q.unschedulable[key]; qp != nil {
		return qp
	}
	for _, h := range []*podHeap{&q.active, &q.backoff} {
		if i, ok := h.index[key]; ok {
			return h.items[i]
		}
	}
	return nil
}

// add queues a new pending pod.
func (q *schedulingQueue) add(pi *podInfo) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if old := q.find(pi.key()); old != nil {
		if old.where != inFlight || !old.deletedInFlight {
			q.updateLocked(pi)
			return
		}
		// deleted and created again while the old pod was being tried: the old attempt's
		// outcome no longer concerns anyone
		delete(q.inFlight, pi.key())
	}
	now := q.now()
	qp := &queuedPod{info: pi, timestamp: now, initialTimestamp: now}
	q.nominator.fromStatus(pi)
	if len(pi.pod.Spec.SchedulingGates) > 0 {
		qp.gated = true
		q.toUnschedulable(qp)
		return
	}
	q.toActive(qp)
}

// update replaces a queued pod's info after the informer saw it change.
func (q *schedulingQueue) update(pi *podInfo) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.updateLocked(pi)
}

func (q *schedulingQueue) updateLocked(pi *podInfo) {
	qp := q.find(pi.key())
	if qp == nil {
		now := q.now()
		qp = &queuedPod{info: pi, timestamp: now, initialTimestamp: now}
		if len(pi.pod.Spec.SchedulingGates) > 0 {
			qp.gated = true
			q.toUnschedulable(qp)
		} else {
			q.toActive(qp)
		}
		return
	}
	q.nominator.fromStatus(pi)
	changed := podSchedulingChanged(qp.info.pod, pi.pod)
	qp.info = pi
	switch qp.where {
	case inFlight:
		if changed {
			qp.updatedInFlight = true
		}
	case inActive:
		q.active.fix(qp)
	case inBackoff:
		q.backoff.fix(qp)
	case inUnschedulable:
		if qp.gated && len(pi.pod.Spec.SchedulingGates) == 0 {
			qp.gated = false
			delete(q.unschedulable, qp.key())
			q.toActive(qp)
		} else if changed && !qp.gated {
			// the pod itself changed in a way that may let it fit: retry it now
			delete(q.unschedulable, qp.key())
			q.toActiveOrBackoff(qp, q.now())
		}
	}
}

// delete forgets a pod that was deleted or got bound.
func (q *schedulingQueue) delete(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.nominator.delete(key)
	qp := q.find(key)
	if qp == nil {
		return
	}
	switch qp.where {
	case inFlight:
		qp.deletedInFlight = true
	case inActive:
		q.active.remove(qp)
	case inBackoff:
		q.backoff.remove(qp)
	case inUnschedulable:
		delete(q.unschedulable, key)
	}
}

// pop waits for the highest-priority active pod and hands it to the caller, who must report
// the outcome with done.
func (q *schedulingQueue) pop(ctx context.Context) (*queuedPod, error) {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.cond.Broadcast()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.active.len() == 0 {
		if q.closed {
			return nil, errQueueClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		q.cond.Wait()
	}
	qp := q.active.pop()
	q.schedulingCycle++
	qp.cycle = q.schedulingCycle
	qp.attempts++
	qp.where = inFlight
	qp.updatedInFlight, qp.deletedInFlight = false, false
	q.inFlight[qp.key()] = qp
	return qp, nil
}

// attemptOutcome is how a scheduling attempt ended, for done.
type attemptOutcome int

const (
	// outcomeAssumed: the pod was assumed on a node; its binding is under way.
	outcomeAssumed attemptOutcome = iota
	// outcomeUnschedulable: no node fits; the pod waits for a cluster event.
	outcomeUnschedulable
	// outcomeError: something failed; the pod is retried after its backoff.
	outcomeError
)

// done takes back a popped pod. rejectedBy names the plugins that ruled it out.
func (q *schedulingQueue) done(qp *queuedPod, outcome attemptOutcome, rejectedBy map[string]struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.inFlight[qp.key()] != qp {
		return
	}
	delete(q.inFlight, qp.key())
	qp.where = 0
	if qp.deletedInFlight {
		return
	}
	switch outcome {
	case outcomeAssumed:
		return
	case outcomeUnschedulable:
		now := q.now()
		qp.rejectedBy = rejectedBy
		qp.timestamp = now
		qp.backoffExpires = now.Add(backoffFor(qp.attempts))
		if qp.updatedInFlight || q.moveRequestCycle >= qp.cycle {
			// something changed while the pod was being tried: do not wait for another event
			q.toActiveOrBackoff(qp, now)
		} else {
			q.toUnschedulable(qp)
		}
	case outcomeError:
		q.requeueAfterErrorLocked(qp)
	}
}

// requeueAfterError puts back a pod whose binding failed, to be retried after its backoff,
// unless the informer no longer shows it pending (deleted, or bound by someone else). It says
// whether it did. pending is asked under the queue's lock, so that a deletion the informer
// delivers meanwhile cannot be missed.
func (q *schedulingQueue) requeueAfterError(qp *queuedPod, pending func(*queuedPod) bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.find(qp.key()) != nil || !pending(qp) {
		return false
	}
	q.requeueAfterErrorLocked(qp)
	return true
}

func (q *schedulingQueue) requeueAfterErrorLocked(qp *queuedPod) {
	now := q.now()
	qp.timestamp = now
	qp.backoffExpires = now.Add(backoffFor(qp.attempts))
	qp.rejectedBy = nil
	q.toBackoff(qp)
}

// moveUnschedulable moves the unschedulable pods that event may help to be retried: to the
// active queue, or to backoff while their backoff lasts.
func (q *schedulingQueue) moveUnschedulable(event clusterEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for key, qp := range q.unschedulable {
		if qp.gated || !event.mayHelp(qp.rejectedBy) {
			continue
		}
		delete(q.unschedulable, key)
		q.toActiveOrBackoff(qp, now)
	}
	q.moveRequestCycle = q.schedulingCycle
}

// activate moves one unschedulable pod to be retried now, if it waits there.
func (q *schedulingQueue) activate(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if qp := q.unschedulable[key]; qp != nil && !qp.gated {
		delete(q.unschedulable, key)
		q.toActive(qp)
	}
}

// flush moves pods whose backoff ended to the active queue, and pods unschedulable for too
// long to be retried.
func (q *schedulingQueue) flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for q.backoff.len() > 0 && !q.backoff.peek().backoffExpires.After(now) {
		q.toActive(q.backoff.pop())
	}
	for key, qp := range q.unschedulable {
		if !qp.gated && now.Sub(qp.timestamp) > maxUnschedulableDuration {
			delete(q.unschedulable, key)
			q.toActiveOrBackoff(qp, now)
		}
	}
}

// run flushes the queue until ctx is done, then closes it.
func (q *schedulingQueue) run(ctx context.Context) {
	t := time.NewTicker(queueFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			q.close()
			return
		case <-t.C:
			q.flush()
		}
	}
}

func (q *schedulingQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

// lengths reports how many pods wait in each part, for the pending pods metric.
func (q *schedulingQueue) lengths() (active, backoff, unschedulable, gated int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, qp := range q.unschedulable {
		if qp.gated {
			gated++
		} else {
			unschedulable++
		}
	}
	return q.active.len(), q.backoff.len(), unschedulable, gated
}

func (q *schedulingQueue) toActive(qp *queuedPod) {
	qp.where = inActive
	q.active.push(qp)
	q.cond.Signal()
}

func (q *schedulingQueue) toBackoff(qp *queuedPod) {
	qp.where = inBackoff
	q.backoff.push(qp)
}

func (q *schedulingQueue) toUnschedulable(qp *queuedPod) {
	qp.where = inUnschedulable
	q.unschedulable[qp.key()] = qp
}

func (q *schedulingQueue) toActiveOrBackoff(qp *queuedPod, now time.Time) {
	if qp.backoffExpires.After(now) {
		q.toBackoff(qp)
	} else {
		q.toActive(qp)
	}
}

// podHeap is a heap of queued pods that can also find and remove one by key.
type podHeap struct {
	items []*queuedPod
	index map[string]int
	less  func(a, b *queuedPod) bool
}

func (h *podHeap) Len() int           { return len(h.items) }
func (h *podHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *podHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].key()] = i
	h.index[h.items[j].key()] = j
}
func (h *podHeap) Push(x any) {
	qp := x.(*queuedPod)
	h.index[qp.key()] = len(h.items)
	h.items = append(h.items, qp)
}
func (h *podHeap) Pop() any {
	n := len(h.items) - 1
	qp := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	delete(h.index, qp.key())
	return qp
}

func (h *podHeap) len() int { return len(h.items) }
func (h *podHeap) push(qp *queuedPod) {
	if h.index == nil {
		h.index = make(map[string]int)
	}
	heap.Push(h, qp)
}
func (h *podHeap) pop() *queuedPod   { return heap.Pop(h).(*queuedPod) }
func (h *podHeap) peek() *queuedPod  { return h.items[0] }
func (h *podHeap) fix(qp *queuedPod) { heap.Fix(h, h.index[qp.key()]) }
func (h *podHeap) remove(qp *queuedPod) {
	if i, ok := h.index[qp.key()]; ok {
		heap.Remove(h, i)
	}
}

// nominator remembers which pods preemption nominated to which node, so that other pods do not
// take the room being freed for them. Its lock is the queue's.
type nominator struct {
	nodeOf map[string]string
	onNode map[string][]*podInfo
}

func newNominator() nominator {
	return nominator{nodeOf: make(map[string]string), onNode: make(map[string][]*podInfo)}
}

// fromStatus records the node a pod's status names as nominated, if any.
func (n *nominator) fromStatus(pi *podInfo) {
	if node := pi.pod.Status.NominatedNodeName; node != "" {
		n.set(pi, node)
	} else if _, ok := n.nodeOf[pi.key()]; ok {
		// keep the nomination, with the pod's new info
		n.set(pi, n.nodeOf[pi.key()])
	}
}

func (n *nominator) set(pi *podInfo, node string) {
	n.delete(pi.key())
	n.nodeOf[pi.key()] = node
	n.onNode[node] = append(n.onNode[node], pi)
}

func (n *nominator) delete(key string) {
	node, ok := n.nodeOf[key]
	if !ok {
		return
	}
	delete(n.nodeOf, key)
	pods := n.onNode[node]
	for i, p := range pods {
		if p.key() == key {
			pods = append(pods[:i:i], pods[i+1:]...)
			break
		}
	}
	if len(pods) == 0 {
		delete(n.onNode, node)
	} else {
		n.onNode[node] = pods
	}
}

// nominate records (or, with node "", clears) a pod's nominated node.
func (q *schedulingQueue) nominate(pi *podInfo, node string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if node == "" {
		q.nominator.delete(pi.key())
	} else {
		q.nominator.set(pi, node)
	}
}

// nominatedNode is the node the pod is nominated to, by this scheduler's preemption or by its
// status; "" when none.
func (q *schedulingQueue) nominatedNode(pi *podInfo) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if node, ok := q.nominator.nodeOf[pi.key()]; ok {
		return node
	}
	return pi.pod.Status.NominatedNodeName
}

// nominatedPods copies the nominations by node, for one scheduling cycle; nil when there are
// none.
func (q *schedulingQueue) nominatedPods() map[string][]*podInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.nominator.onNode) == 0 {
		return nil
	}
	out := make(map[string][]*podInfo, len(q.nominator.onNode))
	for node, pods := range q.nominator.onNode {
		out[node] = append([]*podInfo(nil), pods...)
	}
	return out
}

// podSchedulingChanged says whether a pending pod changed in a way that may change where it
// fits: anything but its status and bookkeeping metadata.
func podSchedulingChanged(old, cur *corev1.Pod) bool {
	if old == cur {
		return false
	}
	return !maps.Equal(old.Labels, cur.Labels) || !equality.Semantic.DeepEqual(old.Spec, cur.Spec)
}
