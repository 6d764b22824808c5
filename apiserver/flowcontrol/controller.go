package flowcontrol

import (
	"context"
	"errors"
	"hash/fnv"
	"math"
	"sort"
	"sync"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap"
)

// DefaultQueueWaitLimit is how long a request with no deadline may wait in a queue; one with
// a deadline waits a quarter of the time it has left, as upstream, never more than a minute.
const DefaultQueueWaitLimit = 15 * time.Second

// Controller holds the current FlowSchemas and priority levels and the state of every level's
// queues. Its methods are safe for concurrent use.
type Controller struct {
	serverConcurrency int
	now               func() time.Time // time.Now but in tests
	rejections        *rejections

	mu      sync.Mutex
	schemas []*flowcontrolv1.FlowSchema // by matching precedence, then name
	levels  map[string]*priorityLevel
	// nominalSum is the sum of the levels' nominal limits: the seats borrowing shares out
	nominalSum int
}

// NewController returns a controller that shares serverConcurrency seats among the limited
// priority levels, configured with upstream's mandatory objects until Update says otherwise.
func NewController(serverConcurrency int) *Controller {
	c := &Controller{serverConcurrency: serverConcurrency, now: time.Now, levels: map[string]*priorityLevel{}}
	c.rejections = newRejections(func() time.Time { return c.now() })
	c.Update(nil, nil)
	return c
}

// Update installs the FlowSchemas and PriorityLevelConfigurations the server stores. The
// mandatory ones are imagined where missing, as upstream does, so that every request has a
// level. Requests already queued or executing at a level that stays keep their place.
func (c *Controller) Update(schemas []*flowcontrolv1.FlowSchema, levels []*flowcontrolv1.PriorityLevelConfiguration) {
	schemas = withMandatorySchemas(schemas)
	levels = withMandatoryLevels(levels)
	sort.SliceStable(schemas, func(i, j int) bool {
		pi, pj := schemas[i].Spec.MatchingPrecedence, schemas[j].Spec.MatchingPrecedence
		if pi != pj {
			return pi < pj
		}
		return schemas[i].Name < schemas[j].Name
	})

	c.mu.Lock()
	defer c.mu.Unlock()
	c.schemas = schemas
	var shares float64
	for _, plc := range levels {
		shares += float64(nominalShares(plc))
	}
	next := map[string]*priorityLevel{}
	now := c.now()
	c.nominalSum = 0
	for _, plc := range levels {
		pl := c.levels[plc.Name]
		fresh := pl == nil
		if fresh {
			pl = &priorityLevel{name: plc.Name}
			pl.demand.reset(now)
		}
		nominal := 0
		if shares > 0 {
			// rounded up, so the levels' seats may sum to a little more than the server's
			nominal = int(math.Ceil(float64(c.serverConcurrency) * float64(nominalShares(plc)) / shares))
		}
		lendable, borrowing := 0, c.serverConcurrency // no borrowing limit: the whole server
		if p := lendablePercent(plc); p != nil {
			lendable = int(math.Round(float64(nominal) * float64(*p) / 100))
		}
		if plc.Spec.Limited != nil && plc.Spec.Limited.BorrowingLimitPercent != nil {
			borrowing = int(math.Round(float64(nominal) * float64(*plc.Spec.Limited.BorrowingLimitPercent) / 100))
		}
		pl.nominal, pl.minLimit, pl.maxLimit = nominal, nominal-lendable, nominal+borrowing
		if fresh {
			// a new level starts lending half of what it may
			pl.limit = nominal - lendable/2
		}
		c.nominalSum += nominal
		pl.now = now
		pl.configure(plc)
		metrics.nominal(pl.name, nominal, pl.minLimit, pl.maxLimit)
		next[plc.Name] = pl
	}
	for name, pl := range c.levels {
		if next[name] == nil {
			// a level that went away lets its waiting requests go rather than strand them
			pl.drain()
		}
	}
	c.levels = next
	// the new levels' limits are shared out at once, as upstream's
	c.adjustBorrowingLocked(now)
}

func nominalShares(plc *flowcontrolv1.PriorityLevelConfiguration) int32 {
	switch {
	case plc.Spec.Limited != nil && plc.Spec.Limited.NominalConcurrencyShares != nil:
		return *plc.Spec.Limited.NominalConcurrencyShares
	case plc.Spec.Limited != nil:
		return 30 // upstream's default
	case plc.Spec.Exempt != nil && plc.Spec.Exempt.NominalConcurrencyShares != nil:
		return *plc.Spec.Exempt.NominalConcurrencyShares
	}
	return 0
}

func lendablePercent(plc *flowcontrolv1.PriorityLevelConfiguration) *int32 {
	switch {
	case plc.Spec.Limited != nil:
		return plc.Spec.Limited.LendablePercent
	case plc.Spec.Exempt != nil:
		return plc.Spec.Exempt.LendablePercent
	}
	return nil
}

func withMandatorySchemas(in []*flowcontrolv1.FlowSchema) []*flowcontrolv1.FlowSchema {
	out := append([]*flowcontrolv1.FlowSchema(nil), in...)
	for _, m := range bootstrap.MandatoryFlowSchemas {
		if !hasSchema(out, m.Name) {
			out = append(out, m)
		}
	}
	return out
}

func hasSchema(list []*flowcontrolv1.FlowSchema, name string) bool {
	for _, fs := range list {
		if fs.Name == name {
			return true
		}
	}
	return false
}

func withMandatoryLevels(in []*flowcontrolv1.PriorityLevelConfiguration) []*flowcontrolv1.PriorityLevelConfiguration {
	out := append([]*flowcontrolv1.PriorityLevelConfiguration(nil), in...)
	for _, m := range bootstrap.MandatoryPriorityLevelConfigurations {
		found := false
		for _, plc := range out {
			found = found || plc.Name == m.Name
		}
		if !found {
			out = append(out, m)
		}
	}
	return out
}

// Classification is where a request was sent.
type Classification struct {
	FlowSchema    *flowcontrolv1.FlowSchema
	PriorityLevel *flowcontrolv1.PriorityLevelConfiguration
	Flow          string // the distinguisher
}

// Classify finds the first FlowSchema, by matching precedence, that matches the request and
// whose priority level exists; a dangling FlowSchema is passed over.
func (c *Controller) Classify(d RequestDigest) Classification {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.classifyLocked(d)
}

func (c *Controller) classifyLocked(d RequestDigest) Classification {
	for _, fs := range c.schemas {
		pl := c.levels[fs.Spec.PriorityLevelConfiguration.Name]
		if pl == nil || !MatchesFlowSchema(fs, d) {
			continue
		}
		return Classification{FlowSchema: fs, PriorityLevel: pl.config, Flow: FlowDistinguisher(fs, d)}
	}
	// the catch-all FlowSchema matches everyone, so this is only reached if it was changed
	cl := c.levels[flowcontrolv1.PriorityLevelConfigurationNameCatchAll]
	return Classification{FlowSchema: bootstrap.MandatoryFlowSchemaCatchAll, PriorityLevel: cl.config}
}

// ErrRejected is returned by Admit when the request's level will not run it: its queues are
// full, its level rejects rather than queues, or it waited longer than it may.
var ErrRejected = errors.New("too many requests")

// Ticket is an admitted request's claim on its level's seats.
type Ticket struct {
	Classification
	// Finish gives the request's seats back; call it exactly once, when the request is done.
	Finish func()
}

// Admit classifies the request and waits until its level has seats for it, or rejects it.
// seats is the work estimate (1 for most requests); it is capped at the level's limit. A
// rejected request still gets its Classification (for the response headers).
func (c *Controller) Admit(ctx context.Context, d RequestDigest, seats int) (*Ticket, error) {
	c.mu.Lock()
	cl := c.classifyLocked(d)
	pl := c.levels[cl.PriorityLevel.Name]
	t := &Ticket{Classification: cl}
	if pl.exempt {
		pl.executing += seats
		pl.observe(c.now())
		metrics.executing(pl.name, cl.FlowSchema.Name, seats)
		c.mu.Unlock()
		t.Finish = func() {
			c.mu.Lock()
			pl.executing -= seats
			pl.observe(c.now())
			c.mu.Unlock()
			metrics.executing(pl.name, cl.FlowSchema.Name, -seats)
		}
		metrics.dispatched(pl.name, cl.FlowSchema.Name, 0)
		return t, nil
	}
	seats = max(1, min(seats, pl.limit))
	r := &request{seats: seats, flowSchema: cl.FlowSchema.Name, ready: make(chan struct{}), arrived: time.Now()}
	pl.now = c.now()
	if pl.queues == nil {
		// a Reject level: run now or never (an idle level runs one, whatever its limit)
		if pl.executing > 0 && pl.executing+seats > pl.limit {
			c.mu.Unlock()
			c.reject(pl.name, cl.FlowSchema.Name, "concurrency-limit")
			return t, ErrRejected
		}
		pl.start(r, nil)
		c.mu.Unlock()
		t.Finish = c.finisher(pl, r)
		return t, nil
	}
	// Even a request that runs at once passes through its queue, so that its flow's queue
	// is charged for it and a flow that keeps the level busy falls behind one that does not.
	q := pl.chooseQueue(cl.FlowSchema.Name, cl.Flow)
	if len(q.waiting) >= pl.queueLengthLimit {
		c.mu.Unlock()
		c.reject(pl.name, cl.FlowSchema.Name, "queue-full")
		return t, ErrRejected
	}
	pl.enqueue(q, r)
	pl.dispatch()
	if r.started {
		c.mu.Unlock()
		t.Finish = c.finisher(pl, r)
		return t, nil
	}
	c.mu.Unlock()

	wait := time.NewTimer(waitLimit(ctx))
	defer wait.Stop()
	select {
	case <-r.ready:
	case <-ctx.Done():
	case <-wait.C:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	pl.now = c.now()
	if r.started {
		t.Finish = c.finisher(pl, r)
		return t, nil
	}
	if r.released {
		// its level went away; let it run unlimited rather than fail it for our change
		t.Finish = func() {}
		return t, nil
	}
	pl.dequeue(r)
	reason := "time-out"
	if ctx.Err() != nil {
		reason = "cancelled"
	}
	c.reject(pl.name, cl.FlowSchema.Name, reason)
	return t, ErrRejected
}

// reject counts a rejection of the level's request, which raises the level's Retry-After.
func (c *Controller) reject(level, flowSchema, reason string) {
	metrics.rejected(level, flowSchema, reason)
	c.rejections.record(level)
}

// RetryAfter is the Retry-After, in seconds, of a request the level rejects: 1, rising while
// the level keeps rejecting, as upstream's.
func (c *Controller) RetryAfter(level string) int64 { return c.rejections.retryAfter(level) }

// waitLimit is a quarter of the time the request has left, or DefaultQueueWaitLimit without a
// deadline, never more than a minute, as upstream's getRequestWaitContext.
func waitLimit(ctx context.Context) time.Duration {
	limit := DefaultQueueWaitLimit
	if deadline, ok := ctx.Deadline(); ok {
		limit = time.Until(deadline) / 4
	}
	return min(limit, time.Minute)
}

func (c *Controller) finisher(pl *priorityLevel, r *request) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			pl.now = c.now()
			pl.finish(r)
		})
	}
}

// priorityLevel is one level's seats and queues. Every field is guarded by Controller.mu.
type priorityLevel struct {
	name   string
	config *flowcontrolv1.PriorityLevelConfiguration
	exempt bool

	// nominal is the level's share of the server's seats; minLimit and maxLimit bound what
	// lending and borrowing make of its limit, the seats it has now
	nominal, minLimit, maxLimit int
	limit                       int
	executing                   int // seats in use
	waiting                     int // seats of queued requests
	queues                      []*queue
	handSize                    int
	queueLengthLimit            int

	// virtualTime is the start tag of the last request dispatched: start-time fair queuing
	// serves the queue whose head started earliest in this virtual time, so a queue's share
	// is the same however many requests it holds. Virtual time counts work in seat-seconds,
	// as upstream's: a queue is charged its requests' seats times how long they held them,
	// so a flow of 1 ms GETs is not charged like a flow of LISTs that hold ten seats for
	// seconds.
	virtualTime float64
	// meanService is, by a request's seats, a moving average of how long the level's
	// requests of that width executed: what a request is charged when it is dispatched,
	// before its own time is known
	meanService map[int]float64

	// demand integrates the seats the level's requests want (executing and waiting) over
	// time, for borrowing; now is the time of the change being made
	demand demandIntegrator
	stats  demandStats
	now    time.Time
}

type queue struct {
	waiting      []*request
	virtualStart float64 // the start tag of its head
	executing    int     // seats of its requests that are executing
}

type request struct {
	seats      int
	flowSchema string
	queue      *queue
	arrived    time.Time
	// dispatched is when it started executing, and charged the work its queue was charged
	// then, which finish corrects to the work it did
	dispatched time.Time
	charged    float64
	ready      chan struct{}
	started    bool
	released   bool
}

func (pl *priorityLevel) configure(plc *flowcontrolv1.PriorityLevelConfiguration) {
	pl.config = plc
	pl.exempt = plc.Spec.Type == flowcontrolv1.PriorityLevelEnablementExempt
	pl.handSize, pl.queueLengthLimit = 0, 0
	var queuing *flowcontrolv1.QueuingConfiguration
	if plc.Spec.Limited != nil && plc.Spec.Limited.LimitResponse.Type == flowcontrolv1.LimitResponseTypeQueue {
		queuing = plc.Spec.Limited.LimitResponse.Queuing
		if queuing == nil {
			// upstream's defaults
			queuing = &flowcontrolv1.QueuingConfiguration{Queues: 64, HandSize: 8, QueueLengthLimit: 50}
		}
	}
	if queuing == nil || pl.exempt {
		old := pl.queues
		pl.queues = nil
		pl.releaseQueued(old, pl.name)
		return
	}
	pl.handSize = int(queuing.HandSize)
	pl.queueLengthLimit = int(queuing.QueueLengthLimit)
	if len(pl.queues) != int(queuing.Queues) {
		// a new shape: requests already waiting keep their order in the new queues
		old := pl.queues
		pl.queues = make([]*queue, queuing.Queues)
		for i := range pl.queues {
			pl.queues[i] = &queue{virtualStart: pl.virtualTime}
		}
		pl.releaseQueued(old, pl.name)
	}
	pl.dispatch()
}

// releaseQueued moves requests of old queues into the current ones, or lets them run if the
// level no longer queues.
func (pl *priorityLevel) releaseQueued(old []*queue, name string) {
	for i, q := range old {
		for _, r := range q.waiting {
			if len(pl.queues) == 0 {
				r.released = true
				close(r.ready)
				pl.waiting -= r.seats
				metrics.inqueue(name, r.flowSchema, -1)
				continue
			}
			nq := pl.queues[i%len(pl.queues)]
			r.queue = nq
			nq.waiting = append(nq.waiting, r)
		}
		q.waiting = nil
	}
}

// drain lets every waiting request of a removed level go.
func (pl *priorityLevel) drain() {
	for _, q := range pl.queues {
		for _, r := range q.waiting {
			r.released = true
			close(r.ready)
			pl.waiting -= r.seats
			metrics.inqueue(pl.name, r.flowSchema, -1)
		}
		q.waiting = nil
	}
}

func (pl *priorityLevel) hasWaiting() bool {
	for _, q := range pl.queues {
		if len(q.waiting) > 0 {
			return true
		}
	}
	return false
}

// chooseQueue deals the flow a hand of handSize queues, the same hand every time for the
// same flow, and picks the least loaded of them: shuffle sharding, which keeps a heavy flow
// from sharing all its queues with any other flow.
func (pl *priorityLevel) chooseQueue(flowSchema, distinguisher string) *queue {
	h := fnv.New64a()
	h.Write([]byte(flowSchema))
	h.Write([]byte{0})
	h.Write([]byte(distinguisher))
	hand := dealHand(h.Sum64(), len(pl.queues), pl.handSize)
	best := pl.queues[hand[0]]
	for _, i := range hand[1:] {
		q := pl.queues[i]
		if q.load() < best.load() {
			best = q
		}
	}
	return best
}

// dealHand picks handSize distinct indexes below deckSize from the hash's digits in the
// mixed radix deckSize, deckSize-1, ..., as upstream's shuffle-sharding dealer.
func dealHand(hash uint64, deckSize, handSize int) []int {
	handSize = max(1, min(handSize, deckSize))
	hand := make([]int, 0, handSize)
	for i := 0; i < handSize; i++ {
		radix := uint64(deckSize - i)
		card := int(hash % radix)
		hash /= radix
		// the card-th index not yet dealt
		sorted := append([]int(nil), hand...)
		sort.Ints(sorted)
		for _, taken := range sorted {
			if taken <= card {
				card++
			}
		}
		hand = append(hand, card)
	}
	return hand
}

func (q *queue) load() int {
	n := q.executing
	for _, r := range q.waiting {
		n += r.seats
	}
	return n
}

func (pl *priorityLevel) enqueue(q *queue, r *request) {
	if len(q.waiting) == 0 {
		// an idle queue starts now, not with credit for the time it was idle
		q.virtualStart = max(q.virtualStart, pl.virtualTime)
	}
	r.queue = q
	q.waiting = append(q.waiting, r)
	pl.waiting += r.seats
	pl.observe(pl.now)
	metrics.inqueue(pl.name, r.flowSchema, 1)
}

func (pl *priorityLevel) dequeue(r *request) {
	q := r.queue
	for i, w := range q.waiting {
		if w == r {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			pl.waiting -= r.seats
			pl.observe(pl.now)
			metrics.inqueue(pl.name, r.flowSchema, -1)
			break
		}
	}
	// the head may now fit where the one removed did not
	pl.dispatch()
}

// dispatch starts queued requests, fairest first, while their seats fit. A head that does not
// fit waits for seats rather than being overtaken, as upstream, so wide requests are not
// starved; a level with nothing executing always takes its head.
func (pl *priorityLevel) dispatch() {
	for {
		var next *queue
		for _, q := range pl.queues {
			if len(q.waiting) > 0 && (next == nil || q.virtualStart < next.virtualStart) {
				next = q
			}
		}
		if next == nil {
			return
		}
		r := next.waiting[0]
		if pl.executing > 0 && pl.executing+r.seats > pl.limit {
			return
		}
		next.waiting = next.waiting[1:]
		pl.waiting -= r.seats
		metrics.inqueue(pl.name, r.flowSchema, -1)
		pl.virtualTime = next.virtualStart
		r.charged = pl.estimatedWork(r.seats)
		next.virtualStart += r.charged
		pl.start(r, next)
		close(r.ready)
	}
}

// Service time as fair queuing counts it, in seconds.
const (
	// minimumService is the least a request is charged for each of its seats, so that
	// instant requests still take turns
	minimumService = 0.001
	// initialService is the guess for a width of request the level has not finished yet
	initialService = 0.1
	// serviceSmoothing is the weight of the latest request in the moving average
	serviceSmoothing = 0.2
)

// estimatedWork is what a request of seats is charged when it is dispatched: its seats times
// the mean service of the level's requests as wide.
func (pl *priorityLevel) estimatedWork(seats int) float64 {
	service, ok := pl.meanService[seats]
	if !ok {
		service = initialService
	}
	return float64(seats) * max(service, minimumService)
}

func (pl *priorityLevel) start(r *request, q *queue) {
	r.started = true
	r.dispatched = pl.now
	r.queue = q
	pl.executing += r.seats
	if q != nil {
		q.executing += r.seats
	}
	pl.observe(pl.now)
	metrics.executing(pl.name, r.flowSchema, r.seats)
	metrics.dispatched(pl.name, r.flowSchema, time.Since(r.arrived))
}

func (pl *priorityLevel) finish(r *request) {
	pl.executing -= r.seats
	service := max(pl.now.Sub(r.dispatched).Seconds(), minimumService)
	if r.queue != nil {
		r.queue.executing -= r.seats
		// the queue pays for the work done, not the guess made at dispatch
		r.queue.virtualStart += float64(r.seats)*service - r.charged
	}
	if pl.meanService == nil {
		pl.meanService = map[int]float64{}
	}
	if mean, ok := pl.meanService[r.seats]; ok {
		pl.meanService[r.seats] = mean + serviceSmoothing*(service-mean)
	} else {
		pl.meanService[r.seats] = service
	}
	pl.observe(pl.now)
	metrics.executing(pl.name, r.flowSchema, -r.seats)
	pl.dispatch()
}
