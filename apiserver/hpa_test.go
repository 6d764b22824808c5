package apiserver_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestHorizontalPodAutoscalersAreServedAsV1AndV2FromOneStorage(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	ten := int32(10)
	avg := resource.MustParse("100Mi")
	created, err := s.Client.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MaxReplicas:    5,
			Metrics: []autoscalingv2.MetricSpec{
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &ten}}},
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceMemory,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &avg}}},
			},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// upstream's defaults: one minimum replica, every rule of a given behavior
	if created.Spec.MinReplicas == nil || *created.Spec.MinReplicas != 1 {
		t.Errorf("minReplicas: %v", created.Spec.MinReplicas)
	}
	down := created.Spec.Behavior.ScaleDown
	if down == nil || *down.StabilizationWindowSeconds != 300 || *down.SelectPolicy != autoscalingv2.MaxChangePolicySelect || len(down.Policies) != 1 {
		t.Errorf("scaleDown: %+v", down)
	}
	if up := created.Spec.Behavior.ScaleUp; up == nil || *up.StabilizationWindowSeconds != 0 || len(up.Policies) != 2 {
		t.Errorf("scaleUp: %+v", up)
	}

	// v1 sees the cpu target as targetCPUUtilizationPercentage, the rest in annotations
	v1, err := s.Client.AutoscalingV1().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := v1.Spec.TargetCPUUtilizationPercentage; p == nil || *p != 10 {
		t.Errorf("v1 targetCPUUtilizationPercentage: %v", p)
	}
	var other []autoscalingv1.MetricSpec
	if err := json.Unmarshal([]byte(v1.Annotations["autoscaling.alpha.kubernetes.io/metrics"]), &other); err != nil ||
		len(other) != 1 || other[0].Resource == nil || other[0].Resource.Name != corev1.ResourceMemory {
		t.Errorf("v1 metrics annotation: %q (%v)", v1.Annotations["autoscaling.alpha.kubernetes.io/metrics"], err)
	}
	if v1.Annotations["autoscaling.alpha.kubernetes.io/behavior"] == "" {
		t.Errorf("v1 lost the behavior: %v", v1.Annotations)
	}

	// a v1 update keeps what only v2 has
	v1.Spec.TargetCPUUtilizationPercentage = &[]int32{60}[0]
	if _, err := s.Client.AutoscalingV1().HorizontalPodAutoscalers("default").Update(ctx, v1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	v2, err := s.Client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(v2.Spec.Metrics) != 2 || *v2.Spec.Metrics[0].Resource.Target.AverageUtilization != 60 ||
		v2.Spec.Metrics[1].Resource.Target.AverageValue.Cmp(avg) != 0 || v2.Spec.Behavior == nil || len(v2.Annotations) != 0 {
		t.Errorf("v2 after a v1 update: %+v %v", v2.Spec, v2.Annotations)
	}

	// a v1 autoscaler without a target gets upstream's 80% cpu
	if _, err := s.Client.AutoscalingV1().HorizontalPodAutoscalers("default").Create(ctx, &autoscalingv1.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "plain"},
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: "plain"}, MaxReplicas: 3},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	plain, err := s.Client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "plain", metav1.GetOptions{})
	if err != nil || len(plain.Spec.Metrics) != 1 || *plain.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 || plain.Spec.Behavior != nil {
		t.Errorf("v1 autoscaler read as v2: %+v (%v)", plain.Spec, err)
	}
	// both versions list the same objects
	l1, err1 := s.Client.AutoscalingV1().HorizontalPodAutoscalers("default").List(ctx, metav1.ListOptions{})
	l2, err2 := s.Client.AutoscalingV2().HorizontalPodAutoscalers("").List(ctx, metav1.ListOptions{})
	if err1 != nil || err2 != nil || len(l1.Items) != 2 || len(l2.Items) != 2 {
		t.Errorf("lists: %v %v %v %v", l1, err1, l2, err2)
	}
	resp, err := s.Etcd.Get(ctx, "/registry/horizontalpodautoscalers/default/web")
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), "autoscaling/v2") {
		t.Errorf("stored: %v %v", resp, err)
	}
}

func TestInvalidHorizontalPodAutoscalersAreRefusedWithUpstreamsWords(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	zero, two := int32(0), int32(2)
	bad := autoscalingv2.ScalingPolicySelect("Most")
	for _, tc := range []struct {
		spec autoscalingv2.HorizontalPodAutoscalerSpec
		want string
	}{
		{autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "x"}, MinReplicas: &zero, MaxReplicas: 1},
			`HorizontalPodAutoscaler.autoscaling "bad" is invalid: spec.minReplicas: Invalid value: 0: must be greater than or equal to 1`},
		{autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "x"}, MinReplicas: &two, MaxReplicas: 1},
			"HorizontalPodAutoscaler.autoscaling \"bad\" is invalid: spec.maxReplicas: Invalid value: 1: must be greater than or equal to `minReplicas`"},
		{autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 1},
			`HorizontalPodAutoscaler.autoscaling "bad" is invalid: [spec.scaleTargetRef.kind: Required value, spec.scaleTargetRef.name: Required value]`},
		{autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "x"}, MaxReplicas: 1,
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{SelectPolicy: &bad}}},
			`HorizontalPodAutoscaler.autoscaling "bad" is invalid: spec.behavior.scaleUp.selectPolicy: Unsupported value: "Most": supported values: "Disabled", "Max", "Min"`},
	} {
		_, err := s.Client.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: tc.spec}, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || err.Error() != tc.want {
			t.Errorf("create: %v\nwant %s", err, tc.want)
		}
	}
	resp, err := s.Etcd.Get(ctx, "/registry/horizontalpodautoscalers/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("etcd holds %v autoscalers after refused creates (%v)", resp, err)
	}
}

func TestStockKubectlAutoscalesADeployment(t *testing.T) {
	s := apiservertest.Start(t)
	kubeconfig := adminKubeconfig(t, s)
	ctx := context.Background()
	labels := map[string]string{"app": "x"}
	if _, err := s.Client.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "x"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, bin := range kubectlBinaries(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			run := kubectlRunner(t, bin, kubeconfig, nil)
			if out := run("autoscale", "deployment", "x", "--min", "1", "--max", "5", "--cpu-percent", "50"); !strings.Contains(out, "horizontalpodautoscaler.autoscaling/x autoscaled") {
				t.Errorf("autoscale: %s", out)
			}
			out := run("get", "hpa")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE" {
				t.Fatalf("get hpa:\n%s", out)
			}
			if f := strings.Fields(lines[1]); len(f) < 8 || f[0] != "x" || f[1] != "Deployment/x" ||
				strings.Join(f[2:4], " ") != "cpu: <unknown>/50%" || f[4] != "1" || f[5] != "5" || f[6] != "0" {
				t.Errorf("get hpa row: %q", lines[1])
			}
			if out := run("get", "hpa", "x", "-o", "jsonpath={.spec.metrics[0].resource.target.averageUtilization}"); out != "50" {
				t.Errorf("target: %q", out)
			}
			if out := run("describe", "hpa", "x"); !strings.Contains(out, "Reference:") || !strings.Contains(out, "Min replicas:") {
				t.Errorf("describe hpa:\n%s", out)
			}
			run("delete", "hpa", "x")
		})
	}
}
