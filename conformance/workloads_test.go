package conformance

import (
	"context"
	"slices"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// The workload kinds beyond ReplicaSets and Deployments: DaemonSets, StatefulSets and
// ReplicationControllers, and the ControllerRevisions that are the history of the first two.

func podTemplateSpec(labels map[string]string) corev1.PodTemplateSpec {
	pod := pausePod("", labels)
	return corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec}
}

func daemonSet(name string) *appsv1.DaemonSet {
	labels := map[string]string{"daemonset-name": name}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplateSpec(labels),
		},
	}
}

// daemonTolerated are the taints every daemon pod tolerates (upstream's DaemonSet controller
// adds the tolerations), by key and effect.
var daemonTolerated = map[corev1.Taint]bool{
	{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}:        true,
	{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}:     true,
	{Key: corev1.TaintNodeDiskPressure, Effect: corev1.TaintEffectNoSchedule}:   true,
	{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule}: true,
	{Key: corev1.TaintNodePIDPressure, Effect: corev1.TaintEffectNoSchedule}:    true,
	{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}:  true,
}

// daemonNodes are the nodes a DaemonSet without tolerations of its own runs on: those
// without other NoSchedule or NoExecute taints, cordoned ones included.
func daemonNodes(ctx context.Context) []string {
	nodes, err := cluster.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, n := range nodes.Items {
		ok := true
		for _, t := range n.Spec.Taints {
			if t.Effect != corev1.TaintEffectPreferNoSchedule && !daemonTolerated[corev1.Taint{Key: t.Key, Effect: t.Effect}] {
				ok = false
			}
		}
		if ok {
			names = append(names, n.Name)
		}
	}
	slices.Sort(names)
	return names
}

// nodesOf are the nodes the pods run on.
func nodesOf(pods []corev1.Pod) []string {
	var names []string
	for _, p := range pods {
		names = append(names, p.Spec.NodeName)
	}
	slices.Sort(names)
	return names
}

func runningPods(pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning {
			out = append(out, p)
		}
	}
	return out
}

var _ = Describe("[sig-apps] DaemonSet", Label("apps"), func() {
	It("should run and stop a simple daemon", func(ctx SpecContext) {
		schedulableNode(ctx)
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		want := daemonNodes(ctx)
		ds, err := cluster.client.AppsV1().DaemonSets(ns).Create(ctx, daemonSet("daemon-set"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		By("a daemon pod running on every node")
		Eventually(func() []string { return nodesOf(runningPods(ownedPods(ctx, ns, ds.UID))) }).
			WithTimeout(longWait).WithPolling(poll).Should(Equal(want))

		By("a deleted daemon pod replaced on its node")
		victim := ownedPods(ctx, ns, ds.UID)[0]
		Expect(cluster.client.CoreV1().Pods(ns).Delete(ctx, victim.Name, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			pods := runningPods(ownedPods(ctx, ns, ds.UID))
			g.Expect(nodesOf(pods)).To(Equal(want))
			for _, p := range pods {
				g.Expect(p.UID).NotTo(Equal(victim.UID))
			}
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		Eventually(func(g Gomega) {
			got, err := cluster.client.AppsV1().DaemonSets(ns).Get(ctx, ds.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.DesiredNumberScheduled).To(BeEquivalentTo(len(want)))
			g.Expect(got.Status.NumberAvailable).To(BeEquivalentTo(len(want)))
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		By("deleting the DaemonSet, its pods go")
		Expect(cluster.client.AppsV1().DaemonSets(ns).Delete(ctx, ds.Name, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() []corev1.Pod { return ownedPods(ctx, ns, ds.UID) }).WithTimeout(longWait).WithPolling(poll).Should(BeEmpty())
	})

	It("should update pods when the template changes and roll back with kubectl rollout undo", func(ctx SpecContext) {
		schedulableNode(ctx)
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		want := daemonNodes(ctx)
		ds, err := cluster.client.AppsV1().DaemonSets(ns).Create(ctx, daemonSet("rolling"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(ds.Spec.UpdateStrategy.Type).To(Equal(appsv1.RollingUpdateDaemonSetStrategyType))
		Eventually(func() []string { return nodesOf(runningPods(ownedPods(ctx, ns, ds.UID))) }).
			WithTimeout(longWait).WithPolling(poll).Should(Equal(want))

		By("changing the template")
		patch := `{"spec":{"template":{"metadata":{"annotations":{"conformance.skiff.dev/version":"2"}}}}}`
		_, err = cluster.client.AppsV1().DaemonSets(ns).Patch(ctx, ds.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pods := runningPods(ownedPods(ctx, ns, ds.UID))
			g.Expect(nodesOf(pods)).To(Equal(want))
			for _, p := range pods {
				g.Expect(p.Annotations).To(HaveKeyWithValue("conformance.skiff.dev/version", "2"))
				g.Expect(p.Labels).To(HaveKeyWithValue("pod-template-generation", "2"))
			}
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		revs, err := cluster.client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "daemonset-name=rolling"})
		Expect(err).NotTo(HaveOccurred())
		Expect(revs.Items).To(HaveLen(2))

		By("rolling back")
		mustKubectl(ctx, "-n", ns, "rollout", "undo", "daemonset/rolling")
		Eventually(func(g Gomega) {
			pods := runningPods(ownedPods(ctx, ns, ds.UID))
			g.Expect(nodesOf(pods)).To(Equal(want))
			for _, p := range pods {
				g.Expect(p.Annotations).NotTo(HaveKey("conformance.skiff.dev/version"))
			}
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		Expect(mustKubectl(ctx, "-n", ns, "rollout", "status", "daemonset/rolling", "--timeout=2m")).To(ContainSubstring("successfully rolled out"))
	})
})

func statefulSet(name string, replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{"statefulset-name": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template:    podTemplateSpec(labels),
		},
	}
}

var _ = Describe("[sig-apps] StatefulSet", Label("apps"), func() {
	It("should scale up and down in predictable order", func(ctx SpecContext) {
		schedulableNode(ctx)
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		w, err := cluster.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "statefulset-name=ss"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		_, err = cluster.client.AppsV1().StatefulSets(ns).Create(ctx, statefulSet("ss", 3), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		By("creating ss-0, ss-1, ss-2 in order, each after the one before is ready")
		ready := map[string]bool{}
		var created []string
		for len(ready) < 3 {
			ev := nextEventWithin(w)
			pod := ev.Object.(*corev1.Pod)
			if ev.Type == watch.Added {
				for _, before := range created {
					Expect(ready[before]).To(BeTrue(), "%s created before %s was ready", pod.Name, before)
				}
				created = append(created, pod.Name)
				Expect(pod.Spec.Hostname).To(Equal(pod.Name))
				Expect(pod.Spec.Subdomain).To(Equal("ss"))
				Expect(pod.Labels).To(HaveKeyWithValue("statefulset.kubernetes.io/pod-name", pod.Name))
			}
			if pod.Status.Phase == corev1.PodRunning && podReady(pod) {
				ready[pod.Name] = true
			}
		}
		Expect(created).To(Equal([]string{"ss-0", "ss-1", "ss-2"}))

		By("scaling down to 0, removing ss-2, ss-1, ss-0 in that order")
		_, err = cluster.client.AppsV1().StatefulSets(ns).Patch(ctx, "ss", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		var deleted []string
		for len(deleted) < 3 {
			if ev := nextEventWithin(w); ev.Type == watch.Deleted {
				deleted = append(deleted, ev.Object.(*corev1.Pod).Name)
			}
		}
		Expect(deleted).To(Equal([]string{"ss-2", "ss-1", "ss-0"}))
	})

	It("should have a working scale subresource", func(ctx SpecContext) {
		schedulableNode(ctx)
		requireScheduler(ctx)
		ns := newNamespace(ctx)
		set, err := cluster.client.AppsV1().StatefulSets(ns).Create(ctx, statefulSet("scaled", 1), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			scale, err := cluster.client.AppsV1().StatefulSets(ns).GetScale(ctx, "scaled", metav1.GetOptions{})
			if err != nil {
				return err
			}
			Expect(scale.Spec.Replicas).To(BeEquivalentTo(1))
			_, err = cluster.client.AppsV1().StatefulSets(ns).UpdateScale(ctx, "scaled", &autoscalingv1.Scale{
				ObjectMeta: metav1.ObjectMeta{Name: "scaled", Namespace: ns, ResourceVersion: scale.ResourceVersion},
				Spec:       autoscalingv1.ScaleSpec{Replicas: 2},
			}, metav1.UpdateOptions{})
			return err
		})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			scale, err := cluster.client.AppsV1().StatefulSets(ns).GetScale(ctx, "scaled", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(scale.Status.Replicas).To(BeEquivalentTo(2))
			g.Expect(scale.Status.Selector).To(Equal("statefulset-name=scaled"))
			g.Expect(ownedPods(ctx, ns, set.UID)).To(HaveLen(2))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})

func replicationController(name string, replicas int32) *corev1.ReplicationController {
	labels := map[string]string{"name": name}
	t := podTemplateSpec(labels)
	return &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ReplicationControllerSpec{Replicas: ptr.To(replicas), Selector: labels, Template: &t},
	}
}

var _ = Describe("[sig-apps] ReplicationController", Label("apps"), func() {
	It("should create its replicas and replace a deleted pod", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		rc, err := cluster.client.CoreV1().ReplicationControllers(ns).Create(ctx, replicationController("my-rc", 2), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []corev1.Pod { return ownedPods(ctx, ns, rc.UID) }).WithTimeout(longWait).WithPolling(poll).Should(HaveLen(2))
		victim := ownedPods(ctx, ns, rc.UID)[0]
		Expect(cluster.client.CoreV1().Pods(ns).Delete(ctx, victim.Name, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			pods := ownedPods(ctx, ns, rc.UID)
			g.Expect(pods).To(HaveLen(2))
			for _, p := range pods {
				g.Expect(p.UID).NotTo(Equal(victim.UID))
				g.Expect(metav1.GetControllerOf(&p).Kind).To(Equal("ReplicationController"))
			}
			got, err := cluster.client.CoreV1().ReplicationControllers(ns).Get(ctx, rc.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Replicas).To(BeEquivalentTo(2))
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})

	It("should get and update a ReplicationController scale", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		rc, err := cluster.client.CoreV1().ReplicationControllers(ns).Create(ctx, replicationController("rc-test", 1), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			scale, err := cluster.client.CoreV1().ReplicationControllers(ns).GetScale(ctx, rc.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			Expect(scale.Spec.Replicas).To(BeEquivalentTo(1))
			scale.Spec.Replicas = 2
			_, err = cluster.client.CoreV1().ReplicationControllers(ns).UpdateScale(ctx, rc.Name, scale, metav1.UpdateOptions{})
			return err
		})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			scale, err := cluster.client.CoreV1().ReplicationControllers(ns).GetScale(ctx, rc.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(scale.Status.Replicas).To(BeEquivalentTo(2))
			g.Expect(scale.Status.Selector).To(Equal("name=rc-test"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})

// nextEventWithin is the next event on w, within longWait.
func nextEventWithin(w watch.Interface) watch.Event {
	GinkgoHelper()
	var ev watch.Event
	Eventually(w.ResultChan()).WithTimeout(longWait).Should(Receive(&ev))
	return ev
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
