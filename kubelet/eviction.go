package kubelet

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Upstream's words for an evicted pod.
const (
	reasonEvicted          = "Evicted"
	nodeLowMessageFmt      = "The node was low on resource: %v. "
	thresholdMetMessageFmt = "Threshold quantity: %v, available: %v. "
	containerMessageFmt    = "Container %s was using %s, request is %s, has larger consumption of %v. "
	nodeConditionMessage   = "The node had condition: %v. "
	// immediateEvictionGracePeriod is the grace period of a pod evicted for a hard threshold.
	immediateEvictionGracePeriod = 1
	// systemCriticalPriority is the priority from which a pod is critical (upstream's
	// scheduling.SystemCriticalPriority).
	systemCriticalPriority = 2 * 1000000000
)

// PodStatsFunc reads the usage of the node's pods now (memory working set, volumes).
type PodStatsFunc func(ctx context.Context) ([]statsapi.PodStats, error)

// podEviction is the kubelet's decision to evict a pod: what its status will say and how
// long its containers get to stop.
type podEviction struct {
	message     string
	gracePeriod int64
}

// evictionManager is upstream's node-pressure eviction: every monitoring interval it observes
// the signals, sets the pressure conditions of the thresholds met (kept for the pressure
// transition period after they stop being met), and when a threshold is met (a soft one for
// its grace period) it first reclaims what the node itself holds (unused images, for disk)
// and, if that is not enough, evicts one pod, the first in upstream's ranking. It never evicts
// a critical pod (static, mirror, or of system-critical priority).
type evictionManager struct {
	k          *Kubelet
	thresholds []EvictionThreshold
	observe    ObserveSignalsFunc
	podStats   PodStatsFunc
	// transition is how long a pressure condition stays after its thresholds stop being met.
	transition time.Duration
	// maxPodGracePeriod caps the grace period of a pod evicted for a soft threshold.
	maxPodGracePeriod int64
	log               *slog.Logger
	now               func() time.Time
	// evictions counts the pods evicted, by the signal that made the kubelet evict them.
	evictions *prometheus.CounterVec

	mu sync.Mutex
	// conditions are the pressure conditions the Node reports now.
	conditions map[v1.NodeConditionType]bool
	// lastObservedAt is when each condition's thresholds were last met.
	lastObservedAt map[v1.NodeConditionType]time.Time
	// firstObservedAt is when each threshold (by String) started being met, for grace periods.
	firstObservedAt map[string]time.Time
}

func newEvictionManager(k *Kubelet, thresholds []EvictionThreshold, observe ObserveSignalsFunc, podStats PodStatsFunc,
	transition time.Duration, maxPodGracePeriod int64) *evictionManager {
	return &evictionManager{
		k: k, thresholds: thresholds, observe: observe, podStats: podStats, transition: transition,
		maxPodGracePeriod: maxPodGracePeriod, log: k.log, now: time.Now,
		conditions: map[v1.NodeConditionType]bool{}, lastObservedAt: map[v1.NodeConditionType]time.Time{},
		firstObservedAt: map[string]time.Time{},
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubelet_evictions", Help: "Cumulative number of pod evictions by eviction signal",
		}, []string{"eviction_signal"}),
	}
}

// pressureEventReason is the reason of upstream's Node event when a pressure condition turns
// to pressure (true) or away from it.
func pressureEventReason(c v1.NodeConditionType, pressure bool) string {
	switch {
	case c == v1.NodeMemoryPressure && pressure:
		return "NodeHasInsufficientMemory"
	case c == v1.NodeMemoryPressure:
		return "NodeHasSufficientMemory"
	case c == v1.NodeDiskPressure && pressure:
		return "NodeHasDiskPressure"
	case c == v1.NodeDiskPressure:
		return "NodeHasNoDiskPressure"
	case pressure:
		return "NodeHasInsufficientPID"
	}
	return "NodeHasSufficientPID"
}

// run synchronizes every interval until ctx is done.
func (m *evictionManager) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := m.synchronize(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("eviction manager: unable to observe the node's signals", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pressure says whether the Node has the condition now.
func (m *evictionManager) pressure(c v1.NodeConditionType) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conditions[c]
}

// pressureConditions are the Node's pressure conditions now, in a fixed order.
func (m *evictionManager) pressureConditions() []v1.NodeConditionType {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []v1.NodeConditionType
	for _, c := range []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure} {
		if m.conditions[c] {
			out = append(out, c)
		}
	}
	return out
}

// thresholdMet says whether t is met by obs, and the threshold's quantity and what is
// available, for the message.
func thresholdMet(t EvictionThreshold, obs SignalObservations) (met bool, quantity, available *resource.Quantity) {
	o, ok := obs[t.Signal]
	if !ok {
		return false, nil, nil
	}
	quantity = t.quantity(o.Capacity)
	available = resource.NewQuantity(o.Available, signalFormat(t.Signal))
	return quantity.Cmp(*available) > 0, quantity, available
}

// synchronize is one round of the manager; it returns the pod it evicted, if any.
func (m *evictionManager) synchronize(ctx context.Context) (*v1.Pod, error) {
	obs, err := m.observe(ctx)
	if err != nil {
		return nil, err
	}
	now := m.now()
	var met []EvictionThreshold
	for _, t := range m.thresholds {
		if ok, _, _ := thresholdMet(t, obs); ok {
			met = append(met, t)
		}
	}

	m.mu.Lock()
	first := map[string]time.Time{}
	for _, t := range met {
		at, ok := m.firstObservedAt[t.String()]
		if !ok {
			at = now
		}
		first[t.String()] = at
		m.lastObservedAt[signalCondition(t.Signal)] = now
	}
	m.firstObservedAt = first
	for _, c := range []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure} {
		at, ok := m.lastObservedAt[c]
		pressure := ok && now.Sub(at) < m.transition
		if pressure != m.conditions[c] {
			m.log.Info("eviction manager: node condition changed", "condition", c, "status", pressure)
			m.k.nodeEvent(v1.EventTypeNormal, pressureEventReason(c, pressure), fmt.Sprintf("Node %s status is now: %s", m.k.cfg.NodeName, pressureEventReason(c, pressure)))
		}
		m.conditions[c] = pressure
	}
	var due []EvictionThreshold
	for _, t := range met {
		if now.Sub(first[t.String()]) >= t.GracePeriod {
			due = append(due, t)
		}
	}
	m.mu.Unlock()
	if len(due) == 0 {
		return nil, nil
	}

	// memory first, then the others in the signals' order
	slices.SortStableFunc(due, func(a, b EvictionThreshold) int {
		return slices.Index(evictionSignals, a.Signal) - slices.Index(evictionSignals, b.Signal)
	})
	threshold := due[0]
	starved := signalResource(threshold.Signal)
	m.log.Warn("eviction manager: attempting to reclaim", "resourceName", starved, "threshold", threshold.String())
	if m.reclaimNodeLevelResources(ctx, threshold) {
		m.log.Info("eviction manager: able to reduce resource pressure without evicting pods", "resourceName", starved)
		return nil, nil
	}
	m.log.Info("eviction manager: must evict pod(s) to reclaim", "resourceName", starved)

	pods := m.activePods()
	if len(pods) == 0 {
		m.log.Error("eviction manager: eviction thresholds have been met, but no pods are active to evict")
		return nil, nil
	}
	stats := map[types.UID]statsapi.PodStats{}
	if all, err := m.podStats(ctx); err == nil {
		for _, s := range all {
			stats[types.UID(s.PodRef.UID)] = s
		}
	} else {
		m.log.Warn("eviction manager: pod stats", "err", err)
	}
	rankPods(pods, stats, starved)
	for _, pod := range pods {
		if isCriticalPod(pod) {
			m.log.Error("eviction manager: cannot evict a critical pod", "pod", podKey(pod))
			continue
		}
		grace := int64(immediateEvictionGracePeriod)
		if !threshold.hard() {
			grace = m.maxPodGracePeriod
			if tg := pod.Spec.TerminationGracePeriodSeconds; tg != nil && (grace <= 0 || *tg < grace) {
				grace = *tg
			}
		}
		message := evictionMessage(starved, pod, stats, due, obs)
		m.log.Info("eviction manager: evicting pod", "pod", podKey(pod), "message", message)
		m.k.recorder.AnnotatedEventf(pod, map[string]string{
			"offending_containers": strings.Join(offendingContainers(starved, pod, stats), ","),
			"starved_resource":     string(starved),
		}, v1.EventTypeWarning, reasonEvicted, "%s", message)
		m.k.workers.evict(pod.UID, podEviction{message: message, gracePeriod: grace})
		m.evictions.WithLabelValues(string(threshold.Signal)).Inc()
		return pod, nil
	}
	return nil, nil
}

// reclaimNodeLevelResources frees what the node holds for a disk threshold (unused images, as
// upstream's image garbage collector does under disk pressure) and says whether the threshold
// is no longer met.
func (m *evictionManager) reclaimNodeLevelResources(ctx context.Context, t EvictionThreshold) bool {
	if signalCondition(t.Signal) != v1.NodeDiskPressure || m.k.images == nil {
		return false
	}
	if _, err := m.k.images.deleteUnusedImages(ctx); err != nil {
		m.log.Warn("eviction manager: unable to delete unused images", "err", err)
	}
	obs, err := m.observe(ctx)
	if err != nil {
		return false
	}
	met, _, _ := thresholdMet(t, obs)
	return !met
}

// activePods are the node's pods that run or may run: not terminal, not being deleted, not
// already evicted.
func (m *evictionManager) activePods() []*v1.Pod {
	if m.k.podLister == nil {
		return nil
	}
	all, err := m.k.podLister.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*v1.Pod
	for _, p := range all {
		if isTerminalPhase(p.Status.Phase) || p.DeletionTimestamp != nil || m.k.workers.evicting(p.UID) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// rankPods orders pods for eviction as upstream: for memory, pods using more than they
// request first, then lower priority first, then more usage above the request first; for
// disk the same with local ephemeral storage; for process IDs, lower priority first. Pods
// without stats come first, as upstream's.
func rankPods(pods []*v1.Pod, stats map[types.UID]statsapi.PodStats, starved v1.ResourceName) {
	usage := func(p *v1.Pod) (int64, bool) {
		s, ok := stats[p.UID]
		if !ok {
			return 0, false
		}
		switch starved {
		case v1.ResourceMemory:
			return podMemoryUsage(s), true
		case v1.ResourceEphemeralStorage:
			return podDiskUsage(s), true
		}
		return 0, true
	}
	request := func(p *v1.Pod) int64 {
		if starved != v1.ResourceMemory && starved != v1.ResourceEphemeralStorage {
			return 0
		}
		q := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})[starved]
		return q.Value()
	}
	priority := func(p *v1.Pod) int32 {
		if p.Spec.Priority != nil {
			return *p.Spec.Priority
		}
		return 0
	}
	slices.SortStableFunc(pods, func(a, b *v1.Pod) int {
		ua, okA := usage(a)
		ub, okB := usage(b)
		if okA != okB {
			if !okA {
				return -1
			}
			return 1
		}
		if starved == v1.ResourceMemory || starved == v1.ResourceEphemeralStorage {
			exceedA, exceedB := ua > request(a), ub > request(b)
			if exceedA != exceedB {
				if exceedA {
					return -1
				}
				return 1
			}
		}
		if c := cmp.Compare(priority(a), priority(b)); c != 0 {
			return c
		}
		return cmp.Compare(ub-request(b), ua-request(a))
	})
}

// podMemoryUsage is the working set of the pod's containers.
func podMemoryUsage(s statsapi.PodStats) int64 {
	var sum int64
	for _, c := range s.Containers {
		if c.Memory != nil && c.Memory.WorkingSetBytes != nil {
			sum += int64(*c.Memory.WorkingSetBytes)
		}
	}
	return sum
}

// podDiskUsage is what the pod writes locally: its containers' writable layers and logs and
// its local ephemeral volumes.
func podDiskUsage(s statsapi.PodStats) int64 {
	var sum int64
	for _, c := range s.Containers {
		for _, fs := range []*statsapi.FsStats{c.Rootfs, c.Logs} {
			if fs != nil && fs.UsedBytes != nil {
				sum += int64(*fs.UsedBytes)
			}
		}
	}
	for _, v := range s.VolumeStats {
		if v.UsedBytes != nil {
			sum += int64(*v.UsedBytes)
		}
	}
	return sum
}

// containerUsage is a container's use of the starved resource, nil when unknown.
func containerUsage(starved v1.ResourceName, c statsapi.ContainerStats) *resource.Quantity {
	switch starved {
	case v1.ResourceMemory:
		if c.Memory != nil && c.Memory.WorkingSetBytes != nil {
			return resource.NewQuantity(int64(*c.Memory.WorkingSetBytes), resource.BinarySI)
		}
	case v1.ResourceEphemeralStorage:
		if c.Rootfs != nil && c.Rootfs.UsedBytes != nil && c.Logs != nil && c.Logs.UsedBytes != nil {
			return resource.NewQuantity(int64(*c.Rootfs.UsedBytes+*c.Logs.UsedBytes), resource.BinarySI)
		}
	}
	return nil
}

// evictionMessage is upstream's message for a pod evicted to reclaim starved: the node was
// low, the threshold and what was available, and each container using more than it requests.
func evictionMessage(starved v1.ResourceName, pod *v1.Pod, stats map[types.UID]statsapi.PodStats, thresholds []EvictionThreshold, obs SignalObservations) string {
	message := fmt.Sprintf(nodeLowMessageFmt, starved)
	for _, t := range thresholds {
		if signalResource(t.Signal) != starved {
			continue
		}
		if met, quantity, available := thresholdMet(t, obs); met {
			message += fmt.Sprintf(thresholdMetMessageFmt, quantity, available)
			break
		}
	}
	s, ok := stats[pod.UID]
	if !ok {
		return message
	}
	for _, cs := range s.Containers {
		for _, c := range pod.Spec.Containers {
			if c.Name != cs.Name {
				continue
			}
			request := c.Resources.Requests[starved]
			if usage := containerUsage(starved, cs); usage != nil && usage.Cmp(request) > 0 {
				message += fmt.Sprintf(containerMessageFmt, c.Name, usage.String(), request.String(), starved)
			}
		}
	}
	return message
}

// offendingContainers are the pod's containers using more of starved than they request.
func offendingContainers(starved v1.ResourceName, pod *v1.Pod, stats map[types.UID]statsapi.PodStats) []string {
	var out []string
	for _, cs := range stats[pod.UID].Containers {
		for _, c := range pod.Spec.Containers {
			if usage := containerUsage(starved, cs); c.Name == cs.Name && usage != nil && usage.Cmp(c.Resources.Requests[starved]) > 0 {
				out = append(out, c.Name)
			}
		}
	}
	return out
}

// isCriticalPod is upstream's IsCriticalPod: a static or mirror pod, or one of
// system-critical priority.
func isCriticalPod(pod *v1.Pod) bool {
	if source, ok := pod.Annotations["kubernetes.io/config.source"]; ok && source != "api" {
		return true
	}
	if _, ok := pod.Annotations[v1.MirrorPodAnnotationKey]; ok {
		return true
	}
	return pod.Spec.Priority != nil && *pod.Spec.Priority >= systemCriticalPriority
}

// admitUnderPressure is upstream's eviction admission: under memory pressure only BestEffort
// pods that do not tolerate the memory-pressure taint are refused, under any other pressure
// every pod; critical pods always run. It returns the message of a refusal, "" to admit.
func (m *evictionManager) admitUnderPressure(pod *v1.Pod) string {
	conditions := m.pressureConditions()
	if len(conditions) == 0 || isCriticalPod(pod) {
		return ""
	}
	if len(conditions) == 1 && conditions[0] == v1.NodeMemoryPressure {
		if qosClass(pod) != v1.PodQOSBestEffort {
			return ""
		}
		taint := &v1.Taint{Key: v1.TaintNodeMemoryPressure, Effect: v1.TaintEffectNoSchedule}
		for _, t := range pod.Spec.Tolerations {
			if t.ToleratesTaint(klog.Background(), taint, false) {
				return ""
			}
		}
	}
	return fmt.Sprintf(nodeConditionMessage, conditions)
}
