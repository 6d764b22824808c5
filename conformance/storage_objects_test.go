package conformance

import (
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

// Upstream's storage API conformance specs beyond the lifecycles of storage_test.go: the
// CSIDriver and inline CSI volumes, CSIStorageCapacities, the status of claims, volumes and
// attachments, and VolumeAttributesClasses (test/e2e/storage/csi_inline.go,
// csistoragecapacity.go, persistent_volumes.go, volume_attachment.go,
// volume_attributes_class.go, v1.37).

var _ = Describe("[sig-storage] CSIInlineVolumes", Label("storage"), func() {
	It("should run through the lifecycle of a CSIDriver", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		drivers := cluster.client.StorageV1().CSIDrivers()
		name := "inline-driver-" + ns + ".example.com"
		DeferCleanup(func(ctx SpecContext) { _ = drivers.Delete(ctx, name, metav1.DeleteOptions{}) })
		d, err := drivers.Create(ctx, &storagev1.CSIDriver{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e-test": ns}},
			Spec: storagev1.CSIDriverSpec{VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{
				storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Spec.AttachRequired).To(Equal(ptr.To(true)), "attachRequired defaults to true")

		By("get, list by label, patch and update")
		_, err = drivers.Get(ctx, name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		list, err := drivers.List(ctx, metav1.ListOptions{LabelSelector: "e2e-test=" + ns})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		d, err = drivers.Patch(ctx, name, types.MergePatchType, labelPatch(ns, "patched"), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Labels).To(HaveKeyWithValue(ns, "patched"))
		d.Labels[ns] = "updated"
		d, err = drivers.Update(ctx, d, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Labels).To(HaveKeyWithValue(ns, "updated"))

		By("delete")
		Expect(drivers.Delete(ctx, name, metav1.DeleteOptions{})).To(Succeed())
		_, err = drivers.Get(ctx, name, metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})

	It("should support CSIVolumeSource in Pod API", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		pods := cluster.client.CoreV1().Pods(ns)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "pod-csi-inline-volumes", Labels: map[string]string{"e2e-test": ns}},
			Spec: corev1.PodSpec{
				// never scheduled: the spec is about the API's handling of the source
				NodeSelector: map[string]string{"e2e-test": "no-such-node"},
				Containers: []corev1.Container{{Name: "pod-csi-inline-volumes", Image: "busybox",
					VolumeMounts: []corev1.VolumeMount{{Name: "vol", MountPath: "/mnt"}}}},
				Volumes: []corev1.Volume{{Name: "vol", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
					Driver: "e2e-driver-" + ns, VolumeAttributes: map[string]string{"foo": "bar"}}}}},
			},
		}
		created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(created.Spec.Volumes[0].CSI).NotTo(BeNil())
		Expect(created.Spec.Volumes[0].CSI.Driver).To(Equal("e2e-driver-" + ns))
		Expect(created.Spec.Volumes[0].CSI.VolumeAttributes).To(HaveKeyWithValue("foo", "bar"))

		got, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Spec.Volumes[0].CSI.Driver).To(Equal("e2e-driver-" + ns))
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "e2e-test=" + ns})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		patched, err := pods.Patch(ctx, pod.Name, types.MergePatchType, labelPatch(ns, "patched"), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(patched.Labels).To(HaveKeyWithValue(ns, "patched"))
		Expect(pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())
	})
})

var _ = Describe("[sig-storage] CSIStorageCapacity", Label("storage"), func() {
	It("should support CSIStorageCapacities API operations", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		capacities := cluster.client.StorageV1().CSIStorageCapacities(ns)
		newCapacity := func(name string) *storagev1.CSIStorageCapacity {
			return &storagev1.CSIStorageCapacity{
				ObjectMeta:       metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e-test": ns}},
				StorageClassName: "e2e-class",
				Capacity:         ptr.To(resource.MustParse("1Gi")),
				NodeTopology:     &metav1.LabelSelector{MatchLabels: map[string]string{"topology.example.com/zone": "a"}},
			}
		}
		for _, name := range []string{"csc-1", "csc-2", "csc-3"} {
			_, err := capacities.Create(ctx, newCapacity(name), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}

		By("listing in the namespace and in all of them")
		list, err := capacities.List(ctx, metav1.ListOptions{LabelSelector: "e2e-test=" + ns})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(3))
		all, err := cluster.client.StorageV1().CSIStorageCapacities("").List(ctx, metav1.ListOptions{LabelSelector: "e2e-test=" + ns})
		Expect(err).NotTo(HaveOccurred())
		Expect(all.Items).To(HaveLen(3))

		By("patch and update")
		c, err := capacities.Patch(ctx, "csc-1", types.MergePatchType, labelPatch(ns, "patched"), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Labels).To(HaveKeyWithValue(ns, "patched"))
		c.Capacity = ptr.To(resource.MustParse("2Gi"))
		c, err = capacities.Update(ctx, c, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Capacity.String()).To(Equal("2Gi"))

		By("delete one, then the collection")
		Expect(capacities.Delete(ctx, "csc-1", metav1.DeleteOptions{})).To(Succeed())
		_, err = capacities.Get(ctx, "csc-1", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
		Expect(capacities.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "e2e-test=" + ns})).To(Succeed())
		list, err = capacities.List(ctx, metav1.ListOptions{LabelSelector: "e2e-test=" + ns})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
	})
})

var _ = Describe("[sig-storage] PersistentVolumes CSI Conformance", Label("storage"), func() {
	It("should apply changes to a pv/pvc status", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		pvs := cluster.client.CoreV1().PersistentVolumes()
		claims := cluster.client.CoreV1().PersistentVolumeClaims(ns)
		pvName := "pv-" + ns
		DeferCleanup(func(ctx SpecContext) { _ = pvs.Delete(ctx, pvName, metav1.DeleteOptions{}) })
		_, err := pvs.Create(ctx, &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: pvName, Labels: map[string]string{"e2e-test": ns}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				// a class no provisioner serves, so the claim is this volume's alone
				StorageClassName:       "e2e-status-" + ns,
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + pvName}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = claims.Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "pvc-" + ns, Labels: map[string]string{"e2e-test": ns}},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: ptr.To("e2e-status-" + ns),
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		By("reading both statuses")
		rest := cluster.client.CoreV1().RESTClient()
		pvc := &corev1.PersistentVolumeClaim{}
		Expect(rest.Get().Namespace(ns).Resource("persistentvolumeclaims").Name("pvc-" + ns).SubResource("status").Do(ctx).Into(pvc)).To(Succeed())
		Expect(string(pvc.Status.Phase)).To(Or(Equal("Pending"), Equal("Bound")))
		pv := &corev1.PersistentVolume{}
		Expect(rest.Get().Resource("persistentvolumes").Name(pvName).SubResource("status").Do(ctx).Into(pv)).To(Succeed())
		Expect(string(pv.Status.Phase)).To(Or(Equal("Available"), Equal("Bound"), Equal("Pending")))

		By("patching the claim's and the volume's status")
		pvc, err = claims.Patch(ctx, pvc.Name, types.MergePatchType,
			[]byte(`{"status":{"conditions":[{"type":"StatusPatched","status":"True","reason":"E2E patchedStatus","message":"Set from e2e test"}]}}`),
			metav1.PatchOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		Expect(pvc.Status.Conditions).To(ContainElement(And(
			HaveField("Type", corev1.PersistentVolumeClaimConditionType("StatusPatched")),
			HaveField("Reason", "E2E patchedStatus"), HaveField("Message", "Set from e2e test"))))
		pv, err = pvs.Patch(ctx, pvName, types.MergePatchType, []byte(`{"status":{"message":"StatusPatched","reason":"E2E patchStatus"}}`),
			metav1.PatchOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		Expect(pv.Status.Reason).To(Equal("E2E patchStatus"))
		Expect(pv.Status.Message).To(Equal("StatusPatched"))

		By("updating them: the answers carry the update (the volume controller may write the status again later)")
		Eventually(func(ctx SpecContext) error {
			// a failed update answers an empty claim: keep the last good one (and its name)
			cur, err := claims.Get(ctx, "pvc-"+ns, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Status.Conditions = append(cur.Status.Conditions, corev1.PersistentVolumeClaimCondition{
				Type: "StatusUpdated", Status: corev1.ConditionTrue, Reason: "E2E updateStatus", Message: "Set from e2e test"})
			updated, err := claims.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			if err == nil {
				pvc = updated
			}
			return err
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed(), "updating the claim's status")
		Expect(pvc.Status.Conditions).To(ContainElement(And(
			HaveField("Type", corev1.PersistentVolumeClaimConditionType("StatusUpdated")), HaveField("Reason", "E2E updateStatus"))))
		Eventually(func(ctx SpecContext) error {
			cur, err := pvs.Get(ctx, pvName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Status.Reason, cur.Status.Message = "E2E updateStatus", "StatusUpdated"
			updated, err := pvs.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			if err == nil {
				pv = updated
			}
			return err
		}).WithContext(ctx).WithTimeout(longWait).WithPolling(poll).Should(Succeed(), "updating the volume's status")
		Expect(pv.Status.Reason).To(Equal("E2E updateStatus"))
		Expect(pv.Status.Message).To(Equal("StatusUpdated"))
	})
})

var _ = Describe("[sig-storage] VolumeAttachment Conformance", Label("storage"), func() {
	It("should apply changes to a volumeattachment status", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		vas := cluster.client.StorageV1().VolumeAttachments()
		name := "va-status-" + ns
		DeferCleanup(func(ctx SpecContext) { _ = vas.Delete(ctx, name, metav1.DeleteOptions{}) })
		_, err := vas.Create(ctx, &storagev1.VolumeAttachment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e-test": ns}},
			Spec: storagev1.VolumeAttachmentSpec{Attacher: "e2e-test.storage.k8s.io", NodeName: "e2e-node",
				Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv-" + ns)}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		By("patching the status")
		va, err := vas.Patch(ctx, name, types.MergePatchType, []byte(`{"status":{"attached":true}}`), metav1.PatchOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		Expect(va.Status.Attached).To(BeTrue())

		By("updating the status, with attachment metadata")
		va.Status.AttachmentMetadata = map[string]string{"e2e": "updated"}
		va, err = vas.UpdateStatus(ctx, va, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(va.Status.AttachmentMetadata).To(HaveKeyWithValue("e2e", "updated"))

		got, err := vas.Get(ctx, name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Status.Attached).To(BeTrue())
		Expect(got.Status.AttachmentMetadata).To(HaveKeyWithValue("e2e", "updated"))
	})
})

var _ = Describe("[sig-storage] VolumeAttributesClass [FeatureGate:VolumeAttributesClass]", Label("storage"), func() {
	It("should run through the lifecycle of a VolumeAttributesClass", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		classes := cluster.client.StorageV1().VolumeAttributesClasses()
		name := "vac-" + ns
		DeferCleanup(func(ctx SpecContext) { _ = classes.Delete(ctx, name, metav1.DeleteOptions{}) })
		vac, err := classes.Create(ctx, &storagev1.VolumeAttributesClass{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e-test": ns}},
			DriverName: "e2e-fake-csi-driver.example.com",
			Parameters: map[string]string{"foo": "bar"},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		By("get, list, patch")
		_, err = classes.Get(ctx, name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		list, err := classes.List(ctx, metav1.ListOptions{LabelSelector: "e2e-test=" + ns})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		vac, err = classes.Patch(ctx, name, types.MergePatchType, labelPatch(ns, "patched"), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(vac.Labels).To(HaveKeyWithValue(ns, "patched"))

		By("its parameters never change")
		vac.Parameters = map[string]string{"foo": "baz"}
		_, err = classes.Update(ctx, vac, metav1.UpdateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "changing the parameters: %v", err)

		By("delete the collection")
		Expect(classes.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "e2e-test=" + ns})).To(Succeed())
		_, err = classes.Get(ctx, name, metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})
})
