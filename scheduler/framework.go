package scheduler

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// code is how a plugin judged a pod on a node, as upstream's framework codes.
type code int

const (
	// unschedulable: the node does not fit now, but could once pods leave it (preemption
	// may help).
	unschedulable code = iota + 1
	// unresolvable: the node does not fit, and removing pods would not change that
	// (upstream's UnschedulableAndUnresolvable).
	unresolvable
	// internalError: the plugin could not decide.
	internalError
)

// status is a plugin's verdict; nil means the node fits.
type status struct {
	code    code
	reasons []string
	plugin  string
}

func newStatus(c code, plugin string, reasons ...string) *status {
	return &status{code: c, plugin: plugin, reasons: reasons}
}

// message joins the reasons as upstream's Status.Message does.
func (s *status) message() string {
	if s == nil {
		return ""
	}
	return strings.Join(s.reasons, ", ")
}

// stateData is what a plugin computes once per scheduling cycle. clone is called before
// preemption and nominated pods change a copy; data that those never change may return itself.
type stateData interface {
	clone() stateData
}

// cycleState carries the plugins' per-cycle data, keyed by plugin.
type cycleState struct {
	data map[string]stateData
}

func newCycleState() *cycleState { return &cycleState{data: make(map[string]stateData, 4)} }

func (cs *cycleState) read(key string) stateData { return cs.data[key] }
func (cs *cycleState) write(key string, d stateData) {
	cs.data[key] = d
}

func (cs *cycleState) clone() *cycleState {
	c := &cycleState{data: make(map[string]stateData, len(cs.data))}
	for k, v := range cs.data {
		if v != nil {
			c.data[k] = v.clone()
		}
	}
	return c
}

// A filterPlugin rules nodes out for a pod. filter returns nil when the pod may run on the node
// as far as this plugin is concerned, or a status with upstream's reason when it may not. It is
// called for many nodes at once and must only read the cycle state.
type filterPlugin interface {
	name() string
	filter(cs *cycleState, pod *podInfo, node *nodeInfo) *status
}

// A preFilterPlugin computes, once per pod, what its filter needs from the whole cluster. It
// answers skip when its filter has nothing to check for this pod (upstream's Skip: the filter
// then does not run this cycle), or a status that rejects the pod on every node.
type preFilterPlugin interface {
	preFilter(cs *cycleState, pod *podInfo, snap *snapshot) (skip bool, st *status)
}

// A podCountingPlugin keeps its per-cycle data right when a pod is added to or removed from a
// node for a what-if: nominated pods, and preemption victims.
type podCountingPlugin interface {
	addPod(cs *cycleState, pod, added *podInfo, node *nodeInfo)
	removePod(cs *cycleState, pod, removed *podInfo, node *nodeInfo)
}

// A scorePlugin ranks the nodes that passed every filter. prepare sees them all first and may
// answer false to take no part for this pod; score then rates one node (concurrently, reading
// only), and normalize maps the raw scores of all nodes, in the order given, onto 0..100.
type scorePlugin interface {
	name() string
	prepare(cs *cycleState, pod *podInfo, nodes []*nodeInfo, snap *snapshot) bool
	score(cs *cycleState, pod *podInfo, node *nodeInfo) int64
	normalize(cs *cycleState, pod *podInfo, scores []int64)
}

// maxNodeScore is the best normalized score a plugin gives a node.
const maxNodeScore int64 = 100

// defaultNormalizeScore scales scores so that the largest becomes maxNodeScore (or, reversed,
// so that the smallest does), as upstream's helper.DefaultNormalizeScore.
func defaultNormalizeScore(scores []int64, reverse bool) {
	var most int64
	for _, s := range scores {
		most = max(most, s)
	}
	if most == 0 {
		if reverse {
			for i := range scores {
				scores[i] = maxNodeScore
			}
		}
		return
	}
	for i, s := range scores {
		s = maxNodeScore * s / most
		if reverse {
			s = maxNodeScore - s
		}
		scores[i] = s
	}
}

// Post-filter notes, word for word as kube-scheduler 1.37 writes them. Its DynamicResources
// plugin runs before preemption and, for a pod without resource claims, says it has no claims
// to free; skiff has no claims, so every pod gets that note.
const (
	noClaimsNote           = "no new claims to deallocate"
	preemptionPrefix       = "preemption: "
	preemptionNotHelpful   = "Preemption is not helpful for scheduling"
	noPreemptionVictims    = "No preemption victims found for incoming pod"
	notEligiblePolicyNever = "not eligible due to preemptionPolicy=Never."
	notEligibleTerminating = "not eligible due to a terminating pod on the nominated node."
	noNodesAvailableMsg    = "no nodes available to schedule pods"
)

// fitError says why a pod fits no node, formatted as upstream's FitError.Error():
//
//	0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {a: b}. <post-filter note>
//
// The reasons are counted over nodes and sorted as strings.
type fitError struct {
	numAllNodes int
	// nodeStatuses are the verdicts of the nodes that were checked, by node name.
	nodeStatuses map[string]*status
	// absentStatus is the verdict of the nodes not in nodeStatuses, if any.
	absentStatus *status
	// preFilterMsg: a pre-filter rejected the pod on every node.
	preFilterMsg string
	// postFilterMsg: what preemption (and the claims note) said.
	postFilterMsg string
	// rejectedBy names the pre-filter plugin that rejected the pod, if one did.
	rejectedBy string
}

func (f *fitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "0/%d nodes are available:", f.numAllNodes)
	if f.preFilterMsg != "" {
		fmt.Fprintf(&b, " %s.", f.preFilterMsg)
	} else {
		counts := make(map[string]int)
		for _, s := range f.nodeStatuses {
			for _, r := range s.reasons {
				counts[r]++
			}
		}
		if absent := f.numAllNodes - len(f.nodeStatuses); absent > 0 && f.absentStatus != nil {
			for _, r := range f.absentStatus.reasons {
				counts[r] += absent
			}
		}
		if len(counts) > 0 {
			parts := make([]string, 0, len(counts))
			for r, n := range counts {
				parts = append(parts, fmt.Sprintf("%d %s", n, r))
			}
			sort.Strings(parts)
			fmt.Fprintf(&b, " %s.", strings.Join(parts, ", "))
		}
	}
	if f.postFilterMsg != "" {
		fmt.Fprintf(&b, " %s", f.postFilterMsg)
	}
	return b.String()
}

// parallelism is how many goroutines filter and score nodes at once, at most upstream's 16.
var parallelism = min(16, runtime.GOMAXPROCS(0))

// parallelUntil calls fn for 0..n-1 on up to parallelism goroutines, stopping early (between
// calls) once stop reports true. Small n run on the calling goroutine.
func parallelUntil(ctx context.Context, n int, stop *atomic.Bool, fn func(i int)) {
	workers := min(parallelism, (n+31)/32)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			if (stop != nil && stop.Load()) || (i%64 == 0 && ctx.Err() != nil) {
				return
			}
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	const chunk = 8
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for {
				if (stop != nil && stop.Load()) || ctx.Err() != nil {
					return
				}
				start := int(next.Add(chunk)) - chunk
				if start >= n {
					return
				}
				for i := start; i < min(start+chunk, n); i++ {
					fn(i)
				}
			}
		})
	}
	wg.Wait()
}
