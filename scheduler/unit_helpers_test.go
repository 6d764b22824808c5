package scheduler

import (
	"fmt"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

var uidCounter atomic.Int64

// testPod builds a pod for unit tests: name, cpu and memory requests ("" for none), labels,
// then any changes.
func testPod(name, cpu, memory string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := newPod(podSpec{name: name, cpu: cpu, memory: memory})
	p.UID = types.UID(fmt.Sprintf("uid-%d", uidCounter.Add(1)))
	p.Spec.SchedulerName = DefaultSchedulerName
	for _, m := range mutate {
		m(p)
	}
	return p
}

func withLabels(kv ...string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func onNode(node string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Spec.NodeName = node } }

func withPriority(v int32) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Spec.Priority = &v } }

func inNamespace(ns string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Namespace = ns } }

// testCluster is a cache and its snapshot, for plugins that look at the whole cluster.
type testCluster struct {
	cache *schedulerCache
	snap  *snapshot
	// namespaces and their labels, for InterPodAffinity's namespace selectors
	namespaces map[string]labels.Set
}

// newTestCluster makes a cluster of the nodes, with the pods bound where their spec.nodeName
// says.
func newTestCluster(nodes []nodeSpec, pods ...*corev1.Pod) *testCluster {
	c := newSchedulerCache()
	for _, n := range nodes {
		c.addNode(newNode(n))
	}
	for _, p := range pods {
		c.addPod(newPodInfo(p, nil))
	}
	tc := &testCluster{cache: c, snap: newSnapshot()}
	c.updateSnapshot(tc.snap)
	return tc
}

func (tc *testCluster) node(t *testing.T, name string) *nodeInfo {
	t.Helper()
	n := tc.snap.get(name)
	if n == nil {
		t.Fatalf("no node %s", name)
	}
	return n
}

// filterAll runs the plugin's pre-filter (if any) and filter on every node, returning each
// node's verdict by name.
func (tc *testCluster) filterAll(t *testing.T, pl filterPlugin, pod *corev1.Pod) map[string]*status {
	t.Helper()
	pi := newPodInfo(pod, nil)
	cs := newCycleState()
	out := map[string]*status{}
	if pf, ok := pl.(preFilterPlugin); ok {
		skip, st := pf.preFilter(cs, pi, tc.snap)
		if st != nil || skip {
			for _, n := range tc.snap.list {
				out[n.name] = st
			}
			return out
		}
	}
	for _, n := range tc.snap.list {
		out[n.name] = pl.filter(cs, pi, n)
	}
	return out
}

// scoreAll runs a score plugin over every node and returns the normalized scores by name, or
// nil when the plugin takes no part.
func (tc *testCluster) scoreAll(pl scorePlugin, pod *corev1.Pod) map[string]int64 {
	pi := newPodInfo(pod, nil)
	cs := newCycleState()
	if !pl.prepare(cs, pi, tc.snap.list, tc.snap) {
		return nil
	}
	scores := make([]int64, len(tc.snap.list))
	for i, n := range tc.snap.list {
		scores[i] = pl.score(cs, pi, n)
	}
	pl.normalize(cs, pi, scores)
	out := map[string]int64{}
	for i, n := range tc.snap.list {
		out[n.name] = scores[i]
	}
	return out
}

// verdict renders a status for comparison: "" when the node fits, else the code and reasons.
func verdict(st *status) string {
	if st == nil {
		return ""
	}
	c := map[code]string{unschedulable: "Unschedulable", unresolvable: "UnschedulableAndUnresolvable", internalError: "Error"}[st.code]
	return c + ": " + st.message()
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
