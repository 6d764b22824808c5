package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// registerNode creates the Node, or adopts the one registered before (a restart), and learns
// its pod CIDR. It retries until it succeeds or ctx is done.
func (k *Kubelet) registerNode(ctx context.Context, version *runtimeapi.VersionResponse) error {
	delay := 100 * time.Millisecond
	for {
		err := k.tryRegisterNode(ctx, version)
		if err == nil {
			return nil
		}
		k.log.Warn("unable to register node", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 7*time.Second)
	}
}

func (k *Kubelet) tryRegisterNode(ctx context.Context, version *runtimeapi.VersionResponse) error {
	node := k.initialNode(ctx, version)
	created, err := k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	switch {
	case err == nil:
		k.log.Info("successfully registered node")
		k.notePodCIDR(created)
		return k.postNodeStatus(ctx, created, node.Status)
	case !apierrors.IsAlreadyExists(err):
		return err
	}
	existing, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	// Keep the well-known labels true, as upstream's reconcile of default labels does.
	changed := false
	if existing.Labels == nil {
		existing.Labels = map[string]string{}
	}
	for key, v := range node.Labels {
		if existing.Labels[key] != v {
			existing.Labels[key] = v
			changed = true
		}
	}
	if changed {
		if existing, err = k.client.CoreV1().Nodes().Update(ctx, existing, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	k.notePodCIDR(existing)
	return k.postNodeStatus(ctx, existing, k.mergeHeartbeat(existing.Status, node.Status, true))
}

func (k *Kubelet) initialNode(ctx context.Context, version *runtimeapi.VersionResponse) *v1.Node {
	labels := map[string]string{
		v1.LabelHostname:          strings.ToLower(k.cfg.NodeName),
		v1.LabelOSStable:          k.cfg.Machine.OperatingSystem,
		v1.LabelArchStable:        k.cfg.Machine.Architecture,
		"beta.kubernetes.io/os":   k.cfg.Machine.OperatingSystem,
		"beta.kubernetes.io/arch": k.cfg.Machine.Architecture,
	}
	for key, v := range k.cfg.NodeLabels {
		labels[key] = v
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        k.cfg.NodeName,
			Labels:      labels,
			Annotations: map[string]string{"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
		},
		Spec:   v1.NodeSpec{PodCIDR: firstCIDR(k.cfg.PodCIDR), PodCIDRs: splitCIDRs(k.cfg.PodCIDR)},
		Status: k.nodeStatus(ctx, version, nil),
	}
}

// splitCIDRs is a comma-separated --pod-cidr as spec.podCIDRs: one CIDR, or one per IP family
// for a dual-stack node.
func splitCIDRs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// firstCIDR is the primary family's CIDR of a comma-separated list, spec.podCIDR.
func firstCIDR(s string) string {
	first, _, _ := strings.Cut(s, ",")
	return first
}

// notePodCIDR remembers the Node's pod CIDRs and tells the runtime when they change. As
// upstream's kubelet, it hands the runtime every one of spec.podCIDRs joined by commas, so that
// a dual-stack node's pods get an address of each family.
func (k *Kubelet) notePodCIDR(node *v1.Node) {
	cidr := strings.Join(node.Spec.PodCIDRs, ",")
	if cidr == "" {
		cidr = node.Spec.PodCIDR
	}
	if cidr == "" {
		cidr = k.cfg.PodCIDR
	}
	if cidr == "" {
		return
	}
	k.mu.Lock()
	changed := cidr != k.appliedPodCIDR
	k.podCIDR = cidr
	k.appliedPodCIDR = cidr
	k.mu.Unlock()
	if setter, ok := k.rt.(runtime.PodCIDRSetter); ok && changed {
		if err := setter.SetPodCIDR(cidr); err != nil {
			k.log.Warn("configure the pod network", "podCIDR", cidr, "err", err)
		}
	}
}

// nodeStatus computes the Node's status now; old (may be nil) keeps the conditions' transition
// times.
func (k *Kubelet) nodeStatus(ctx context.Context, version *runtimeapi.VersionResponse, old *v1.NodeStatus) v1.NodeStatus {
	m := k.cfg.Machine
	capacity := v1.ResourceList{
		v1.ResourceCPU:              *resource.NewQuantity(int64(m.CPUs), resource.DecimalSI),
		v1.ResourceMemory:           *resource.NewQuantity(m.MemoryBytes, resource.BinarySI),
		v1.ResourceEphemeralStorage: *resource.NewQuantity(m.EphemeralStorageBytes, resource.BinarySI),
		v1.ResourcePods:             *resource.NewQuantity(int64(k.cfg.MaxPods), resource.DecimalSI),
		"hugepages-1Gi":             *resource.NewQuantity(0, resource.DecimalSI),
		"hugepages-2Mi":             *resource.NewQuantity(0, resource.DecimalSI),
	}
	allocatable := capacity.DeepCopy()
	for name, q := range k.cfg.SystemReserved {
		if a, ok := allocatable[name]; ok {
			a.Sub(q)
			allocatable[name] = a
		}
	}
	// the hard eviction thresholds are kept from the pods too, as upstream's
	for signal, name := range map[EvictionSignal]v1.ResourceName{SignalMemoryAvailable: v1.ResourceMemory, SignalNodeFsAvailable: v1.ResourceEphemeralStorage} {
		if t, ok := hardThreshold(k.cfg.EvictionHard, signal); ok {
			q := allocatable[name]
			c := capacity[name]
			q.Sub(*t.quantity(c.Value()))
			allocatable[name] = q
		}
	}
	for name, q := range allocatable {
		if q.Sign() < 0 {
			allocatable[name] = *resource.NewQuantity(0, q.Format)
		}
	}

	var addresses []v1.NodeAddress
	for _, ip := range k.cfg.NodeIPs {
		addresses = append(addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip.String()})
	}
	addresses = append(addresses, v1.NodeAddress{Type: v1.NodeHostName, Address: strings.ToLower(k.cfg.NodeName)})

	now := metav1.NewTime(time.Now().Truncate(time.Second))
	ready := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"}
	k.mu.Lock()
	preparing := k.preparing
	k.mu.Unlock()
	if msg := k.runtimeProblem(ctx); msg != "" {
		ready = v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionFalse, Reason: "KubeletNotReady", Message: msg}
	} else if preparing != "" {
		ready = v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionFalse, Reason: "KubeletNotReady", Message: preparing}
	}
	conditions := []v1.NodeCondition{
		{Type: v1.NodeMemoryPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: v1.NodeDiskPressure, Status: v1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: v1.NodePIDPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		ready,
	}
	if k.eviction != nil {
		for _, c := range k.eviction.pressureConditions() {
			conditions[slices.IndexFunc(conditions, func(n v1.NodeCondition) bool { return n.Type == c })] = pressureCondition[c]
		}
	}
	for i := range conditions {
		c := &conditions[i]
		c.LastHeartbeatTime = now
		c.LastTransitionTime = now
		if old != nil {
			for _, o := range old.Conditions {
				if o.Type == c.Type && o.Status == c.Status {
					c.LastTransitionTime = o.LastTransitionTime
				}
			}
		}
	}
	runtimeVersion := ""
	if version != nil {
		runtimeVersion = version.RuntimeName + "://" + version.RuntimeVersion
	}
	return v1.NodeStatus{
		Capacity:        capacity,
		Allocatable:     allocatable,
		VolumesInUse:    k.volumes.volumesInUse(),
		Phase:           "",
		Conditions:      conditions,
		Addresses:       addresses,
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(k.cfg.Port)}},
		NodeInfo: v1.NodeSystemInfo{
			MachineID:               m.MachineID,
			SystemUUID:              m.SystemUUID,
			BootID:                  m.BootID,
			KernelVersion:           m.KernelVersion,
			OSImage:                 m.OSImage,
			ContainerRuntimeVersion: runtimeVersion,
			KubeletVersion:          k.cfg.KubeletVersion,
			OperatingSystem:         m.OperatingSystem,
			Architecture:            m.Architecture,
		},
	}
}

// pressureCondition is each pressure condition when True, in upstream's words.
var pressureCondition = map[v1.NodeConditionType]v1.NodeCondition{
	v1.NodeMemoryPressure: {Type: v1.NodeMemoryPressure, Status: v1.ConditionTrue, Reason: "KubeletHasInsufficientMemory", Message: "kubelet has insufficient memory available"},
	v1.NodeDiskPressure:   {Type: v1.NodeDiskPressure, Status: v1.ConditionTrue, Reason: "KubeletHasDiskPressure", Message: "kubelet has disk pressure"},
	v1.NodePIDPressure:    {Type: v1.NodePIDPressure, Status: v1.ConditionTrue, Reason: "KubeletHasInsufficientPID", Message: "kubelet has insufficient PID available"},
}

// runtimeProblem is why the node is not ready, in upstream's words, or "" when it is.
func (k *Kubelet) runtimeProblem(ctx context.Context) string {
	st, err := k.rt.Status(ctx)
	if err != nil {
		return "container runtime is down"
	}
	var problems []string
	for _, c := range st.GetConditions() {
		if (c.Type == runtimeapi.RuntimeReady || c.Type == runtimeapi.NetworkReady) && !c.Status {
			problems = append(problems, fmt.Sprintf("%s=false reason:%s message:%s", c.Type, c.Reason, c.Message))
		}
	}
	if len(problems) > 0 {
		if strings.HasPrefix(problems[0], runtimeapi.NetworkReady) {
			return "container runtime network not ready: " + strings.Join(problems, ", ")
		}
		return "container runtime not ready: " + strings.Join(problems, ", ")
	}
	return ""
}

// mergeHeartbeat returns next with the transition times of old's unchanged conditions; when
// beat is false the heartbeat times of old are kept too, so that next compares equal to old
// when nothing but time moved.
func (k *Kubelet) mergeHeartbeat(old, next v1.NodeStatus, beat bool) v1.NodeStatus {
	next = *next.DeepCopy()
	for i := range next.Conditions {
		c := &next.Conditions[i]
		for _, o := range old.Conditions {
			if o.Type != c.Type || o.Status != c.Status {
				continue
			}
			c.LastTransitionTime = o.LastTransitionTime
			if !beat {
				c.LastHeartbeatTime = o.LastHeartbeatTime
			}
		}
	}
	// what others write into status (images, attached volumes, runtime handlers) stays
	// theirs; volumesInUse is the kubelet's own (the attach/detach controller writes
	// volumesAttached, as upstream's kubelet leaves it to with controller-managed attach-detach)
	next.Images = old.Images
	next.VolumesAttached = old.VolumesAttached
	next.RuntimeHandlers = old.RuntimeHandlers
	next.Features = old.Features
	next.Config = old.Config
	return next
}

// postNodeStatus writes status to nodes/status. An empty volumesInUse is written as null, so
// that the last volume the node stops using leaves the list.
func (k *Kubelet) postNodeStatus(ctx context.Context, node *v1.Node, status v1.NodeStatus) error {
	raw, err := json.Marshal(status)
	if err != nil {
		return err
	}
	fields := map[string]any{}
	if err := json.Unmarshal(raw, &fields); err != nil {
		return err
	}
	if len(status.VolumesInUse) == 0 {
		fields["volumesInUse"] = nil
	}
	patch, err := json.Marshal(map[string]any{"status": fields})
	if err != nil {
		return err
	}
	_, err = k.client.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

// syncNodeStatus computes the Node's status every NodeStatusUpdateFrequency and posts it when
// it changed or NodeStatusReportFrequency has passed since the last post.
func (k *Kubelet) syncNodeStatus(ctx context.Context, version *runtimeapi.VersionResponse) {
	t := time.NewTicker(k.cfg.NodeStatusUpdateFrequency)
	defer t.Stop()
	lastReport := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		node, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			// someone deleted our Node: register it again, as upstream does on restart
			if err := k.tryRegisterNode(ctx, version); err != nil && ctx.Err() == nil {
				k.log.Warn("re-register node", "err", err)
			}
			lastReport = time.Now()
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				k.log.Warn("get node for status", "err", err)
			}
			continue
		}
		k.notePodCIDR(node)
		fresh := k.nodeStatus(ctx, version, &node.Status)
		due := time.Since(lastReport) >= k.cfg.NodeStatusReportFrequency
		candidate := k.mergeHeartbeat(node.Status, fresh, due)
		if !due && apiequality.Semantic.DeepEqual(candidate, node.Status) {
			continue
		}
		candidate = k.mergeHeartbeat(node.Status, fresh, true)
		if err := k.postNodeStatus(ctx, node, candidate); err != nil {
			if ctx.Err() == nil {
				k.log.Warn("update node status", "err", err)
			}
			continue
		}
		lastReport = time.Now()
	}
}
