package apiserver_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestALocalLoadBalancerGetsAHealthCheckNodePortFreedWhenItNoLongerNeedsIt(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	svcs := s.Client.CoreV1().Services("default")

	lb := testService("lb", corev1.ServiceTypeLoadBalancer)
	lb.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	lb, err := svcs.Create(ctx, lb, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hc := lb.Spec.HealthCheckNodePort
	if hc < 30000 || hc > 32767 || hc == lb.Spec.Ports[0].NodePort {
		t.Fatalf("health check node port %d (node port %d)", hc, lb.Spec.Ports[0].NodePort)
	}
	// an update that leaves the field out keeps it
	lb.Spec.HealthCheckNodePort = 0
	if lb, err = svcs.Update(ctx, lb, metav1.UpdateOptions{}); err != nil || lb.Spec.HealthCheckNodePort != hc {
		t.Fatalf("after an update: %d, want %d (%v)", lb.Spec.HealthCheckNodePort, hc, err)
	}
	// it is taken: no node port may have it
	taken := testService("taken", corev1.ServiceTypeNodePort)
	taken.Spec.Ports[0].NodePort = hc
	if _, err := svcs.Create(ctx, taken, metav1.CreateOptions{}); err == nil {
		t.Errorf("a node port got the health check node port %d", hc)
	}
	// policy Cluster has no use for it: it goes, and is free again
	lb.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	if lb, err = svcs.Update(ctx, lb, metav1.UpdateOptions{}); err != nil || lb.Spec.HealthCheckNodePort != 0 {
		t.Fatalf("policy Cluster: health check node port %d (%v)", lb.Spec.HealthCheckNodePort, err)
	}
	if _, err := svcs.Create(ctx, taken, metav1.CreateOptions{}); err != nil {
		t.Errorf("the freed health check node port %d: %v", hc, err)
	}
}
