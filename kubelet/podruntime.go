package kubelet

import (
	"context"
	"net/netip"
	"sort"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/runtime"
)

// podRuntime is what the runtime holds for one pod at one moment: its sandboxes, newest
// first, and its containers' statuses, newest attempt first.
type podRuntime struct {
	sandboxes []*runtimeapi.PodSandbox
	// sandboxStatus is the status of sandboxes[0], nil when there is none.
	sandboxStatus *runtimeapi.PodSandboxStatus
	containers    []*containerRecord
	// ipv6Primary: the node's primary IP family is IPv6, so a pod's IPv6 address comes first.
	ipv6Primary bool
}

type containerRecord struct {
	sandboxID string
	status    *runtimeapi.ContainerStatus
}

func (c *containerRecord) name() string   { return c.status.GetMetadata().GetName() }
func (c *containerRecord) attempt() int32 { return int32(c.status.GetMetadata().GetAttempt()) }
func (c *containerRecord) running() bool {
	return c.status.State == runtimeapi.ContainerState_CONTAINER_RUNNING
}
func (c *containerRecord) exited() bool {
	return c.status.State == runtimeapi.ContainerState_CONTAINER_EXITED
}

// podRuntimeState lists what the runtime holds for the pod with uid.
func (k *Kubelet) podRuntimeState(ctx context.Context, uid types.UID) (*podRuntime, error) {
	selector := map[string]string{runtime.LabelPodUID: string(uid)}
	sandboxes, err := k.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	sort.Slice(sandboxes, func(i, j int) bool {
		ai, aj := sandboxes[i].GetMetadata().GetAttempt(), sandboxes[j].GetMetadata().GetAttempt()
		if ai != aj {
			return ai > aj
		}
		return sandboxes[i].CreatedAt > sandboxes[j].CreatedAt
	})
	pr := &podRuntime{sandboxes: sandboxes, ipv6Primary: k.cfg.NodeIPs[0].To4() == nil}
	if len(sandboxes) > 0 {
		st, err := k.rt.PodSandboxStatus(ctx, sandboxes[0].Id)
		if err == nil {
			pr.sandboxStatus = st
		}
	}
	containers, err := k.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	for _, c := range containers {
		st, err := k.rt.ContainerStatus(ctx, c.Id)
		if err != nil {
			continue // removed meanwhile
		}
		pr.containers = append(pr.containers, &containerRecord{sandboxID: c.PodSandboxId, status: st})
	}
	sort.Slice(pr.containers, func(i, j int) bool {
		ci, cj := pr.containers[i], pr.containers[j]
		if ci.attempt() != cj.attempt() {
			return ci.attempt() > cj.attempt()
		}
		return ci.status.CreatedAt > cj.status.CreatedAt
	})
	return pr, nil
}

// readySandbox is the pod's newest sandbox when it is ready, else nil.
func (p *podRuntime) readySandbox() *runtimeapi.PodSandbox {
	if len(p.sandboxes) > 0 && p.sandboxes[0].State == runtimeapi.PodSandboxState_SANDBOX_READY {
		return p.sandboxes[0]
	}
	return nil
}

// latest is the newest container named name, nil when there is none.
func (p *podRuntime) latest(name string) *containerRecord {
	for _, c := range p.containers {
		if c.name() == name {
			return c
		}
	}
	return nil
}

// previous is the container named name before the newest one, nil when there is none.
func (p *podRuntime) previous(name string) *containerRecord {
	seen := false
	for _, c := range p.containers {
		if c.name() == name {
			if seen {
				return c
			}
			seen = true
		}
	}
	return nil
}

// podIPs are the pod's IPs from its newest sandbox as upstream's kubelet reports them: the
// first of the node's primary IP family, then the first of the other family, if any. The
// runtime's own order is no guide: containerd puts an IPv4 address first whatever the CNI
// config's order.
func (p *podRuntime) podIPs() []string {
	if p.sandboxStatus == nil || p.sandboxStatus.Network == nil || p.sandboxStatus.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil
	}
	var all []string
	if ip := p.sandboxStatus.Network.Ip; ip != "" {
		all = append(all, ip)
	}
	for _, extra := range p.sandboxStatus.Network.AdditionalIps {
		all = append(all, extra.Ip)
	}
	ips := []string{}
	for _, wantIPv6 := range []bool{p.ipv6Primary, !p.ipv6Primary} {
		for _, s := range all {
			if ip, err := netip.ParseAddr(s); err == nil && ip.Unmap().Is6() == wantIPv6 {
				ips = append(ips, s)
				break
			}
		}
	}
	return ips
}

// hostIPs are the node's addresses as a pod's status.hostIPs lists them, as upstream's
// kubelet: the first node IP, then the first of the other IP family, if any.
func (k *Kubelet) hostIPs() []string {
	ips := []string{k.cfg.NodeIPs[0].String()}
	primaryIPv4 := k.cfg.NodeIPs[0].To4() != nil
	for _, ip := range k.cfg.NodeIPs[1:] {
		if (ip.To4() != nil) != primaryIPv4 {
			return append(ips, ip.String())
		}
	}
	return ips
}
