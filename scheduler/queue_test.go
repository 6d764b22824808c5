package scheduler

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// fakeClock is a settable clock for the queue.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time       { return c.t }
func (c *fakeClock) step(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock            { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func popNow(t *testing.T, q *schedulingQueue) *queuedPod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	qp, err := q.pop(ctx)
	if err != nil {
		t.Fatalf("pop: %v", err)
	}
	return qp
}

func TestQueuePopsByPriorityThenAge(t *testing.T) {
	clock := newFakeClock()
	q := newSchedulingQueue(clock.now)
	for _, p := range []struct {
		name     string
		priority int32
	}{{"low-old", 0}, {"high-old", 100}, {"low-new", 0}, {"high-new", 100}} {
		q.add(newPodInfo(testPod(p.name, "", "", withPriority(p.priority)), nil))
		clock.step(time.Second)
	}
	var order []string
	for i := 0; i < 4; i++ {
		order = append(order, popNow(t, q).info.pod.Name)
	}
	want := []string{"high-old", "high-new", "low-old", "low-new"}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("popped %v, want %v", order, want)
		}
	}
}

func TestBackoffDoublesFromOneSecondToTen(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := backoffFor(i + 1); got != w {
			t.Errorf("backoff after attempt %d = %v, want %v", i+1, got, w)
		}
	}
}

func TestUnschedulablePodWaitsForAHelpfulEventThenItsBackoff(t *testing.T) {
	clock := newFakeClock()
	q := newSchedulingQueue(clock.now)
	q.add(newPodInfo(testPod("p", "", ""), nil))
	qp := popNow(t, q)
	q.done(qp, outcomeUnschedulable, map[string]struct{}{nodeAffinityName: {}})
	if a, b, u, _ := q.lengths(); a != 0 || b != 0 || u != 1 {
		t.Fatalf("after failing: active %d backoff %d unschedulable %d, want it unschedulable", a, b, u)
	}

	// a pod deletion cannot help node affinity
	q.moveUnschedulable(eventAssignedPodDeleted)
	if _, _, u, _ := q.lengths(); u != 1 {
		t.Fatal("a bound pod's deletion moved a pod that only node affinity rejected")
	}
	// a node change can; the pod's 1 s backoff has not passed, so it waits in backoff
	q.moveUnschedulable(eventNodeChanged)
	if a, b, _, _ := q.lengths(); a != 0 || b != 1 {
		t.Fatalf("after a node change: active %d backoff %d, want it in backoff", a, b)
	}
	clock.step(999 * time.Millisecond)
	q.flush()
	if a, _, _, _ := q.lengths(); a != 0 {
		t.Fatal("left backoff early")
	}
	clock.step(time.Millisecond)
	q.flush()
	if a, b, _, _ := q.lengths(); a != 1 || b != 0 {
		t.Fatalf("after its backoff: active %d backoff %d, want it active", a, b)
	}

	// the second failure backs off 2 s
	qp = popNow(t, q)
	q.done(qp, outcomeUnschedulable, map[string]struct{}{nodeResourcesFitName: {}})
	clock.step(1500 * time.Millisecond)
	q.moveUnschedulable(eventAssignedPodDeleted)
	q.flush()
	if a, b, _, _ := q.lengths(); a != 0 || b != 1 {
		t.Fatalf("1.5 s after the second failure: active %d backoff %d, want it in backoff", a, b)
	}
	clock.step(500 * time.Millisecond)
	q.flush()
	if a, _, _, _ := q.lengths(); a != 1 {
		t.Fatal("not active 2 s after the second failure")
	}
}

func TestEventDuringAnAttemptRetriesThePodInsteadOfParkingIt(t *testing.T) {
	clock := newFakeClock()
	q := newSchedulingQueue(clock.now)
	q.add(newPodInfo(testPod("p", "", ""), nil))
	qp := popNow(t, q)
	// a node arrives while the pod is being tried: it may fit there
	q.moveUnschedulable(eventNodeAdded)
	q.done(qp, outcomeUnschedulable, map[string]struct{}{nodeResourcesFitName: {}})
	if _, b, u, _ := q.lengths(); b != 1 || u != 0 {
		t.Fatalf("backoff %d unschedulable %d: want it retried after backoff, not parked", b, u)
	}
}

func TestMayHelpIsConservativePerPlugin(t *testing.T) {
	plugins := func(names ...string) map[string]struct{} {
		m := map[string]struct{}{}
		for _, n := range names {
			m[n] = struct{}{}
		}
		return m
	}
	tests := []struct {
		event      clusterEvent
		rejectedBy map[string]struct{}
		want       bool
	}{
		{eventNodeAdded, plugins(taintTolerationName), true},
		{eventNodeAdded, plugins(), true},
		{eventNodeChanged, plugins(nodeAffinityName), true},
		{eventNodeDeleted, plugins(nodeResourcesFitName), false},
		{eventNodeDeleted, plugins(podTopologySpreadName), true},
		{eventAssignedPodDeleted, plugins(nodeResourcesFitName), true},
		{eventAssignedPodDeleted, plugins(nodePortsName), true},
		{eventAssignedPodDeleted, plugins(taintTolerationName), false},
		{eventAssignedPodDeleted, plugins(), false},
		{eventAssignedPodAdded, plugins(nodeResourcesFitName), false},
		{eventAssignedPodAdded, plugins(interPodAffinityName), true},
		{eventAssignedPodChanged, plugins(podTopologySpreadName, nodeAffinityName), true},
	}
	for _, tt := range tests {
		if got := tt.event.mayHelp(tt.rejectedBy); got != tt.want {
			t.Errorf("event %d, rejected by %v: %v, want %v", tt.event, tt.rejectedBy, got, tt.want)
		}
	}
}

func TestGatedPodWaitsUntilItsGatesAreRemoved(t *testing.T) {
	q := newSchedulingQueue(newFakeClock().now)
	gated := testPod("p", "", "", func(p *corev1.Pod) {
		p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "wait"}}
	})
	q.add(newPodInfo(gated, nil))
	q.moveUnschedulable(eventNodeAdded)
	if a, _, _, g := q.lengths(); a != 0 || g != 1 {
		t.Fatalf("active %d gated %d, want the pod gated", a, g)
	}
	open := gated.DeepCopy()
	open.Spec.SchedulingGates = nil
	q.update(newPodInfo(open, nil))
	if a, _, _, g := q.lengths(); a != 1 || g != 0 {
		t.Fatalf("active %d gated %d after the gates went, want it active", a, g)
	}
}

func TestPodDeletedDuringItsAttemptIsNotRequeued(t *testing.T) {
	q := newSchedulingQueue(newFakeClock().now)
	pod := testPod("p", "", "")
	q.add(newPodInfo(pod, nil))
	qp := popNow(t, q)
	q.delete(qp.key())
	q.done(qp, outcomeUnschedulable, nil)
	if a, b, u, g := q.lengths(); a+b+u+g != 0 {
		t.Fatalf("a deleted pod came back: %d %d %d %d", a, b, u, g)
	}
}

func TestPodUpdatedWhileUnschedulableIsRetriedIfItsSpecChanged(t *testing.T) {
	clock := newFakeClock()
	q := newSchedulingQueue(clock.now)
	pod := testPod("p", "", "")
	q.add(newPodInfo(pod, nil))
	q.done(popNow(t, q), outcomeUnschedulable, map[string]struct{}{taintTolerationName: {}})

	// our own condition write changes only the status: the pod stays parked
	withCondition := pod.DeepCopy()
	withCondition.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse}}
	q.update(newPodInfo(withCondition, nil))
	if _, _, u, _ := q.lengths(); u != 1 {
		t.Fatal("a status-only update moved the pod")
	}
	// a toleration added may let it fit
	tolerant := withCondition.DeepCopy()
	tolerant.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	clock.step(2 * time.Second)
	q.update(newPodInfo(tolerant, nil))
	if a, _, _, _ := q.lengths(); a != 1 {
		t.Fatal("a spec change did not retry the pod")
	}
}

func TestNominatorTracksPreemptionNominations(t *testing.T) {
	q := newSchedulingQueue(newFakeClock().now)
	pi := newPodInfo(testPod("p", "", ""), nil)
	q.nominate(pi, "n1")
	if got := q.nominatedNode(pi); got != "n1" {
		t.Fatalf("nominated %q, want n1", got)
	}
	if noms := q.nominatedPods(); len(noms["n1"]) != 1 {
		t.Fatalf("nominated pods %v", noms)
	}
	q.delete(pi.key())
	if noms := q.nominatedPods(); noms != nil {
		t.Fatalf("a deleted pod stayed nominated: %v", noms)
	}
	// a nomination in the pod's status counts too
	withStatus := testPod("q", "", "")
	withStatus.Status.NominatedNodeName = "n2"
	q.add(newPodInfo(withStatus, nil))
	if noms := q.nominatedPods(); len(noms["n2"]) != 1 {
		t.Fatalf("status nomination not tracked: %v", noms)
	}
}

func TestPodRecreatedDuringTheOldOnesAttemptIsQueued(t *testing.T) {
	q := newSchedulingQueue(newFakeClock().now)
	q.add(newPodInfo(testPod("p", "", ""), nil))
	old := popNow(t, q)
	q.delete(old.key())
	q.add(newPodInfo(testPod("p", "", ""), nil)) // same name, new UID
	q.done(old, outcomeUnschedulable, nil)
	if a, _, _, _ := q.lengths(); a != 1 {
		t.Fatal("the new pod is not queued")
	}
	if qp := popNow(t, q); qp.info.pod.UID == old.info.pod.UID {
		t.Fatal("the old pod came back")
	}
}
