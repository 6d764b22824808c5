package conformance

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// readyPods waits until n pods labelled app=label in ns are Ready and not being deleted, and
// returns them.
func readyPods(ctx context.Context, ns, label string, n int) []corev1.Pod {
	var ready []corev1.Pod
	Eventually(func(g Gomega) {
		pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + label})
		g.Expect(err).NotTo(HaveOccurred())
		ready = ready[:0]
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
					ready = append(ready, p)
				}
			}
		}
		g.Expect(ready).To(HaveLen(n))
	}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	return ready
}

// budget creates a PodDisruptionBudget over app=label with minAvailable min.
func budget(ctx context.Context, ns, label string, min int32) *policyv1.PodDisruptionBudget {
	m := intstr.FromInt32(min)
	pdb, err := cluster.client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: label},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &m,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": label}}},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return pdb
}

// waitDisruptionsAllowed waits until the budget's current status allows n disruptions.
func waitDisruptionsAllowed(ctx context.Context, ns, name string, n int32) {
	Eventually(func(g Gomega) {
		pdb, err := cluster.client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pdb.Status.ObservedGeneration).To(Equal(pdb.Generation))
		g.Expect(pdb.Status.DisruptionsAllowed).To(Equal(n))
	}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
}

var _ = Describe("[sig-apps] DisruptionController", Label("apps"), func() {
	It("should observe PodDisruptionBudget status updated", func(ctx SpecContext) {
		schedulableNode(ctx)
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		_, err := cluster.client.AppsV1().ReplicaSets(ns).Create(ctx, replicaSet("pdb", 3, map[string]string{"app": "pdb"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		budget(ctx, ns, "pdb", 1)
		readyPods(ctx, ns, "pdb", 3)
		waitDisruptionsAllowed(ctx, ns, "pdb", 2)
		pdb, err := cluster.client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "pdb", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pdb.Status.CurrentHealthy).To(BeEquivalentTo(3))
		Expect(pdb.Status.DesiredHealthy).To(BeEquivalentTo(1))
		Expect(pdb.Status.ExpectedPods).To(BeEquivalentTo(3))
	})

	It("should block an eviction until the PDB is updated to allow it", func(ctx SpecContext) {
		schedulableNode(ctx)
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		_, err := cluster.client.AppsV1().ReplicaSets(ns).Create(ctx, replicaSet("evict", 3, map[string]string{"app": "evict"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		budget(ctx, ns, "evict", 3)
		pods := readyPods(ctx, ns, "evict", 3)
		waitDisruptionsAllowed(ctx, ns, "evict", 0)

		eviction := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pods[0].Name, Namespace: ns}}
		err = cluster.client.PolicyV1().Evictions(ns).Evict(ctx, eviction)
		Expect(apierrors.IsTooManyRequests(err)).To(BeTrue(), "eviction against an exhausted budget: %v", err)
		Expect(err.Error()).To(Equal("Cannot evict pod as it would violate the pod's disruption budget."))

		pdb, err := cluster.client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "evict", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		two := intstr.FromInt32(2)
		pdb.Spec.MinAvailable = &two
		_, err = cluster.client.PolicyV1().PodDisruptionBudgets(ns).Update(ctx, pdb, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		waitDisruptionsAllowed(ctx, ns, "evict", 1)
		Expect(cluster.client.PolicyV1().Evictions(ns).Evict(ctx, eviction)).To(Succeed())
		Eventually(func(g Gomega) {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, pods[0].Name, metav1.GetOptions{})
			g.Expect(apierrors.IsNotFound(err) || err == nil && p.UID != pods[0].UID || err == nil && p.DeletionTimestamp != nil).To(BeTrue())
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})

var _ = Describe("[sig-api-machinery] ResourceQuota", Label("api-machinery"), func() {
	It("should create a ResourceQuota and capture the life of a pod", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		quotas := cluster.client.CoreV1().ResourceQuotas(ns)
		_, err := quotas.Create(ctx, &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Name: "quota"},
			Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
				corev1.ResourcePods: resource.MustParse("1"), corev1.ResourceRequestsCPU: resource.MustParse("500m")}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		used := func(name corev1.ResourceName, want string) {
			Eventually(func(g Gomega) {
				q, err := quotas.Get(ctx, "quota", metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				v, ok := q.Status.Used[name]
				g.Expect(ok).To(BeTrue())
				g.Expect(v.Cmp(resource.MustParse(want))).To(Equal(0), "used %s is %s", name, v.String())
			}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		}
		used(corev1.ResourcePods, "0")

		pod := pausePod("within", nil)
		pod.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("300m")}
		_, err = cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		used(corev1.ResourcePods, "1")
		used(corev1.ResourceRequestsCPU, "300m")

		over := pausePod("over", nil)
		over.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
		_, err = cluster.client.CoreV1().Pods(ns).Create(ctx, over, metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "a pod over the quota: %v", err)
		Expect(err.Error()).To(Equal(`pods "over" is forbidden: exceeded quota: quota, requested: pods=1, used: pods=1, limited: pods=1`))

		Expect(cluster.client.CoreV1().Pods(ns).Delete(ctx, "within", *metav1.NewDeleteOptions(0))).To(Succeed())
		used(corev1.ResourcePods, "0")
		used(corev1.ResourceRequestsCPU, "0")
	})
})

var _ = Describe("[sig-scheduling] LimitRange", Label("scheduling"), func() {
	It("should create a LimitRange with defaults and ensure pod has those defaults applied", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		_, err := cluster.client.CoreV1().LimitRanges(ns).Create(ctx, &corev1.LimitRange{
			ObjectMeta: metav1.ObjectMeta{Name: "limits"},
			Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
				Type:           corev1.LimitTypeContainer,
				Min:            corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")},
				Max:            corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
				DefaultRequest: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Default:        corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		pod, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pausePod("defaulted", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		r := pod.Spec.Containers[0].Resources
		Expect(r.Requests.Cpu().String()).To(Equal("100m"))
		Expect(r.Requests.Memory().String()).To(Equal("64Mi"))
		Expect(r.Limits.Cpu().String()).To(Equal("200m"))
		Expect(r.Limits.Memory().String()).To(Equal("128Mi"))

		big := pausePod("big", nil)
		big.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
		_, err = cluster.client.CoreV1().Pods(ns).Create(ctx, big, metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "a pod over the LimitRange: %v", err)
		Expect(err.Error()).To(ContainSubstring("maximum cpu usage per Container is 500m, but limit is 1"))
	})
})
