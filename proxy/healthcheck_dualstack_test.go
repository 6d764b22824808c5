package proxy

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestADualStackPodCountsOnceInTheHealthCheck(t *testing.T) {
	s := svc("lb", dualStack, func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.HealthCheckNodePort = 32000
	})
	slices := []*discoveryv1.EndpointSlice{
		slice("lb", 8080, ready("10.244.1.2", node), ready("10.244.1.3", node)),
		ipv6Slice("lb", 8080, ready("fd42::1:2", node), ready("fd42::1:3", node)),
	}
	ports := append(familyServicePorts(s, slices, node, ipv4Family), familyServicePorts(s, slices, node, ipv6Family)...)
	checks := healthChecks([]*corev1.Service{s}, ports)
	if len(checks) != 1 || checks[0].localEndpoints != 2 {
		t.Errorf("health checks = %+v, want one with 2 local endpoints", checks)
	}
}
