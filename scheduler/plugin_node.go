package scheduler

import (
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
)

// The plugins' names, as upstream's: they name the plugin in logs and decide which cluster
// events move a pod they rejected (see clusterEvent.mayHelp).
const (
	nodeUnschedulableName  = "NodeUnschedulable"
	nodeNameName           = "NodeName"
	taintTolerationName    = "TaintToleration"
	nodeAffinityName       = "NodeAffinity"
	nodePortsName          = "NodePorts"
	nodeResourcesFitName   = "NodeResourcesFit"
	balancedAllocationName = "NodeResourcesBalancedAllocation"
	podTopologySpreadName  = "PodTopologySpread"
	interPodAffinityName   = "InterPodAffinity"
)

// Upstream's filter reasons, word for word: they end up in the pod's condition and events.
const (
	reasonNodeUnschedulable = "node(s) were unschedulable"
	reasonNodeName          = "node(s) didn't match the requested node name"
	reasonNodeAffinity      = "node(s) didn't match Pod's node affinity/selector"
	reasonNodePorts         = "node(s) didn't have free ports for the requested pod ports"
)

// nodeUnschedulable rejects cordoned nodes (spec.unschedulable) unless the pod tolerates the
// node.kubernetes.io/unschedulable:NoSchedule taint, as upstream's NodeUnschedulable.
type nodeUnschedulable struct{}

var _ filterPlugin = nodeUnschedulable{}

func (nodeUnschedulable) name() string { return nodeUnschedulableName }

var unschedulableTaint = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}

func (nodeUnschedulable) filter(_ *cycleState, pod *podInfo, node *nodeInfo) *status {
	if !node.unschedulable || tolerationsTolerate(pod.pod.Spec.Tolerations, &unschedulableTaint) {
		return nil
	}
	return newStatus(unresolvable, nodeUnschedulableName, reasonNodeUnschedulable)
}

// nodeName keeps a pod that names its node (spec.nodeName) off every other node, as upstream's
// NodeName. Such pods are never queued, since they need no scheduling; the filter is for
// preemption and completeness.
type nodeName struct{}

var (
	_ filterPlugin    = nodeName{}
	_ preFilterPlugin = nodeName{}
)

func (nodeName) name() string { return nodeNameName }

func (nodeName) preFilter(_ *cycleState, pod *podInfo, _ *snapshot) (bool, *status) {
	return pod.pod.Spec.NodeName == "", nil
}

func (nodeName) filter(_ *cycleState, pod *podInfo, node *nodeInfo) *status {
	if pod.pod.Spec.NodeName == "" || pod.pod.Spec.NodeName == node.name {
		return nil
	}
	return newStatus(unresolvable, nodeNameName, reasonNodeName)
}

// taintToleration rejects nodes with a NoSchedule or NoExecute taint the pod does not
// tolerate, and scores nodes by how few PreferNoSchedule taints the pod does not tolerate, as
// upstream's TaintToleration. The node lifecycle's taints for not-ready
// (node.kubernetes.io/not-ready) and unreachable nodes are what keep pods off unhealthy nodes:
// upstream checks no node condition, only these taints.
type taintToleration struct{}

var (
	_ filterPlugin = taintToleration{}
	_ scorePlugin  = taintToleration{}
)

func (taintToleration) name() string { return taintTolerationName }

// ignoreLogs receives what Toleration.ToleratesTaint logs about unparseable numeric values.
var ignoreLogs = logr.Discard()

// tolerationsTolerate says whether any toleration tolerates the taint; Lt and Gt compare
// integer values.
func tolerationsTolerate(tolerations []corev1.Toleration, taint *corev1.Taint) bool {
	for i := range tolerations {
		if tolerations[i].ToleratesTaint(ignoreLogs, taint, true) {
			return true
		}
	}
	return false
}

func (taintToleration) filter(_ *cycleState, pod *podInfo, node *nodeInfo) *status {
	taints := node.taints
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !tolerationsTolerate(pod.pod.Spec.Tolerations, t) {
			return newStatus(unresolvable, taintTolerationName,
				fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value))
		}
	}
	return nil
}

// preferNoScheduleTolerations are the pod's tolerations that can tolerate a PreferNoSchedule
// taint.
type preferNoScheduleTolerations []corev1.Toleration

func (t preferNoScheduleTolerations) clone() stateData { return t }

func (taintToleration) prepare(cs *cycleState, pod *podInfo, _ []*nodeInfo, _ *snapshot) bool {
	var tols preferNoScheduleTolerations
	for _, t := range pod.pod.Spec.Tolerations {
		if t.Effect == "" || t.Effect == corev1.TaintEffectPreferNoSchedule {
			tols = append(tols, t)
		}
	}
	cs.write(taintTolerationName, tols)
	return true
}

func (taintToleration) score(cs *cycleState, _ *podInfo, node *nodeInfo) int64 {
	tols, _ := cs.read(taintTolerationName).(preferNoScheduleTolerations)
	var untolerated int64
	taints := node.taints
	for i := range taints {
		if taints[i].Effect == corev1.TaintEffectPreferNoSchedule && !tolerationsTolerate(tols, &taints[i]) {
			untolerated++
		}
	}
	return untolerated
}

func (taintToleration) normalize(_ *cycleState, _ *podInfo, scores []int64) {
	defaultNormalizeScore(scores, true)
}

// nodePorts rejects nodes where a host port the pod asks for is already taken, as upstream's
// NodePorts: same protocol and port, on the same address or where either is 0.0.0.0.
type nodePorts struct{}

var (
	_ filterPlugin    = nodePorts{}
	_ preFilterPlugin = nodePorts{}
)

func (nodePorts) name() string { return nodePortsName }

func (nodePorts) preFilter(_ *cycleState, pod *podInfo, _ *snapshot) (bool, *status) {
	return len(pod.ports) == 0, nil
}

func (nodePorts) filter(_ *cycleState, pod *podInfo, node *nodeInfo) *status {
	for _, want := range pod.ports {
		for _, used := range node.usedPorts {
			if want.conflicts(used) {
				return newStatus(unschedulable, nodePortsName, reasonNodePorts)
			}
		}
	}
	return nil
}
