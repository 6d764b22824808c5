package kubelet

import (
	"log/slog"
	"net"
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/kubelet/runtime"
)

func sandboxWithIPs(ips ...string) *runtimeapi.PodSandboxStatus {
	n := &runtimeapi.PodSandboxNetworkStatus{Ip: ips[0]}
	for _, ip := range ips[1:] {
		n.AdditionalIps = append(n.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
	}
	return &runtimeapi.PodSandboxStatus{State: runtimeapi.PodSandboxState_SANDBOX_READY, Network: n}
}

func TestPodIPsListThePrimaryFamilyFirstWhateverTheRuntimesOrder(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ipv6Primary bool
		runtime     []string
		want        []string
	}{
		{"single stack", false, []string{"10.244.0.5"}, []string{"10.244.0.5"}},
		{"IPv4 primary, runtime IPv4 first", false, []string{"10.244.0.5", "fd42::5"}, []string{"10.244.0.5", "fd42::5"}},
		{"IPv4 primary, runtime IPv6 first", false, []string{"fd42::5", "10.244.0.5"}, []string{"10.244.0.5", "fd42::5"}},
		{"IPv6 primary, runtime IPv4 first", true, []string{"10.244.0.5", "fd42::5"}, []string{"fd42::5", "10.244.0.5"}},
		{"one of each family at most", false, []string{"10.244.0.5", "10.244.0.6", "fd42::5", "fd42::6"}, []string{"10.244.0.5", "fd42::5"}},
		{"IPv6 only", false, []string{"fd42::5"}, []string{"fd42::5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := &podRuntime{sandboxStatus: sandboxWithIPs(tc.runtime...), ipv6Primary: tc.ipv6Primary}
			if got := rs.podIPs(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("podIPs() = %v, want %v", got, tc.want)
			}
		})
	}
}

// podCIDRRecorder is a runtime that remembers what pod CIDRs it was configured with.
type podCIDRRecorder struct {
	runtime.Runtime
	got []string
}

func (r *podCIDRRecorder) SetPodCIDR(cidr string) error {
	r.got = append(r.got, cidr)
	return nil
}

func TestADualStackNodeConfiguresTheRuntimeWithBothPodCIDRs(t *testing.T) {
	rt := &podCIDRRecorder{}
	k := &Kubelet{rt: rt, log: slog.Default()}
	node := &v1.Node{Spec: v1.NodeSpec{PodCIDR: "10.42.1.0/24", PodCIDRs: []string{"10.42.1.0/24", "fd42:0:0:1::/64"}}}
	k.notePodCIDR(node)
	k.notePodCIDR(node) // unchanged: not configured again
	if want := []string{"10.42.1.0/24,fd42:0:0:1::/64"}; !reflect.DeepEqual(rt.got, want) {
		t.Errorf("runtime configured with %q, want %q", rt.got, want)
	}
}

func TestADualStackPodCIDRFlagRegistersBothPodCIDRs(t *testing.T) {
	k := &Kubelet{cfg: Config{PodCIDR: "10.42.0.0/24,fd42::/64"}}
	spec := v1.NodeSpec{PodCIDR: firstCIDR(k.cfg.PodCIDR), PodCIDRs: splitCIDRs(k.cfg.PodCIDR)}
	if spec.PodCIDR != "10.42.0.0/24" || !reflect.DeepEqual(spec.PodCIDRs, []string{"10.42.0.0/24", "fd42::/64"}) {
		t.Errorf("spec = %+v", spec)
	}
}

func TestHostIPsAreTheNodesFirstAddressThenOneOfTheOtherFamily(t *testing.T) {
	for _, tc := range []struct {
		nodeIPs []string
		want    []string
	}{
		{[]string{"192.0.2.1"}, []string{"192.0.2.1"}},
		{[]string{"192.0.2.1", "192.0.2.2"}, []string{"192.0.2.1"}},
		{[]string{"192.0.2.1", "2001:db8::1"}, []string{"192.0.2.1", "2001:db8::1"}},
		{[]string{"2001:db8::1", "192.0.2.2", "192.0.2.1"}, []string{"2001:db8::1", "192.0.2.2"}},
	} {
		var ips []net.IP
		for _, s := range tc.nodeIPs {
			ips = append(ips, net.ParseIP(s))
		}
		k := &Kubelet{cfg: Config{NodeIPs: ips}}
		if got := k.hostIPs(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("node IPs %v: hostIPs %v, want %v", tc.nodeIPs, got, tc.want)
		}
	}
}
