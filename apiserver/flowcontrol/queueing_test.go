package flowcontrol

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/utils/ptr"
)

// oneLevel is a controller whose ordinary users share one queuing level of `seats` seats.
func oneLevel(seats int32, queues, handSize, queueLength int32) *Controller {
	level := &flowcontrolv1.PriorityLevelConfiguration{}
	level.Name = "users"
	level.Spec = flowcontrolv1.PriorityLevelConfigurationSpec{
		Type: flowcontrolv1.PriorityLevelEnablementLimited,
		Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
			NominalConcurrencyShares: ptr.To(seats),
			LimitResponse: flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeQueue,
				Queuing: &flowcontrolv1.QueuingConfiguration{Queues: queues, HandSize: handSize, QueueLengthLimit: queueLength}},
		},
	}
	schema := &flowcontrolv1.FlowSchema{}
	schema.Name = "users"
	schema.Spec = flowcontrolv1.FlowSchemaSpec{
		PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "users"},
		MatchingPrecedence:         500,
		DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
		Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
			Subjects:      []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindGroup, Group: &flowcontrolv1.GroupSubject{Name: "users"}}},
			ResourceRules: []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Namespaces: []string{"*"}, ClusterScope: true}},
		}},
	}
	// catch-all has 5 shares and exempt none: `seats` shares of the total give `seats` seats
	c := NewController(int(seats) + 5)
	c.Update([]*flowcontrolv1.FlowSchema{schema}, []*flowcontrolv1.PriorityLevelConfiguration{level})
	return c
}

func user(name string) RequestDigest {
	return RequestDigest{User: name, Groups: []string{"users"}, IsResourceRequest: true, Verb: "get", Resource: "configmaps", Namespace: "default"}
}

// admitAsync admits in the background and reports the ticket (or error) on the channel.
func admitAsync(ctx context.Context, c *Controller, d RequestDigest, seats int) chan result {
	ch := make(chan result, 1)
	go func() {
		t, err := c.Admit(ctx, d, seats)
		ch <- result{t, err}
	}()
	return ch
}

type result struct {
	t   *Ticket
	err error
}

// waitQueued waits until n requests wait in the level's queues.
func waitQueued(c *Controller, level string, n int) {
	for {
		c.mu.Lock()
		got := 0
		for _, q := range c.levels[level].queues {
			got += len(q.waiting)
		}
		c.mu.Unlock()
		if got >= n {
			return
		}
	}
}

func TestAFloodInOneFlowDoesNotStarveAnotherFlowOfTheSameLevel(t *testing.T) {
	const handSize = 8
	c := oneLevel(1, 64, handSize, 100)
	ctx := context.Background()
	running, err := c.Admit(ctx, user("flooder"), 1)
	if err != nil {
		t.Fatal(err)
	}
	flood := make(chan result, 50)
	for i := 0; i < 50; i++ {
		go func() {
			t, err := c.Admit(ctx, user("flooder"), 1)
			flood <- result{t, err}
		}()
	}
	waitQueued(c, "users", 50)
	victim := admitAsync(ctx, c, user("victim"), 1)
	waitQueued(c, "users", 51)

	// Free the one seat again and again and see who gets it. A flow spreads over at most its
	// hand of queues, and each queue gets its turn, so the victim waits at most one turn of
	// each of the flooder's queues, not behind all 50 of its requests.
	floodRanFirst := 0
	for {
		running.Finish()
		select {
		case r := <-victim:
			if r.err != nil {
				t.Fatalf("victim: %v", r.err)
			}
			running = r.t
		case r := <-flood:
			if r.err != nil {
				t.Fatalf("flood: %v", r.err)
			}
			floodRanFirst++
			running = r.t
			continue
		}
		break
	}
	if floodRanFirst > handSize {
		t.Errorf("%d of the flooder's requests ran before the victim's, want at most %d", floodRanFirst, handSize)
	}
	running.Finish()
	for i := floodRanFirst; i < 50; i++ {
		r := <-flood
		if r.err != nil {
			t.Fatalf("flood: %v", r.err)
		}
		r.t.Finish()
	}
}

func TestFullQueueRejects(t *testing.T) {
	// one queue of length 2 behind one seat
	c := oneLevel(1, 1, 1, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	running, err := c.Admit(ctx, user("a"), 1)
	if err != nil {
		t.Fatal(err)
	}
	queued := make(chan result, 2)
	for i := 0; i < 2; i++ {
		go func() {
			t, err := c.Admit(ctx, user("a"), 1)
			queued <- result{t, err}
		}()
	}
	waitQueued(c, "users", 2)
	if _, err := c.Admit(ctx, user("a"), 1); !errors.Is(err, ErrRejected) {
		t.Fatalf("third request beyond the queue length: %v", err)
	}
	running.Finish()
	for i := 0; i < 2; i++ {
		r := <-queued
		if r.err != nil {
			t.Fatal(r.err)
		}
		r.t.Finish()
	}
}

func TestQueuedRequestWhoseClientLeavesIsRejectedAndLeavesItsQueue(t *testing.T) {
	c := oneLevel(1, 1, 1, 10)
	running, _ := c.Admit(context.Background(), user("a"), 1)
	ctx, cancel := context.WithCancel(context.Background())
	ch := admitAsync(ctx, c, user("a"), 1)
	waitQueued(c, "users", 1)
	cancel()
	if r := <-ch; !errors.Is(r.err, ErrRejected) {
		t.Fatalf("cancelled while queued: %v", r.err)
	}
	running.Finish()
	// its seat is not lost: the next request runs at once
	next, err := c.Admit(context.Background(), user("b"), 1)
	if err != nil {
		t.Fatal(err)
	}
	next.Finish()
}

func TestExemptRequestsPassAFullServer(t *testing.T) {
	c := oneLevel(1, 1, 1, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	running, _ := c.Admit(ctx, user("a"), 1)
	queued := admitAsync(ctx, c, user("a"), 1)
	waitQueued(c, "users", 1)
	admin := RequestDigest{User: "admin", Groups: []string{"system:masters"}, IsResourceRequest: true, Verb: "delete", Resource: "pods", Namespace: "x"}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk, err := c.Admit(ctx, admin, 1)
			if err != nil || tk.PriorityLevel.Name != "exempt" {
				t.Errorf("admin: %v", err)
				return
			}
			tk.Finish()
		}()
	}
	wg.Wait()
	running.Finish()
	r := <-queued
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.t.Finish()
}

func TestWideListWaitsForEnoughSeats(t *testing.T) {
	c := oneLevel(4, 8, 2, 10)
	ctx := context.Background()
	small, _ := c.Admit(ctx, user("a"), 1)
	wide := admitAsync(ctx, c, user("b"), 4)
	waitQueued(c, "users", 1)
	small.Finish()
	r := <-wide
	if r.err != nil {
		t.Fatal(r.err)
	}
	// all four seats are its: the next request queues
	next := admitAsync(ctx, c, user("c"), 1)
	waitQueued(c, "users", 1)
	r.t.Finish()
	if n := <-next; n.err != nil {
		t.Fatal(n.err)
	} else {
		n.t.Finish()
	}
}

func TestRejectLevelRejectsBeyondItsSeats(t *testing.T) {
	c := oneLevel(1, 1, 1, 1)
	c.mu.Lock()
	cfg := c.levels["users"].config.DeepCopy()
	c.mu.Unlock()
	cfg.Spec.Limited.LimitResponse = flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject}
	c.mu.Lock()
	schemas := c.schemas
	c.mu.Unlock()
	c.Update(schemas, []*flowcontrolv1.PriorityLevelConfiguration{cfg})
	running, err := c.Admit(context.Background(), user("a"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer running.Finish()
	if _, err := c.Admit(context.Background(), user("b"), 1); !errors.Is(err, ErrRejected) {
		t.Fatalf("second request at a Reject level: %v", err)
	}
}

func TestAFlowWhoseRequestsHoldSeatsLongFallsBehindAFlowOfShortOnes(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	c := oneLevel(1, 64, 1, 100)
	c.now = clock.Now
	ctx := context.Background()
	// one LIST-like request holds the seat ten seconds; then twenty GET-like requests of
	// another user hold it a millisecond each: the first flow has had far more of the level
	long, err := c.Admit(ctx, user("lister"), 1)
	if err != nil {
		t.Fatal(err)
	}
	clock.Step(10 * time.Second)
	long.Finish()
	for range 20 {
		short, err := c.Admit(ctx, user("getter"), 1)
		if err != nil {
			t.Fatal(err)
		}
		clock.Step(time.Millisecond)
		short.Finish()
	}
	// both ask again while a third user holds the seat
	holder, err := c.Admit(ctx, user("holder"), 1)
	if err != nil {
		t.Fatal(err)
	}
	lister := admitAsync(ctx, c, user("lister"), 1)
	waitQueued(c, "users", 1)
	getter := admitAsync(ctx, c, user("getter"), 1)
	waitQueued(c, "users", 2)
	holder.Finish()
	var other chan result
	select {
	case r := <-getter:
		if r.err != nil {
			t.Fatal(r.err)
		}
		r.t.Finish()
		other = lister
	case r := <-lister:
		t.Error("the user whose one request held the seat 10 s went before the one whose 20 requests held it 20 ms")
		if r.err == nil {
			r.t.Finish()
		}
		other = getter
	}
	if r := <-other; r.err == nil {
		r.t.Finish()
	}
}
