package scheduler

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// schedulerOn builds a scheduler over a fake clientset whose snapshot is the test cluster's.
func schedulerOn(t *testing.T, tc *testCluster) *Scheduler {
	t.Helper()
	s, err := NewWithClient(fake.NewClientset(), Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s.cache, s.snap = tc.cache, tc.snap
	return s
}

func TestSelectVictimsKeepsTheMostImportantPodsThatCanStay(t *testing.T) {
	started := func(minutesAgo int) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			st := metav1.NewTime(time.Now().Add(-time.Duration(minutesAgo) * time.Minute))
			p.Status.StartTime = &st
		}
	}
	tc := newTestCluster([]nodeSpec{{name: "n", cpu: "4"}},
		testPod("p100", "1", "", onNode("n"), withPriority(100)),
		testPod("p200-old", "1", "", onNode("n"), withPriority(200), started(60)),
		testPod("p200-new", "1", "", onNode("n"), withPriority(200), started(5)),
		testPod("p900", "1", "", onNode("n"), withPriority(900)),
	)
	s := schedulerOn(t, tc)
	preemptor := newPodInfo(testPod("high", "2", "", withPriority(500)), nil)
	cs := newCycleState()
	s.cycleFilters = nil
	for _, f := range s.filters {
		if pf, ok := f.(preFilterPlugin); ok {
			if skip, _ := pf.preFilter(cs, preemptor, tc.snap); skip {
				continue
			}
		}
		s.cycleFilters = append(s.cycleFilters, f)
	}
	victims, st := s.selectVictimsOnNode(cs, preemptor, tc.node(t, "n").clone(), nil)
	if st != nil {
		t.Fatalf("no victims: %v", st.message())
	}
	// p900 is not lower than 500; of the rest, the older p200 is reprieved first and stays,
	// then neither the newer p200 nor p100 fits beside the preemptor
	var names []string
	for _, v := range victims {
		names = append(names, v.pod.Name)
	}
	if len(names) != 2 || names[0] != "p200-new" || names[1] != "p100" {
		t.Errorf("victims %v, want [p200-new p100], most important first", names)
	}

	// a pod only pods of higher priority stand in the way of finds no victims
	tiny := newTestCluster([]nodeSpec{{name: "n", cpu: "1"}}, testPod("vip", "1", "", onNode("n"), withPriority(1000)))
	s = schedulerOn(t, tiny)
	cs = newCycleState()
	if _, st := s.selectVictimsOnNode(cs, preemptor, tiny.node(t, "n").clone(), nil); st == nil || st.message() != noPreemptionVictims {
		t.Errorf("status %v, want %q", st, noPreemptionVictims)
	}
}

func TestPickOneNodeForPreemptionFollowsUpstreamsOrder(t *testing.T) {
	now := time.Now()
	victim := func(priority int32, minutesAgo int) *podInfo {
		st := metav1.NewTime(now.Add(-time.Duration(minutesAgo) * time.Minute))
		return newPodInfo(testPod("v", "", "", withPriority(priority), func(p *corev1.Pod) { p.Status.StartTime = &st }), nil)
	}
	cand := func(name string, victims ...*podInfo) preemptionCandidate {
		return preemptionCandidate{node: newNodeInfo(name), victims: victims}
	}
	tests := []struct {
		name       string
		candidates []preemptionCandidate
		want       string
	}{
		{"lowest highest-priority victim", []preemptionCandidate{
			cand("a", victim(300, 1)), cand("b", victim(200, 1), victim(100, 1), victim(100, 1)),
		}, "b"},
		{"then the lowest sum of priorities", []preemptionCandidate{
			cand("a", victim(200, 1), victim(150, 1)), cand("b", victim(200, 1), victim(100, 1)),
		}, "b"},
		// each priority is shifted by 2^31 in the sum, so that fewer victims weigh less even
		// when their priorities are 0 or negative
		{"fewer victims of priority 0", []preemptionCandidate{
			cand("a", victim(200, 1), victim(0, 1), victim(0, 1)), cand("b", victim(200, 1), victim(0, 1)),
		}, "b"},
		{"then the latest start among the most important victims", []preemptionCandidate{
			cand("a", victim(200, 60)), cand("b", victim(200, 5)),
		}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickOneNodeForPreemption(tt.candidates, now).node.name; got != tt.want {
				t.Errorf("picked %s, want %s", got, tt.want)
			}
		})
	}
}
