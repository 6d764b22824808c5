package conformance

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
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

	It("validates that required NodeAffinity setting is respected if matching", func(ctx SpecContext) {
		requireScheduler(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		pod := pausePod("with-affinity", nil)
		pod.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
				// the first term matches no node; terms are ORed, so the second decides
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "conformance.skiff.dev/no-such-label", Operator: corev1.NodeSelectorOpExists}}},
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node.Labels[corev1.LabelHostname]}}}},
			}},
		}}
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectScheduledOn(ctx, ns, "with-affinity", node.Name)
	})

	It("validates that NodeAffinity is respected if not matching", func(ctx SpecContext) {
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		pod := pausePod("no-match", nil)
		pod.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "conformance.skiff.dev/no-such-label", Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}}}},
			}},
		}}
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectUnschedulable(ctx, ns, "no-match", "didn't match Pod's node affinity/selector")
	})

	It("validates that required pod anti-affinity on the hostname keeps a second pod off the node", func(ctx SpecContext) {
		requireScheduler(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, onNode(pausePod("first", map[string]string{"security": "S1"}), node), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectScheduledOn(ctx, ns, "first", node.Name)

		second := onNode(pausePod("second", nil), node)
		second.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"security": "S1"}},
				TopologyKey:   corev1.LabelHostname,
			}},
		}}
		_, err = cluster.client.CoreV1().Pods(ns).Create(ctx, second, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectUnschedulable(ctx, ns, "second", "didn't match pod anti-affinity rules")

		By("deleting the first pod, after which the second is scheduled")
		Expect(cluster.client.CoreV1().Pods(ns).Delete(ctx, "first", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())
		expectScheduledOn(ctx, ns, "second", node.Name)
	})
})

// taintNode adds taint to the node, and in the same update the label taint.Key=taintedLabel,
// retrying on conflicts with the kubelet and the node controllers that write the node too; it
// removes both again when the spec ends: a spec leaves the node as it found it. A pod that
// selects the label (selectTainted) cannot be bound before the scheduler has seen the taint:
// the node and pod watches are separate streams, and the pod may well arrive first.
func taintNode(ctx context.Context, nodeName string, taint corev1.Taint) {
	GinkgoHelper()
	By(fmt.Sprintf("tainting node %s with %s=%s:%s", nodeName, taint.Key, taint.Value, taint.Effect))
	updateNode(ctx, nodeName, func(n *corev1.Node) bool {
		n.Spec.Taints = append(n.Spec.Taints, taint)
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[taint.Key] = taintedLabel
		return true
	})
	DeferCleanup(func(ctx SpecContext) {
		untaintNode(ctx, nodeName, taint.Key)
		updateNode(ctx, nodeName, func(n *corev1.Node) bool {
			_, ok := n.Labels[taint.Key]
			delete(n.Labels, taint.Key)
			return ok
		})
	})
}

// taintedLabel is the value of the label taintNode puts beside a taint.
const taintedLabel = "tainted"

// selectTainted makes the pod select the node taintNode tainted with key.
func selectTainted(pod *corev1.Pod, key string) *corev1.Pod {
	if pod.Spec.NodeSelector == nil {
		pod.Spec.NodeSelector = map[string]string{}
	}
	pod.Spec.NodeSelector[key] = taintedLabel
	return pod
}

// updateNode applies change to the node and writes it if change says it changed anything,
// retrying on conflicts.
func updateNode(ctx context.Context, nodeName string, change func(*corev1.Node) bool) {
	GinkgoHelper()
	nodes := cluster.client.CoreV1().Nodes()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !change(n) {
			return nil
		}
		_, err = nodes.Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
	Expect(err).NotTo(HaveOccurred())
}

// untaintNode removes every taint with key from the node; removing a taint that is gone is
// not an error.
func untaintNode(ctx context.Context, nodeName, key string) {
	GinkgoHelper()
	updateNode(ctx, nodeName, func(n *corev1.Node) bool {
		kept := n.Spec.Taints[:0]
		for _, t := range n.Spec.Taints {
			if t.Key != key {
				kept = append(kept, t)
			}
		}
		changed := len(kept) != len(n.Spec.Taints)
		n.Spec.Taints = kept
		return changed
	})
}

// uniqueTaintKey is a taint key no other spec, controller or toleration uses.
func uniqueTaintKey(purpose string) string {
	return "conformance.skiff.dev/" + purpose + "-" + string(uuid.NewUUID())[:8]
}

// onNode pins a pod to one node through a nodeSelector on its hostname label, so that specs
// reason about that node alone on clusters with many.
func onNode(pod *corev1.Pod, node *corev1.Node) *corev1.Pod {
	if pod.Spec.NodeSelector == nil {
		pod.Spec.NodeSelector = map[string]string{}
	}
	pod.Spec.NodeSelector[corev1.LabelHostname] = node.Labels[corev1.LabelHostname]
	return pod
}

// expectScheduledOn waits until the scheduler binds the pod to the node.
func expectScheduledOn(ctx context.Context, ns, name, nodeName string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(p.Spec.NodeName).To(Equal(nodeName))
	}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed(), "pod %s was not scheduled to node %s", name, nodeName)
}

// expectUnschedulable waits until the scheduler reports the pod Unschedulable with a message
// naming reason, and a FailedScheduling event on the pod that says the same; the pod stays
// unbound.
func expectUnschedulable(ctx context.Context, ns, name, reason string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(p.Spec.NodeName).To(BeEmpty())
		g.Expect(p.Status.Phase).To(Equal(corev1.PodPending))
		c := podScheduledCondition(p)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(corev1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(corev1.PodReasonUnschedulable))
		g.Expect(c.Message).To(ContainSubstring(reason))
	}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	Eventually(func(g Gomega) {
		events, err := cluster.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		g.Expect(err).NotTo(HaveOccurred())
		var messages []string
		for _, e := range events.Items {
			if e.Reason == "FailedScheduling" {
				g.Expect(e.Type).To(Equal(corev1.EventTypeWarning))
				messages = append(messages, e.Message)
			}
		}
		g.Expect(messages).To(ContainElement(ContainSubstring(reason)))
	}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed(), "no FailedScheduling event for pod %s", name)
}

// freeMilliCPU is the node's allocatable CPU less the requests of the pods bound to it that
// have not finished. It waits until no pod on the node is terminating first: earlier specs'
// namespaces are deleted in the background, and CPU that a terminating pod frees after the count
// would let a spec's "full" node take one more pod.
func freeMilliCPU(ctx context.Context, node *corev1.Node) int64 {
	GinkgoHelper()
	var free int64
	Eventually(func(g Gomega) {
		pods, err := cluster.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node.Name})
		g.Expect(err).NotTo(HaveOccurred())
		free = node.Status.Allocatable.Cpu().MilliValue()
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			g.Expect(p.DeletionTimestamp).To(BeNil(), "pod %s/%s on node %s is terminating", p.Namespace, p.Name, node.Name)
			free -= podRequestMilliCPU(&p)
		}
	}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	return free
}

// podRequestMilliCPU is the CPU a scheduler reserves for the pod: its containers and sidecars,
// or more if an init container asks for more while the sidecars started before it run, plus the
// pod's overhead.
func podRequestMilliCPU(p *corev1.Pod) int64 {
	var containers, sidecars, initPeak int64
	for _, c := range p.Spec.Containers {
		containers += c.Resources.Requests.Cpu().MilliValue()
	}
	for _, c := range p.Spec.InitContainers {
		cpu := c.Resources.Requests.Cpu().MilliValue()
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars += cpu
			initPeak = max(initPeak, sidecars)
			continue
		}
		initPeak = max(initPeak, sidecars+cpu)
	}
	return max(containers+sidecars, initPeak) + p.Spec.Overhead.Cpu().MilliValue()
}

// newPriorityClass creates a PriorityClass with value and deletes it when the spec ends.
func newPriorityClass(ctx context.Context, value int32) string {
	GinkgoHelper()
	pc, err := cluster.client.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "conformance-", Labels: map[string]string{"e2e-framework": "skiff-conformance"}},
		Value:      value,
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		err := cluster.client.SchedulingV1().PriorityClasses().Delete(ctx, pc.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	})
	return pc.Name
}

var _ = Describe("[sig-scheduling] SchedulerPredicates [Serial]", Label("scheduling"), Serial, func() {
	It("validates that taints-tolerations is respected if matching", func(ctx SpecContext) {
		requireScheduler(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		key := uniqueTaintKey("no-schedule")
		taintNode(ctx, node.Name, corev1.Taint{Key: key, Value: "testing-taint-value", Effect: corev1.TaintEffectNoSchedule})
		pod := selectTainted(onNode(pausePod("tolerating", nil), node), key)
		pod.Spec.Tolerations = []corev1.Toleration{{Key: key, Operator: corev1.TolerationOpEqual, Value: "testing-taint-value", Effect: corev1.TaintEffectNoSchedule}}
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectScheduledOn(ctx, ns, "tolerating", node.Name)
	})

	It("validates that taints-tolerations is respected if not matching", func(ctx SpecContext) {
		requireScheduler(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		key := uniqueTaintKey("no-schedule")
		taintNode(ctx, node.Name, corev1.Taint{Key: key, Value: "testing-taint-value", Effect: corev1.TaintEffectNoSchedule})
		pod := selectTainted(onNode(pausePod("intolerant", nil), node), key)
		// tolerating another value of the key is not tolerating the taint
		pod.Spec.Tolerations = []corev1.Toleration{{Key: key, Operator: corev1.TolerationOpEqual, Value: "another-value", Effect: corev1.TaintEffectNoSchedule}}
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectUnschedulable(ctx, ns, "intolerant", "had untolerated taint {"+key+": testing-taint-value}")

		By("removing the taint, after which the pod is scheduled")
		untaintNode(ctx, node.Name, key)
		expectScheduledOn(ctx, ns, "intolerant", node.Name)
	})

})

var _ = Describe("[sig-scheduling] PodTopologySpread Filtering", Label("scheduling"), func() {
	spreadPod := func(name string, node *corev1.Node, c corev1.TopologySpreadConstraint) *corev1.Pod {
		pod := onNode(pausePod(name, map[string]string{"app": "spread"}), node)
		c.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread"}}
		pod.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{c}
		return pod
	}

	It("validates that a pod is scheduled when every domain stays within maxSkew", func(ctx SpecContext) {
		requireScheduler(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		// the pods may only go to one node, which is then the only eligible domain: the skew
		// of a single domain is always 0, so every pod fits
		c := corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.DoNotSchedule}
		for _, name := range []string{"spread-0", "spread-1", "spread-2"} {
			_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, spreadPod(name, node, c), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			expectScheduledOn(ctx, ns, name, node.Name)
		}
	})

	It("validates that a pod exceeding maxSkew with fewer domains than minDomains is not scheduled", func(ctx SpecContext) {
		requireScheduler(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		// one eligible domain is fewer than minDomains 2, so the global minimum counts as 0:
		// the first pod makes a skew of 1, a second would make 2
		c := corev1.TopologySpreadConstraint{MaxSkew: 1, MinDomains: ptr.To[int32](2), TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.DoNotSchedule}
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, spreadPod("spread-0", node, c), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectScheduledOn(ctx, ns, "spread-0", node.Name)
		_, err = cluster.client.CoreV1().Pods(ns).Create(ctx, spreadPod("spread-1", node, c), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectUnschedulable(ctx, ns, "spread-1", "didn't match pod topology spread constraints")

		By("a pod with whenUnsatisfiable ScheduleAnyway is scheduled all the same")
		c.WhenUnsatisfiable, c.MinDomains = corev1.ScheduleAnyway, nil // minDomains is for DoNotSchedule only
		_, err = cluster.client.CoreV1().Pods(ns).Create(ctx, spreadPod("spread-anyway", node, c), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectScheduledOn(ctx, ns, "spread-anyway", node.Name)
	})

	It("validates that a node without the topology key is not eligible for a DoNotSchedule constraint", func(ctx SpecContext) {
		requireScheduler(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		c := corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: "conformance.skiff.dev/no-such-zone", WhenUnsatisfiable: corev1.DoNotSchedule}
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, spreadPod("unlabelled", node, c), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectUnschedulable(ctx, ns, "unlabelled", "didn't match pod topology spread constraints (missing required label)")
	})
})

var _ = Describe("[sig-scheduling] SchedulerPreemption [Serial]", Label("scheduling"), Serial, func() {
	It("validates basic preemption works", func(ctx SpecContext) {
		requireScheduler(ctx)
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		low := newPriorityClass(ctx, 10)
		high := newPriorityClass(ctx, 1000)

		free := freeMilliCPU(ctx, node)
		if free < 100 {
			Skip(fmt.Sprintf("needs 100m of free CPU on node %s to fill; it has %dm", node.Name, free))
		}
		request := corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(free, resource.DecimalSI)}
		By(fmt.Sprintf("filling node %s with a low-priority pod requesting its %dm of free CPU", node.Name, free))
		victim := onNode(pausePod("low", nil), node)
		victim.Spec.PriorityClassName = low
		victim.Spec.Containers[0].Resources.Requests = request
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, victim, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectScheduledOn(ctx, ns, "low", node.Name)
		victim, err = cluster.client.CoreV1().Pods(ns).Get(ctx, "low", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(victim.Spec.Priority).To(HaveValue(BeEquivalentTo(10)), "the Priority admission plugin resolves priorityClassName")

		By("creating a high-priority pod that needs the same CPU")
		preemptor := onNode(pausePod("high", nil), node)
		preemptor.Spec.PriorityClassName = high
		preemptor.Spec.Containers[0].Resources.Requests = request
		_, err = cluster.client.CoreV1().Pods(ns).Create(ctx, preemptor, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "low", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.DeletionTimestamp).NotTo(BeNil(), "the low-priority pod is not being deleted")
			g.Expect(p.UID).To(Equal(victim.UID))
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		expectScheduledOn(ctx, ns, "high", node.Name)
	})
})
