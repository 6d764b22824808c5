package conformance

import (
	"encoding/json"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// labelPatch is a merge patch adding one label.
func labelPatch(key, value string) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{key: value}}})
	return b
}

var _ = Describe("[sig-storage] PersistentVolumes", Label("storage"), func() {
	It("should run through the lifecycle of a PV and a PVC", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		class := "manual-" + ns
		pvs, pvcs := cluster.client.CoreV1().PersistentVolumes(), cluster.client.CoreV1().PersistentVolumeClaims(ns)
		pvName := "pv-" + ns
		_, err := pvs.Create(ctx, &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: pvName, Labels: map[string]string{"e2e-pv-pool": ns}},
			Spec: corev1.PersistentVolumeSpec{
				StorageClassName:              class,
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("3M")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + pvName}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { _ = pvs.Delete(ctx, pvName, metav1.DeleteOptions{}) })

		list, err := pvs.List(ctx, metav1.ListOptions{LabelSelector: "e2e-pv-pool=" + ns})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		patched, err := pvs.Patch(ctx, pvName, types.MergePatchType, labelPatch(pvName, "patched"), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(patched.Labels).To(HaveKeyWithValue(pvName, "patched"))

		_, err = pvcs.Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "pvc-" + ns},
			Spec: corev1.PersistentVolumeClaimSpec{
				StorageClassName: ptr.To(class),
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("3M")}},
				VolumeName:       pvName,
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		By("the claim and the volume are bound to each other")
		Eventually(func(g Gomega) {
			pvc, err := pvcs.Get(ctx, "pvc-"+ns, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
			pv, err := pvs.Get(ctx, pvName, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pv.Status.Phase).To(Equal(corev1.VolumeBound))
			g.Expect(pv.Spec.ClaimRef).NotTo(BeNil())
			g.Expect(pv.Spec.ClaimRef.UID).To(Equal(pvc.UID))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		pvc, err := pvcs.Patch(ctx, "pvc-"+ns, types.MergePatchType, labelPatch("pvc", "patched"), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pvc.Labels).To(HaveKeyWithValue("pvc", "patched"))

		By("a claim's status is read and written through its status subresource")
		status := &corev1.PersistentVolumeClaim{}
		Expect(cluster.client.CoreV1().RESTClient().Get().Namespace(ns).Resource("persistentvolumeclaims").
			Name(pvc.Name).SubResource("status").Do(ctx).Into(status)).To(Succeed())
		Expect(status.Status.Phase).To(Equal(corev1.ClaimBound))
		status.Status.Conditions = []corev1.PersistentVolumeClaimCondition{{Type: "StatusPatched", Status: corev1.ConditionTrue, Reason: "E2E", Message: "Set from e2e test"}}
		updated, err := pvcs.UpdateStatus(ctx, status, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.Status.Conditions).To(HaveLen(1))

		By("deleting the claim releases the volume, which Retain keeps")
		Expect(pvcs.Delete(ctx, pvc.Name, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			pv, err := pvs.Get(ctx, pvName, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pv.Status.Phase).To(Equal(corev1.VolumeReleased))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		Expect(pvs.Delete(ctx, pvName, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			_, err := pvs.Get(ctx, pvName, metav1.GetOptions{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the volume is still there: %v", err)
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})

var _ = Describe("[sig-storage] StorageClasses", Label("storage"), func() {
	It("should run through the lifecycle of a StorageClass", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		classes := cluster.client.StorageV1().StorageClasses()
		name := "e2e-" + ns
		DeferCleanup(func(ctx SpecContext) { _ = classes.Delete(ctx, name, metav1.DeleteOptions{}) })
		sc, err := classes.Create(ctx, &storagev1.StorageClass{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e-test": ns}},
			Provisioner: "kubernetes.io/e2e-fake-provisioner",
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(*sc.ReclaimPolicy).To(Equal(corev1.PersistentVolumeReclaimDelete))
		Expect(*sc.VolumeBindingMode).To(Equal(storagev1.VolumeBindingImmediate))

		sc, err = classes.Patch(ctx, name, types.MergePatchType, labelPatch(name, "patched"), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(sc.Labels).To(HaveKeyWithValue(name, "patched"))
		sc.Labels[name] = "updated"
		sc, err = classes.Update(ctx, sc, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(sc.Labels).To(HaveKeyWithValue(name, "updated"))

		By("its provisioner and parameters never change")
		sc.Provisioner = "kubernetes.io/another"
		_, err = classes.Update(ctx, sc, metav1.UpdateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "updating the provisioner: %v", err)
		Expect(err.Error()).To(ContainSubstring("provisioner: Forbidden: updates to provisioner are forbidden."))

		Expect(classes.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "e2e-test=" + ns})).To(Succeed())
		Eventually(func(g Gomega) {
			list, err := classes.List(ctx, metav1.ListOptions{LabelSelector: "e2e-test=" + ns})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(list.Items).To(BeEmpty())
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})

var _ = Describe("[sig-storage] CSINodes", Label("storage"), func() {
	It("should run through the lifecycle of a csinode", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		csinodes := cluster.client.StorageV1().CSINodes()
		name := "e2e-csinode-" + ns
		DeferCleanup(func(ctx SpecContext) { _ = csinodes.Delete(ctx, name, metav1.DeleteOptions{}) })
		_, err := csinodes.Create(ctx, &storagev1.CSINode{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e-test": ns}},
			Spec:       storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: "e2e.example.com", NodeID: "node-1"}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := csinodes.Get(ctx, name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Spec.Drivers).To(HaveLen(1))
		got, err = csinodes.Patch(ctx, name, types.MergePatchType, labelPatch(name, "patched"), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Labels).To(HaveKeyWithValue(name, "patched"))

		By("a registered driver keeps its node ID")
		got.Spec.Drivers[0].NodeID = "node-2"
		_, err = csinodes.Update(ctx, got, metav1.UpdateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "changing the node ID: %v", err)

		Expect(csinodes.Delete(ctx, name, metav1.DeleteOptions{})).To(Succeed())
		_, err = csinodes.Get(ctx, name, metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})
})

var _ = Describe("[sig-storage] VolumeAttachment", Label("storage"), func() {
	It("should run through the lifecycle of a VolumeAttachment", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		vas := cluster.client.StorageV1().VolumeAttachments()
		name := "va-" + ns
		DeferCleanup(func(ctx SpecContext) { _ = vas.Delete(ctx, name, metav1.DeleteOptions{}) })
		va, err := vas.Create(ctx, &storagev1.VolumeAttachment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e-test": ns}},
			Spec: storagev1.VolumeAttachmentSpec{Attacher: "e2e-test.storage.k8s.io", NodeName: "e2e-node",
				Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv-" + ns)}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(va.Status.Attached).To(BeFalse())

		By("the status subresource writes attached; the spec stays")
		va.Status.Attached = true
		va.Spec.NodeName = "elsewhere"
		va, err = vas.UpdateStatus(ctx, va, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(va.Status.Attached).To(BeTrue())
		Expect(va.Spec.NodeName).To(Equal("e2e-node"))

		By("the spec never changes")
		va.Spec.NodeName = "elsewhere"
		_, err = vas.Update(ctx, va, metav1.UpdateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "changing the spec: %v", err)

		list, err := vas.List(ctx, metav1.ListOptions{LabelSelector: "e2e-test=" + ns})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(vas.Delete(ctx, name, metav1.DeleteOptions{})).To(Succeed())
		_, err = vas.Get(ctx, name, metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})
})

// requireDefaultStorageClass skips a spec on a cluster without a default StorageClass.
func requireDefaultStorageClass(ctx SpecContext) {
	classes, err := cluster.client.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	for _, sc := range classes.Items {
		if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" {
			return
		}
	}
	Skip("needs a default StorageClass")
}

var _ = Describe("[sig-storage] Dynamic Provisioning", Label("storage"), func() {
	It("should provision a claim of the default class for its pod and keep the data for the next pod", func(ctx SpecContext) {
		requireRealContainers(ctx)
		requireScheduler(ctx)
		schedulableNode(ctx)
		requireDefaultStorageClass(ctx)
		ns := newNamespace(ctx)
		pvcs := cluster.client.CoreV1().PersistentVolumeClaims(ns)
		_, err := pvcs.Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("16Mi")}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		runToCompletion := func(name, script string) string {
			_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "c", Image: busyboxImage, Command: []string{"sh", "-c", script},
						VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
					Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
						PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
				},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			Eventually(func(g Gomega) {
				p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(p.Status.Phase).To(Equal(corev1.PodSucceeded))
			}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
			logs, err := cluster.client.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
			Expect(err).NotTo(HaveOccurred())
			return string(logs)
		}
		runToCompletion("writer", "echo kept > /data/file")
		Expect(cluster.client.CoreV1().Pods(ns).Delete(ctx, "writer", metav1.DeleteOptions{})).To(Succeed())
		Expect(runToCompletion("reader", "cat /data/file")).To(Equal("kept\n"))

		pvc, err := pvcs.Get(ctx, "data", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
		pv, err := cluster.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pv.Spec.PersistentVolumeReclaimPolicy).To(Equal(corev1.PersistentVolumeReclaimDelete), fmt.Sprintf("volume %s", pv.Name))

		By("under Delete the volume goes with its claim")
		Expect(cluster.client.CoreV1().Pods(ns).Delete(ctx, "reader", metav1.DeleteOptions{})).To(Succeed())
		Expect(pvcs.Delete(ctx, "data", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			_, err := cluster.client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "volume %s still there: %v", pv.Name, err)
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})

var _ = Describe("[sig-apps] StatefulSet with volumeClaimTemplates", Label("storage"), func() {
	It("should give each replica a claim of its own that outlives its pod", func(ctx SpecContext) {
		requireRealContainers(ctx)
		requireScheduler(ctx)
		schedulableNode(ctx)
		requireDefaultStorageClass(ctx)
		ns := newNamespace(ctx)
		set := statefulSet("db", 2)
		// each replica records the first pod that used its volume, and says what it found
		set.Spec.Template.Spec.Containers = []corev1.Container{{
			Name: "db", Image: busyboxImage,
			Command:      []string{"sh", "-c", "[ -f /data/owner ] || hostname > /data/owner; cat /data/owner; exec sleep 3600"},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
		}}
		set.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
		set.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("16Mi")}},
			},
		}}
		_, err := cluster.client.AppsV1().StatefulSets(ns).Create(ctx, set, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		logsOf := func(g Gomega, pod string) string {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(podReady(p)).To(BeTrue(), "%s not ready", pod)
			logs, err := cluster.client.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{}).DoRaw(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			return string(logs)
		}

		By("binding claims data-db-0 and data-db-1, one per replica")
		var firstUID types.UID
		Eventually(func(g Gomega) {
			for _, pod := range []string{"db-0", "db-1"} {
				g.Expect(logsOf(g, pod)).To(Equal(pod + "\n"))
				pvc, err := cluster.client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-"+pod, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
				g.Expect(pvc.Labels).To(HaveKeyWithValue("statefulset-name", "db"))
			}
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "db-0", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			firstUID = p.UID
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		By("recreating a deleted db-0 on the same claim, with what the first one wrote")
		Expect(cluster.client.CoreV1().Pods(ns).Delete(ctx, "db-0", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "db-0", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.UID).NotTo(Equal(firstUID))
			g.Expect(logsOf(g, "db-0")).To(Equal("db-0\n"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		By("keeping the claims when the set scales to zero (retention policy Retain)")
		_, err = cluster.client.AppsV1().StatefulSets(ns).Patch(ctx, "db", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pods, err := cluster.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "statefulset-name=db"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods.Items).To(BeEmpty())
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		claims, err := cluster.client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(claims.Items).To(HaveLen(2))
	})
})
