package conformance

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

var _ = Describe("[sig-node] NodeLease", Label("node"), func() {
	It("the kubelet should create and renew a Lease for its node", func(ctx SpecContext) {
		node := schedulableNode(ctx)
		leases := cluster.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
		lease, err := leases.Get(ctx, node.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
		Expect(*lease.Spec.HolderIdentity).To(Equal(node.Name))
		Expect(lease.Spec.RenewTime).NotTo(BeNil())
		if len(lease.OwnerReferences) > 0 {
			Expect(lease.OwnerReferences[0].Kind).To(Equal("Node"))
			Expect(lease.OwnerReferences[0].UID).To(Equal(node.UID))
		}
		first := lease.Spec.RenewTime.Time
		Eventually(func(g Gomega) {
			l, err := leases.Get(ctx, node.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(l.Spec.RenewTime.Time.After(first)).To(BeTrue())
		}).WithTimeout(longWait).WithPolling(time.Second).Should(Succeed(), "lease of node %s not renewed", node.Name)
	})

	It("a Ready node should report its addresses, capacity and system info", func(ctx SpecContext) {
		node := schedulableNode(ctx)
		var types []corev1.NodeAddressType
		for _, a := range node.Status.Addresses {
			types = append(types, a.Type)
		}
		Expect(types).To(ContainElement(corev1.NodeInternalIP))
		Expect(node.Status.Capacity).To(HaveKey(corev1.ResourceCPU))
		Expect(node.Status.Capacity).To(HaveKey(corev1.ResourcePods))
		Expect(node.Status.Allocatable).To(HaveKey(corev1.ResourceMemory))
		Expect(node.Status.NodeInfo.KubeletVersion).To(HavePrefix("v1."))
		Expect(node.Status.NodeInfo.ContainerRuntimeVersion).NotTo(BeEmpty())
		Expect(node.Labels).To(HaveKeyWithValue("kubernetes.io/hostname", Not(BeEmpty())))
		Expect(node.Labels).To(HaveKeyWithValue("kubernetes.io/os", "linux"))
	})
})

var _ = Describe("[sig-node] Pods", Label("node"), func() {
	It("should be submitted, run with a host IP and pod IP, and removed, as seen on a watch", func(ctx SpecContext) {
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		pods := cluster.client.CoreV1().Pods(ns)
		w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: "test=lifecycle"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		pod := pausePod("lifecycle", map[string]string{"test": "lifecycle"})
		pod.Spec.NodeName = node.Name
		_, err = pods.Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(nextEvent(w).Type).To(Equal(watch.Added))

		var internalIP string
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				internalIP = a.Address
			}
		}
		Eventually(func(g Gomega) {
			p, err := pods.Get(ctx, "lifecycle", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
			g.Expect(p.Status.HostIP).To(Equal(internalIP))
			g.Expect(p.Status.PodIP).NotTo(BeEmpty())
			g.Expect(p.Status.StartTime).NotTo(BeNil())
			g.Expect(p.Status.ContainerStatuses).To(HaveLen(1))
			g.Expect(p.Status.ContainerStatuses[0].State.Running).NotTo(BeNil())
			g.Expect(p.Status.ContainerStatuses[0].Ready).To(BeTrue())
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		_, err = pods.Patch(ctx, "lifecycle", types.MergePatchType, []byte(`{"metadata":{"labels":{"time":"updated"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		p, err := pods.Get(ctx, "lifecycle", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(p.Labels).To(HaveKeyWithValue("time", "updated"))

		Expect(pods.Delete(ctx, "lifecycle", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](1)})).To(Succeed())
		Eventually(func() bool {
			_, err := pods.Get(ctx, "lifecycle", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithTimeout(longWait).WithPolling(poll).Should(BeTrue(), "the kubelet never confirmed the pod's deletion")
		var last watch.EventType
		for last != watch.Deleted {
			last = nextEvent(w).Type
		}
	})

	It("should run a pod with restartPolicy Never to completion and serve its logs", func(ctx SpecContext) {
		requireRealContainers(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		_, err := cluster.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "env"}, Data: map[string]string{"FROM_CM": "configmap-value"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cluster.client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "once"},
			Spec: corev1.PodSpec{
				NodeName:      node.Name,
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name: "c", Image: busyboxImage,
					Command: []string{"sh", "-c", `echo "pod=$POD_NAME ns=$POD_NS cm=$FROM_CM"`},
					Env: []corev1.EnvVar{
						{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						{Name: "POD_NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
					},
					EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "env"}}}},
				}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "once", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.Phase).To(Equal(corev1.PodSucceeded))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		logs, err := cluster.client.CoreV1().Pods(ns).GetLogs("once", &corev1.PodLogOptions{}).DoRaw(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(logs)).To(Equal(fmt.Sprintf("pod=once ns=%s cm=configmap-value\n", ns)))
	})
})

var _ = Describe("[sig-node] Pods", Label("node"), func() {
	It("should be updated", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		pods := cluster.client.CoreV1().Pods(ns)
		_, err := pods.Create(ctx, pausePod("updated", map[string]string{"name": "foo", "time": "initial"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			p, err := pods.Get(ctx, "updated", metav1.GetOptions{})
			if err != nil {
				return err
			}
			p.Labels["time"] = "updated"
			_, err = pods.Update(ctx, p, metav1.UpdateOptions{})
			return err
		})
		Expect(err).NotTo(HaveOccurred())
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "time=updated"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Name).To(Equal("updated"))
		list, err = pods.List(ctx, metav1.ListOptions{LabelSelector: "time=initial"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
	})

	It("should patch a pod status", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		pods := cluster.client.CoreV1().Pods(ns)
		_, err := pods.Create(ctx, pausePod("patched", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := pods.Patch(ctx, "patched", types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"patchedstatus":"true"}},"status":{"message":"Patched by e2e test","reason":"E2E"},"spec":{"activeDeadlineSeconds":5}}`),
			metav1.PatchOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Annotations).To(HaveKeyWithValue("patchedstatus", "true"))
		Expect(got.Status.Message).To(Equal("Patched by e2e test"))
		Expect(got.Status.Reason).To(Equal("E2E"))
		Expect(got.Spec.ActiveDeadlineSeconds).To(BeNil(), "a patch of pods/status changed the spec")
	})

	It("should allow activeDeadlineSeconds to be updated", func(ctx SpecContext) {
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		pods := cluster.client.CoreV1().Pods(ns)
		pod := pausePod("deadline", nil)
		pod.Spec.NodeName = node.Name
		_, err := pods.Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			p, err := pods.Get(ctx, "deadline", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		By("setting activeDeadlineSeconds on the running pod")
		_, err = pods.Patch(ctx, "deadline", types.StrategicMergePatchType, []byte(`{"spec":{"activeDeadlineSeconds":5}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			p, err := pods.Get(ctx, "deadline", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.Phase).To(Equal(corev1.PodFailed))
			g.Expect(p.Status.Reason).To(Equal("DeadlineExceeded"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		By("refusing to lengthen the deadline or remove it")
		_, err = pods.Patch(ctx, "deadline", types.StrategicMergePatchType, []byte(`{"spec":{"activeDeadlineSeconds":50}}`), metav1.PatchOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "lengthening activeDeadlineSeconds: %v", err)
	})
})

// expectEvicted waits until the pod is gone or being deleted.
func expectEvicted(ctx context.Context, ns, name string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(p.DeletionTimestamp).NotTo(BeNil(), "pod %s is not being deleted", name)
	}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
}

// podNotDeleting says whether the pod exists with nobody having begun to delete it.
func podNotDeleting(ctx context.Context, ns, name string) error {
	p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if p.DeletionTimestamp != nil {
		return fmt.Errorf("pod %s is being deleted since %s", name, p.DeletionTimestamp)
	}
	return nil
}

// The NoExecute specs taint a node with a key of their own, which evicts every pod there that
// does not tolerate it: on a real cluster that includes system pods, as upstream's
// [Disruptive] tests do. Each removes its taint when it ends.
var _ = Describe("[sig-node] NoExecuteTaintManager [Serial] [Disruptive]", Label("node"), Serial, func() {
	// tolerating returns a pod on node that tolerates the taint key for seconds (nil:
	// forever), or not at all when tolerate is false.
	tolerating := func(name string, node *corev1.Node, key string, tolerate bool, seconds *int64) *corev1.Pod {
		pod := pausePod(name, map[string]string{"group": "no-execute"})
		pod.Spec.NodeName = node.Name
		if tolerate {
			pod.Spec.Tolerations = []corev1.Toleration{{Key: key, Operator: corev1.TolerationOpEqual, Value: "evict", Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}}
		}
		return pod
	}
	createRunning := func(ctx context.Context, ns string, pods ...*corev1.Pod) {
		GinkgoHelper()
		for _, p := range pods {
			_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		Eventually(func(g Gomega) {
			for _, p := range pods {
				got, err := cluster.client.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got.Status.Phase).To(Equal(corev1.PodRunning))
			}
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	}
	noExecute := func(key string) corev1.Taint {
		return corev1.Taint{Key: key, Value: "evict", Effect: corev1.TaintEffectNoExecute}
	}

	It("only evicts pods without tolerations from tainted nodes", func(ctx SpecContext) {
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		key := uniqueTaintKey("no-execute")
		createRunning(ctx, ns,
			tolerating("intolerant", node, key, false, nil),
			tolerating("tolerant", node, key, true, nil))
		taintNode(ctx, node.Name, noExecute(key))
		expectEvicted(ctx, ns, "intolerant")
		Eventually(func(g Gomega) {
			_, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "intolerant", metav1.GetOptions{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the evicted pod is not gone")
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		Eventually(func(g Gomega) {
			events, err := cluster.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=intolerant"})
			g.Expect(err).NotTo(HaveOccurred())
			var reasons []string
			for _, e := range events.Items {
				reasons = append(reasons, e.Reason)
			}
			g.Expect(reasons).To(ContainElement("TaintManagerEviction"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		Expect(podNotDeleting(ctx, ns, "tolerant")).To(Succeed(), "a pod tolerating the taint forever was evicted")
	})

	It("evicts pods with minTolerationSeconds", func(ctx SpecContext) {
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		key := uniqueTaintKey("no-execute")
		createRunning(ctx, ns,
			tolerating("short", node, key, true, ptr.To[int64](5)),
			tolerating("long", node, key, true, ptr.To[int64](60)))
		taintNode(ctx, node.Name, noExecute(key))
		expectEvicted(ctx, ns, "short")
		Expect(podNotDeleting(ctx, ns, "long")).To(Succeed(), "the pod tolerating the taint for 60s went with the one tolerating it for 5s")
		expectEvicted(ctx, ns, "long")
	})

	It("removing taint cancels eviction", func(ctx SpecContext) {
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		key := uniqueTaintKey("no-execute")
		createRunning(ctx, ns, tolerating("spared", node, key, true, ptr.To[int64](10)))
		taintNode(ctx, node.Name, noExecute(key))
		Expect(podNotDeleting(ctx, ns, "spared")).To(Succeed())
		untaintNode(ctx, node.Name, key)
		By("waiting twice the toleration: the pod must stay")
		Consistently(func() error { return podNotDeleting(ctx, ns, "spared") }).WithTimeout(20 * time.Second).WithPolling(time.Second).Should(Succeed())
	})
})
