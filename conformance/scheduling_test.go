package conformance

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podScheduledCondition returns the pod's PodScheduled condition, or nil.
func podScheduledCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

var _ = Describe("[sig-scheduling] SchedulerPredicates", Label("scheduling"), func() {
	It("validates that a nodeSelector is respected if matching", func(ctx SpecContext) {
		requireScheduler(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		pod := pausePod("selected", nil)
		pod.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": node.Labels["kubernetes.io/hostname"]}
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "selected", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Spec.NodeName).To(Equal(node.Name))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})

	It("validates that a nodeSelector is respected if not matching", func(ctx SpecContext) {
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		pod := pausePod("unmatched", nil)
		pod.Spec.NodeSelector = map[string]string{"conformance.skiff.dev/no-such-label": "nonempty"}
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "unmatched", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Spec.NodeName).To(BeEmpty())
			c := podScheduledCondition(p)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(corev1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(corev1.PodReasonUnschedulable))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})

	It("validates that a pod requesting more CPU than any node has is not scheduled", func(ctx SpecContext) {
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		pod := pausePod("huge", nil)
		pod.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100000")}
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "huge", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Spec.NodeName).To(BeEmpty())
			c := podScheduledCondition(p)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(corev1.PodReasonUnschedulable))
			g.Expect(c.Message).To(ContainSubstring("Insufficient cpu"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})
