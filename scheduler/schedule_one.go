package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Upstream's bounds for how many feasible nodes to find before scoring: all nodes in a
// cluster under 100, otherwise a share that shrinks with the cluster (50% minus 1% per 125
// nodes, at least 5%) and never fewer than 100 nodes.
const (
	minFeasibleNodesToFind           = 100
	minFeasibleNodesPercentageToFind = 5
)

// numFeasibleNodesToFind is upstream's percentageOfNodesToScore rule: how many feasible nodes
// filtering looks for before it stops; percentage 0 means adaptive.
func numFeasibleNodesToFind(percentage int32, numAllNodes int) int {
	if numAllNodes < minFeasibleNodesToFind {
		return numAllNodes
	}
	if percentage == 0 {
		percentage = 50 - int32(numAllNodes/125)
		if percentage < minFeasibleNodesPercentageToFind {
			percentage = minFeasibleNodesPercentageToFind
		}
	}
	n := numAllNodes * int(percentage) / 100
	if n < minFeasibleNodesToFind {
		return minFeasibleNodesToFind
	}
	return n
}

// placement is the outcome of a scheduling attempt that found a node.
type placement struct {
	node      string
	evaluated int
	feasible  int
}

// scheduleOne takes the next pod from the queue and tries to place it; it returns an error
// only when the queue is closed or ctx is done.
func (s *Scheduler) scheduleOne(ctx context.Context) error {
	qp, err := s.queue.pop(ctx)
	if err != nil {
		return err
	}
	start := s.now()
	pi := qp.info
	if s.cache.has(pi.pod.UID) {
		// assumed or bound already: an event for it arrived late
		s.queue.done(qp, outcomeAssumed, nil)
		return nil
	}
	s.cache.updateSnapshot(s.snap)
	nominated := s.queue.nominatedPods()
	cs := newCycleState()

	p, err := s.findPlacement(ctx, cs, pi, nominated)
	if err != nil {
		s.handleSchedulingFailure(ctx, qp, cs, err, nominated, start)
		return nil
	}

	// Count the pod on its node now, so that the next cycle sees it while the binding is in
	// flight; a failed binding takes it back.
	s.cache.assume(pi, p.node)
	// counted on its node now: a nomination would count it twice
	s.queue.nominate(pi, "")
	s.queue.done(qp, outcomeAssumed, nil)
	s.bindings.Add(1)
	go func() {
		defer s.bindings.Done()
		s.bind(ctx, qp, p, start)
	}()
	return nil
}

// findPlacement filters and scores the nodes for a pod and picks one, or says why none fits
// (a *fitError, or another error).
func (s *Scheduler) findPlacement(ctx context.Context, cs *cycleState, pi *podInfo, nominated map[string][]*podInfo) (placement, error) {
	nodes := s.snap.list
	if len(nodes) == 0 {
		return placement{}, errNoNodesAvailable
	}
	s.cycleFilters = s.cycleFilters[:0]
	for _, f := range s.filters {
		if pf, ok := f.(preFilterPlugin); ok {
			skip, st := pf.preFilter(cs, pi, s.snap)
			if st != nil {
				return placement{}, &fitError{numAllNodes: len(nodes), nodeStatuses: map[string]*status{}, absentStatus: st, preFilterMsg: st.message(), rejectedBy: st.plugin}
			}
			if skip {
				continue
			}
		}
		s.cycleFilters = append(s.cycleFilters, f)
	}

	// a pod nominated by an earlier preemption tries its node first
	if name := s.queue.nominatedNode(pi); name != "" {
		if n := s.snap.get(name); n != nil && s.filterNode(cs, pi, n, nominated) == nil {
			return placement{node: name, evaluated: 1, feasible: 1}, nil
		}
	}

	feasible, statuses, evaluated := s.findFeasibleNodes(ctx, cs, pi, nominated)
	if ctx.Err() != nil {
		return placement{}, ctx.Err()
	}
	if len(feasible) == 0 {
		fe := &fitError{numAllNodes: len(nodes), nodeStatuses: make(map[string]*status, len(nodes))}
		for i, st := range statuses {
			if st != nil {
				fe.nodeStatuses[nodes[(s.lastStart+i)%len(nodes)].name] = st
			}
		}
		return placement{}, fe
	}
	if len(feasible) == 1 {
		return placement{node: feasible[0].name, evaluated: evaluated, feasible: 1}, nil
	}
	best := s.selectHost(ctx, cs, pi, feasible)
	return placement{node: best.name, evaluated: evaluated, feasible: len(feasible)}, nil
}

var errNoNodesAvailable = errors.New(noNodesAvailableMsg)

// findFeasibleNodes runs the filters over the nodes, starting where the last cycle stopped,
// until it has found as many feasible nodes as percentageOfNodesToScore asks for. statuses[i]
// is the verdict of the i-th node tried.
func (s *Scheduler) findFeasibleNodes(ctx context.Context, cs *cycleState, pi *podInfo, nominated map[string][]*podInfo) (feasible []*nodeInfo, statuses []*status, evaluated int) {
	nodes := s.snap.list
	want := numFeasibleNodesToFind(s.opts.PercentageOfNodesToScore, len(nodes))
	if cap(s.feasibleBuf) < want {
		s.feasibleBuf = make([]*nodeInfo, want)
	}
	feasible = s.feasibleBuf[:want]
	if cap(s.statusBuf) < len(nodes) {
		s.statusBuf = make([]*status, len(nodes))
	}
	statuses = s.statusBuf[:len(nodes)]
	clear(statuses)

	start := s.nextStartNodeIndex
	s.lastStart = start
	var found, failed atomic.Int64
	var stop atomic.Bool
	parallelUntil(ctx, len(nodes), &stop, func(i int) {
		n := nodes[(start+i)%len(nodes)]
		if st := s.filterNode(cs, pi, n, nominated); st != nil {
			statuses[i] = st
			failed.Add(1)
			return
		}
		k := found.Add(1)
		if k > int64(want) {
			stop.Store(true)
			return
		}
		feasible[k-1] = n
		if k == int64(want) {
			stop.Store(true)
		}
	})
	nFound := int(min(found.Load(), int64(want)))
	evaluated = nFound + int(failed.Load())
	s.nextStartNodeIndex = (start + evaluated) % len(nodes)
	return feasible[:nFound], statuses, evaluated
}

// filterNode runs every filter on one node, first as if the pods nominated there with at least
// the pod's priority were already running, then as they are: the pod must fit both ways, as
// upstream's RunFilterPluginsWithNominatedPods.
func (s *Scheduler) filterNode(cs *cycleState, pi *podInfo, n *nodeInfo, nominated map[string][]*podInfo) *status {
	if noms := nominated[n.name]; len(noms) > 0 {
		var withNominated *nodeInfo
		var csNominated *cycleState
		for _, np := range noms {
			if np.priority < pi.priority || np.pod.UID == pi.pod.UID {
				continue
			}
			if withNominated == nil {
				withNominated, csNominated = n.clone(), cs.clone()
			}
			withNominated.addPod(np)
			for _, c := range s.counters {
				c.addPod(csNominated, pi, np, withNominated)
			}
		}
		if withNominated != nil {
			if st := s.runFilters(csNominated, pi, withNominated); st != nil {
				return st
			}
		}
	}
	return s.runFilters(cs, pi, n)
}

// runFilters returns the first rejection of this cycle's filters, in upstream's plugin order.
func (s *Scheduler) runFilters(cs *cycleState, pi *podInfo, n *nodeInfo) *status {
	for _, f := range s.cycleFilters {
		if st := f.filter(cs, pi, n); st != nil {
			return st
		}
	}
	return nil
}

// selectHost scores the feasible nodes and returns a best one, chosen at random among ties.
func (s *Scheduler) selectHost(ctx context.Context, cs *cycleState, pi *podInfo, feasible []*nodeInfo) *nodeInfo {
	if cap(s.totalBuf) < len(feasible) {
		s.totalBuf = make([]int64, len(feasible))
		s.scoreBuf = make([]int64, len(feasible))
	}
	totals, scores := s.totalBuf[:len(feasible)], s.scoreBuf[:len(feasible)]
	clear(totals)
	for _, sp := range s.scorers {
		if !sp.plugin.prepare(cs, pi, feasible, s.snap) {
			continue
		}
		parallelUntil(ctx, len(feasible), nil, func(i int) {
			scores[i] = sp.plugin.score(cs, pi, feasible[i])
		})
		sp.plugin.normalize(cs, pi, scores)
		for i, sc := range scores {
			totals[i] += sc * sp.weight
		}
	}
	best, ties := 0, 1
	for i := 1; i < len(totals); i++ {
		switch {
		case totals[i] > totals[best]:
			best, ties = i, 1
		case totals[i] == totals[best]:
			// reservoir sampling: each of the tied nodes ends up chosen with equal chance
			ties++
			if s.rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return feasible[best]
}

// handleSchedulingFailure runs preemption for a pod that fits nowhere, then reports the
// failure as upstream does (log line, FailedScheduling event, PodScheduled=False condition)
// and puts the pod back in the queue.
func (s *Scheduler) handleSchedulingFailure(ctx context.Context, qp *queuedPod, cs *cycleState, err error, nominated map[string][]*podInfo, start time.Time) {
	if ctx.Err() != nil {
		s.queue.done(qp, outcomeError, nil)
		return
	}
	pi := qp.info
	reason := corev1.PodReasonUnschedulable
	outcome := outcomeUnschedulable
	var rejectedBy map[string]struct{}
	nomination := nominationUnchanged
	var fe *fitError
	switch {
	case errors.As(err, &fe):
		rejectedBy = fe.rejectingPlugins()
		var postFilter string
		postFilter, nomination = s.preempt(ctx, cs, pi, fe, nominated)
		fe.postFilterMsg = postFilter
	case errors.Is(err, errNoNodesAvailable):
		nomination = nominationCleared
	default:
		reason = corev1.PodReasonSchedulerError
		outcome = outcomeError
	}
	msg := err.Error()
	result := resultUnschedulable
	if outcome == outcomeError {
		result = resultError
		s.log.Error("Error scheduling pod; retrying", "pod", pi.key(), "err", msg)
	} else if s.opts.Verbosity >= 2 {
		s.log.Info("Unable to schedule pod; no fit; waiting", "pod", pi.key(), "err", msg)
	}
	s.metrics.observeAttempt(result, s.now().Sub(start))

	if nomination.set {
		s.queue.nominate(pi, nomination.node)
	}
	s.queue.done(qp, outcome, rejectedBy)
	s.reportFailure(ctx, pi.pod, reason, msg, nomination)
}

// rejectingPlugins names the plugins that ruled out at least one node.
func (f *fitError) rejectingPlugins() map[string]struct{} {
	out := make(map[string]struct{})
	if f.rejectedBy != "" {
		out[f.rejectedBy] = struct{}{}
	}
	for _, st := range f.nodeStatuses {
		if st.plugin != "" {
			out[st.plugin] = struct{}{}
		}
	}
	return out
}

// nominationChange says what a failed attempt does to the pod's nominated node.
type nominationChange struct {
	set  bool
	node string
}

var (
	nominationUnchanged = nominationChange{}
	nominationCleared   = nominationChange{set: true}
)

// eventNoteLimit is the longest note an events.k8s.io Event may carry.
const eventNoteLimit = 1024

func truncateMessage(msg string) string {
	if len(msg) <= eventNoteLimit {
		return msg
	}
	const suffix = " ..."
	return msg[:eventNoteLimit-len(suffix)] + suffix
}

// reportFailure emits FailedScheduling and writes the PodScheduled=False condition (and the
// nominated node) to the pod's status, in the background.
func (s *Scheduler) reportFailure(ctx context.Context, pod *corev1.Pod, reason, msg string, nomination nominationChange) {
	s.recorder.Eventf(pod, nil, corev1.EventTypeWarning, "FailedScheduling", "Scheduling", truncateMessage(msg))
	cond := &corev1.PodCondition{
		Type:               corev1.PodScheduled,
		Status:             corev1.ConditionFalse,
		Reason:             reason,
		Message:            msg,
		ObservedGeneration: pod.Generation,
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		if err := s.patchPodStatus(ctx, pod, cond, nomination); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			s.log.Warn("Could not update the pod's scheduling condition", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		}
	}()
}

// bind POSTs the pod's binding. On success it emits Scheduled; on failure it takes the assumed
// pod back and retries it after its backoff.
func (s *Scheduler) bind(ctx context.Context, qp *queuedPod, p placement, cycleStart time.Time) {
	pod := qp.info.pod
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: p.node},
	}
	err := s.selectNodeForClaims(ctx, pod, p.node)
	if err == nil {
		err = s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{})
	}
	if err != nil {
		s.cache.forget(pod.UID)
		if ctx.Err() != nil {
			return
		}
		s.metrics.bindErrors.Inc()
		s.metrics.observeAttempt(resultError, s.now().Sub(cycleStart))
		if apierrors.IsNotFound(err) {
			return
		}
		msg := fmt.Sprintf("running Bind plugin %q: %v", "DefaultBinder", err)
		s.log.Error("Failed to bind pod", "pod", qp.key(), "node", p.node, "err", err)
		if s.queue.requeueAfterError(qp, s.stillPending) {
			s.reportFailure(ctx, pod, corev1.PodReasonSchedulerError, msg, nominationUnchanged)
		}
		return
	}
	now := s.now()
	s.cache.finishBinding(pod.UID, now)
	s.metrics.observeAttempt(resultScheduled, now.Sub(cycleStart))
	s.metrics.observeScheduled(qp, now)
	s.recorder.Eventf(pod, nil, corev1.EventTypeNormal, "Scheduled", "Binding", "Successfully assigned %v/%v to %v", pod.Namespace, pod.Name, p.node)
	if s.opts.Verbosity >= 2 {
		s.log.Info("Successfully bound pod to node", "pod", qp.key(), "node", p.node,
			"evaluatedNodes", p.evaluated, "feasibleNodes", p.feasible, "attempts", qp.attempts,
			"latency", now.Sub(cycleStart).String())
	}
}
