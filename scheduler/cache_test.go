package scheduler

import (
	"testing"
	"time"
)

func TestAssumedPodCountsUntilForgottenOrConfirmed(t *testing.T) {
	c := newSchedulerCache()
	c.addNode(newNode(nodeSpec{name: "n1", cpu: "2"}))
	snap := newSnapshot()
	requested := func() int64 {
		c.updateSnapshot(snap)
		return snap.get("n1").requested.milliCPU
	}

	pod := testPod("p", "1", "")
	c.assume(newPodInfo(pod, nil), "n1")
	if got := requested(); got != 1000 {
		t.Fatalf("after assume: requested %dm, want 1000m", got)
	}
	c.forget(pod.UID)
	if got := requested(); got != 0 {
		t.Fatalf("after forget: requested %dm, want 0", got)
	}

	c.assume(newPodInfo(pod, nil), "n1")
	c.finishBinding(pod.UID, time.Now())
	bound := pod.DeepCopy()
	bound.Spec.NodeName = "n1"
	c.addPod(newPodInfo(bound, nil))
	if c.isAssumed(pod.UID) {
		t.Error("the informer's pod did not confirm the assumed one")
	}
	if got := requested(); got != 1000 {
		t.Fatalf("after confirmation: requested %dm, want 1000m (counted once)", got)
	}
	// forgetting a confirmed pod does nothing: it is bound
	c.forget(pod.UID)
	if got := requested(); got != 1000 {
		t.Fatalf("forget removed a bound pod: requested %dm", got)
	}
	c.removePod(pod.UID)
	if got := requested(); got != 0 {
		t.Fatalf("after removal: requested %dm, want 0", got)
	}
}

func TestAssumedPodExpiresOnlyLongAfterItsBinding(t *testing.T) {
	c := newSchedulerCache()
	c.addNode(newNode(nodeSpec{name: "n1"}))
	pod := testPod("p", "1", "")
	c.assume(newPodInfo(pod, nil), "n1")
	now := time.Now()
	c.expireAssumed(now.Add(24 * time.Hour))
	if !c.isAssumed(pod.UID) {
		t.Fatal("an assumed pod whose binding is still in flight expired")
	}
	c.finishBinding(pod.UID, now)
	c.expireAssumed(now.Add(assumedPodTTL - time.Second))
	if !c.isAssumed(pod.UID) {
		t.Fatal("expired before its TTL")
	}
	c.expireAssumed(now.Add(assumedPodTTL + time.Second))
	if c.has(pod.UID) {
		t.Fatal("still counted after its TTL")
	}
}

func TestSnapshotDoesNotChangeUnderTheCycle(t *testing.T) {
	c := newSchedulerCache()
	c.addNode(newNode(nodeSpec{name: "n1"}))
	snap := newSnapshot()
	c.updateSnapshot(snap)
	before := snap.get("n1")
	c.addPod(newPodInfo(testPod("p", "1", "", onNode("n1")), nil))
	if len(before.pods) != 0 || before.requested.milliCPU != 0 {
		t.Fatal("a cache change showed through an existing snapshot")
	}
	c.updateSnapshot(snap)
	if after := snap.get("n1"); len(after.pods) != 1 || after.requested.milliCPU != 1000 {
		t.Fatalf("the updated snapshot misses the pod: %d pods, %dm", len(after.pods), after.requested.milliCPU)
	}
}

func TestPodsOfADeletedNodeStayCountedUntilTheyGo(t *testing.T) {
	c := newSchedulerCache()
	c.addNode(newNode(nodeSpec{name: "n1"}))
	pod := testPod("p", "1", "", onNode("n1"))
	c.addPod(newPodInfo(pod, nil))
	c.removeNode("n1")
	snap := newSnapshot()
	c.updateSnapshot(snap)
	if len(snap.list) != 0 || snap.get("n1") != nil {
		t.Fatal("a deleted node is still offered")
	}
	c.addNode(newNode(nodeSpec{name: "n1"}))
	c.updateSnapshot(snap)
	if n := snap.get("n1"); n == nil || len(n.pods) != 1 {
		t.Fatal("the node came back without the pod still bound to it")
	}
	c.removeNode("n1")
	c.removePod(pod.UID)
	if nodes, pods := c.counts(); nodes != 0 || pods != 0 {
		t.Fatalf("left %d nodes and %d pods", nodes, pods)
	}
}
