package scheduler

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Upstream's DefaultPreemption looks for at least this many candidate nodes, or this share of
// the nodes where preemption could help, whichever is more.
const (
	minCandidateNodesPercentage = 10
	minCandidateNodesAbsolute   = 100
)

// preemptionCandidate is a node where evicting victims would let the pod fit.
type preemptionCandidate struct {
	node *nodeInfo
	// victims are ordered from most to least important.
	victims []*podInfo
}

// preempt is upstream's PostFilter stage for a pod that fits nowhere: DefaultPreemption, with
// the note of DynamicResources before it. It picks the node where evicting lower-priority
// pods lets the pod fit at the least cost, evicts them in the background, and nominates the
// node. It returns the post-filter message for the pod's condition ("" once a node is
// nominated) and the change to the pod's nominated node.
func (s *Scheduler) preempt(ctx context.Context, cs *cycleState, pi *podInfo, fe *fitError, nominated map[string][]*podInfo) (string, nominationChange) {
	s.metrics.preemptionAttempts.Inc()
	note := func(msg string) string { return noClaimsNote + ", " + preemptionPrefix + msg }

	if ok, why := s.eligibleToPreempt(pi, fe); !ok {
		return note(why), nominationUnchanged
	}

	// Only nodes rejected as "unschedulable" may fit once pods leave them.
	var potential []*nodeInfo
	if fe.preFilterMsg == "" {
		for _, n := range s.snap.list {
			if st := fe.nodeStatuses[n.name]; st != nil && st.code == unschedulable {
				potential = append(potential, n)
			}
		}
	} else if fe.absentStatus != nil && fe.absentStatus.code == unschedulable {
		potential = s.snap.list
	}
	dryRun := &fitError{
		numAllNodes:  len(s.snap.list),
		nodeStatuses: make(map[string]*status),
		absentStatus: newStatus(unresolvable, "", preemptionNotHelpful),
	}
	if len(potential) == 0 {
		return note(dryRun.Error()), nominationCleared
	}

	want := max(len(potential)*minCandidateNodesPercentage/100, minCandidateNodesAbsolute)
	want = min(want, len(potential))
	offset := s.rand.IntN(len(potential))
	var candidates []preemptionCandidate
	for i := 0; i < len(potential) && len(candidates) < want; i++ {
		n := potential[(offset+i)%len(potential)]
		victims, st := s.selectVictimsOnNode(cs.clone(), pi, n.clone(), nominated)
		if st == nil {
			candidates = append(candidates, preemptionCandidate{node: n, victims: victims})
			continue
		}
		dryRun.nodeStatuses[n.name] = st
	}
	if len(candidates) == 0 {
		if s.opts.Verbosity >= 2 {
			s.log.Info("No preemption candidate is found; preemption is not helpful for scheduling", "pod", pi.key())
		}
		return note(dryRun.Error()), nominationCleared
	}

	best := pickOneNodeForPreemption(candidates, s.now())
	if s.opts.Verbosity >= 2 {
		s.log.Info("The target node for the preemption is determined", "pod", pi.key(), "node", best.node.name, "victims", len(best.victims))
	}
	s.metrics.preemptionVictims.Observe(float64(len(best.victims)))
	lowerNominated := lowerPriorityNominated(nominated[best.node.name], pi)
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		s.evict(ctx, pi.pod, best, lowerNominated)
	}()
	return "", nominationChange{set: true, node: best.node.name}
}

// eligibleToPreempt is upstream's PodEligibleToPreemptOthers: a pod with preemptionPolicy
// Never does not preempt, nor does a pod whose nominated node still has victims terminating
// (unless that node no longer fits it at all).
func (s *Scheduler) eligibleToPreempt(pi *podInfo, fe *fitError) (bool, string) {
	if pi.preemptNever {
		return false, notEligiblePolicyNever
	}
	name := s.queue.nominatedNode(pi)
	if name == "" {
		return true, ""
	}
	if st := fe.nodeStatuses[name]; st != nil && st.code == unresolvable {
		return true, ""
	}
	if n := s.snap.get(name); n != nil {
		for _, p := range n.pods {
			if p.priority < pi.priority && terminatingByPreemption(p.pod) {
				return false, notEligibleTerminating
			}
		}
	}
	return true, ""
}

// terminatingByPreemption says whether the pod is being deleted because the scheduler
// preempted it.
func terminatingByPreemption(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp == nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.DisruptionTarget {
			return c.Status == corev1.ConditionTrue && c.Reason == corev1.PodReasonPreemptionByScheduler
		}
	}
	return false
}

// selectVictimsOnNode finds the fewest, least important pods to evict from n for pi to fit, as
// upstream: take every lower-priority pod off; if the pod then fits, put them back one at a
// time from the most important, keeping off only those without which it does not fit. cs and
// n are copies it may change.
func (s *Scheduler) selectVictimsOnNode(cs *cycleState, pi *podInfo, n *nodeInfo, nominated map[string][]*podInfo) ([]*podInfo, *status) {
	var potential []*podInfo
	for _, p := range n.pods {
		if p.priority < pi.priority {
			potential = append(potential, p)
		}
	}
	if len(potential) == 0 {
		return nil, newStatus(unresolvable, "", noPreemptionVictims)
	}
	remove := func(p *podInfo) {
		n.removePod(p)
		for _, c := range s.counters {
			c.removePod(cs, pi, p, n)
		}
	}
	add := func(p *podInfo) {
		n.addPod(p)
		for _, c := range s.counters {
			c.addPod(cs, pi, p, n)
		}
	}
	for _, p := range potential {
		remove(p)
	}
	if st := s.filterNode(cs, pi, n, nominated); st != nil {
		return nil, st
	}
	now := s.now()
	sort.SliceStable(potential, func(i, j int) bool { return moreImportant(potential[i], potential[j], now) })
	var victims []*podInfo
	for _, p := range potential {
		add(p)
		if s.filterNode(cs, pi, n, nominated) != nil {
			remove(p)
			victims = append(victims, p)
		}
	}
	if len(victims) == 0 {
		return nil, newStatus(unresolvable, "", noPreemptionVictims)
	}
	return victims, nil
}

// moreImportant orders pods as upstream's MoreImportantPod: higher priority first, then the one
// that started earlier.
func moreImportant(a, b *podInfo, now time.Time) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	return podStartTime(a.pod, now).Before(podStartTime(b.pod, now))
}

func podStartTime(pod *corev1.Pod, now time.Time) time.Time {
	if pod.Status.StartTime != nil {
		return pod.Status.StartTime.Time
	}
	return now
}

// pickOneNodeForPreemption picks among the candidates as upstream, each rule breaking the ties
// of the one before: the lowest highest-priority victim, the lowest sum of victim priorities,
// the fewest victims, the latest start among the highest-priority victims, then the first.
func pickOneNodeForPreemption(candidates []preemptionCandidate, now time.Time) preemptionCandidate {
	rules := []func(c *preemptionCandidate) int64{
		func(c *preemptionCandidate) int64 { return -int64(c.victims[0].priority) },
		func(c *preemptionCandidate) int64 {
			var sum int64
			for _, v := range c.victims {
				// shifted to be positive, so that fewer negative-priority victims count less
				sum += int64(v.priority) + int64(math.MaxInt32) + 1
			}
			return -sum
		},
		func(c *preemptionCandidate) int64 { return -int64(len(c.victims)) },
		func(c *preemptionCandidate) int64 {
			top := c.victims[0].priority
			earliest := podStartTime(c.victims[0].pod, now)
			for _, v := range c.victims {
				if v.priority == top {
					if t := podStartTime(v.pod, now); t.Before(earliest) {
						earliest = t
					}
				}
			}
			return earliest.UnixNano()
		},
	}
	remaining := candidates
	for _, rule := range rules {
		var best []preemptionCandidate
		bestScore := int64(math.MinInt64)
		for i := range remaining {
			sc := rule(&remaining[i])
			if sc > bestScore {
				bestScore, best = sc, best[:0]
			}
			if sc == bestScore {
				best = append(best, remaining[i])
			}
		}
		if len(best) == 1 {
			return best[0]
		}
		remaining = best
	}
	return remaining[0]
}

// lowerPriorityNominated lists the pods nominated to a node with a lower priority than pi;
// they lose their nomination when pi preempts there.
func lowerPriorityNominated(pods []*podInfo, pi *podInfo) []*podInfo {
	var out []*podInfo
	for _, p := range pods {
		if p.priority < pi.priority {
			out = append(out, p)
		}
	}
	return out
}

// evict marks each victim with the DisruptionTarget condition and deletes it gracefully, as
// upstream's preemption, then clears the nominations that no longer hold.
func (s *Scheduler) evict(ctx context.Context, preemptor *corev1.Pod, c preemptionCandidate, lowerNominated []*podInfo) {
	for _, v := range c.victims {
		victim := v.pod
		if victim.DeletionTimestamp != nil {
			continue
		}
		cond := &corev1.PodCondition{
			Type:               corev1.DisruptionTarget,
			Status:             corev1.ConditionTrue,
			Reason:             corev1.PodReasonPreemptionByScheduler,
			Message:            fmt.Sprintf("%s: preempting to accommodate a higher priority pod", preemptor.Spec.SchedulerName),
			ObservedGeneration: victim.Generation,
		}
		if err := s.patchPodStatus(ctx, victim, cond, nominationUnchanged); err != nil {
			if !apierrors.IsNotFound(err) {
				s.log.Error("Could not add DisruptionTarget condition due to preemption", "preemptor", preemptor.Namespace+"/"+preemptor.Name, "victim", victim.Namespace+"/"+victim.Name, "err", err)
			}
			continue
		}
		err := s.client.CoreV1().Pods(victim.Namespace).Delete(ctx, victim.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &victim.UID},
		})
		if err != nil {
			if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				s.log.Error("Tried to preempt pod", "pod", victim.Namespace+"/"+victim.Name, "preemptor", preemptor.Namespace+"/"+preemptor.Name, "err", err)
			}
			continue
		}
		if s.opts.Verbosity >= 2 {
			s.log.Info("Preemptor Pod preempted victim Pod", "preemptor", preemptor.Namespace+"/"+preemptor.Name, "victim", victim.Namespace+"/"+victim.Name, "node", c.node.name)
		}
		s.recorder.Eventf(victim, preemptor, corev1.EventTypeNormal, "Preempted", "Preempting", "Preempted by pod %v on node %v", preemptor.UID, c.node.name)
	}
	for _, p := range lowerNominated {
		s.queue.nominate(p, "")
		if p.pod.Status.NominatedNodeName != "" {
			if err := s.patchPodStatus(ctx, p.pod, nil, nominationCleared); err != nil && !apierrors.IsNotFound(err) {
				s.log.Warn("Cannot clear 'NominatedNodeName' field", "pod", p.key(), "err", err)
			}
		}
		s.queue.activate(p.key())
	}
}
