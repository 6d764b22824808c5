package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

// podInfo is a pod with what the plugins would otherwise recompute on every node: its
// requests, priority, host ports and parsed affinity terms. It is immutable once built; a
// changed pod gets a new podInfo.
type podInfo struct {
	pod *corev1.Pod
	// requests is what NodeResourcesFit checks against a node's free allocatable.
	requests resources
	// nonZeroCPU and nonZeroMemory count unset requests as the scoring defaults.
	nonZeroCPU, nonZeroMemory int64
	priority                  int32
	// preemptNever: the pod's preemptionPolicy is Never.
	preemptNever bool
	ports        []hostPort

	requiredAffinity      []affinityTerm
	requiredAntiAffinity  []affinityTerm
	preferredAffinity     []weightedAffinityTerm
	preferredAntiAffinity []weightedAffinityTerm
	// affinityErr is why the pod's affinity terms could not be parsed; such a pod fits no node.
	affinityErr error
}

// priorityResolver gives the priority and preemption policy of a pod whose spec does not
// carry them (admission normally sets spec.priority from the PriorityClass).
type priorityResolver func(pod *corev1.Pod) (int32, *corev1.PreemptionPolicy)

func newPodInfo(pod *corev1.Pod, resolve priorityResolver) *podInfo {
	pi := &podInfo{pod: pod, requests: podRequests(pod, false)}
	nz := podRequests(pod, true)
	pi.nonZeroCPU, pi.nonZeroMemory = nz.milliCPU, nz.memory

	policy := pod.Spec.PreemptionPolicy
	switch {
	case pod.Spec.Priority != nil:
		pi.priority = *pod.Spec.Priority
	case resolve != nil:
		var p *corev1.PreemptionPolicy
		pi.priority, p = resolve(pod)
		if policy == nil {
			policy = p
		}
	}
	pi.preemptNever = policy != nil && *policy == corev1.PreemptNever
	pi.ports = podHostPorts(pod)

	if a := pod.Spec.Affinity; a != nil {
		var err error
		if a.PodAffinity != nil {
			if pi.requiredAffinity, err = newAffinityTerms(pod, a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution); err != nil {
				pi.affinityErr = err
			}
			if pi.preferredAffinity, err = newWeightedAffinityTerms(pod, a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution); err != nil {
				pi.affinityErr = err
			}
		}
		if a.PodAntiAffinity != nil {
			if pi.requiredAntiAffinity, err = newAffinityTerms(pod, a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution); err != nil {
				pi.affinityErr = err
			}
			if pi.preferredAntiAffinity, err = newWeightedAffinityTerms(pod, a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution); err != nil {
				pi.affinityErr = err
			}
		}
	}
	return pi
}

func (pi *podInfo) key() string { return pi.pod.Namespace + "/" + pi.pod.Name }

func (pi *podInfo) hasAffinity() bool {
	return len(pi.requiredAffinity)+len(pi.requiredAntiAffinity)+len(pi.preferredAffinity)+len(pi.preferredAntiAffinity) > 0
}

// affinityTerm is a parsed v1.PodAffinityTerm: which pods it selects and over which topology.
type affinityTerm struct {
	namespaces        sets.Set[string]
	selector          labels.Selector
	namespaceSelector labels.Selector
	topologyKey       string
}

// matches says whether the term selects pod, whose namespace has the labels nsLabels.
func (t *affinityTerm) matches(pod *corev1.Pod, nsLabels labels.Set) bool {
	if t.namespaces.Has(pod.Namespace) || t.namespaceSelector.Matches(nsLabels) {
		return t.selector.Matches(labels.Set(pod.Labels))
	}
	return false
}

type weightedAffinityTerm struct {
	affinityTerm
	weight int32
}

func newAffinityTerm(pod *corev1.Pod, term *corev1.PodAffinityTerm) (affinityTerm, error) {
	sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
	if err != nil {
		return affinityTerm{}, fmt.Errorf("parsing pod affinity term: %w", err)
	}
	t := affinityTerm{selector: sel, topologyKey: term.TopologyKey, namespaces: sets.New[string]()}
	// a term naming no namespaces and no namespace selector means the pod's own namespace
	if len(term.Namespaces) == 0 && term.NamespaceSelector == nil {
		t.namespaces.Insert(pod.Namespace)
	} else {
		t.namespaces.Insert(term.Namespaces...)
	}
	// {} selects every namespace, a nil selector none
	if t.namespaceSelector, err = metav1.LabelSelectorAsSelector(term.NamespaceSelector); err != nil {
		return affinityTerm{}, fmt.Errorf("parsing pod affinity namespace selector: %w", err)
	}
	return t, nil
}

func newAffinityTerms(pod *corev1.Pod, terms []corev1.PodAffinityTerm) ([]affinityTerm, error) {
	if len(terms) == 0 {
		return nil, nil
	}
	out := make([]affinityTerm, 0, len(terms))
	for i := range terms {
		t, err := newAffinityTerm(pod, &terms[i])
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func newWeightedAffinityTerms(pod *corev1.Pod, terms []corev1.WeightedPodAffinityTerm) ([]weightedAffinityTerm, error) {
	if len(terms) == 0 {
		return nil, nil
	}
	out := make([]weightedAffinityTerm, 0, len(terms))
	for i := range terms {
		t, err := newAffinityTerm(pod, &terms[i].PodAffinityTerm)
		if err != nil {
			return nil, err
		}
		out = append(out, weightedAffinityTerm{affinityTerm: t, weight: terms[i].Weight})
	}
	return out, nil
}

// hostPort is one host port a pod takes on its node.
type hostPort struct {
	ip       string // "0.0.0.0" when the pod names none
	protocol corev1.Protocol
	port     int32
}

const allAddresses = "0.0.0.0"

// conflicts says whether two host ports cannot both be bound on one node: same protocol and
// port, and the same address or either on every address.
func (p hostPort) conflicts(o hostPort) bool {
	return p.port == o.port && p.protocol == o.protocol &&
		(p.ip == o.ip || p.ip == allAddresses || o.ip == allAddresses)
}

// podHostPorts lists the host ports of a pod's containers and restartable init containers.
func podHostPorts(pod *corev1.Pod) []hostPort {
	var out []hostPort
	add := func(c *corev1.Container) {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			hp := hostPort{ip: p.HostIP, protocol: p.Protocol, port: p.HostPort}
			if hp.ip == "" {
				hp.ip = allAddresses
			}
			if hp.protocol == "" {
				hp.protocol = corev1.ProtocolTCP
			}
			out = append(out, hp)
		}
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i])
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			add(c)
		}
	}
	return out
}

// nodeInfo is a node with the pods the scheduler counts on it (bound ones and assumed ones)
// and their sums, as upstream's NodeInfo. A nodeInfo without node holds pods that the
// informer has seen bound to a node it has not (yet) seen.
type nodeInfo struct {
	node *corev1.Node
	name string
	// unschedulable and taints are the node's, kept here so that the filters every pod runs
	// on every node do not reach into the Node object.
	unschedulable bool
	taints        []corev1.Taint

	pods []*podInfo
	// podsWithAffinity have any pod (anti-)affinity term; podsWithRequiredAntiAffinity a
	// required anti-affinity term. InterPodAffinity only walks these.
	podsWithAffinity             []*podInfo
	podsWithRequiredAntiAffinity []*podInfo
	usedPorts                    []hostPort

	allocatable resources
	requested   resources
	// nonZeroRequested counts only cpu and memory, with the scoring defaults for pods that
	// set none.
	nonZeroCPU, nonZeroMemory int64

	// generation is the cache's generation when this node last changed.
	generation int64
}

func newNodeInfo(name string) *nodeInfo { return &nodeInfo{name: name} }

func (n *nodeInfo) setNode(node *corev1.Node) {
	n.node = node
	n.allocatable = nodeAllocatable(node)
	n.unschedulable = node.Spec.Unschedulable
	n.taints = node.Spec.Taints
}

func (n *nodeInfo) addPod(pi *podInfo) {
	n.pods = append(n.pods, pi)
	if pi.hasAffinity() {
		n.podsWithAffinity = append(n.podsWithAffinity, pi)
	}
	if len(pi.requiredAntiAffinity) > 0 {
		n.podsWithRequiredAntiAffinity = append(n.podsWithRequiredAntiAffinity, pi)
	}
	n.usedPorts = append(n.usedPorts, pi.ports...)
	n.requested.addResources(&pi.requests, 1)
	n.nonZeroCPU += pi.nonZeroCPU
	n.nonZeroMemory += pi.nonZeroMemory
}

// removePod takes the pod with pi's UID off the node and says whether it was there.
func (n *nodeInfo) removePod(pi *podInfo) bool {
	uid := pi.pod.UID
	i := indexOfPod(n.pods, uid)
	if i < 0 {
		return false
	}
	old := n.pods[i]
	n.pods = removeAt(n.pods, i)
	if j := indexOfPod(n.podsWithAffinity, uid); j >= 0 {
		n.podsWithAffinity = removeAt(n.podsWithAffinity, j)
	}
	if j := indexOfPod(n.podsWithRequiredAntiAffinity, uid); j >= 0 {
		n.podsWithRequiredAntiAffinity = removeAt(n.podsWithRequiredAntiAffinity, j)
	}
	for _, p := range old.ports {
		for j, u := range n.usedPorts {
			if u == p {
				n.usedPorts = append(n.usedPorts[:j:j], n.usedPorts[j+1:]...)
				break
			}
		}
	}
	n.requested.addResources(&old.requests, -1)
	n.nonZeroCPU -= old.nonZeroCPU
	n.nonZeroMemory -= old.nonZeroMemory
	return true
}

func indexOfPod(pods []*podInfo, uid types.UID) int {
	for i, p := range pods {
		if p.pod.UID == uid {
			return i
		}
	}
	return -1
}

// removeAt removes element i without writing into the backing array other slices may share:
// clones made for snapshots share them.
func removeAt(pods []*podInfo, i int) []*podInfo {
	out := make([]*podInfo, 0, len(pods)-1)
	out = append(out, pods[:i]...)
	return append(out, pods[i+1:]...)
}

// clone copies the node's bookkeeping; the podInfos and the Node object are shared, being
// immutable. Slices are capped so that appending to a clone never writes into the original.
func (n *nodeInfo) clone() *nodeInfo {
	c := *n
	c.pods = n.pods[:len(n.pods):len(n.pods)]
	c.podsWithAffinity = n.podsWithAffinity[:len(n.podsWithAffinity):len(n.podsWithAffinity)]
	c.podsWithRequiredAntiAffinity = n.podsWithRequiredAntiAffinity[:len(n.podsWithRequiredAntiAffinity):len(n.podsWithRequiredAntiAffinity)]
	c.usedPorts = n.usedPorts[:len(n.usedPorts):len(n.usedPorts)]
	c.requested = n.requested.clone()
	c.allocatable = n.allocatable.clone()
	return &c
}
