package registry

import (
	"context"
	"fmt"
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"
)

// needsHealthCheckNodePort reports whether a Service gets spec.healthCheckNodePort: a
// LoadBalancer whose external traffic stays on nodes with local endpoints, so that the load
// balancer in front can ask each node whether it has one.
func needsHealthCheckNodePort(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer &&
		svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// allocateHealthCheckNodePort reserves the Service's health check node port from the node port
// range, keeping the one it had, or clears the field when it needs none. The port is never
// one of the Service's own node ports.
func (a *ServiceAllocator) allocateHealthCheckNodePort(ctx context.Context, svc, old *corev1.Service, dryRun bool) error {
	if !needsHealthCheckNodePort(svc) {
		svc.Spec.HealthCheckNodePort = 0
		return nil
	}
	if svc.Spec.HealthCheckNodePort == 0 && old != nil && needsHealthCheckNodePort(old) {
		svc.Spec.HealthCheckNodePort = old.Spec.HealthCheckNodePort
	}
	own := map[int]bool{}
	for _, p := range svc.Spec.Ports {
		own[int(p.NodePort)] = true
	}
	if port := int(svc.Spec.HealthCheckNodePort); port != 0 {
		if port < a.PortBase || port >= a.PortBase+a.PortCount {
			return fmt.Errorf("failed to allocate requested HealthCheck NodePort %d: provided port is not in the valid range. The range of valid ports is %d-%d",
				port, a.PortBase, a.PortBase+a.PortCount-1)
		}
		ok, err := a.reservePort(ctx, port, svc, dryRun)
		if err != nil {
			return err
		}
		if !ok || own[port] {
			return fmt.Errorf("failed to allocate requested HealthCheck NodePort %d: provided port is already allocated", port)
		}
		return nil
	}
	start := rand.IntN(a.PortCount)
	for n := 0; n < a.PortCount; n++ {
		port := a.PortBase + (start+n)%a.PortCount
		if own[port] {
			continue
		}
		ok, err := a.reservePort(ctx, port, svc, dryRun)
		if err != nil {
			return err
		}
		if ok {
			svc.Spec.HealthCheckNodePort = int32(port)
			return nil
		}
	}
	return fmt.Errorf("failed to allocate a HealthCheck NodePort: range is full")
}
