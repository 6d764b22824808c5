package scheduler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestNodeUnschedulableRejectsCordonedNodesUnlessTolerated(t *testing.T) {
	tc := newTestCluster([]nodeSpec{{name: "cordoned", unschedulable: true}, {name: "open"}})
	tests := []struct {
		name        string
		tolerations []corev1.Toleration
		want        string
	}{
		{"no toleration", nil, "UnschedulableAndUnresolvable: node(s) were unschedulable"},
		{"the unschedulable taint tolerated", []corev1.Toleration{{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, ""},
		{"everything tolerated", []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, ""},
		{"another key tolerated", []corev1.Toleration{{Key: "other", Operator: corev1.TolerationOpExists}}, "UnschedulableAndUnresolvable: node(s) were unschedulable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tc.filterAll(t, nodeUnschedulable{}, testPod("p", "", "", func(p *corev1.Pod) { p.Spec.Tolerations = tt.tolerations }))
			if v := verdict(got["cordoned"]); v != tt.want {
				t.Errorf("cordoned: %q, want %q", v, tt.want)
			}
			if v := verdict(got["open"]); v != "" {
				t.Errorf("open node rejected: %q", v)
			}
		})
	}
}

func TestNodeNameKeepsAPodOnTheNodeItNames(t *testing.T) {
	tc := newTestCluster([]nodeSpec{{name: "a"}, {name: "b"}})
	got := tc.filterAll(t, nodeName{}, testPod("p", "", "", func(p *corev1.Pod) { p.Spec.NodeName = "a" }))
	if verdict(got["a"]) != "" || verdict(got["b"]) != "UnschedulableAndUnresolvable: node(s) didn't match the requested node name" {
		t.Errorf("a: %q, b: %q", verdict(got["a"]), verdict(got["b"]))
	}
	got = tc.filterAll(t, nodeName{}, testPod("q", "", ""))
	if verdict(got["a"]) != "" || verdict(got["b"]) != "" {
		t.Errorf("a pod naming no node is rejected: a %q, b %q", verdict(got["a"]), verdict(got["b"]))
	}
}

func TestTaintTolerationFilter(t *testing.T) {
	taint := func(key, value string, effect corev1.TaintEffect) corev1.Taint {
		return corev1.Taint{Key: key, Value: value, Effect: effect}
	}
	tests := []struct {
		name        string
		taints      []corev1.Taint
		tolerations []corev1.Toleration
		want        string
	}{
		{"no taints", nil, nil, ""},
		{"NoSchedule untolerated", []corev1.Taint{taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)}, nil,
			"UnschedulableAndUnresolvable: node(s) had untolerated taint {dedicated: gpu}"},
		{"NoExecute untolerated", []corev1.Taint{taint("node.kubernetes.io/unreachable", "", corev1.TaintEffectNoExecute)}, nil,
			"UnschedulableAndUnresolvable: node(s) had untolerated taint {node.kubernetes.io/unreachable: }"},
		{"PreferNoSchedule never filters", []corev1.Taint{taint("soft", "x", corev1.TaintEffectPreferNoSchedule)}, nil, ""},
		{"Equal with the value", []corev1.Taint{taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)},
			[]corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}, ""},
		{"empty operator means Equal", []corev1.Taint{taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)},
			[]corev1.Toleration{{Key: "dedicated", Value: "gpu"}}, ""},
		{"Equal with another value", []corev1.Taint{taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)},
			[]corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "cpu"}},
			"UnschedulableAndUnresolvable: node(s) had untolerated taint {dedicated: gpu}"},
		{"Exists ignores the value", []corev1.Taint{taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)},
			[]corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}, ""},
		{"another effect", []corev1.Taint{taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)},
			[]corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}},
			"UnschedulableAndUnresolvable: node(s) had untolerated taint {dedicated: gpu}"},
		{"empty key with Exists tolerates all", []corev1.Taint{taint("a", "1", corev1.TaintEffectNoSchedule), taint("b", "2", corev1.TaintEffectNoExecute)},
			[]corev1.Toleration{{Operator: corev1.TolerationOpExists}}, ""},
		{"the first untolerated taint is named", []corev1.Taint{taint("a", "1", corev1.TaintEffectNoSchedule), taint("b", "2", corev1.TaintEffectNoSchedule)},
			[]corev1.Toleration{{Key: "a", Operator: corev1.TolerationOpExists}},
			"UnschedulableAndUnresolvable: node(s) had untolerated taint {b: 2}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestCluster([]nodeSpec{{name: "n", taints: tt.taints}})
			got := tc.filterAll(t, taintToleration{}, testPod("p", "", "", func(p *corev1.Pod) { p.Spec.Tolerations = tt.tolerations }))
			if v := verdict(got["n"]); v != tt.want {
				t.Errorf("%q, want %q", v, tt.want)
			}
		})
	}
}

func TestTaintTolerationScoresFewerUntoleratedPreferNoScheduleHigher(t *testing.T) {
	soft := func(keys ...string) []corev1.Taint {
		var out []corev1.Taint
		for _, k := range keys {
			out = append(out, corev1.Taint{Key: k, Effect: corev1.TaintEffectPreferNoSchedule})
		}
		return out
	}
	tc := newTestCluster([]nodeSpec{
		{name: "clean"},
		{name: "one", taints: soft("a")},
		{name: "two", taints: soft("a", "b")},
		{name: "hard", taints: []corev1.Taint{{Key: "x", Effect: corev1.TaintEffectNoSchedule}}},
	})
	got := tc.scoreAll(taintToleration{}, testPod("p", "", ""))
	want := map[string]int64{"clean": 100, "one": 50, "two": 0, "hard": 100}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %d, want %d (all: %v)", n, got[n], w, got)
		}
	}
	// tolerating "a" (with PreferNoSchedule or no effect) leaves one untolerated taint at most
	got = tc.scoreAll(taintToleration{}, testPod("p", "", "", func(p *corev1.Pod) {
		p.Spec.Tolerations = []corev1.Toleration{{Key: "a", Operator: corev1.TolerationOpExists}}
	}))
	want = map[string]int64{"clean": 100, "one": 100, "two": 0, "hard": 100}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("tolerating a: %s: %d, want %d (all: %v)", n, got[n], w, got)
		}
	}
}

func TestNodePortsRejectsTakenHostPorts(t *testing.T) {
	withPort := func(port int32, ip string, proto corev1.Protocol) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports,
				corev1.ContainerPort{ContainerPort: 80, HostPort: port, HostIP: ip, Protocol: proto})
		}
	}
	tests := []struct {
		name     string
		existing func(*corev1.Pod)
		incoming func(*corev1.Pod)
		want     string
	}{
		{"same port on every address", withPort(8080, "", ""), withPort(8080, "", ""), "Unschedulable: " + reasonNodePorts},
		{"another port", withPort(8080, "", ""), withPort(8081, "", ""), ""},
		{"another protocol", withPort(53, "", corev1.ProtocolTCP), withPort(53, "", corev1.ProtocolUDP), ""},
		{"two addresses", withPort(80, "10.0.0.1", ""), withPort(80, "10.0.0.2", ""), ""},
		{"one address against all", withPort(80, "10.0.0.1", ""), withPort(80, "0.0.0.0", ""), "Unschedulable: " + reasonNodePorts},
		{"all against one address", withPort(80, "", ""), withPort(80, "10.0.0.1", ""), "Unschedulable: " + reasonNodePorts},
		{"no host port", func(*corev1.Pod) {}, withPort(80, "", ""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestCluster([]nodeSpec{{name: "n"}}, testPod("existing", "", "", onNode("n"), tt.existing))
			if v := verdict(tc.filterAll(t, nodePorts{}, testPod("p", "", "", tt.incoming))["n"]); v != tt.want {
				t.Errorf("%q, want %q", v, tt.want)
			}
		})
	}
}

func TestNodeResourcesFitFilter(t *testing.T) {
	gpu := corev1.ResourceName("example.com/gpu")
	tests := []struct {
		name     string
		node     nodeSpec
		existing []*corev1.Pod
		pod      *corev1.Pod
		want     string
	}{{
		name: "fits",
		node: nodeSpec{name: "n", cpu: "2", memory: "4Gi"},
		pod:  testPod("p", "1", "1Gi"),
	}, {
		name:     "not enough cpu left: preemption could help",
		node:     nodeSpec{name: "n", cpu: "2", memory: "4Gi"},
		existing: []*corev1.Pod{testPod("e", "1500m", "", onNode("n"))},
		pod:      testPod("p", "1", ""),
		want:     "Unschedulable: Insufficient cpu",
	}, {
		name: "larger than the node: preemption cannot help",
		node: nodeSpec{name: "n", cpu: "2", memory: "4Gi"},
		pod:  testPod("p", "3", ""),
		want: "UnschedulableAndUnresolvable: Insufficient cpu",
	}, {
		name:     "every shortage is listed",
		node:     nodeSpec{name: "n", cpu: "2", memory: "4Gi"},
		existing: []*corev1.Pod{testPod("e", "2", "4Gi", onNode("n"))},
		pod:      testPod("p", "1", "1Gi"),
		want:     "Unschedulable: Insufficient cpu, Insufficient memory",
	}, {
		name:     "a node full of pods takes no best-effort pod either",
		node:     nodeSpec{name: "n", pods: 1},
		existing: []*corev1.Pod{testPod("e", "", "", onNode("n"))},
		pod:      testPod("p", "", ""),
		want:     "Unschedulable: Too many pods",
	}, {
		name: "an extended resource the node lacks",
		node: nodeSpec{name: "n"},
		pod: testPod("p", "", "", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[gpu] = mustQuantity("1")
		}),
		want: "UnschedulableAndUnresolvable: Insufficient example.com/gpu",
	}, {
		name: "ephemeral storage",
		node: nodeSpec{name: "n"},
		pod: testPod("p", "", "", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceEphemeralStorage] = mustQuantity("1Gi")
		}),
		want: "UnschedulableAndUnresolvable: Insufficient ephemeral-storage",
	}, {
		name: "init containers count by their largest",
		node: nodeSpec{name: "n", cpu: "2"},
		pod: testPod("p", "500m", "", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: mustQuantity("3")}}}}
		}),
		want: "UnschedulableAndUnresolvable: Insufficient cpu",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestCluster([]nodeSpec{tt.node}, tt.existing...)
			if v := verdict(tc.filterAll(t, nodeResourcesFit{}, tt.pod)[tt.node.name]); v != tt.want {
				t.Errorf("%q, want %q", v, tt.want)
			}
		})
	}
}

func TestLeastAllocatedAndBalancedAllocationScores(t *testing.T) {
	// upstream's documented examples: a node of 4000m cpu and 10000 bytes of memory
	tc := newTestCluster([]nodeSpec{
		{name: "empty", cpu: "4", memory: "10000"},
		{name: "busy", cpu: "4", memory: "10000"},
	}, testPod("e", "2", "5000", onNode("busy")))
	pod := testPod("p", "1", "2000")

	// LeastAllocated: mean over cpu and memory of (capacity - requested) * 100 / capacity
	// empty: cpu (4000-1000)*100/4000 = 75, memory (10000-2000)*100/10000 = 80: 77
	// busy: cpu (4000-3000)*100/4000 = 25, memory (10000-7000)*100/10000 = 30: 27
	least := tc.scoreAll(nodeResourcesFit{}, pod)
	if least["empty"] != 77 || least["busy"] != 27 {
		t.Errorf("least allocated: %v, want empty 77 busy 27", least)
	}

	// BalancedAllocation: (1 - |cpu fraction - memory fraction| / 2) * 100
	// empty: 1000/4000 = 0.25, 2000/10000 = 0.2: 97; busy: 0.75, 0.7: 97
	balanced := tc.scoreAll(balancedAllocation{}, pod)
	if balanced["empty"] != 97 || balanced["busy"] != 97 {
		t.Errorf("balanced allocation: %v, want 97 and 97", balanced)
	}
	skewed := tc.scoreAll(balancedAllocation{}, testPod("q", "3", "0"))
	// empty: 0.75 and 0: 62; busy: 1.25 capped at 1 and 0.5: 75
	if skewed["empty"] != 62 || skewed["busy"] != 75 {
		t.Errorf("balanced allocation of a cpu-only pod: %v, want empty 62 busy 75", skewed)
	}
	if tc.scoreAll(balancedAllocation{}, testPod("be", "", "")) != nil {
		t.Error("balanced allocation scored a best-effort pod; upstream skips it")
	}

	// a pod without requests is scored as the defaults (100m, 200Mi)
	big := newTestCluster([]nodeSpec{{name: "n", cpu: "1", memory: "1000Mi"}})
	if got := big.scoreAll(nodeResourcesFit{}, testPod("be", "", ""))["n"]; got != 85 {
		// cpu (1000-100)*100/1000 = 90, memory (1000-200)*100/1000 = 80
		t.Errorf("least allocated of a best-effort pod: %d, want 85", got)
	}
}
