package manager

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// The autoscaler runs as its upstream ServiceAccount: its role must let it read the scale,
// write it, write the autoscaler's status and record events.
func TestTheAutoscalerRunsAsItsServiceAccount(t *testing.T) {
	s := apiservertest.Start(t)
	startManager(t, s, Options{Controllers: []string{"horizontalpodautoscaling"}, UseServiceAccountCredentials: true, Port: -1})
	ctx := context.Background()
	c := s.Client
	labels := map[string]string{"app": "web"}
	if _, err := c.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](2), MaxReplicas: 3,
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// below minReplicas: scaled up without reading a metric
	poll(t, "the Deployment scaled to minReplicas", func(ctx context.Context) bool {
		d, err := c.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 2
	})
	poll(t, "the autoscaler's status and event", func(ctx context.Context) bool {
		hpa, err := c.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || hpa.Status.DesiredReplicas != 2 {
			return false
		}
		events, err := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=SuccessfulRescale"})
		return err == nil && len(events.Items) == 1 &&
			events.Items[0].Message == "New size: 2; reason: Current number of replicas below Spec.MinReplicas"
	})
}
