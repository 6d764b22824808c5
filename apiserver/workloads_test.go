package apiserver_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// The workload kinds that are only API objects here (their controllers live in controllers/):
// what the server stores, refuses and prints for them.

func workloadTemplate(app string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: "busybox:1.36"}}},
	}
}

// expectInvalid checks err is upstream's 422 carrying message.
func expectInvalid(t *testing.T, what string, err error, message string) {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Errorf("%s: %v, want 422 Invalid", what, err)
		return
	}
	if !strings.Contains(err.Error(), message) {
		t.Errorf("%s: %q does not say %q", what, err.Error(), message)
	}
}

func TestWorkloadKindsRefuseBadWritesAsUpstreamDoes(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	apps, core := s.Client.AppsV1(), s.Client.CoreV1()

	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"}, Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}}, Template: workloadTemplate("agent")}}
	created, err := apps.DaemonSets("default").Create(ctx, ds, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ru := created.Spec.UpdateStrategy.RollingUpdate; ru == nil || ru.MaxUnavailable.IntValue() != 1 || created.Annotations["deprecated.daemonset.template.generation"] != "1" {
		t.Errorf("created daemon set not defaulted: %+v %v", created.Spec.UpdateStrategy, created.Annotations)
	}
	patch := `{"spec":{"selector":{"matchLabels":{"tier":"x"}},"template":{"metadata":{"labels":{"tier":"x"}}}}}`
	_, err = apps.DaemonSets("default").Patch(ctx, "agent", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	expectInvalid(t, "changing a daemon set's selector", err, `DaemonSet.apps "agent" is invalid: spec.selector: Invalid value:`)
	expectInvalid(t, "changing a daemon set's selector", err, "field is immutable")

	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: appsv1.StatefulSetSpec{ServiceName: "db",
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Template: workloadTemplate("db")}}
	if _, err := apps.StatefulSets("default").Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = apps.StatefulSets("default").Patch(ctx, "db", types.MergePatchType, []byte(`{"spec":{"serviceName":"other"}}`), metav1.PatchOptions{})
	expectInvalid(t, "changing a stateful set's service", err, `StatefulSet.apps "db" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden`)
	if _, err := apps.StatefulSets("default").Patch(ctx, "db", types.MergePatchType, []byte(`{"spec":{"replicas":4}}`), metav1.PatchOptions{}); err != nil {
		t.Errorf("scaling a stateful set: %v", err)
	}

	bad := sts.DeepCopy()
	bad.Name = "mismatch"
	bad.Spec.Template.Labels = map[string]string{"app": "other"}
	_, err = apps.StatefulSets("default").Create(ctx, bad, metav1.CreateOptions{})
	expectInvalid(t, "a template the selector does not match", err, "spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`")

	cr := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "rev"}, Data: runtime.RawExtension{Raw: []byte(`{"a":1}`)}, Revision: 1}
	if _, err := apps.ControllerRevisions("default").Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = apps.ControllerRevisions("default").Patch(ctx, "rev", types.MergePatchType, []byte(`{"data":{"a":2}}`), metav1.PatchOptions{})
	expectInvalid(t, "changing a revision's data", err, "data: Invalid value")
	if _, err := apps.ControllerRevisions("default").Patch(ctx, "rev", types.MergePatchType, []byte(`{"revision":3}`), metav1.PatchOptions{}); err != nil {
		t.Errorf("renumbering a revision: %v", err)
	}

	rc := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
		Spec: corev1.ReplicationControllerSpec{Replicas: ptr.To[int32](-1), Template: ptr.To(workloadTemplate("legacy"))}}
	_, err = core.ReplicationControllers("default").Create(ctx, rc, metav1.CreateOptions{})
	expectInvalid(t, "negative replicas", err, "spec.replicas: Invalid value: -1: must be greater than or equal to 0")
	rc.Spec.Replicas = ptr.To[int32](2)
	created2, err := core.ReplicationControllers("default").Create(ctx, rc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created2.Spec.Selector["app"] != "legacy" || created2.Labels["app"] != "legacy" {
		t.Errorf("selector %v and labels %v not defaulted from the template", created2.Spec.Selector, created2.Labels)
	}
	scale, err := core.ReplicationControllers("default").GetScale(ctx, "legacy", metav1.GetOptions{})
	if err != nil || scale.Spec.Replicas != 2 || scale.Status.Selector != "app=legacy" {
		t.Errorf("RC scale %+v, %v; want 2 replicas and selector app=legacy", scale, err)
	}
	if _, err := core.ReplicationControllers("default").UpdateScale(ctx, "legacy",
		&autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: "default"}, Spec: autoscalingv1.ScaleSpec{Replicas: 5}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := core.ReplicationControllers("default").Get(ctx, "legacy", metav1.GetOptions{}); ptr.Deref(got.Spec.Replicas, 0) != 5 || got.Generation != 2 {
		t.Errorf("after scaling: replicas %v, generation %d", got.Spec.Replicas, got.Generation)
	}

	pt := &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{Name: "tmpl"}, Template: workloadTemplate("tmpl")}
	pt.Template.Spec.Containers[0].Image = ""
	_, err = core.PodTemplates("default").Create(ctx, pt, metav1.CreateOptions{})
	expectInvalid(t, "a pod template without image", err, "template.spec.containers[0].image: Required value")
}

func TestStockKubectlAppliesAndPrintsTheWorkloadKinds(t *testing.T) {
	bin := kubectlOnPath(t)
	s := apiservertest.Start(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	run := kubectlRunner(t, bin, kubeconfig, nil)
	manifest := filepath.Join(t.TempDir(), "workloads.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {disk: ssd}
      containers: [{name: agent, image: "busybox:1.36"}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: "busybox:1.36"}]}
---
apiVersion: v1
kind: PodTemplate
metadata: {name: tmpl}
template:
  metadata: {labels: {app: tmpl}}
  spec: {containers: [{name: c, image: "busybox:1.36"}]}
---
apiVersion: apps/v1
kind: ControllerRevision
metadata: {name: rev}
data: {spec: {template: {}}}
revision: 4
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run("apply", "--server-side", "-f", manifest); !strings.Contains(out, "daemonset.apps/agent serverside-applied") {
		t.Errorf("apply:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"get", "ds", "agent"}, []string{"NAME    DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR   AGE", "agent   0         0         0       0            0           disk=ssd"}},
		{[]string{"get", "ds", "-o", "wide"}, []string{"CONTAINERS   IMAGES         SELECTOR", "agent        busybox:1.36   app=agent"}},
		{[]string{"get", "sts", "db"}, []string{"NAME   READY   AGE", "db     0/2"}},
		{[]string{"get", "podtemplates"}, []string{"NAME   CONTAINERS   IMAGES         POD LABELS", "tmpl   c            busybox:1.36   app=tmpl"}},
		{[]string{"get", "controllerrevisions"}, []string{"NAME   CONTROLLER   REVISION   AGE", "rev    <none>       4"}},
		{[]string{"explain", "statefulset.spec.podManagementPolicy"}, []string{"podManagementPolicy", "OrderedReady"}},
		{[]string{"api-resources", "--api-group=apps"}, []string{"controllerrevisions", "daemonsets            ds           apps/v1", "statefulsets          sts          apps/v1"}},
	} {
		out := run(tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("kubectl %s: no %q in\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
	}
	if out := run("scale", "sts", "db", "--replicas=5"); !strings.Contains(out, "statefulset.apps/db scaled") {
		t.Errorf("scale:\n%s", out)
	}
	if out := run("get", "sts", "db", "-o", "jsonpath={.spec.replicas}"); out != "5" {
		t.Errorf("replicas after scale: %q", out)
	}
}
