package scheduler

import "math"

// nodeResourcesFit rejects nodes without room for the pod's requests (cpu, memory,
// ephemeral-storage, extended resources, and one more pod), and scores nodes by how much
// would stay free (upstream's default LeastAllocated strategy, cpu and memory weighted
// alike), as upstream's NodeResourcesFit.
//
// A node too small for the pod even when empty is unresolvable: preemption cannot help there.
type nodeResourcesFit struct{}

var (
	_ filterPlugin = nodeResourcesFit{}
	_ scorePlugin  = nodeResourcesFit{}
)

func (nodeResourcesFit) name() string { return nodeResourcesFitName }

func (nodeResourcesFit) filter(_ *cycleState, pod *podInfo, node *nodeInfo) *status {
	var reasons []string
	unresolved := false
	insufficient := func(reason string, request, allocatable int64) {
		reasons = append(reasons, reason)
		if request > allocatable {
			unresolved = true
		}
	}
	if int64(len(node.pods))+1 > node.allocatable.pods {
		reasons = append(reasons, "Too many pods")
	}
	req, alloc, used := &pod.requests, &node.allocatable, &node.requested
	if !req.isZero() {
		if req.milliCPU > 0 && req.milliCPU > alloc.milliCPU-used.milliCPU {
			insufficient("Insufficient cpu", req.milliCPU, alloc.milliCPU)
		}
		if req.memory > 0 && req.memory > alloc.memory-used.memory {
			insufficient("Insufficient memory", req.memory, alloc.memory)
		}
		if req.ephemeralStorage > 0 && req.ephemeralStorage > alloc.ephemeralStorage-used.ephemeralStorage {
			insufficient("Insufficient ephemeral-storage", req.ephemeralStorage, alloc.ephemeralStorage)
		}
		for name, q := range req.scalar {
			if q > 0 && q > alloc.scalar[name]-used.scalar[name] {
				insufficient("Insufficient "+string(name), q, alloc.scalar[name])
			}
		}
	}
	if len(reasons) == 0 {
		return nil
	}
	c := unschedulable
	if unresolved {
		c = unresolvable
	}
	return newStatus(c, nodeResourcesFitName, reasons...)
}

func (nodeResourcesFit) prepare(*cycleState, *podInfo, []*nodeInfo, *snapshot) bool { return true }

// score is the mean, over cpu and memory, of the share of the node left free once the pod is
// on it, counting unset requests as the scoring defaults.
func (nodeResourcesFit) score(_ *cycleState, pod *podInfo, node *nodeInfo) int64 {
	cpu := leastRequestedScore(node.nonZeroCPU+pod.nonZeroCPU, node.allocatable.milliCPU)
	mem := leastRequestedScore(node.nonZeroMemory+pod.nonZeroMemory, node.allocatable.memory)
	switch {
	case node.allocatable.milliCPU == 0 && node.allocatable.memory == 0:
		return 0
	case node.allocatable.milliCPU == 0:
		return mem
	case node.allocatable.memory == 0:
		return cpu
	}
	return (cpu + mem) / 2
}

func leastRequestedScore(requested, capacity int64) int64 {
	if capacity == 0 || requested > capacity {
		return 0
	}
	return (capacity - requested) * maxNodeScore / capacity
}

func (nodeResourcesFit) normalize(*cycleState, *podInfo, []int64) {}

// balancedAllocation favours nodes whose cpu and memory would be used in the same proportion
// once the pod is on them, as upstream's NodeResourcesBalancedAllocation: the score is
// (1 - std) * 100 over the requested fractions of cpu and memory, counting actual requests. It
// takes no part for a pod that requests neither.
type balancedAllocation struct{}

var _ scorePlugin = balancedAllocation{}

func (balancedAllocation) name() string { return balancedAllocationName }

func (balancedAllocation) prepare(_ *cycleState, pod *podInfo, _ []*nodeInfo, _ *snapshot) bool {
	return pod.requests.milliCPU != 0 || pod.requests.memory != 0
}

func (balancedAllocation) score(_ *cycleState, pod *podInfo, node *nodeInfo) int64 {
	var fractions [2]float64
	n := 0
	add := func(requested, allocatable int64) {
		if allocatable == 0 {
			return
		}
		fractions[n] = min(float64(requested)/float64(allocatable), 1)
		n++
	}
	add(node.requested.milliCPU+pod.requests.milliCPU, node.allocatable.milliCPU)
	add(node.requested.memory+pod.requests.memory, node.allocatable.memory)
	std := 0.0
	if n == 2 {
		std = math.Abs(fractions[0]-fractions[1]) / 2
	}
	return int64((1 - std) * float64(maxNodeScore))
}

func (balancedAllocation) normalize(*cycleState, *podInfo, []int64) {}
