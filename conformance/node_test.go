package conformance

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
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
