package conformance

import (
	"context"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

func replicaSet(name string, replicas int32, labels map[string]string) *appsv1.ReplicaSet {
	pod := pausePod("", labels)
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec},
		},
	}
}

// ownedPods lists the live (not deleting) pods in ns controlled by the object with uid.
func ownedPods(ctx context.Context, ns string, uid types.UID) []corev1.Pod {
	pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	var owned []corev1.Pod
	for _, p := range pods.Items {
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == uid && p.DeletionTimestamp == nil {
			owned = append(owned, p)
		}
	}
	return owned
}

var _ = Describe("[sig-apps] ReplicaSet", Label("apps"), func() {
	It("should create its replicas and replace a deleted pod", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		rs, err := cluster.client.AppsV1().ReplicaSets(ns).Create(ctx, replicaSet("rs", 2, map[string]string{"app": "rs"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []corev1.Pod { return ownedPods(ctx, ns, rs.UID) }).WithTimeout(longWait).WithPolling(poll).Should(HaveLen(2))
		Eventually(func(g Gomega) {
			got, err := cluster.client.AppsV1().ReplicaSets(ns).Get(ctx, "rs", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Replicas).To(BeEquivalentTo(2))
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		victim := ownedPods(ctx, ns, rs.UID)[0]
		Expect(cluster.client.CoreV1().Pods(ns).Delete(ctx, victim.Name, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			pods := ownedPods(ctx, ns, rs.UID)
			g.Expect(pods).To(HaveLen(2))
			for _, p := range pods {
				g.Expect(p.UID).NotTo(Equal(victim.UID))
			}
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})

	It("should adopt a matching orphan pod and release a pod whose labels stop matching", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		orphan, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pausePod("orphan", map[string]string{"app": "adopt"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		rs, err := cluster.client.AppsV1().ReplicaSets(ns).Create(ctx, replicaSet("adopter", 1, map[string]string{"app": "adopt"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, orphan.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			ref := metav1.GetControllerOf(p)
			g.Expect(ref).NotTo(BeNil())
			g.Expect(ref.UID).To(Equal(rs.UID))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		Expect(ownedPods(ctx, ns, rs.UID)).To(HaveLen(1), "the adopted pod counts as the one replica")

		_, err = cluster.client.CoreV1().Pods(ns).Patch(ctx, orphan.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"app":"released"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, orphan.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(metav1.GetControllerOf(p)).To(BeNil())
			g.Expect(ownedPods(ctx, ns, rs.UID)).To(HaveLen(1), "a replacement for the released pod")
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})

	It("should get and update a ReplicaSet scale subresource", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		rs, err := cluster.client.AppsV1().ReplicaSets(ns).Create(ctx, replicaSet("scaled", 1, map[string]string{"app": "scaled"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// the controller writes the replica set's status meanwhile, which moves its
		// resourceVersion: a scale update carrying a stale one is a conflict, retried as
		// clients do
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			scale, err := cluster.client.AppsV1().ReplicaSets(ns).GetScale(ctx, "scaled", metav1.GetOptions{})
			if err != nil {
				return err
			}
			Expect(scale.Spec.Replicas).To(BeEquivalentTo(1))
			_, err = cluster.client.AppsV1().ReplicaSets(ns).UpdateScale(ctx, "scaled", &autoscalingv1.Scale{
				ObjectMeta: metav1.ObjectMeta{Name: "scaled", Namespace: ns, ResourceVersion: scale.ResourceVersion},
				Spec:       autoscalingv1.ScaleSpec{Replicas: 3},
			}, metav1.UpdateOptions{})
			return err
		})
		Expect(err).NotTo(HaveOccurred())
		got, err := cluster.client.AppsV1().ReplicaSets(ns).Get(ctx, "scaled", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(*got.Spec.Replicas).To(BeEquivalentTo(3))
		Eventually(func() []corev1.Pod { return ownedPods(ctx, ns, rs.UID) }).WithTimeout(longWait).WithPolling(poll).Should(HaveLen(3))
		Eventually(func(g Gomega) {
			scale, err := cluster.client.AppsV1().ReplicaSets(ns).GetScale(ctx, "scaled", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(scale.Status.Replicas).To(BeEquivalentTo(3))
			g.Expect(scale.Status.Selector).To(Equal("app=scaled"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})

	It("should delete its pods when deleted in the background and orphan them when asked", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		rsClient := cluster.client.AppsV1().ReplicaSets(ns)
		doomed, err := rsClient.Create(ctx, replicaSet("doomed", 2, map[string]string{"app": "doomed"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		orphaner, err := rsClient.Create(ctx, replicaSet("orphaner", 2, map[string]string{"app": "orphaner"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []corev1.Pod { return ownedPods(ctx, ns, doomed.UID) }).WithTimeout(longWait).WithPolling(poll).Should(HaveLen(2))
		Eventually(func() []corev1.Pod { return ownedPods(ctx, ns, orphaner.UID) }).WithTimeout(longWait).WithPolling(poll).Should(HaveLen(2))

		Expect(rsClient.Delete(ctx, "doomed", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})).To(Succeed())
		Expect(rsClient.Delete(ctx, "orphaner", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)})).To(Succeed())

		Eventually(func(g Gomega) {
			pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=doomed"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods.Items).To(BeEmpty())
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed(), "the background-deleted ReplicaSet's pods remain")
		Eventually(func(g Gomega) {
			_, err := rsClient.Get(ctx, "orphaner", metav1.GetOptions{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
			pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=orphaner"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods.Items).To(HaveLen(2))
			for _, p := range pods.Items {
				g.Expect(p.OwnerReferences).To(BeEmpty())
			}
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})

var _ = Describe("[sig-apps] Deployment", Label("apps"), func() {
	It("should roll out a template change to a new ReplicaSet and roll it back", func(ctx SpecContext) {
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		labels := map[string]string{"app": "rolling"}
		pod := pausePod("", labels)
		_, err := cluster.client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "rolling"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		mustKubectl(ctx, "-n", ns, "rollout", "status", "deployment/rolling", "--timeout=120s")

		_, err = cluster.client.AppsV1().Deployments(ns).Patch(ctx, "rolling", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"metadata":{"annotations":{"conformance.skiff.dev/revision":"2"}}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		out := mustKubectl(ctx, "-n", ns, "rollout", "status", "deployment/rolling", "--timeout=120s")
		Expect(out).To(ContainSubstring(`successfully rolled out`))

		Eventually(func(g Gomega) {
			d, err := cluster.client.AppsV1().Deployments(ns).Get(ctx, "rolling", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Annotations).To(HaveKeyWithValue("deployment.kubernetes.io/revision", "2"))
			g.Expect(d.Status.UpdatedReplicas).To(BeEquivalentTo(2))
			g.Expect(d.Status.AvailableReplicas).To(BeEquivalentTo(2))
			rss, err := cluster.client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=rolling"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(rss.Items).To(HaveLen(2))
			for _, rs := range rss.Items {
				if rs.Spec.Template.Annotations["conformance.skiff.dev/revision"] == "2" {
					g.Expect(*rs.Spec.Replicas).To(BeEquivalentTo(2))
					g.Expect(rs.Status.ReadyReplicas).To(BeEquivalentTo(2))
				} else {
					g.Expect(*rs.Spec.Replicas).To(BeEquivalentTo(0))
				}
			}
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		mustKubectl(ctx, "-n", ns, "rollout", "undo", "deployment/rolling")
		mustKubectl(ctx, "-n", ns, "rollout", "status", "deployment/rolling", "--timeout=120s")
		Eventually(func(g Gomega) {
			d, err := cluster.client.AppsV1().Deployments(ns).Get(ctx, "rolling", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Annotations).To(HaveKeyWithValue("deployment.kubernetes.io/revision", "3"))
			g.Expect(d.Spec.Template.Annotations).NotTo(HaveKey("conformance.skiff.dev/revision"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		history := mustKubectl(ctx, "-n", ns, "rollout", "history", "deployment/rolling")
		Expect(strings.Fields(history)).To(ContainElements("2", "3"))
	})

	It("should scale a Deployment through kubectl scale", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		waitForServiceAccount(ctx, ns)
		mustKubectl(ctx, "-n", ns, "create", "deployment", "scaled", "--image="+pauseImage, "--replicas=1")
		mustKubectl(ctx, "-n", ns, "scale", "deployment/scaled", "--replicas=3")
		Eventually(func(g Gomega) {
			rss, err := cluster.client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=scaled"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(rss.Items).To(HaveLen(1))
			g.Expect(*rss.Items[0].Spec.Replicas).To(BeEquivalentTo(3))
			pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=scaled"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods.Items).To(HaveLen(3))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})
