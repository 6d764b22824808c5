package controllers

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func TestSlowStartBatchGrowsBatchesAndStopsAtTheFirstFailingOne(t *testing.T) {
	var calls atomic.Int32
	n, err := SlowStartBatch(10, 1, func() error { calls.Add(1); return nil })
	if n != 10 || err != nil || calls.Load() != 10 {
		t.Errorf("all succeed: %d successes, %v, %d calls", n, err, calls.Load())
	}
	calls.Store(0)
	boom := errors.New("refused")
	n, err = SlowStartBatch(100, 1, func() error {
		if calls.Add(1) > 5 {
			return boom
		}
		return nil
	})
	// batches 1, 2 succeed (3 calls); the batch of 4 has 2 successes: 7 calls, 5 successes
	if n != 5 || !errors.Is(err, boom) || calls.Load() != 7 {
		t.Errorf("failing: %d successes, %v, %d calls; want 5, refused, 7", n, err, calls.Load())
	}
}

func TestExpectationsWaitForObservedCreationsAndDeletions(t *testing.T) {
	e := NewExpectations()
	if !e.Satisfied("ns/rs") {
		t.Error("no expectations: not satisfied")
	}
	e.ExpectCreations("ns/rs", 2)
	e.CreationObserved("ns/rs")
	if e.Satisfied("ns/rs") {
		t.Error("one of two creations seen: satisfied")
	}
	e.CreationObserved("ns/rs")
	if !e.Satisfied("ns/rs") {
		t.Error("both creations seen: not satisfied")
	}
	e.ExpectDeletions("ns/rs", []string{"ns/a", "ns/b"})
	e.DeletionObserved("ns/rs", "ns/other") // not ours: does not count
	e.DeletionObserved("ns/rs", "ns/a")
	e.DeletionObserved("ns/rs", "ns/a") // twice: counts once
	if e.Satisfied("ns/rs") {
		t.Error("one of two deletions seen: satisfied")
	}
	e.DeletionObserved("ns/rs", "ns/b")
	if !e.Satisfied("ns/rs") {
		t.Error("both deletions seen: not satisfied")
	}
	e.ExpectCreations("ns/stale", 3)
	e.now = func() time.Time { return time.Now().Add(ExpectationsTimeout + time.Second) }
	if !e.Satisfied("ns/stale") {
		t.Error("expired expectations still block")
	}
}

func TestWorkersRetryFailuresAndRequeueLater(t *testing.T) {
	q := NewQueue("test", Reporting{Metrics: NewMetrics()})
	var attempts atomic.Int32
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Workers{Name: "test", Queue: q, Metrics: NewMetrics(), Sync: func(_ context.Context, key string) error {
		switch attempts.Add(1) {
		case 1:
			return errors.New("transient")
		case 2:
			return RequeueAfter(10*time.Millisecond, errors.New("not yet"))
		case 3:
			close(done)
		}
		return nil
	}}.Run(ctx, 2)
	q.Add("k")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d attempts, want a retry after an error and after a requeue", attempts.Load())
	}
}

func TestRefManagerFollowsControllerRefRules(t *testing.T) {
	owner := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "ns", UID: "owner"}}
	kind := schema.GroupVersionKind{Version: "v1", Kind: "ReplicationController"}
	pod := func(name string, lbl string, controller types.UID) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name), Labels: map[string]string{"app": lbl}}}
		if controller != "" {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "X", Name: "x", UID: controller, Controller: ptr.To(true)}}
		}
		return p
	}
	pods := []*corev1.Pod{
		pod("ours", "web", "owner"),
		pod("ours-unmatched", "db", "owner"),
		pod("orphan", "web", ""),
		pod("orphan-unmatched", "db", ""),
		pod("theirs", "web", "someone"),
	}
	deleting := pod("orphan-deleting", "web", "")
	deleting.DeletionTimestamp = ptr.To(metav1.Now())
	pods = append(pods, deleting)
	client := fake.NewClientset(pods[0], pods[1], pods[2], pods[3], pods[4], pods[5])
	m := NewRefManager(owner, kind, labels.SelectorFromSet(labels.Set{"app": "web"}), func(context.Context) (metav1.Object, error) { return owner, nil })
	claimed, err := m.ClaimPods(context.Background(), client, pods)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range claimed {
		got[p.Name] = true
	}
	if len(got) != 2 || !got["ours"] || !got["orphan"] {
		t.Errorf("claimed %v, want ours and the adopted orphan", got)
	}
	patched := map[string]bool{}
	for _, a := range client.Actions() {
		if a.GetVerb() == "patch" {
			patched[a.(clienttesting.PatchAction).GetName()] = true
		}
	}
	if len(patched) != 2 || !patched["orphan"] || !patched["ours-unmatched"] {
		t.Errorf("patched %v, want the orphan adopted and ours-unmatched released", patched)
	}

	// a controller being deleted adopts nothing
	fresh := owner.DeepCopy()
	fresh.DeletionTimestamp = ptr.To(metav1.Now())
	m = NewRefManager(owner, kind, labels.SelectorFromSet(labels.Set{"app": "web"}), func(context.Context) (metav1.Object, error) { return fresh, nil })
	if _, err := m.ClaimPods(context.Background(), client, []*corev1.Pod{pod("late-orphan", "web", "")}); err == nil {
		t.Error("adopted while the controller is being deleted")
	}
}
