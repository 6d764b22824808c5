package apiserver_test

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func testDeployment(name string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}},
			},
		},
	}
}

func TestDeploymentsAreDefaultedValidatedAndScaled(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	deps := s.Client.AppsV1().Deployments("default")
	d, err := deps.Create(ctx, testDeployment("web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ru := d.Spec.Strategy.RollingUpdate
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		ru == nil || ru.MaxSurge.String() != "25%" || ru.MaxUnavailable.String() != "25%" ||
		*d.Spec.RevisionHistoryLimit != 10 || *d.Spec.ProgressDeadlineSeconds != 600 || d.Generation != 1 {
		t.Errorf("defaults: %+v", d.Spec)
	}
	scale, err := deps.GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil || scale.Spec.Replicas != 1 || scale.Status.Selector != "app=web" {
		t.Fatalf("scale %+v %v", scale, err)
	}
	scale.Spec.Replicas = 4
	if _, err := deps.UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := deps.Get(ctx, "web", metav1.GetOptions{})
	if *got.Spec.Replicas != 4 || got.Generation != 2 {
		t.Errorf("after scale: replicas %d generation %d", *got.Spec.Replicas, got.Generation)
	}
	got.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
	got.Spec.Template.Labels = map[string]string{"app": "other"}
	if _, err := deps.Update(ctx, got, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.selector: Invalid value") || !strings.Contains(err.Error(), "field is immutable") {
		t.Errorf("selector change: %v", err)
	}
	bad := testDeployment("bad")
	zero := intstr.FromInt32(0)
	bad.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &zero, MaxUnavailable: &zero}}
	bad.Spec.RevisionHistoryLimit = ptr.To[int32](-1)
	_, err = deps.Create(ctx, bad, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0") ||
		!strings.Contains(err.Error(), "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0") {
		t.Errorf("invalid deployment: %v", err)
	}
	if _, err := deps.Get(ctx, "bad", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("refused deployment stored: %v", err)
	}
}

func TestKubectlCreatesAndScalesDeployments(t *testing.T) {
	s := apiservertest.Start(t)
	kubeconfig := adminKubeconfig(t, s)
	bin := kubectlOnPath(t)
	run := kubectlRunner(t, bin, kubeconfig, nil)
	if out := run("create", "deployment", "nginx", "--image=nginx:1.27", "--replicas=2"); !strings.Contains(out, "deployment.apps/nginx created") {
		t.Errorf("create deployment: %q", out)
	}
	if out := run("scale", "deployment", "nginx", "--replicas=5"); !strings.Contains(out, "deployment.apps/nginx scaled") {
		t.Errorf("scale: %q", out)
	}
	if out := run("get", "deploy", "nginx", "-o", "jsonpath={.spec.replicas}"); out != "5" {
		t.Errorf("replicas after scale: %q", out)
	}
	if out := run("set", "image", "deployment/nginx", "nginx=nginx:1.28"); !strings.Contains(out, "image updated") {
		t.Errorf("set image: %q", out)
	}
}
