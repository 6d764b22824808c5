package kubelet

// Pod admission: before the kubelet starts anything of a pod bound to it, it checks the pod
// against the node and the node's other active pods, as upstream's predicate admit handler
// (pkg/kubelet/lifecycle) does. A pod that does not fit is rejected: phase Failed, upstream's
// reason and "Pod was rejected: ..." message, and no container of it ever starts. The
// scheduler normally keeps such pods away; admission catches the pods it did not place
// (spec.nodeName set by their author) and the races between two placements.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// Upstream's admission reasons (pkg/kubelet/lifecycle) and the scheduler plugins' names and
// words the kubelet reuses for its own verdicts.
const (
	reasonInvalidNodeInfo       = "InvalidNodeInfo"
	insufficientResourcePrefix  = "OutOf"
	predicateNodeAffinity       = "NodeAffinity"
	predicateNodeName           = "NodeName"
	predicateNodePorts          = "NodePorts"
	predicateTaintToleration    = "TaintToleration"
	errReasonNodeAffinity       = "node(s) didn't match Pod's node affinity/selector"
	errReasonNodeName           = "node(s) didn't match the requested node name"
	errReasonNodePorts          = "node(s) didn't have free ports for the requested pod ports"
	errReasonTaintsNotTolerated = "node(s) had taints that the pod didn't tolerate"
)

// admissionVerdict is why a pod was rejected; the zero value admits.
type admissionVerdict struct {
	reason, message string
}

// podAdmission remembers the pods admitted to the node that are still active (not terminal,
// not removed): their host ports and requests are what a new pod must fit beside. Admissions
// are made one at a time so that two pods never both take the last room.
type podAdmission struct {
	mu     sync.Mutex
	active map[types.UID]*v1.Pod
}

func newPodAdmission() *podAdmission {
	return &podAdmission{active: map[types.UID]*v1.Pod{}}
}

// adopt counts a pod as active without checking it: it was admitted before (it already has a
// sandbox, or a phase past Pending), perhaps by an earlier kubelet.
func (a *podAdmission) adopt(pod *v1.Pod) {
	a.mu.Lock()
	a.active[pod.UID] = pod
	a.mu.Unlock()
}

// release says the pod no longer holds anything on the node (terminal or gone).
func (a *podAdmission) release(uid types.UID) {
	a.mu.Lock()
	delete(a.active, uid)
	a.mu.Unlock()
}

// admit checks pod against node and the active pods; admitted, it becomes active itself.
// node is fetched by getNode, and fetched again when only the node's labels stand in the way
// (they may have changed since), as upstream's handler does.
func (a *podAdmission) admit(ctx context.Context, pod *v1.Pod, getNode func(context.Context) (*v1.Node, error)) admissionVerdict {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.active[pod.UID]; ok {
		return admissionVerdict{}
	}
	node, err := getNode(ctx)
	if err != nil {
		return admissionVerdict{reasonInvalidNodeInfo, "Kubelet cannot get node info."}
	}
	others := make([]*v1.Pod, 0, len(a.active))
	for _, p := range a.active {
		others = append(others, p)
	}
	failures := generalPredicates(pod, node, others)
	if len(failures) > 0 && onlyNodeAffinity(failures) {
		if fresh, err := getNode(ctx); err == nil {
			failures = generalPredicates(pod, fresh, others)
		}
	}
	if len(failures) > 0 {
		// upstream reports the first failure only
		return failures[0]
	}
	a.active[pod.UID] = pod
	return admissionVerdict{}
}

func onlyNodeAffinity(failures []admissionVerdict) bool {
	for _, f := range failures {
		if f.reason != predicateNodeAffinity {
			return false
		}
	}
	return true
}

// generalPredicates is upstream's kubelet generalFilter: resources, required node affinity
// (nodeSelector included), node name, host ports, then NoExecute taints not tolerated; every
// failure, in that order.
func generalPredicates(pod *v1.Pod, node *v1.Node, others []*v1.Pod) []admissionVerdict {
	failures := resourceFit(pod, node, others)
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); !ok {
		failures = append(failures, predicateFailure(predicateNodeAffinity, errReasonNodeAffinity))
	}
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node.Name {
		failures = append(failures, predicateFailure(predicateNodeName, errReasonNodeName))
	}
	if !hostPortsFree(pod, others) {
		failures = append(failures, predicateFailure(predicateNodePorts, errReasonNodePorts))
	}
	// the kubelet cares only for NoExecute taints: NoSchedule ones are the scheduler's, and a
	// pod bound by hand may ignore them
	_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, pod.Spec.Tolerations,
		func(t *v1.Taint) bool { return t.Effect == v1.TaintEffectNoExecute }, false)
	if untolerated {
		failures = append(failures, predicateFailure(predicateTaintToleration, errReasonTaintsNotTolerated))
	}
	return failures
}

func predicateFailure(name, desc string) admissionVerdict {
	return admissionVerdict{reason: name, message: fmt.Sprintf("Predicate %s failed: %s", name, desc)}
}

// insufficient is upstream's InsufficientResourceError: reason OutOf<resource>, amounts in
// the resource's base unit (milli-cores for cpu).
func insufficient(name v1.ResourceName, requested, used, capacity int64) admissionVerdict {
	return admissionVerdict{
		reason: insufficientResourcePrefix + string(name),
		message: fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
			name, requested, used, capacity),
	}
}

// resourceFit is the scheduler's NodeResourcesFit against the node's allocatable: the pod
// count, then every resource the pod requests that the node has, beside the requests of the
// active pods. Extended resources the node does not know are left out, as upstream's kubelet
// does (they may be served by something else).
func resourceFit(pod *v1.Pod, node *v1.Node, others []*v1.Pod) []admissionVerdict {
	var failures []admissionVerdict
	alloc := node.Status.Allocatable
	if maxPods, ok := alloc[v1.ResourcePods]; ok && int64(len(others))+1 > maxPods.Value() {
		failures = append(failures, insufficient(v1.ResourcePods, 1, int64(len(others)), maxPods.Value()))
	}
	want := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	used := v1.ResourceList{}
	for _, p := range others {
		for name, q := range resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{}) {
			sum := used[name]
			sum.Add(q)
			used[name] = sum
		}
	}
	amount := func(name v1.ResourceName, q resource.Quantity) int64 {
		if name == v1.ResourceCPU {
			return q.MilliValue()
		}
		return q.Value()
	}
	// upstream's order: cpu, memory, ephemeral storage, then the scalar resources
	names := []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage}
	for name := range want {
		if name != v1.ResourceCPU && name != v1.ResourceMemory && name != v1.ResourceEphemeralStorage && name != v1.ResourcePods {
			names = append(names, name)
		}
	}
	for _, name := range names {
		q, ok := want[name]
		if !ok || amount(name, q) <= 0 {
			continue
		}
		capacity, known := alloc[name]
		if !known && name != v1.ResourceCPU && name != v1.ResourceMemory && name != v1.ResourceEphemeralStorage {
			continue
		}
		requested, inUse, total := amount(name, q), amount(name, used[name]), amount(name, capacity)
		if requested > total-inUse {
			failures = append(failures, insufficient(name, requested, inUse, total))
		}
	}
	return failures
}

// hostPortsFree says whether none of the pod's host ports (its containers' and its sidecars')
// is taken by an active pod: same protocol and port, on the same host IP or where either binds
// every address.
func hostPortsFree(pod *v1.Pod, others []*v1.Pod) bool {
	want := podHostPorts(pod)
	if len(want) == 0 {
		return true
	}
	for _, other := range others {
		for _, taken := range podHostPorts(other) {
			for _, p := range want {
				if p.port == taken.port && p.protocol == taken.protocol &&
					(p.ip == taken.ip || p.ip == anyHostIP || taken.ip == anyHostIP) {
					return false
				}
			}
		}
	}
	return true
}

const anyHostIP = "0.0.0.0"

type hostPort struct {
	ip, protocol string
	port         int32
}

func podHostPorts(pod *v1.Pod) []hostPort {
	var ports []hostPort
	add := func(c v1.Container) {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			hp := hostPort{ip: p.HostIP, protocol: string(p.Protocol), port: p.HostPort}
			if hp.ip == "" {
				hp.ip = anyHostIP
			}
			if hp.protocol == "" {
				hp.protocol = string(v1.ProtocolTCP)
			}
			ports = append(ports, hp)
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if isRestartableInit(&c) {
			add(c)
		}
	}
	for _, c := range pod.Spec.Containers {
		add(c)
	}
	return ports
}

// admitPod decides, once per pod, whether it may run here; a rejected pod's status says why.
// It reports whether the pod may run.
func (k *Kubelet) admitPod(ctx context.Context, pod *v1.Pod, rs *podRuntime, state *podState) bool {
	if state.admitted {
		return true
	}
	if state.rejection == nil {
		if len(rs.sandboxes) > 0 || len(rs.containers) > 0 || (pod.Status.Phase != "" && pod.Status.Phase != v1.PodPending) {
			// admitted before, maybe by an earlier kubelet of this node
			k.admission.adopt(pod)
			state.admitted = true
			return true
		}
		var verdict admissionVerdict
		if k.eviction != nil {
			// the eviction manager's admission comes first, as upstream's admit handlers
			if msg := k.eviction.admitUnderPressure(pod); msg != "" {
				verdict = admissionVerdict{reason: reasonEvicted, message: msg}
			}
		}
		if verdict.reason == "" {
			verdict = k.admission.admit(ctx, pod, func(ctx context.Context) (*v1.Node, error) {
				return k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
			})
		}
		if verdict.reason == "" {
			state.admitted = true
			return true
		}
		state.rejection = &verdict
		state.terminal = true
		k.log.Info("pod rejected", slog.String("pod", podKey(pod)), slog.String("reason", verdict.reason), slog.String("message", verdict.message))
		k.recorder.Eventf(pod, v1.EventTypeWarning, verdict.reason, "%s", verdict.message)
	}
	return false
}

// rejectedStatus is the status of a pod the kubelet refused: upstream writes only these.
func rejectedStatus(pod *v1.Pod, state *podState) v1.PodStatus {
	return v1.PodStatus{
		Phase:     v1.PodFailed,
		Reason:    state.rejection.reason,
		Message:   "Pod was rejected: " + state.rejection.message,
		QOSClass:  qosClass(pod),
		StartTime: state.startTime,
	}
}
