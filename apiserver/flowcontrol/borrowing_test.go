package flowcontrol

import (
	"context"
	"sync"
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/utils/ptr"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Step(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// queuingLevel is a queuing level for the group of its name.
func queuingLevel(name string, shares int32, lendable, borrowing *int32) (*flowcontrolv1.FlowSchema, *flowcontrolv1.PriorityLevelConfiguration) {
	level := &flowcontrolv1.PriorityLevelConfiguration{}
	level.Name = name
	level.Spec = flowcontrolv1.PriorityLevelConfigurationSpec{
		Type: flowcontrolv1.PriorityLevelEnablementLimited,
		Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
			NominalConcurrencyShares: ptr.To(shares), LendablePercent: lendable, BorrowingLimitPercent: borrowing,
			LimitResponse: flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeQueue,
				Queuing: &flowcontrolv1.QueuingConfiguration{Queues: 64, HandSize: 8, QueueLengthLimit: 50}},
		},
	}
	schema := &flowcontrolv1.FlowSchema{}
	schema.Name = name
	schema.Spec = flowcontrolv1.FlowSchemaSpec{
		PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: name},
		MatchingPrecedence:         500,
		DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
		Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
			Subjects:      []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindGroup, Group: &flowcontrolv1.GroupSubject{Name: name}}},
			ResourceRules: []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Namespaces: []string{"*"}, ClusterScope: true}},
		}},
	}
	return schema, level
}

// lenderAndBorrower is a server of 45 seats: a "lender" level of nominally 30 seats that may
// lend `lendable` percent of them, a "busy" one of 10 that may borrow `borrowing` percent
// more (nil: any), and the catch-all's 5.
func lenderAndBorrower(clock *fakeClock, lendable, borrowing *int32) *Controller {
	c := NewController(45)
	c.now = clock.Now
	ls, ll := queuingLevel("lender", 30, lendable, nil)
	bs, bl := queuingLevel("busy", 10, ptr.To[int32](0), borrowing)
	c.Update([]*flowcontrolv1.FlowSchema{ls, bs}, []*flowcontrolv1.PriorityLevelConfiguration{ll, bl})
	return c
}

// keepBusy has 40 users of the busy level ask for a seat each and returns how many run.
func keepBusy(t *testing.T, c *Controller) (running chan *Ticket, done func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	running = make(chan *Ticket, 40)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk, err := c.Admit(ctx, RequestDigest{User: "u" + string(rune('a'+i)), Groups: []string{"busy"}, IsResourceRequest: true,
				Verb: "get", Resource: "configmaps", Namespace: "default"}, 1)
			if err == nil {
				running <- tk
			}
		}()
	}
	return running, func() {
		cancel()
		wg.Wait()
		close(running)
		for tk := range running {
			tk.Finish()
		}
	}
}

// waitRunning waits until all 40 of the busy level's requests have arrived and checks that
// n of them run.
func waitRunning(t *testing.T, c *Controller, level string, n int) {
	t.Helper()
	for {
		c.mu.Lock()
		executing, waiting := c.levels[level].executing, c.levels[level].waiting
		c.mu.Unlock()
		if executing+waiting == 40 {
			if executing != n {
				t.Fatalf("%s: %d executing, %d waiting, want %d executing", level, executing, waiting, n)
			}
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func TestABusyLevelBorrowsTheSeatsAnIdleLevelLends(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	c := lenderAndBorrower(clock, ptr.To[int32](50), nil)
	if current, nominal, _ := c.Limits("busy"); nominal != 10 {
		t.Fatalf("busy: nominal %d (now %d), want 10", nominal, current)
	}
	// a period in which the busy level wants 40 seats and the lender none
	c.AdjustBorrowing()
	limit, _, _ := c.Limits("busy")
	_, finish := keepBusy(t, c)
	defer finish()
	waitRunning(t, c, "busy", limit)
	clock.Step(BorrowingPeriod)
	c.AdjustBorrowing()

	// the lender keeps the half it may not lend, the catch-all its 5: the busy level
	// borrows the rest, and runs that many of its requests at once
	busy, _, _ := c.Limits("busy")
	lender, _, _ := c.Limits("lender")
	if busy != 25 || lender != 15 {
		t.Errorf("after a busy period: busy %d, lender %d seats; want 25 and 15", busy, lender)
	}
	waitRunning(t, c, "busy", busy)
}

func TestABorrowingLimitCapsWhatALevelBorrows(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	c := lenderAndBorrower(clock, ptr.To[int32](50), ptr.To[int32](50))
	limit, _, _ := c.Limits("busy")
	_, finish := keepBusy(t, c)
	defer finish()
	waitRunning(t, c, "busy", limit)
	clock.Step(BorrowingPeriod)
	c.AdjustBorrowing()
	if busy, _, _ := c.Limits("busy"); busy != 15 {
		t.Errorf("busy may borrow half its 10 seats: has %d", busy)
	}
}

func TestALevelThatLendsNothingKeepsItsSeats(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	c := lenderAndBorrower(clock, nil, nil)
	limit, _, _ := c.Limits("busy")
	_, finish := keepBusy(t, c)
	defer finish()
	waitRunning(t, c, "busy", limit)
	clock.Step(BorrowingPeriod)
	c.AdjustBorrowing()
	busy, _, _ := c.Limits("busy")
	lender, _, _ := c.Limits("lender")
	if busy != 10 || lender != 30 {
		t.Errorf("busy %d, lender %d seats; want 10 and 30", busy, lender)
	}
}

func TestFairAllocationSharesInProportionWithinBounds(t *testing.T) {
	got := fairAllocation(45, []allocation{{lower: 15, upper: 75, target: 15}, {lower: 10, upper: 55, target: 40}, {lower: 5, upper: 50, target: 5}})
	want := []float64{15, 25, 5}
	for i := range want {
		if d := got[i] - want[i]; d > 0.01 || d < -0.01 {
			t.Errorf("allocation %v, want %v", got, want)
			break
		}
	}
}

func TestRetryAfterRisesWithRepeatedRejectionsAndFallsBack(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	r := newRejections(clock.Now)
	if got := r.retryAfter("l"); got != 1 {
		t.Fatalf("before any rejection: %d", got)
	}
	// three rejections a second, second after second: the value doubles, at most once per
	// its own length, up to 32
	var seen []int64
	for range 120 {
		for range 100 {
			r.record("l")
		}
		clock.Step(time.Second)
		r.record("l")
		if v := r.retryAfter("l"); len(seen) == 0 || seen[len(seen)-1] != v {
			seen = append(seen, v)
		}
	}
	want := []int64{2, 4, 8, 16, 32}
	if len(seen) != len(want) {
		t.Fatalf("retry-after went %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("retry-after went %v, want %v", seen, want)
		}
	}
	// quiet seconds bring it down one at a time
	clock.Step(time.Minute)
	r.record("l")
	if v := r.retryAfter("l"); v != 31 {
		t.Errorf("after a quiet minute: %d, want 31", v)
	}
	if other := r.retryAfter("other"); other != 1 {
		t.Errorf("another level: %d", other)
	}
}
