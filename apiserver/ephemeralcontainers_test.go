package apiserver_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestKubectlDebugAddsAnEphemeralContainer(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	pods := s.Client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, testPod("web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl := kubectlRunner(t, kubectlOnPath(t), adminKubeconfig(t, s), nil)
	kubectl("debug", "web", "--image=busybox:1.36", "--container=dbg", "--target=c", "--", "sleep", "1d")

	pod, err := pods.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.EphemeralContainers) != 1 {
		t.Fatalf("ephemeral containers %+v", pod.Spec.EphemeralContainers)
	}
	ec := pod.Spec.EphemeralContainers[0]
	if ec.Name != "dbg" || ec.Image != "busybox:1.36" || ec.TargetContainerName != "c" ||
		ec.TerminationMessagePolicy != corev1.TerminationMessageReadFile || pod.Generation != 2 {
		t.Fatalf("added container %+v (generation %d)", ec, pod.Generation)
	}
	// the subresource reads the pod
	sub := &corev1.Pod{}
	if err := s.Client.CoreV1().RESTClient().Get().Namespace("default").Resource("pods").Name("web").SubResource("ephemeralcontainers").Do(ctx).Into(sub); err != nil || sub.Name != "web" {
		t.Fatalf("get ephemeralcontainers: %v", err)
	}

	// only spec.ephemeralContainers is written through it
	changed := pod.DeepCopy()
	changed.Spec.Containers[0].Image = "nginx"
	changed.Labels = map[string]string{"changed": "yes"}
	changed.Spec.EphemeralContainers = append(changed.Spec.EphemeralContainers, corev1.EphemeralContainer{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg2", Image: "busybox:1.36"}})
	got, err := pods.UpdateEphemeralContainers(ctx, "web", changed, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Containers[0].Image != "busybox:1.36" || got.Labels["changed"] != "" || len(got.Spec.EphemeralContainers) != 2 {
		t.Fatalf("ephemeralcontainers wrote more than its own: %+v", got)
	}

	for _, c := range []struct {
		name   string
		change func(p *corev1.Pod)
		want   string
	}{
		{"removed", func(p *corev1.Pod) { p.Spec.EphemeralContainers = p.Spec.EphemeralContainers[1:] },
			`Pod "web" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" may not be removed`},
		{"changed", func(p *corev1.Pod) { p.Spec.EphemeralContainers[0].Image = "alpine" },
			`Pod "web" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" may not be changed`},
		{"ports", func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "dbg3", Image: "busybox:1.36", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent,
				Ports: []corev1.ContainerPort{{ContainerPort: 80}}}})
		}, `spec.ephemeralContainers[2].ports: Forbidden: cannot be set for an Ephemeral Container`},
		{"duplicate", func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "c", Image: "busybox:1.36", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent}})
		}, `spec.ephemeralContainers[2].name: Duplicate value: "c"`},
	} {
		p := got.DeepCopy()
		c.change(p)
		if _, err := pods.UpdateEphemeralContainers(ctx, "web", p, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v\nwant %s", c.name, err, c.want)
		}
	}
}
