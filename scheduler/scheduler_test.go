package scheduler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestSchedulePodBindsItAndEmitsScheduled(t *testing.T) {
	srv := apiservertest.Start(t)
	createNode(t, srv.Client, nodeSpec{name: "node1"})
	startScheduler(t, srv, Options{})
	createPod(t, srv.Client, podSpec{name: "x", cpu: "100m", memory: "64Mi"})

	pod := waitBound(t, srv.Client, "default", "x")
	if pod.Spec.NodeName != "node1" {
		t.Fatalf("bound to %q, want node1", pod.Spec.NodeName)
	}
	c := podScheduledCondition(pod)
	if c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("PodScheduled condition = %+v, want True (set by the binding)", c)
	}
	ev := waitForEvent(t, srv, "default", "x", "Scheduled")
	if want := "Successfully assigned default/x to node1"; ev.Note != want {
		t.Errorf("Scheduled note = %q, want %q", ev.Note, want)
	}
	if ev.ReportingController != "default-scheduler" || ev.Action != "Binding" || ev.Type != corev1.EventTypeNormal {
		t.Errorf("Scheduled event: controller %q action %q type %q, want default-scheduler, Binding, Normal",
			ev.ReportingController, ev.Action, ev.Type)
	}
	if !strings.HasPrefix(ev.ReportingInstance, "default-scheduler-") {
		t.Errorf("reportingInstance = %q, want default-scheduler-<host>", ev.ReportingInstance)
	}
}

// waitForEvent waits for an events.k8s.io/v1 Event with reason about the pod and returns the
// latest one.
func waitForEvent(t *testing.T, srv *apiservertest.Server, namespace, pod, reason string) *eventsv1.Event {
	t.Helper()
	var found *eventsv1.Event
	pollFor(t, fmt.Sprintf("a %s event for %s/%s", reason, namespace, pod), func() (bool, error) {
		list, err := srv.Client.EventsV1().Events(namespace).List(context.Background(), metav1.ListOptions{
			FieldSelector: fields.Set{"regarding.name": pod, "reason": reason}.String(),
		})
		if err != nil {
			// not every server filters events by these fields; filter here instead
			list, err = srv.Client.EventsV1().Events(namespace).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return false, err
			}
		}
		for i := range list.Items {
			e := &list.Items[i]
			if e.Regarding.Name == pod && e.Reason == reason {
				if found == nil || e.CreationTimestamp.After(found.CreationTimestamp.Time) || e.Series != nil {
					found = e
				}
			}
		}
		return found != nil, nil
	})
	return found
}

func TestRacingPodsNeverOvercommitNodes(t *testing.T) {
	srv := apiservertest.Start(t)
	const nodes, pods = 10, 500
	// each node takes 40 pods of 100m by cpu: 400 of the 500 fit
	for i := 0; i < nodes; i++ {
		createNode(t, srv.Client, nodeSpec{name: fmt.Sprintf("node-%d", i), cpu: "4", memory: "64Gi", pods: 110})
	}
	startScheduler(t, srv, Options{})

	var wg sync.WaitGroup
	names := podNames("racer", pods)
	sem := make(chan struct{}, 32)
	for _, name := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			pod := newPod(podSpec{name: name, cpu: "100m", memory: "100Mi"})
			if _, err := srv.Client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
				t.Errorf("create %s: %v", name, err)
			}
		})
	}
	wg.Wait()

	var bound map[string]int
	var lastCounts string
	defer func() { t.Logf("last: %s", lastCounts) }()
	pollFor(t, "400 pods bound and 100 marked unschedulable", func() (bool, error) {
		list, err := srv.Client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		bound = map[string]int{}
		nBound, nUnschedulable := 0, 0
		for i := range list.Items {
			p := &list.Items[i]
			if p.Spec.NodeName != "" {
				bound[p.Spec.NodeName]++
				nBound++
			} else if c := podScheduledCondition(p); c != nil && c.Reason == corev1.PodReasonUnschedulable {
				nUnschedulable++
			}
		}
		if nBound+nUnschedulable == 500 && (nBound != 400 || nUnschedulable != 100) {
			return false, fmt.Errorf("%d bound, %d unschedulable", nBound, nUnschedulable)
		}
		lastCounts = fmt.Sprintf("%d bound, %d unschedulable", nBound, nUnschedulable)
		return nBound == 400 && nUnschedulable == 100, nil
	})
	for node, n := range bound {
		if n > 40 {
			t.Errorf("node %s holds %d pods of 100m on 4 cpu: overcommitted", node, n)
		}
	}
	// the events trail the bindings but all arrive
	pollFor(t, "a Scheduled event for every bound pod", func() (bool, error) {
		list, err := srv.Client.EventsV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		n := 0
		for _, e := range list.Items {
			if e.Reason == "Scheduled" {
				n++
			}
		}
		if n != 400 {
			return false, fmt.Errorf("%d Scheduled events", n)
		}
		return true, nil
	})
}
