package endpointslice

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// What a Service's pods look like as endpoints: which pods count, their conditions, their
// addresses of one family, and the Service's ports resolved against each pod's containers.

// podInEndpoints reports whether a pod belongs among a Service's endpoints at all: it has an
// IP, has not finished, and is not being deleted unless terminating pods are wanted (the
// slices want them, with terminating=true; v1 Endpoints only when the Service publishes
// not-ready addresses), as upstream's ShouldPodBeInEndpoints.
func podInEndpoints(pod *corev1.Pod, includeTerminating bool) bool {
	if len(podIPs(pod)) == 0 {
		return false
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if !includeTerminating && pod.DeletionTimestamp != nil {
		return false
	}
	return true
}

func podIPs(pod *corev1.Pod) []string {
	if len(pod.Status.PodIPs) > 0 {
		out := make([]string, 0, len(pod.Status.PodIPs))
		for _, ip := range pod.Status.PodIPs {
			out = append(out, ip.IP)
		}
		return out
	}
	if pod.Status.PodIP != "" {
		return []string{pod.Status.PodIP}
	}
	return nil
}

// podAddress is the pod's first IP of the slice's address type, or "".
func podAddress(pod *corev1.Pod, addressType discoveryv1.AddressType) string {
	for _, s := range podIPs(pod) {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		if (addressType == discoveryv1.AddressTypeIPv4) == ip.Unmap().Is4() {
			return s
		}
	}
	return ""
}

func isPodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// endpointConditions are upstream's: serving follows the pod's readiness (or is true when the
// Service publishes not-ready addresses), terminating is set while the pod is being deleted,
// and ready is serving and not terminating (unless not-ready addresses are published).
func endpointConditions(svc *corev1.Service, pod *corev1.Pod) discoveryv1.EndpointConditions {
	publish := svc.Spec.PublishNotReadyAddresses
	serving := publish || isPodReady(pod)
	terminating := pod.DeletionTimestamp != nil
	ready := serving && (!terminating || publish)
	return discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(serving), Terminating: ptr.To(terminating)}
}

// podHostname is the DNS hostname a pod publishes under the Service: its spec.hostname when its
// spec.subdomain names this Service, as upstream.
func podHostname(svc *corev1.Service, pod *corev1.Pod) string {
	if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && pod.Namespace == svc.Namespace {
		return pod.Spec.Hostname
	}
	return ""
}

// findPort resolves a Service port's targetPort against a pod: a number is itself, a name is
// the container port of that name and protocol (in an app or sidecar container).
func findPort(pod *corev1.Pod, sp *corev1.ServicePort) (int32, error) {
	if sp.TargetPort.Type == intstr.Int {
		if sp.TargetPort.IntVal == 0 {
			return sp.Port, nil
		}
		return sp.TargetPort.IntVal, nil
	}
	name := sp.TargetPort.StrVal
	lookIn := func(containers []corev1.Container, sidecarsOnly bool) (int32, bool) {
		for _, c := range containers {
			if sidecarsOnly && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				continue
			}
			for _, p := range c.Ports {
				proto := p.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				if p.Name == name && proto == sp.Protocol {
					return p.ContainerPort, true
				}
			}
		}
		return 0, false
	}
	if port, ok := lookIn(pod.Spec.Containers, false); ok {
		return port, nil
	}
	if port, ok := lookIn(pod.Spec.InitContainers, true); ok {
		return port, nil
	}
	return 0, fmt.Errorf("no container port named %q for protocol %s", name, sp.Protocol)
}

// endpointPorts are the Service's ports as they land on one pod; a named port the pod does not
// have is left out, as upstream.
func endpointPorts(svc *corev1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	out := make([]discoveryv1.EndpointPort, 0, len(svc.Spec.Ports))
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		port, err := findPort(pod, sp)
		if err != nil {
			continue
		}
		out = append(out, discoveryv1.EndpointPort{
			Name:        ptr.To(sp.Name),
			Port:        ptr.To(port),
			Protocol:    ptr.To(sp.Protocol),
			AppProtocol: sp.AppProtocol,
		})
	}
	return out
}

// portsKey identifies a set of endpoint ports: pods whose ports resolve alike share slices.
func portsKey(ports []discoveryv1.EndpointPort) string {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "%s/%s/%d/%s;", ptr.Deref(p.Name, ""), ptr.Deref(p.Protocol, ""), ptr.Deref(p.Port, 0), ptr.Deref(p.AppProtocol, ""))
	}
	return b.String()
}

// serviceAddressTypes are the address families a Service's endpoints come in.
func serviceAddressTypes(svc *corev1.Service) []discoveryv1.AddressType {
	var out []discoveryv1.AddressType
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			out = append(out, discoveryv1.AddressTypeIPv4)
		case corev1.IPv6Protocol:
			out = append(out, discoveryv1.AddressTypeIPv6)
		}
	}
	if len(out) == 0 {
		out = []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4}
	}
	return out
}
