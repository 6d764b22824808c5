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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
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

var _ = Describe("[sig-apps] ReplicaSet", Label("apps"), func() {
	It("should validate Replicaset Status endpoints", func(ctx SpecContext) {
		requireScheduler(ctx) // its pods must run to be counted ready
		ns := newNamespace(ctx)
		rsClient := cluster.client.AppsV1().ReplicaSets(ns)
		rs, err := rsClient.Create(ctx, replicaSet("status", 2, map[string]string{"app": "status"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		By("waiting for the replicas to run and be counted ready and available")
		Eventually(func(g Gomega) {
			got, err := rsClient.Get(ctx, "status", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Replicas).To(BeEquivalentTo(2))
			g.Expect(got.Status.FullyLabeledReplicas).To(BeEquivalentTo(2))
			g.Expect(got.Status.ReadyReplicas).To(BeEquivalentTo(2))
			g.Expect(got.Status.AvailableReplicas).To(BeEquivalentTo(2))
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		for _, p := range ownedPods(ctx, ns, rs.UID) {
			Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
		}

		By("reading the status subresource")
		res := appsv1.SchemeGroupVersion.WithResource("replicasets")
		u, err := cluster.dynamic.Resource(res).Namespace(ns).Get(ctx, "status", metav1.GetOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		ready, found, err := unstructured.NestedInt64(u.Object, "status", "readyReplicas")
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(BeTrue())
		Expect(ready).To(BeEquivalentTo(2))

		By("updating and patching the status with conditions of the test's own, which the controller keeps")
		w, err := rsClient.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=status"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			got, err := rsClient.Get(ctx, "status", metav1.GetOptions{})
			if err != nil {
				return err
			}
			got.Status.Conditions = append(got.Status.Conditions, appsv1.ReplicaSetCondition{
				Type: "StatusUpdate", Status: corev1.ConditionTrue, Reason: "E2E", Message: "Set from e2e test"})
			_, err = rsClient.UpdateStatus(ctx, got, metav1.UpdateOptions{})
			return err
		})
		Expect(err).NotTo(HaveOccurred())
		// a strategic merge patch merges conditions by type, keeping the updated one
		_, err = rsClient.Patch(ctx, "status", types.StrategicMergePatchType,
			[]byte(`{"spec":{"replicas":5},"status":{"conditions":[{"type":"StatusPatched","status":"True","reason":"E2E","message":"Set from e2e test"}]}}`),
			metav1.PatchOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			got, err := rsClient.Get(ctx, "status", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			var types []appsv1.ReplicaSetConditionType
			for _, c := range got.Status.Conditions {
				types = append(types, c.Type)
			}
			g.Expect(types).To(ContainElements(appsv1.ReplicaSetConditionType("StatusUpdate"), appsv1.ReplicaSetConditionType("StatusPatched")))
			g.Expect(*got.Spec.Replicas).To(BeEquivalentTo(2), "a write to the status subresource changed the spec")
		}).WithTimeout(shortWait).WithPolling(poll).Should(Succeed())
		for {
			ev := nextEvent(w)
			if rs, ok := ev.Object.(*appsv1.ReplicaSet); ok && ev.Type == watch.Modified && hasReplicaSetCondition(rs, "StatusPatched") {
				break
			}
		}
	})

	It("should list and delete a collection of ReplicaSets", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		rsClient := cluster.client.AppsV1().ReplicaSets(ns)
		for _, name := range []string{"collected-a", "collected-b"} {
			rs := replicaSet(name, 1, map[string]string{"app": name})
			rs.Labels = map[string]string{"e2e": "collection"}
			_, err := rsClient.Create(ctx, rs, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		keep := replicaSet("kept", 1, map[string]string{"app": "kept"})
		_, err := rsClient.Create(ctx, keep, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		list, err := rsClient.List(ctx, metav1.ListOptions{LabelSelector: "e2e=collection"})
		Expect(err).NotTo(HaveOccurred())
		var names []string
		for _, rs := range list.Items {
			names = append(names, rs.Name)
		}
		Expect(names).To(ConsistOf("collected-a", "collected-b"))
		Eventually(func(g Gomega) {
			pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods.Items).To(HaveLen(3))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		Expect(rsClient.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "e2e=collection"})).To(Succeed())
		Eventually(func(g Gomega) {
			list, err := rsClient.List(ctx, metav1.ListOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(list.Items).To(HaveLen(1))
			g.Expect(list.Items[0].Name).To(Equal("kept"))
			pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app in (collected-a, collected-b)"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods.Items).To(BeEmpty(), "the collected ReplicaSets' pods are garbage collected")
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})

func hasReplicaSetCondition(rs *appsv1.ReplicaSet, t appsv1.ReplicaSetConditionType) bool {
	for _, c := range rs.Status.Conditions {
		if c.Type == t {
			return true
		}
	}
	return false
}

// deployment is a Deployment of pause pods whose template carries labels.
func deployment(name string, replicas int32, labels map[string]string) *appsv1.Deployment {
	pod := pausePod("", labels)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec},
		},
	}
}

// replicaSetsOf lists the ReplicaSets a Deployment controls, keyed by name.
func replicaSetsOf(ctx context.Context, g Gomega, ns string, d *appsv1.Deployment) map[string]appsv1.ReplicaSet {
	rss, err := cluster.client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	owned := map[string]appsv1.ReplicaSet{}
	for _, rs := range rss.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.UID == d.UID {
			owned[rs.Name] = rs
		}
	}
	return owned
}

// waitForDeploymentComplete waits until every replica of the Deployment's current generation is
// updated and available and no old one is left.
func waitForDeploymentComplete(ctx context.Context, ns, name string) *appsv1.Deployment {
	GinkgoHelper()
	var d *appsv1.Deployment
	Eventually(func(g Gomega) {
		var err error
		d, err = cluster.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		g.Expect(d.Status.UpdatedReplicas).To(Equal(*d.Spec.Replicas))
		g.Expect(d.Status.Replicas).To(Equal(*d.Spec.Replicas))
		g.Expect(d.Status.AvailableReplicas).To(Equal(*d.Spec.Replicas))
	}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed(), "deployment %s did not complete its rollout", name)
	return d
}

// setTemplateAnnotation changes the Deployment's pod template, which starts a rollout.
func setTemplateAnnotation(ctx context.Context, ns, name, value string) {
	GinkgoHelper()
	_, err := cluster.client.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType,
		[]byte(`{"spec":{"template":{"metadata":{"annotations":{"conformance.skiff.dev/revision":"`+value+`"}}}}}`), metav1.PatchOptions{})
	Expect(err).NotTo(HaveOccurred())
}

var _ = Describe("[sig-apps] Deployment", Label("apps"), func() {
	It("RecreateDeployment should delete old pods and create new ones", func(ctx SpecContext) {
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		d := deployment("recreate", 3, map[string]string{"app": "recreate"})
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		d, err := cluster.client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		waitForDeploymentComplete(ctx, ns, "recreate")
		var oldRS string
		Eventually(func(g Gomega) {
			rss := replicaSetsOf(ctx, g, ns, d)
			g.Expect(rss).To(HaveLen(1))
			for name := range rss {
				oldRS = name
			}
		}).WithTimeout(shortWait).WithPolling(poll).Should(Succeed())

		pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=recreate"})
		Expect(err).NotTo(HaveOccurred())
		w, err := cluster.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=recreate", ResourceVersion: pods.ResourceVersion})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		// an old pod counts until it is deleted or has reached a terminal phase, as the
		// controller counts it
		oldPods := map[string]corev1.PodPhase{}
		for _, p := range pods.Items {
			oldPods[p.Name] = p.Status.Phase
		}
		Expect(oldPods).To(HaveLen(3))
		running := func() []string {
			var names []string
			for name, phase := range oldPods {
				if phase != corev1.PodSucceeded && phase != corev1.PodFailed {
					names = append(names, name+" ("+string(phase)+")")
				}
			}
			return names
		}

		By("changing the template: no new pod may exist while an old one runs")
		setTemplateAnnotation(ctx, ns, "recreate", "2")
		newPods := map[string]bool{}
		for len(newPods) < 3 {
			ev := nextEvent(w)
			p, ok := ev.Object.(*corev1.Pod)
			Expect(ok).To(BeTrue(), "watch event %s carries a %T", ev.Type, ev.Object)
			owner := metav1.GetControllerOf(p)
			Expect(owner).NotTo(BeNil())
			if owner.Name == oldRS {
				if ev.Type == watch.Deleted {
					delete(oldPods, p.Name)
				} else {
					oldPods[p.Name] = p.Status.Phase
				}
				continue
			}
			if ev.Type == watch.Added {
				Expect(running()).To(BeEmpty(), "new pod %s was created while old pods still ran", p.Name)
				newPods[p.Name] = true
			}
		}
		d = waitForDeploymentComplete(ctx, ns, "recreate")
		Expect(d.Annotations).To(HaveKeyWithValue("deployment.kubernetes.io/revision", "2"))
	})

	It("deployment should support proportional scaling", func(ctx SpecContext) {
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		d := deployment("proportional", 10, map[string]string{"app": "proportional"})
		d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{
			MaxSurge: ptr.To(intstr.FromInt32(3)), MaxUnavailable: ptr.To(intstr.FromInt32(2))}
		d, err := cluster.client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		waitForDeploymentComplete(ctx, ns, "proportional")

		By("rolling out an image that cannot be pulled, so the rollout stalls half-way")
		_, err = cluster.client.AppsV1().Deployments(ns).Patch(ctx, "proportional", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"pause","image":"unreachable.invalid/conformance/webserver:404"}]}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		// the old ReplicaSet keeps replicas-maxUnavailable = 8; the new one gets the rest of
		// replicas+maxSurge = 13, that is 5
		sizes := func(g Gomega) (first, second int32) {
			for _, rs := range replicaSetsOf(ctx, g, ns, d) {
				if rs.Spec.Template.Spec.Containers[0].Image == pauseImage {
					first = *rs.Spec.Replicas
				} else {
					second = *rs.Spec.Replicas
				}
			}
			return first, second
		}
		Eventually(func(g Gomega) {
			first, second := sizes(g)
			g.Expect(first).To(BeEquivalentTo(8))
			g.Expect(second).To(BeEquivalentTo(5))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		By("scaling the deployment to 30 while the rollout is stalled")
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			got, err := cluster.client.AppsV1().Deployments(ns).Get(ctx, "proportional", metav1.GetOptions{})
			if err != nil {
				return err
			}
			got.Spec.Replicas = ptr.To[int32](30)
			_, err = cluster.client.AppsV1().Deployments(ns).Update(ctx, got, metav1.UpdateOptions{})
			return err
		})
		Expect(err).NotTo(HaveOccurred())
		// the 20 extra replicas (33 allowed less 13) are shared in proportion to 8:5, the
		// rounding remainder going to the larger ReplicaSet
		Eventually(func(g Gomega) {
			first, second := sizes(g)
			g.Expect(first).To(BeEquivalentTo(20))
			g.Expect(second).To(BeEquivalentTo(13))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})

	It("should scale a paused Deployment but roll out its template change only when resumed", func(ctx SpecContext) {
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		d, err := cluster.client.AppsV1().Deployments(ns).Create(ctx, deployment("paused", 1, map[string]string{"app": "paused"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		waitForDeploymentComplete(ctx, ns, "paused")

		By("pausing, changing the template and scaling to 3")
		_, err = cluster.client.AppsV1().Deployments(ns).Patch(ctx, "paused", types.StrategicMergePatchType,
			[]byte(`{"spec":{"paused":true,"replicas":3,"template":{"metadata":{"annotations":{"conformance.skiff.dev/revision":"2"}}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			got, err := cluster.client.AppsV1().Deployments(ns).Get(ctx, "paused", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(got.Status.Replicas).To(BeEquivalentTo(3))
			g.Expect(got.Status.UpdatedReplicas).To(BeEquivalentTo(0), "a paused deployment rolled out its new template")
			var progressing *appsv1.DeploymentCondition
			for i := range got.Status.Conditions {
				if got.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
					progressing = &got.Status.Conditions[i]
				}
			}
			g.Expect(progressing).NotTo(BeNil())
			g.Expect(progressing.Reason).To(Equal("DeploymentPaused"))
			rss := replicaSetsOf(ctx, g, ns, d)
			g.Expect(rss).To(HaveLen(1), "a paused deployment made a new ReplicaSet")
			for _, rs := range rss {
				g.Expect(*rs.Spec.Replicas).To(BeEquivalentTo(3))
				g.Expect(rs.Spec.Template.Annotations).NotTo(HaveKey("conformance.skiff.dev/revision"))
			}
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		By("resuming")
		_, err = cluster.client.AppsV1().Deployments(ns).Patch(ctx, "paused", types.StrategicMergePatchType, []byte(`{"spec":{"paused":false}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		d = waitForDeploymentComplete(ctx, ns, "paused")
		Expect(d.Annotations).To(HaveKeyWithValue("deployment.kubernetes.io/revision", "2"))
		Eventually(func(g Gomega) {
			for _, rs := range replicaSetsOf(ctx, g, ns, d) {
				if rs.Spec.Template.Annotations["conformance.skiff.dev/revision"] == "2" {
					g.Expect(*rs.Spec.Replicas).To(BeEquivalentTo(3))
				} else {
					g.Expect(*rs.Spec.Replicas).To(BeEquivalentTo(0))
				}
			}
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})

	It("deployment should delete old replica sets", func(ctx SpecContext) {
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		d := deployment("cleanup", 1, map[string]string{"app": "cleanup"})
		d.Spec.RevisionHistoryLimit = ptr.To[int32](1)
		d, err := cluster.client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		waitForDeploymentComplete(ctx, ns, "cleanup")
		for _, rev := range []string{"2", "3", "4"} {
			setTemplateAnnotation(ctx, ns, "cleanup", rev)
			waitForDeploymentComplete(ctx, ns, "cleanup")
		}
		By("keeping the current ReplicaSet and revisionHistoryLimit=1 old one")
		Eventually(func(g Gomega) {
			var revisions []string
			for _, rs := range replicaSetsOf(ctx, g, ns, d) {
				revisions = append(revisions, rs.Annotations["deployment.kubernetes.io/revision"])
			}
			g.Expect(revisions).To(ConsistOf("3", "4"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})

	It("should restart a Deployment's pods with kubectl rollout restart", func(ctx SpecContext) {
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		d, err := cluster.client.AppsV1().Deployments(ns).Create(ctx, deployment("restarted", 2, map[string]string{"app": "restarted"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		waitForDeploymentComplete(ctx, ns, "restarted")
		before := ownedPodUIDs(ctx, ns, "app=restarted")
		Expect(before).To(HaveLen(2))

		Expect(mustKubectl(ctx, "-n", ns, "rollout", "restart", "deployment/restarted")).To(ContainSubstring("deployment.apps/restarted restarted"))
		Expect(mustKubectl(ctx, "-n", ns, "rollout", "status", "deployment/restarted", "--timeout=120s")).To(ContainSubstring("successfully rolled out"))
		got, err := cluster.client.AppsV1().Deployments(ns).Get(ctx, "restarted", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Spec.Template.Annotations).To(HaveKey("kubectl.kubernetes.io/restartedAt"))
		Expect(got.Annotations).To(HaveKeyWithValue("deployment.kubernetes.io/revision", "2"))
		Eventually(func(g Gomega) {
			after := ownedPodUIDs(ctx, ns, "app=restarted")
			g.Expect(after).To(HaveLen(2))
			for uid := range after {
				g.Expect(before).NotTo(HaveKey(uid), "pod %s survived the restart", after[uid])
			}
			g.Expect(replicaSetsOf(ctx, g, ns, d)).To(HaveLen(2))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})

// ownedPodUIDs maps the UIDs of the live pods matching selector to their names.
func ownedPodUIDs(ctx context.Context, ns, selector string) map[types.UID]string {
	GinkgoHelper()
	pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	Expect(err).NotTo(HaveOccurred())
	uids := map[types.UID]string{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			uids[p.UID] = p.Name
		}
	}
	return uids
}
