package proxy

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestADualStackServiceWithIPv6FirstIsRoutedOnItsIPv4ClusterIP(t *testing.T) {
	s := svc("web", func(s *corev1.Service) {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "fd00:10:96::20", []string{"fd00:10:96::20", "10.96.0.21"}
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
	})
	tx := table(t, s, slice("web", 8080, ready("10.244.1.2", node)))
	mustHave(t, tx, "10.96.0.21", "dnat to 10.244.1.2:8080")
	mustNotHave(t, tx, "fd00:10:96::20")

	v6only := svc("v6", func(s *corev1.Service) {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "fd00:10:96::30", []string{"fd00:10:96::30"}
	})
	if ports := servicePorts(v6only, nil, node); len(ports) != 0 {
		t.Errorf("an IPv6-only Service: got %d service ports from an IPv4-only proxy", len(ports))
	}
}
