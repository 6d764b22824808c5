package apiserver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// demoPolicy is upstream's documentation example: deployments in namespaces labelled
// environment=test may have five replicas at most.
const demoPolicy = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: "demo-policy.example.com"
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      operations:  ["CREATE", "UPDATE"]
      resources:   ["deployments"]
  validations:
    - expression: "object.spec.replicas <= 5"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: "demo-binding-test.example.com"
spec:
  policyName: "demo-policy.example.com"
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        environment: test
`

const demoDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
  namespace: NAMESPACE
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: nginx}
  template:
    metadata:
      labels: {app: nginx}
    spec:
      containers:
      - name: nginx
        image: nginx
`

// applyManifest applies manifests with kubectl.
func applyManifest(t *testing.T, run func(args ...string) string, dir, name, manifest string) string {
	t.Helper()
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	return run("apply", "-f", path)
}

func policyDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
}

func TestKubectlAppliesUpstreamsPolicyExampleAndItDeniesSixReplicas(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	kubeconfig := adminKubeconfig(t, s)
	run := kubectlRunner(t, kubectlOnPath(t), kubeconfig, nil)
	kubectl := kubectlCommand(t, kubectlOnPath(t), kubeconfig, nil)
	dir := t.TempDir()
	out := applyManifest(t, run, dir, "demo", demoPolicy)
	if !strings.Contains(out, "validatingadmissionpolicy.admissionregistration.k8s.io/demo-policy.example.com created") ||
		!strings.Contains(out, "validatingadmissionpolicybinding.admissionregistration.k8s.io/demo-binding-test.example.com created") {
		t.Fatalf("apply:\n%s", out)
	}
	run("create", "namespace", "test")
	run("label", "namespace", "test", "environment=test")
	run("create", "namespace", "prod")

	// defaulted as upstream
	vap, err := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, "demo-policy.example.com", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mc := vap.Spec.MatchConstraints
	if *mc.MatchPolicy != admissionregistrationv1.Equivalent || mc.NamespaceSelector == nil || mc.ObjectSelector == nil ||
		*mc.ResourceRules[0].Scope != admissionregistrationv1.AllScopes || vap.Generation != 1 {
		t.Errorf("defaults: %+v", vap.Spec)
	}
	if out := run("get", "validatingadmissionpolicies"); !strings.Contains(out, "VALIDATIONS") || !strings.Contains(out, "PARAMKIND") ||
		!strings.Contains(out, "<unset>") {
		t.Errorf("get validatingadmissionpolicies:\n%s", out)
	}
	if out := run("get", "validatingadmissionpolicybindings"); !strings.Contains(out, "POLICYNAME") ||
		!strings.Contains(out, "demo-policy.example.com") {
		t.Errorf("get validatingadmissionpolicybindings:\n%s", out)
	}

	want := `error: failed to create deployment: deployments.apps "nginx" is forbidden: ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5`
	eventually(t, "deny in namespace test", func() error {
		out, err := kubectl("create", "deployment", "nginx", "--image=nginx", "--replicas=6", "-n", "test")
		if err == nil {
			run("delete", "deployment", "nginx", "-n", "test")
			return errorf("created:\n%s", out)
		}
		if !strings.Contains(out, want) {
			return errorf("got:\n%s", out)
		}
		return nil
	})
	// a manifest prints as upstream's documentation shows it (the cause has no field)
	path := filepath.Join(dir, "nginx.yaml")
	manifest := strings.Replace(strings.Replace(demoDeployment, "REPLICAS", "6", 1), "NAMESPACE", "test", 1)
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	wantDoc := `The deployments "nginx" is invalid: : ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5`
	if out, err := kubectl("apply", "-f", path); err == nil || !strings.Contains(out, wantDoc) {
		t.Errorf("apply of six replicas: %v\n%s", err, out)
	}
	// client-go sees upstream's status: 422 Invalid
	_, err = s.Client.AppsV1().Deployments("test").Create(ctx, policyDeployment("nginx", 6), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("client-go create: %v", err)
	}
	if _, err := s.Client.AppsV1().Deployments("test").Get(ctx, "nginx", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("denied deployment stored: %v", err)
	}
	// five are allowed, and so is six where the binding does not reach
	run("create", "deployment", "nginx", "--image=nginx", "--replicas=5", "-n", "test")
	run("create", "deployment", "nginx", "--image=nginx", "--replicas=6", "-n", "prod")
	// an update is judged too
	// deployments/scale is another resource to the rules, as upstream: the example's policy
	// does not see it
	run("scale", "deployment", "nginx", "--replicas=4", "-n", "test")
	if out, err := kubectl("patch", "deployment", "nginx", "-n", "test", "-p", `{"spec":{"replicas":7}}`); err == nil || !strings.Contains(out, "denied request") {
		t.Errorf("patch to 7: %v\n%s", err, out)
	}
	// a policy whose CEL does not compile is refused, and nothing is stored
	bad := strings.Replace(strings.SplitN(demoPolicy, "---", 2)[0], "object.spec.replicas <= 5", "object.spec.replicas <=", 1)
	bad = strings.Replace(bad, "demo-policy.example.com", "bad-policy.example.com", 1)
	badPath := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = kubectl("apply", "-f", badPath)
	if err == nil || !strings.Contains(out, `The ValidatingAdmissionPolicy "bad-policy.example.com" is invalid: spec.validations[0].expression: Invalid value: "object.spec.replicas <=": compilation failed: ERROR: <input>:1:24: Syntax error:`) {
		t.Errorf("apply of a bad policy: %v\n%s", err, out)
	}
	if out, err := kubectl("get", "validatingadmissionpolicy", "bad-policy.example.com"); err == nil {
		t.Errorf("bad policy stored:\n%s", out)
	}
	// deleting the binding lifts the policy
	run("delete", "validatingadmissionpolicybinding", "demo-binding-test.example.com")
	eventually(t, "allowed once unbound", func() error {
		_, err := s.Client.AppsV1().Deployments("test").Create(ctx, policyDeployment("big", 9), metav1.CreateOptions{})
		return err
	})
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
