package scheduler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestFitErrorFormatsAsUpstream(t *testing.T) {
	insufficientCPU := newStatus(unschedulable, nodeResourcesFitName, "Insufficient cpu")
	cpuAndMemory := newStatus(unschedulable, nodeResourcesFitName, "Insufficient cpu", "Insufficient memory")
	notReady := newStatus(unresolvable, taintTolerationName, "node(s) had untolerated taint {node.kubernetes.io/not-ready: }")
	tests := []struct {
		name string
		fe   fitError
		want string
	}{{
		name: "reasons are counted over nodes and sorted as strings",
		fe: fitError{numAllNodes: 3, nodeStatuses: map[string]*status{
			"n1": insufficientCPU, "n2": notReady, "n3": notReady,
		}},
		want: "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.",
	}, {
		name: "a node rejected for two resources counts in both",
		fe:   fitError{numAllNodes: 2, nodeStatuses: map[string]*status{"n1": cpuAndMemory, "n2": insufficientCPU}},
		want: "0/2 nodes are available: 1 Insufficient memory, 2 Insufficient cpu.",
	}, {
		name: "nodes without a verdict take the absent status",
		fe: fitError{numAllNodes: 5, nodeStatuses: map[string]*status{"n1": insufficientCPU},
			absentStatus: newStatus(unresolvable, "", preemptionNotHelpful)},
		want: "0/5 nodes are available: 1 Insufficient cpu, 4 Preemption is not helpful for scheduling.",
	}, {
		name: "a pre-filter rejection replaces the node reasons",
		fe: fitError{numAllNodes: 2, preFilterMsg: "node(s) didn't match pod affinity rules",
			nodeStatuses: map[string]*status{"n1": insufficientCPU}},
		want: "0/2 nodes are available: node(s) didn't match pod affinity rules.",
	}, {
		name: "the post-filter message follows after a space",
		fe: fitError{numAllNodes: 1, nodeStatuses: map[string]*status{"n1": insufficientCPU},
			postFilterMsg: noClaimsNote + ", " + preemptionPrefix + notEligiblePolicyNever},
		want: "0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate, preemption: not eligible due to preemptionPolicy=Never.",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.fe.Error(); got != tt.want {
				t.Errorf("\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestNumFeasibleNodesToFindFollowsPercentageOfNodesToScore(t *testing.T) {
	tests := []struct {
		percentage int32
		nodes      int
		want       int
	}{
		{0, 10, 10},    // small clusters: all nodes
		{0, 99, 99},    //
		{0, 100, 100},  // 49% of 100 is 49, raised to the minimum of 100
		{0, 500, 230},  // 46%
		{0, 1000, 420}, // 42%
		{0, 5000, 500}, // 10%
		{0, 6000, 300}, // 50 - 48 = 2%, raised to 5%
		{0, 20000, 1000},
		{30, 1000, 300}, // configured share
		{10, 500, 100},  // 50 raised to 100
		{100, 5000, 5000},
	}
	for _, tt := range tests {
		if got := numFeasibleNodesToFind(tt.percentage, tt.nodes); got != tt.want {
			t.Errorf("percentage %d of %d nodes: %d, want %d", tt.percentage, tt.nodes, got, tt.want)
		}
	}
}

func TestPodRequestsCountInitContainersSidecarsAndOverheadAsUpstream(t *testing.T) {
	container := func(cpu, mem string) corev1.Container {
		c := corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{}}}
		if cpu != "" {
			c.Resources.Requests[corev1.ResourceCPU] = mustQuantity(cpu)
		}
		if mem != "" {
			c.Resources.Requests[corev1.ResourceMemory] = mustQuantity(mem)
		}
		return c
	}
	sidecar := func(cpu, mem string) corev1.Container {
		c := container(cpu, mem)
		c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
		return c
	}
	tests := []struct {
		name              string
		spec              corev1.PodSpec
		cpu, mem          int64
		nonZeroCPU, nzMem int64
	}{{
		name: "containers add up",
		spec: corev1.PodSpec{Containers: []corev1.Container{container("1", "1Gi"), container("500m", "512Mi")}},
		cpu:  1500, mem: 1536 << 20, nonZeroCPU: 1500, nzMem: 1536 << 20,
	}, {
		// upstream's computePodResourceRequest example: IC1 2/1G, IC2 2/3G, C1 2/1G, C2 1/1G
		name: "the largest init container wins per resource",
		spec: corev1.PodSpec{
			InitContainers: []corev1.Container{container("2", "1G"), container("2", "3G")},
			Containers:     []corev1.Container{container("2", "1G"), container("1", "1G")},
		},
		cpu: 3000, mem: 3e9, nonZeroCPU: 3000, nzMem: 3e9,
	}, {
		// a sidecar runs beside the init containers after it and beside the regular ones
		name: "sidecars add to what follows them",
		spec: corev1.PodSpec{
			InitContainers: []corev1.Container{sidecar("1", "1G"), container("3", "1G")},
			Containers:     []corev1.Container{container("1", "2G")},
		},
		// init phase: 1 + 3 cpu, 1G + 1G; running: 1 + 1 cpu, 1G + 2G
		cpu: 4000, mem: 3e9, nonZeroCPU: 4000, nzMem: 3e9,
	}, {
		name: "overhead is added on top",
		spec: corev1.PodSpec{
			Containers: []corev1.Container{container("1", "1G")},
			Overhead:   corev1.ResourceList{corev1.ResourceCPU: mustQuantity("250m"), corev1.ResourceMemory: mustQuantity("120Mi")},
		},
		cpu: 1250, mem: 1e9 + 120<<20, nonZeroCPU: 1250, nzMem: 1e9 + 120<<20,
	}, {
		name: "a container without requests counts as the scoring defaults for scores only",
		spec: corev1.PodSpec{Containers: []corev1.Container{container("", ""), container("200m", "")}},
		cpu:  200, mem: 0, nonZeroCPU: 300, nzMem: 2 * defaultMemoryRequest,
	}, {
		name: "pod-level requests replace the containers' sum",
		spec: corev1.PodSpec{
			Containers: []corev1.Container{container("1", "1G"), container("1", "")},
			Resources:  &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: mustQuantity("3")}},
		},
		cpu: 3000, mem: 1e9, nonZeroCPU: 3000, nzMem: 1e9 + defaultMemoryRequest,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: tt.spec}
			r := podRequests(pod, false)
			if r.milliCPU != tt.cpu || r.memory != tt.mem {
				t.Errorf("requests: cpu %dm memory %d, want %dm %d", r.milliCPU, r.memory, tt.cpu, tt.mem)
			}
			nz := podRequests(pod, true)
			if nz.milliCPU != tt.nonZeroCPU || nz.memory != tt.nzMem {
				t.Errorf("non-zero requests: cpu %dm memory %d, want %dm %d", nz.milliCPU, nz.memory, tt.nonZeroCPU, tt.nzMem)
			}
		})
	}
}

func TestDefaultNormalizeScore(t *testing.T) {
	tests := []struct {
		in, want []int64
		reverse  bool
	}{
		{[]int64{0, 5, 10}, []int64{0, 50, 100}, false},
		{[]int64{0, 5, 10}, []int64{100, 50, 0}, true},
		{[]int64{0, 0}, []int64{0, 0}, false},
		{[]int64{0, 0}, []int64{100, 100}, true},
	}
	for _, tt := range tests {
		got := append([]int64(nil), tt.in...)
		defaultNormalizeScore(got, tt.reverse)
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("normalize %v reverse=%v = %v, want %v", tt.in, tt.reverse, got, tt.want)
				break
			}
		}
	}
}
