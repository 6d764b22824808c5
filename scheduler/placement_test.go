package scheduler

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// expectPlacement creates pods one at a time and checks each lands on its node.
func expectPlacement(t *testing.T, srv *apiservertest.Server, cases []struct {
	pod  podSpec
	want string
}) {
	t.Helper()
	for _, c := range cases {
		createPod(t, srv.Client, c.pod)
		got := waitBound(t, srv.Client, "default", c.pod.name).Spec.NodeName
		if got != c.want {
			t.Errorf("pod %s went to %s, want %s", c.pod.name, got, c.want)
		}
	}
}

func TestTaintsKeepPodsAwayUnlessTolerated(t *testing.T) {
	srv := apiservertest.Start(t)
	createNode(t, srv.Client, nodeSpec{name: "gpu", labels: map[string]string{"kind": "gpu"},
		taints: []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}})
	createNode(t, srv.Client, nodeSpec{name: "not-ready", labels: map[string]string{"kind": "gpu"},
		taints: []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}}})
	createNode(t, srv.Client, nodeSpec{name: "cordoned", labels: map[string]string{"kind": "gpu"}, unschedulable: true})
	createNode(t, srv.Client, nodeSpec{name: "plain"})
	startScheduler(t, srv, Options{})

	tolerateGPU := func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{"kind": "gpu"}
		p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	}
	tolerateEverything := func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{"kind": "gpu"}
		p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	}
	expectPlacement(t, srv, []struct {
		pod  podSpec
		want string
	}{
		{podSpec{name: "intolerant", cpu: "100m"}, "plain"},
		{podSpec{name: "gpu-job", cpu: "100m", mutate: tolerateGPU}, "gpu"},
	})
	// tolerating every taint (Exists with no key) lets a pod onto tainted and cordoned nodes alike
	createPod(t, srv.Client, podSpec{name: "daemon", cpu: "100m", mutate: tolerateEverything})
	if got := waitBound(t, srv.Client, "default", "daemon").Spec.NodeName; got == "plain" {
		t.Errorf("daemon went to %s, want a kind=gpu node", got)
	}

	createPod(t, srv.Client, podSpec{name: "wants-gpu", cpu: "100m", mutate: func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{"kind": "gpu"}
	}})
	pod := waitUnschedulable(t, srv.Client, "default", "wants-gpu")
	want := "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, " +
		"1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, " +
		"1 node(s) were unschedulable. no new claims to deallocate, preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
	if got := podScheduledCondition(pod).Message; got != want {
		t.Errorf("message:\n got %q\nwant %q", got, want)
	}
}

func TestNodeSelectorAndRequiredAffinityHonourEveryOperator(t *testing.T) {
	srv := apiservertest.Start(t)
	createNode(t, srv.Client, nodeSpec{name: "a3", labels: map[string]string{"zone": "a", "gen": "3"}})
	createNode(t, srv.Client, nodeSpec{name: "b5", labels: map[string]string{"zone": "b", "gen": "5", "ssd": "true"}})
	createNode(t, srv.Client, nodeSpec{name: "c7", labels: map[string]string{"zone": "c", "gen": "7"}})
	startScheduler(t, srv, Options{})

	require := func(terms ...corev1.NodeSelectorTerm) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
			}}
		}
	}
	expr := func(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
	}
	expectPlacement(t, srv, []struct {
		pod  podSpec
		want string
	}{
		{podSpec{name: "selector", mutate: func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "c"} }}, "c7"},
		{podSpec{name: "in", mutate: require(expr("zone", corev1.NodeSelectorOpIn, "b", "x"))}, "b5"},
		{podSpec{name: "exists", mutate: require(expr("ssd", corev1.NodeSelectorOpExists))}, "b5"},
		{podSpec{name: "gt", mutate: require(expr("gen", corev1.NodeSelectorOpGt, "6"))}, "c7"},
		{podSpec{name: "lt", mutate: require(expr("gen", corev1.NodeSelectorOpLt, "4"))}, "a3"},
		// terms are ORed, expressions within a term ANDed
		{podSpec{name: "notin-and-doesnotexist", mutate: require(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"a"}},
			{Key: "ssd", Operator: corev1.NodeSelectorOpDoesNotExist},
		}})}, "c7"},
		{podSpec{name: "or", mutate: require(expr("zone", corev1.NodeSelectorOpIn, "nowhere"), expr("gen", corev1.NodeSelectorOpIn, "3"))}, "a3"},
		{podSpec{name: "field", mutate: require(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"b5"}},
		}})}, "b5"},
	})

	createPod(t, srv.Client, podSpec{name: "nowhere", mutate: func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{"zone": "c"}
		require(expr("gen", corev1.NodeSelectorOpLt, "7"))(p)
	}})
	pod := waitUnschedulable(t, srv.Client, "default", "nowhere")
	want := "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. " +
		"no new claims to deallocate, preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
	if got := podScheduledCondition(pod).Message; got != want {
		t.Errorf("message:\n got %q\nwant %q", got, want)
	}
}

func TestPreferredAffinityAndTaintsSteerScoring(t *testing.T) {
	srv := apiservertest.Start(t)
	createNode(t, srv.Client, nodeSpec{name: "preferred", labels: map[string]string{"disk": "ssd"}})
	createNode(t, srv.Client, nodeSpec{name: "avoided", labels: map[string]string{"disk": "ssd"},
		taints: []corev1.Taint{{Key: "maintenance", Effect: corev1.TaintEffectPreferNoSchedule}}})
	createNode(t, srv.Client, nodeSpec{name: "other"})
	startScheduler(t, srv, Options{})
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("likes-ssd-%d", i)
		createPod(t, srv.Client, podSpec{name: name, cpu: "10m", mutate: func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
					Weight: 100, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
						{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"ssd"}}}},
				}},
			}}
		}})
		if got := waitBound(t, srv.Client, "default", name).Spec.NodeName; got != "preferred" {
			t.Errorf("pod %s went to %s, want preferred (ssd and no PreferNoSchedule taint)", name, got)
		}
	}
}

func TestPodAffinityAndAntiAffinity(t *testing.T) {
	srv := apiservertest.Start(t)
	for _, n := range []string{"n1", "n2", "n3"} {
		createNode(t, srv.Client, nodeSpec{name: n})
	}
	startScheduler(t, srv, Options{})
	antiWeb := func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				TopologyKey:   corev1.LabelHostname,
			}},
		}}
	}
	seen, nodeOf := map[string]string{}, map[string]string{}
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("web-%d", i)
		createPod(t, srv.Client, podSpec{name: name, labels: map[string]string{"app": "web", "idx": fmt.Sprint(i)}, mutate: antiWeb})
		node := waitBound(t, srv.Client, "default", name).Spec.NodeName
		if other, dup := seen[node]; dup {
			t.Errorf("%s and %s share node %s despite required anti-affinity", other, name, node)
		}
		seen[node] = name
		nodeOf[name] = node
	}
	createPod(t, srv.Client, podSpec{name: "web-3", labels: map[string]string{"app": "web"}, mutate: antiWeb})
	pod := waitUnschedulable(t, srv.Client, "default", "web-3")
	want := "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. " +
		"no new claims to deallocate, preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
	if got := podScheduledCondition(pod).Message; got != want {
		t.Errorf("message:\n got %q\nwant %q", got, want)
	}

	// a pod without anti-affinity of its own must respect the existing pods' anti-affinity
	createPod(t, srv.Client, podSpec{name: "web-plain", labels: map[string]string{"app": "web"}})
	pod = waitUnschedulable(t, srv.Client, "default", "web-plain")
	want = "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules. " +
		"no new claims to deallocate, preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
	if got := podScheduledCondition(pod).Message; got != want {
		t.Errorf("message:\n got %q\nwant %q", got, want)
	}

	// required affinity follows the pod it selects
	createPod(t, srv.Client, podSpec{name: "cache", cpu: "10m", mutate: func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "idx": "1"}},
				TopologyKey:   corev1.LabelHostname,
			}},
		}}
	}})
	if got := waitBound(t, srv.Client, "default", "cache").Spec.NodeName; got != nodeOf["web-1"] {
		t.Errorf("cache went to %s, want %s beside web-1", got, nodeOf["web-1"])
	}

	// affinity to pods that do not exist fits nowhere, and preemption cannot help
	createPod(t, srv.Client, podSpec{name: "lonely", mutate: func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "ghost"}},
				TopologyKey:   corev1.LabelHostname,
			}},
		}}
	}})
	pod = waitUnschedulable(t, srv.Client, "default", "lonely")
	want = "0/3 nodes are available: 3 node(s) didn't match pod affinity rules. " +
		"no new claims to deallocate, preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
	if got := podScheduledCondition(pod).Message; got != want {
		t.Errorf("message:\n got %q\nwant %q", got, want)
	}
}

func TestTopologySpreadKeepsZonesWithinMaxSkew(t *testing.T) {
	srv := apiservertest.Start(t)
	createNode(t, srv.Client, nodeSpec{name: "a1", labels: map[string]string{corev1.LabelTopologyZone: "a"}})
	createNode(t, srv.Client, nodeSpec{name: "a2", labels: map[string]string{corev1.LabelTopologyZone: "a"}})
	createNode(t, srv.Client, nodeSpec{name: "b1", labels: map[string]string{corev1.LabelTopologyZone: "b"}})
	createNode(t, srv.Client, nodeSpec{name: "nozone"})
	startScheduler(t, srv, Options{})
	spread := func(p *corev1.Pod) {
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread"}},
		}}
	}
	zoneOf := map[string]string{"a1": "a", "a2": "a", "b1": "b"}
	perZone := map[string]int{}
	var placed []string
	placedOn := map[string]string{}
	for i := 0; i < 6; i++ {
		name := fmt.Sprintf("spread-%d", i)
		createPod(t, srv.Client, podSpec{name: name, cpu: "10m", labels: map[string]string{"app": "spread"}, mutate: spread})
		node := waitBound(t, srv.Client, "default", name).Spec.NodeName
		zone, ok := zoneOf[node]
		if !ok {
			t.Fatalf("%s went to %s, which has no zone label", name, node)
		}
		perZone[zone]++
		placed = append(placed, name)
		placedOn[name] = node
		if d := perZone["a"] - perZone["b"]; d > 1 || d < -1 {
			t.Errorf("after %s: zone a has %d, zone b %d: skew above 1", name, perZone["a"], perZone["b"])
		}
	}

	// Zone b loses a pod and takes no more (b1 cordoned, tiny-b too small): one more pod in
	// zone a would make the skew 2.
	createNode(t, srv.Client, nodeSpec{name: "tiny-b", cpu: "1m", labels: map[string]string{corev1.LabelTopologyZone: "b"}})
	if _, err := srv.Client.CoreV1().Nodes().Patch(context.Background(), "b1", types.MergePatchType,
		[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range placed {
		if placedOn[name] == "b1" {
			if err := srv.Client.CoreV1().Pods("default").Delete(context.Background(), name, *metav1.NewDeleteOptions(0)); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	createPod(t, srv.Client, podSpec{name: "spread-over", cpu: "10m", labels: map[string]string{"app": "spread"}, mutate: spread})
	pod := waitUnschedulable(t, srv.Client, "default", "spread-over")
	want := "0/5 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod topology spread constraints (missing required label), " +
		"1 node(s) were unschedulable, 2 node(s) didn't match pod topology spread constraints. " +
		"no new claims to deallocate, preemption: 0/5 nodes are available: 2 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling."
	if got := podScheduledCondition(pod).Message; got != want {
		t.Errorf("message:\n got %q\nwant %q", got, want)
	}
}
