package scheduler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func requiredNodeAffinityOf(terms ...corev1.NodeSelectorTerm) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
		}}
	}
}

func term(reqs ...corev1.NodeSelectorRequirement) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: reqs}
}

func req(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorRequirement {
	return corev1.NodeSelectorRequirement{Key: key, Operator: op, Values: values}
}

func TestNodeAffinityFilter(t *testing.T) {
	tc := newTestCluster([]nodeSpec{
		{name: "a", labels: map[string]string{"zone": "east", "gen": "3"}},
		{name: "b", labels: map[string]string{"zone": "west", "gen": "5", "gpu": ""}},
		{name: "c", labels: map[string]string{"gen": "x"}},
	})
	tests := []struct {
		name   string
		mutate func(*corev1.Pod)
		fits   string // the nodes that fit, in order
	}{
		{"no constraints", func(*corev1.Pod) {}, "abc"},
		{"nodeSelector", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "west"} }, "b"},
		{"In", requiredNodeAffinityOf(term(req("zone", corev1.NodeSelectorOpIn, "east", "north"))), "a"},
		{"NotIn matches nodes without the label", requiredNodeAffinityOf(term(req("zone", corev1.NodeSelectorOpNotIn, "east"))), "bc"},
		{"Exists with an empty value", requiredNodeAffinityOf(term(req("gpu", corev1.NodeSelectorOpExists))), "b"},
		{"DoesNotExist", requiredNodeAffinityOf(term(req("zone", corev1.NodeSelectorOpDoesNotExist))), "c"},
		{"Gt compares integers, and a non-integer never matches", requiredNodeAffinityOf(term(req("gen", corev1.NodeSelectorOpGt, "4"))), "b"},
		{"Lt", requiredNodeAffinityOf(term(req("gen", corev1.NodeSelectorOpLt, "4"))), "a"},
		{"expressions of a term are ANDed", requiredNodeAffinityOf(term(req("gen", corev1.NodeSelectorOpGt, "2"), req("zone", corev1.NodeSelectorOpIn, "west"))), "b"},
		{"terms are ORed", requiredNodeAffinityOf(term(req("zone", corev1.NodeSelectorOpIn, "east")), term(req("gen", corev1.NodeSelectorOpIn, "x"))), "ac"},
		{"an empty term matches nothing", requiredNodeAffinityOf(corev1.NodeSelectorTerm{}), ""},
		{"no terms match nothing", requiredNodeAffinityOf(), ""},
		{"matchFields on metadata.name", requiredNodeAffinityOf(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
			req("metadata.name", corev1.NodeSelectorOpNotIn, "a")}}), "bc"},
		{"nodeSelector and affinity must both match", func(p *corev1.Pod) {
			requiredNodeAffinityOf(term(req("gen", corev1.NodeSelectorOpExists)))(p)
			p.Spec.NodeSelector = map[string]string{"zone": "east"}
		}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tc.filterAll(t, nodeAffinity{}, testPod("p", "", "", tt.mutate))
			fits := ""
			for _, n := range []string{"a", "b", "c"} {
				switch v := verdict(got[n]); v {
				case "":
					fits += n
				case "UnschedulableAndUnresolvable: " + reasonNodeAffinity:
				default:
					t.Errorf("%s: unexpected verdict %q", n, v)
				}
			}
			if fits != tt.fits {
				t.Errorf("fits %q, want %q", fits, tt.fits)
			}
		})
	}
}

func TestNodeAffinityScoresPreferredTermWeights(t *testing.T) {
	tc := newTestCluster([]nodeSpec{
		{name: "both", labels: map[string]string{"disk": "ssd", "zone": "east"}},
		{name: "ssd", labels: map[string]string{"disk": "ssd"}},
		{name: "none"},
	})
	pod := testPod("p", "", "", func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
				{Weight: 30, Preference: term(req("disk", corev1.NodeSelectorOpIn, "ssd"))},
				{Weight: 10, Preference: term(req("zone", corev1.NodeSelectorOpIn, "east"))},
			},
		}}
	})
	got := tc.scoreAll(nodeAffinity{}, pod)
	// raw 40, 30, 0: scaled so that the best is 100
	if got["both"] != 100 || got["ssd"] != 75 || got["none"] != 0 {
		t.Errorf("scores %v, want both 100, ssd 75, none 0", got)
	}
	if tc.scoreAll(nodeAffinity{}, testPod("q", "", "")) != nil {
		t.Error("a pod without preferred terms was scored")
	}
}

func podAffinityTerm(key string, sel map[string]string) corev1.PodAffinityTerm {
	return corev1.PodAffinityTerm{LabelSelector: &metav1.LabelSelector{MatchLabels: sel}, TopologyKey: key}
}

func TestInterPodAffinityFilter(t *testing.T) {
	nodes := []nodeSpec{
		{name: "a1", labels: map[string]string{"zone": "a"}},
		{name: "a2", labels: map[string]string{"zone": "a"}},
		{name: "b1", labels: map[string]string{"zone": "b"}},
		{name: "nozone"},
	}
	dbInA := testPod("db", "", "", onNode("a1"), withLabels("app", "db"))
	avoidsWeb := testPod("lonely", "", "", onNode("b1"), withLabels("app", "lonely"), func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{podAffinityTerm("zone", map[string]string{"app": "web"})},
		}}
	})
	otherNamespaceDB := testPod("db2", "", "", onNode("b1"), withLabels("app", "db"), inNamespace("other"))
	tc := newTestCluster(nodes, dbInA, avoidsWeb, otherNamespaceDB)
	tc.snapNamespaces(t)

	affinity := func(terms ...corev1.PodAffinityTerm) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: terms}}
		}
	}
	anti := func(terms ...corev1.PodAffinityTerm) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: terms}}
		}
	}
	const (
		noAffinity = "UnschedulableAndUnresolvable: " + reasonAffinityRulesNotMatch
		noAnti     = "Unschedulable: " + reasonAntiAffinityRulesNotMatch
		noExisting = "Unschedulable: " + reasonExistingAntiAffinityRulesNotMatch
	)
	tests := []struct {
		name string
		pod  *corev1.Pod
		want map[string]string
	}{{
		name: "affinity to db in zone a",
		pod:  testPod("p", "", "", affinity(podAffinityTerm("zone", map[string]string{"app": "db"}))),
		want: map[string]string{"a1": "", "a2": "", "b1": noAffinity, "nozone": noAffinity},
	}, {
		name: "affinity by hostname",
		pod:  testPod("p", "", "", affinity(podAffinityTerm(corev1.LabelHostname, map[string]string{"app": "db"}))),
		want: map[string]string{"a1": "", "a2": noAffinity, "b1": noAffinity, "nozone": noAffinity},
	}, {
		name: "the first pod of a self-selecting group goes anywhere with the topology key",
		pod:  testPod("p", "", "", withLabels("app", "cache"), affinity(podAffinityTerm("zone", map[string]string{"app": "cache"}))),
		want: map[string]string{"a1": "", "a2": "", "b1": "", "nozone": noAffinity},
	}, {
		name: "affinity to pods that exist nowhere",
		pod:  testPod("p", "", "", affinity(podAffinityTerm("zone", map[string]string{"app": "cache"}))),
		want: map[string]string{"a1": noAffinity, "a2": noAffinity, "b1": noAffinity, "nozone": noAffinity},
	}, {
		name: "affinity across namespaces by name",
		pod: testPod("p", "", "", affinity(corev1.PodAffinityTerm{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Namespaces:    []string{"other"}, TopologyKey: "zone",
		})),
		want: map[string]string{"a1": noAffinity, "a2": noAffinity, "b1": "", "nozone": noAffinity},
	}, {
		name: "affinity across namespaces by selector",
		pod: testPod("p", "", "", affinity(corev1.PodAffinityTerm{
			LabelSelector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "other"}}, TopologyKey: "zone",
		})),
		want: map[string]string{"a1": noAffinity, "a2": noAffinity, "b1": "", "nozone": noAffinity},
	}, {
		name: "anti-affinity to db",
		pod:  testPod("p", "", "", anti(podAffinityTerm("zone", map[string]string{"app": "db"}))),
		want: map[string]string{"a1": noAnti, "a2": noAnti, "b1": "", "nozone": ""},
	}, {
		name: "an existing pod's anti-affinity keeps web out of its zone",
		pod:  testPod("p", "", "", withLabels("app", "web")),
		want: map[string]string{"a1": "", "a2": "", "b1": noExisting, "nozone": ""},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tc.filterAll(t, tc.affinityPlugin(), tt.pod)
			for n, w := range tt.want {
				if v := verdict(got[n]); v != w {
					t.Errorf("%s: %q, want %q", n, v, w)
				}
			}
		})
	}
}

// snapNamespaces gives the test cluster two namespaces: default and other (team=other).
func (tc *testCluster) snapNamespaces(t *testing.T) {
	t.Helper()
	tc.namespaces = map[string]labels.Set{"default": {}, "other": {"team": "other"}}
}

func (tc *testCluster) affinityPlugin() *interPodAffinity {
	return &interPodAffinity{
		namespaceLabels: func(ns string) labels.Set { return tc.namespaces[ns] },
		namespaces:      func() map[string]labels.Set { return tc.namespaces },
	}
}

func TestInterPodAffinityScoresPreferredTerms(t *testing.T) {
	nodes := []nodeSpec{
		{name: "a1", labels: map[string]string{"zone": "a"}},
		{name: "b1", labels: map[string]string{"zone": "b"}},
		{name: "c1", labels: map[string]string{"zone": "c"}},
	}
	tc := newTestCluster(nodes,
		testPod("db", "", "", onNode("a1"), withLabels("app", "db")),
		testPod("noisy", "", "", onNode("b1"), withLabels("app", "noisy")),
	)
	pod := testPod("p", "", "", func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{
			PodAffinity: &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
				{Weight: 10, PodAffinityTerm: podAffinityTerm("zone", map[string]string{"app": "db"})}}},
			PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
				{Weight: 5, PodAffinityTerm: podAffinityTerm("zone", map[string]string{"app": "noisy"})}}},
		}
	})
	got := tc.scoreAll(tc.affinityPlugin(), pod)
	// raw: a 10, b -5, c 0: mapped from [-5, 10] onto [0, 100]
	if got["a1"] != 100 || got["b1"] != 0 || got["c1"] != 33 {
		t.Errorf("scores %v, want a1 100, b1 0, c1 33", got)
	}
	if tc.scoreAll(tc.affinityPlugin(), testPod("q", "", "")) != nil {
		t.Error("scored a pod with no preferred terms in a cluster without affinity")
	}
}

func topologyConstraint(key string, skew int32, action corev1.UnsatisfiableConstraintAction, sel map[string]string) corev1.TopologySpreadConstraint {
	return corev1.TopologySpreadConstraint{MaxSkew: skew, TopologyKey: key, WhenUnsatisfiable: action,
		LabelSelector: &metav1.LabelSelector{MatchLabels: sel}}
}

func TestPodTopologySpreadFilter(t *testing.T) {
	nodes := []nodeSpec{
		{name: "a1", labels: map[string]string{"zone": "a"}},
		{name: "a2", labels: map[string]string{"zone": "a"}},
		{name: "b1", labels: map[string]string{"zone": "b"}},
		{name: "nozone"},
	}
	app := withLabels("app", "x")
	// zone a holds 2 matching pods, zone b 1; one pod elsewhere does not match
	tc := newTestCluster(nodes,
		testPod("x1", "", "", onNode("a1"), app),
		testPod("x2", "", "", onNode("a2"), app),
		testPod("x3", "", "", onNode("b1"), app),
		testPod("other", "", "", onNode("b1"), withLabels("app", "y")),
		testPod("elsewhere", "", "", onNode("a1"), app, inNamespace("other")),
	)
	const (
		skew    = "Unschedulable: " + reasonSpreadConstraintsNotMatch
		missing = "UnschedulableAndUnresolvable: " + reasonSpreadMissingLabel
	)
	spread := func(cs ...corev1.TopologySpreadConstraint) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Spec.TopologySpreadConstraints = cs }
	}
	sel := map[string]string{"app": "x"}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want map[string]string
	}{{
		name: "maxSkew 1: only the emptier zone",
		pod:  testPod("p", "", "", app, spread(topologyConstraint("zone", 1, corev1.DoNotSchedule, sel))),
		want: map[string]string{"a1": skew, "a2": skew, "b1": "", "nozone": missing},
	}, {
		name: "maxSkew 2 allows zone a",
		pod:  testPod("p", "", "", app, spread(topologyConstraint("zone", 2, corev1.DoNotSchedule, sel))),
		want: map[string]string{"a1": "", "a2": "", "b1": "", "nozone": missing},
	}, {
		name: "a pod that does not match its own selector does not count itself",
		pod:  testPod("p", "", "", spread(topologyConstraint("zone", 1, corev1.DoNotSchedule, sel))),
		want: map[string]string{"a1": "", "a2": "", "b1": "", "nozone": missing},
	}, {
		name: "minDomains above the domain count makes the minimum 0",
		pod: testPod("p", "", "", app, spread(func() corev1.TopologySpreadConstraint {
			c := topologyConstraint("zone", 2, corev1.DoNotSchedule, sel)
			c.MinDomains = ptrTo(int32(3))
			return c
		}())),
		want: map[string]string{"a1": skew, "a2": skew, "b1": "", "nozone": missing},
	}, {
		name: "ScheduleAnyway constraints never filter",
		pod:  testPod("p", "", "", app, spread(topologyConstraint("zone", 1, corev1.ScheduleAnyway, sel))),
		want: map[string]string{"a1": "", "a2": "", "b1": "", "nozone": ""},
	}, {
		name: "nodes outside the pod's node affinity are not counted (zone a alone)",
		pod: testPod("p", "", "", app, spread(topologyConstraint("zone", 1, corev1.DoNotSchedule, sel)), func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"zone": "a"}
		}),
		// only zone a is eligible: its 2 pods are the minimum; +1 is a skew of 1
		want: map[string]string{"a1": "", "a2": ""},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tc.filterAll(t, podTopologySpread{}, tt.pod)
			for n, w := range tt.want {
				if v := verdict(got[n]); v != w {
					t.Errorf("%s: %q, want %q", n, v, w)
				}
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestPodTopologySpreadScoresEmptierDomainsHigher(t *testing.T) {
	nodes := []nodeSpec{
		{name: "a1", labels: map[string]string{"zone": "a"}},
		{name: "b1", labels: map[string]string{"zone": "b"}},
		{name: "c1", labels: map[string]string{"zone": "c"}},
		{name: "nozone"},
	}
	app := withLabels("app", "x")
	tc := newTestCluster(nodes,
		testPod("x1", "", "", onNode("a1"), app),
		testPod("x2", "", "", onNode("a1"), app),
		testPod("x3", "", "", onNode("b1"), app),
	)
	pod := testPod("p", "", "", app, func(p *corev1.Pod) {
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{topologyConstraint("zone", 1, corev1.ScheduleAnyway, map[string]string{"app": "x"})}
	})
	got := tc.scoreAll(podTopologySpread{}, pod)
	// 3 domains: weight ln(5) = 1.609; raw a 2*1.609 = 3, b 2, c 0 (maxSkew-1 = 0);
	// normalized 100 * (max + min - s) / max: a 0, b 33, c 100; nodes without the key 0
	if got["a1"] != 0 || got["b1"] != 33 || got["c1"] != 100 || got["nozone"] != 0 {
		t.Errorf("scores %v, want a1 0, b1 33, c1 100, nozone 0", got)
	}
}
