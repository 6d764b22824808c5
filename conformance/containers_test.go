package conformance

// Specs of what a node does with a pod's containers: their environment and volumes, init
// containers, probes, restart policies, and exec and logs through the API server. Each needs a
// runtime that really runs the containers' commands (requireRealContainers).

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// shellPod is a pod on node whose one busybox container, c, runs script in sh.
func shellPod(name, node string, restart corev1.RestartPolicy, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			RestartPolicy:                 restart,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []corev1.Container{{Name: "c", Image: busyboxImage, Command: []string{"sh", "-c", script}}},
		},
	}
}

// createPod creates pod in ns, failing the spec on an error.
func createPod(ctx context.Context, ns string, pod *corev1.Pod) {
	GinkgoHelper()
	_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
}

// waitForPod waits until check passes on the pod and returns the pod it passed on.
func waitForPod(ctx context.Context, ns, name string, check func(g Gomega, p *corev1.Pod)) *corev1.Pod {
	GinkgoHelper()
	var pod *corev1.Pod
	Eventually(func(g Gomega) {
		p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		check(g, p)
		pod = p
	}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed(), "pod %s/%s", ns, name)
	return pod
}

// inPhase is a waitForPod check for the pod's phase.
func inPhase(phase corev1.PodPhase) func(g Gomega, p *corev1.Pod) {
	return func(g Gomega, p *corev1.Pod) { g.Expect(p.Status.Phase).To(Equal(phase)) }
}

// podLogs is the log of the pod's container, read through the API server.
func podLogs(ctx context.Context, ns, name, container string) string {
	GinkgoHelper()
	b, err := cluster.client.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

// containerStatus is the status of the pod's (init or app) container name.
func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

var _ = Describe("[sig-node] ConfigMap", Label("node"), func() {
	It("should be consumable via environment variable", func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		_, err := cluster.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "configmap-test"}, Data: map[string]string{"data-1": "value-1"},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pod := shellPod("pod-configmaps", node.Name, corev1.RestartPolicyNever, "env")
		pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "CONFIG_DATA_1", ValueFrom: &corev1.EnvVarSource{
			ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "configmap-test"}, Key: "data-1"},
		}}}
		createPod(ctx, ns, pod)
		waitForPod(ctx, ns, pod.Name, inPhase(corev1.PodSucceeded))
		Expect(podLogs(ctx, ns, pod.Name, "c")).To(MatchRegexp(`(?m)^CONFIG_DATA_1=value-1$`))
	})
})

var _ = Describe("[sig-storage] ConfigMap", Label("node"), func() {
	It("should be consumable from pods in volume", func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		_, err := cluster.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "configmap-test-volume"}, Data: map[string]string{"data-1": "value-1"},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pod := shellPod("pod-configmaps", node.Name, corev1.RestartPolicyNever,
			"cat /etc/configmap-volume/data-1; echo; stat -L -c %a /etc/configmap-volume/data-1")
		pod.Spec.Volumes = []corev1.Volume{{Name: "configmap-volume", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "configmap-test-volume"}},
		}}}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "configmap-volume", MountPath: "/etc/configmap-volume"}}
		createPod(ctx, ns, pod)
		waitForPod(ctx, ns, pod.Name, inPhase(corev1.PodSucceeded))
		// a configMap volume's files are 0644 unless defaultMode says otherwise
		Expect(podLogs(ctx, ns, pod.Name, "c")).To(Equal("value-1\n644\n"))
	})
})

var _ = Describe("[sig-storage] Secrets", Label("node"), func() {
	It("should be consumable from pods in volume", func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		_, err := cluster.client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "secret-test"}, Data: map[string][]byte{"data-1": []byte("value-1")},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pod := shellPod("pod-secrets", node.Name, corev1.RestartPolicyNever,
			"cat /etc/secret-volume/data-1; echo; stat -L -c %a /etc/secret-volume/data-1")
		pod.Spec.Volumes = []corev1.Volume{{Name: "secret-volume", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: "secret-test"},
		}}}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "secret-volume", MountPath: "/etc/secret-volume", ReadOnly: true}}
		createPod(ctx, ns, pod)
		waitForPod(ctx, ns, pod.Name, inPhase(corev1.PodSucceeded))
		Expect(podLogs(ctx, ns, pod.Name, "c")).To(Equal("value-1\n644\n"))
	})
})

var _ = Describe("[sig-node] Downward API", Label("node"), func() {
	It("should provide pod name, namespace and IP address as env vars", func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		field := func(path string) *corev1.EnvVarSource {
			return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}
		}
		pod := shellPod("downward-api", node.Name, corev1.RestartPolicyNever, "env")
		pod.Spec.Containers[0].Env = []corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: field("metadata.name")},
			{Name: "POD_NAMESPACE", ValueFrom: field("metadata.namespace")},
			{Name: "POD_IP", ValueFrom: field("status.podIP")},
		}
		createPod(ctx, ns, pod)
		waitForPod(ctx, ns, pod.Name, inPhase(corev1.PodSucceeded))
		logs := podLogs(ctx, ns, pod.Name, "c")
		Expect(logs).To(MatchRegexp(`(?m)^POD_NAME=downward-api$`))
		Expect(logs).To(MatchRegexp(`(?m)^POD_NAMESPACE=` + regexp.QuoteMeta(ns) + `$`))
		Expect(logs).To(MatchRegexp(`(?m)^POD_IP=(?:\d+\.\d+\.\d+\.\d+|[a-fA-F0-9:]+)$`))
	})
})

var _ = Describe("[sig-storage] Downward API volume", Label("node"), func() {
	It("should update labels on modification", func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		pod := shellPod("labelsupdate", node.Name, corev1.RestartPolicyAlways,
			"trap 'exit 0' TERM; while :; do cat /etc/podinfo/labels; echo; sleep 1 & wait; done")
		pod.Labels = map[string]string{"key1": "value1", "key2": "value2"}
		pod.Spec.Volumes = []corev1.Volume{{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels"}}},
		}}}}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "podinfo", MountPath: "/etc/podinfo"}}
		createPod(ctx, ns, pod)
		waitForPod(ctx, ns, pod.Name, inPhase(corev1.PodRunning))
		Eventually(func() string { return podLogs(ctx, ns, pod.Name, "c") }).WithContext(ctx).WithTimeout(longWait).WithPolling(time.Second).
			Should(And(ContainSubstring(`key1="value1"`+"\n"), ContainSubstring(`key2="value2"`+"\n")))

		By("adding a label: the kubelet rewrites the file")
		_, err := cluster.client.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"key3":"value3"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() string { return podLogs(ctx, ns, pod.Name, "c") }).WithContext(ctx).WithTimeout(longWait).WithPolling(time.Second).
			Should(ContainSubstring(`key3="value3"` + "\n"))
	})
})

var _ = Describe("[sig-storage] EmptyDir volumes", Label("node"), func() {
	It("pod should support shared volumes between containers", func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		pod := shellPod("pod-sharedvolume", node.Name, corev1.RestartPolicyNever, "")
		pod.Spec.Volumes = []corev1.Volume{{Name: "shared-data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		mount := []corev1.VolumeMount{{Name: "shared-data", MountPath: "/usr/share/volumeshare"}}
		pod.Spec.Containers = []corev1.Container{
			{Name: "busybox-sub-container", Image: busyboxImage, VolumeMounts: mount,
				Command: []string{"sh", "-c", "echo Hello from the busy-box sub-container > /usr/share/volumeshare/shareddata.txt.tmp && mv /usr/share/volumeshare/shareddata.txt.tmp /usr/share/volumeshare/shareddata.txt"}},
			{Name: "busybox-main-container", Image: busyboxImage, VolumeMounts: mount,
				Command: []string{"sh", "-c", "until [ -f /usr/share/volumeshare/shareddata.txt ]; do sleep 0.2; done; cat /usr/share/volumeshare/shareddata.txt"}},
		}
		createPod(ctx, ns, pod)
		waitForPod(ctx, ns, pod.Name, inPhase(corev1.PodSucceeded))
		Expect(podLogs(ctx, ns, pod.Name, "busybox-main-container")).To(Equal("Hello from the busy-box sub-container\n"))
	})
})

var _ = Describe("[sig-node] InitContainer", Label("node"), func() {
	It("should invoke init containers on a RestartNever pod", func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		mount := []corev1.VolumeMount{{Name: "order", MountPath: "/order"}}
		step := func(name string) corev1.Container {
			return corev1.Container{Name: name, Image: busyboxImage, VolumeMounts: mount, Command: []string{"sh", "-c", "echo " + name + " >> /order/log"}}
		}
		pod := shellPod("pod-init", node.Name, corev1.RestartPolicyNever, "")
		pod.Spec.Volumes = []corev1.Volume{{Name: "order", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		pod.Spec.InitContainers = []corev1.Container{step("init1"), step("init2")}
		pod.Spec.Containers = []corev1.Container{{Name: "run1", Image: busyboxImage, VolumeMounts: mount, Command: []string{"sh", "-c", "echo run1 >> /order/log; cat /order/log"}}}
		createPod(ctx, ns, pod)
		p := waitForPod(ctx, ns, pod.Name, inPhase(corev1.PodSucceeded))
		Expect(p.Status.InitContainerStatuses).To(HaveLen(2))
		for _, s := range p.Status.InitContainerStatuses {
			Expect(s.State.Terminated).NotTo(BeNil(), "init container %s", s.Name)
			Expect(s.State.Terminated.ExitCode).To(BeZero(), "init container %s", s.Name)
		}
		Expect(podLogs(ctx, ns, pod.Name, "run1")).To(Equal("init1\ninit2\nrun1\n"), "the containers ran out of order")
	})
})

var _ = Describe("[sig-node] Probing container", Label("node"), func() {
	It("with readiness probe that fails should never be ready and never restart", func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		pod := shellPod("test-webserver", node.Name, corev1.RestartPolicyAlways, "trap 'exit 0' TERM; sleep 2147483647 & wait")
		pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/false"}}},
			PeriodSeconds: 1,
		}
		createPod(ctx, ns, pod)
		waitForPod(ctx, ns, pod.Name, inPhase(corev1.PodRunning))
		Consistently(func(g Gomega) {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.ContainerStatuses).To(HaveLen(1))
			g.Expect(p.Status.ContainerStatuses[0].Ready).To(BeFalse(), "the container is ready")
			g.Expect(p.Status.ContainerStatuses[0].RestartCount).To(BeZero(), "the container restarted")
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady {
					g.Expect(c.Status).To(Equal(corev1.ConditionFalse), "the pod is Ready")
				}
			}
		}).WithContext(ctx).WithTimeout(20 * time.Second).WithPolling(time.Second).Should(Succeed())
	})

	It(`should be restarted with a exec "cat /tmp/health" liveness probe`, func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		pod := shellPod("liveness-exec", node.Name, corev1.RestartPolicyAlways,
			"echo ok > /tmp/health; sleep 5; rm -f /tmp/health; trap 'exit 0' TERM; sleep 2147483647 & wait")
		pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/health"}}},
			InitialDelaySeconds: 1, PeriodSeconds: 1, FailureThreshold: 1,
		}
		createPod(ctx, ns, pod)
		waitForPod(ctx, ns, pod.Name, func(g Gomega, p *corev1.Pod) {
			s := containerStatus(p, "c")
			g.Expect(s).NotTo(BeNil())
			g.Expect(s.RestartCount).To(BeNumerically(">=", 1), "the container was not restarted")
		})
		events, err := cluster.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=liveness-exec"})
		Expect(err).NotTo(HaveOccurred())
		var reasons []string
		for _, e := range events.Items {
			reasons = append(reasons, e.Reason)
		}
		Expect(reasons).To(ContainElement("Unhealthy"))
	})
})

var _ = Describe("[sig-node] Container Runtime", Label("node"), func() {
	It("blackbox test when starting a container that exits should run with the expected status", func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		// OnFailure: fails once, then succeeds (an emptyDir outlives the container's restart)
		onFailure := shellPod("terminate-cmd-rpof", node.Name, corev1.RestartPolicyOnFailure,
			"if [ -f /data/ran ]; then exit 0; fi; touch /data/ran; exit 1")
		onFailure.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		onFailure.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		never := shellPod("terminate-cmd-rpn", node.Name, corev1.RestartPolicyNever, "exit 1")
		always := shellPod("terminate-cmd-rpa", node.Name, corev1.RestartPolicyAlways, "exit 0")
		for _, p := range []*corev1.Pod{onFailure, never, always} {
			createPod(ctx, ns, p)
		}

		By("OnFailure: restarted after it failed, then Succeeded")
		p := waitForPod(ctx, ns, onFailure.Name, inPhase(corev1.PodSucceeded))
		s := containerStatus(p, "c")
		Expect(s.RestartCount).To(BeEquivalentTo(1))
		Expect(s.State.Terminated).NotTo(BeNil())
		Expect(s.State.Terminated.ExitCode).To(BeZero())
		Expect(s.Ready).To(BeFalse())

		By("Never: Failed with the exit code, never restarted")
		p = waitForPod(ctx, ns, never.Name, inPhase(corev1.PodFailed))
		s = containerStatus(p, "c")
		Expect(s.RestartCount).To(BeZero())
		Expect(s.State.Terminated).NotTo(BeNil())
		Expect(s.State.Terminated.ExitCode).To(BeEquivalentTo(1))
		Expect(s.State.Terminated.Reason).To(Equal("Error"))

		By("Always: restarted though it succeeded, and still Running")
		p = waitForPod(ctx, ns, always.Name, func(g Gomega, p *corev1.Pod) {
			s := containerStatus(p, "c")
			g.Expect(s).NotTo(BeNil())
			g.Expect(s.RestartCount).To(BeNumerically(">=", 1))
		})
		Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
	})
})

var _ = Describe("[sig-cli] Kubectl client", Label("kubectl"), func() {
	It("Simple pod should support exec", func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		createPod(ctx, ns, shellPod("httpd", node.Name, corev1.RestartPolicyAlways, "trap 'exit 0' TERM; sleep 2147483647 & wait"))
		mustKubectl(ctx, "-n", ns, "wait", "--for=condition=Ready", "pod/httpd", "--timeout=120s")

		Expect(mustKubectl(ctx, "-n", ns, "exec", "httpd", "--", "/bin/sh", "-c", "echo running in container")).To(Equal("running in container\n"))
		By("passing stdin to the command")
		out, err := kubectl(ctx, "abcd1234", "-n", ns, "exec", "-i", "httpd", "--", "cat")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(Equal("abcd1234"))
		By("reporting the command's exit code")
		_, err = kubectl(ctx, "", "-n", ns, "exec", "httpd", "--", "/bin/sh", "-c", "exit 42")
		Expect(err).To(MatchError(ContainSubstring("exit status 42")))
	})

	It("Kubectl logs logs should be able to retrieve and filter logs", func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		createPod(ctx, ns, shellPod("logs-generator", node.Name, corev1.RestartPolicyNever, "for i in 1 2 3 4; do echo line $i; done"))
		waitForPod(ctx, ns, "logs-generator", inPhase(corev1.PodSucceeded))

		Expect(mustKubectl(ctx, "-n", ns, "logs", "logs-generator", "c")).To(Equal("line 1\nline 2\nline 3\nline 4\n"))
		By("limiting the lines")
		Expect(mustKubectl(ctx, "-n", ns, "logs", "logs-generator", "c", "--tail=1")).To(Equal("line 4\n"))
		By("limiting the bytes")
		Expect(mustKubectl(ctx, "-n", ns, "logs", "logs-generator", "c", "--limit-bytes=1")).To(Equal("l"))
		By("with timestamps")
		lines := strings.Split(strings.TrimSuffix(mustKubectl(ctx, "-n", ns, "logs", "logs-generator", "c", "--tail=2", "--timestamps"), "\n"), "\n")
		Expect(lines).To(HaveLen(2))
		for i, l := range lines {
			ts, text, ok := strings.Cut(l, " ")
			Expect(ok).To(BeTrue(), "no timestamp in %q", l)
			_, err := time.Parse(time.RFC3339Nano, ts)
			Expect(err).NotTo(HaveOccurred(), "timestamp of %q", l)
			Expect(text).To(Equal(fmt.Sprintf("line %d", i+3)))
		}
	})
})
