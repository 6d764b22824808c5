package conformance

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

// flowControlDiscovered checks that discovery serves the group's v1 with resource and status.
func flowControlDiscovered(resource string) {
	resources, err := cluster.client.Discovery().ServerResourcesForGroupVersion(flowcontrolv1.SchemeGroupVersion.String())
	Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, r := range resources.APIResources {
		names = append(names, r.Name)
	}
	Expect(names).To(ContainElements(resource, resource+"/status"))
}

var _ = Describe("[sig-api-machinery] API priority and fairness", Label("api-machinery"), func() {
	It("should support FlowSchema API operations", func(ctx SpecContext) {
		fsClient := cluster.client.FlowcontrolV1().FlowSchemas()
		run := "e2e-" + string(uuid.NewUUID())[:8]
		selector := metav1.ListOptions{LabelSelector: "e2e=" + run}
		template := func(name string) *flowcontrolv1.FlowSchema {
			return &flowcontrolv1.FlowSchema{
				ObjectMeta: metav1.ObjectMeta{Name: run + "-" + name, Labels: map[string]string{"e2e": run}},
				Spec: flowcontrolv1.FlowSchemaSpec{
					MatchingPrecedence:         10000,
					PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "global-default"},
					DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
					Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
						Subjects:         []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: run}}},
						NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"/" + run}}},
					}},
				},
			}
		}
		DeferCleanup(func(ctx SpecContext) { _ = fsClient.DeleteCollection(ctx, metav1.DeleteOptions{}, selector) })

		By("finding the group, version and status subresource in discovery")
		flowControlDiscovered("flowschemas")

		By("creating, getting and listing by label")
		for _, name := range []string{"1", "2"} {
			_, err := fsClient.Create(ctx, template(name), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		created, err := fsClient.Create(ctx, template("3"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := fsClient.Get(ctx, created.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.UID).To(Equal(created.UID))
		list, err := fsClient.List(ctx, selector)
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(3))

		By("watching a patch and an update")
		w, err := fsClient.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, FieldSelector: "metadata.name=" + created.Name})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		patched, err := fsClient.Patch(ctx, created.Name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"patched":"true"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(patched.Annotations).To(HaveKeyWithValue("patched", "true"))
		toUpdate := patched.DeepCopy()
		toUpdate.Spec.MatchingPrecedence = 9999
		updated, err := fsClient.Update(ctx, toUpdate, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.Spec.MatchingPrecedence).To(Equal(int32(9999)))
		var ev watch.Event
		Eventually(w.ResultChan()).WithTimeout(longWait).Should(Receive(&ev))
		Expect(ev.Type).To(Equal(watch.Modified))

		By("reading, patching and updating /status")
		patchedStatus, err := fsClient.Patch(ctx, created.Name, types.MergePatchType,
			[]byte(`{"status":{"conditions":[{"type":"StatusPatched","status":"True","reason":"e2e"}]}}`), metav1.PatchOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		Expect(patchedStatus.Status.Conditions).To(ContainElement(HaveField("Type", flowcontrolv1.FlowSchemaConditionType("StatusPatched"))))
		toStatus := patchedStatus.DeepCopy()
		toStatus.Status.Conditions = append(toStatus.Status.Conditions, flowcontrolv1.FlowSchemaCondition{
			Type: "StatusUpdated", Status: flowcontrolv1.ConditionTrue, Reason: "E2E", Message: "Set from an e2e test"})
		statusUpdated, err := fsClient.UpdateStatus(ctx, toStatus, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(statusUpdated.Status.Conditions).To(ContainElement(HaveField("Type", flowcontrolv1.FlowSchemaConditionType("StatusUpdated"))))

		By("deleting one, then the collection")
		Expect(fsClient.Delete(ctx, created.Name, metav1.DeleteOptions{})).To(Succeed())
		_, err = fsClient.Get(ctx, created.Name, metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "get after delete: %v", err)
		list, err = fsClient.List(ctx, selector)
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(2))
		Expect(fsClient.DeleteCollection(ctx, metav1.DeleteOptions{}, selector)).To(Succeed())
		list, err = fsClient.List(ctx, selector)
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
	})

	It("should support PriorityLevelConfiguration API operations", func(ctx SpecContext) {
		plClient := cluster.client.FlowcontrolV1().PriorityLevelConfigurations()
		run := "e2e-" + string(uuid.NewUUID())[:8]
		selector := metav1.ListOptions{LabelSelector: "e2e=" + run}
		template := func(name string) *flowcontrolv1.PriorityLevelConfiguration {
			return &flowcontrolv1.PriorityLevelConfiguration{
				ObjectMeta: metav1.ObjectMeta{Name: run + "-" + name, Labels: map[string]string{"e2e": run}},
				Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
					Type: flowcontrolv1.PriorityLevelEnablementLimited,
					Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
						NominalConcurrencyShares: ptr.To[int32](2),
						LimitResponse:            flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject},
					},
				},
			}
		}
		DeferCleanup(func(ctx SpecContext) { _ = plClient.DeleteCollection(ctx, metav1.DeleteOptions{}, selector) })

		By("finding the group, version and status subresource in discovery")
		flowControlDiscovered("prioritylevelconfigurations")

		By("creating, getting and listing by label")
		for _, name := range []string{"1", "2"} {
			_, err := plClient.Create(ctx, template(name), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		created, err := plClient.Create(ctx, template("3"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(*created.Spec.Limited.LendablePercent).To(Equal(int32(0)), "defaulted")
		got, err := plClient.Get(ctx, created.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.UID).To(Equal(created.UID))
		list, err := plClient.List(ctx, selector)
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(3))

		By("watching a patch and an update")
		w, err := plClient.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, FieldSelector: "metadata.name=" + created.Name})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		patched, err := plClient.Patch(ctx, created.Name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"patched":"true"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(patched.Annotations).To(HaveKeyWithValue("patched", "true"))
		toUpdate := patched.DeepCopy()
		toUpdate.Spec.Limited.NominalConcurrencyShares = ptr.To[int32](3)
		updated, err := plClient.Update(ctx, toUpdate, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(*updated.Spec.Limited.NominalConcurrencyShares).To(Equal(int32(3)))
		var ev watch.Event
		Eventually(w.ResultChan()).WithTimeout(longWait).Should(Receive(&ev))
		Expect(ev.Type).To(Equal(watch.Modified))

		By("reading, patching and updating /status")
		patchedStatus, err := plClient.Patch(ctx, created.Name, types.MergePatchType,
			[]byte(`{"status":{"conditions":[{"type":"StatusPatched","status":"True","reason":"e2e"}]}}`), metav1.PatchOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		Expect(patchedStatus.Status.Conditions).To(ContainElement(HaveField("Type", flowcontrolv1.PriorityLevelConfigurationConditionType("StatusPatched"))))
		toStatus := patchedStatus.DeepCopy()
		toStatus.Status.Conditions = append(toStatus.Status.Conditions, flowcontrolv1.PriorityLevelConfigurationCondition{
			Type: "StatusUpdated", Status: flowcontrolv1.ConditionTrue, Reason: "E2E", Message: "Set from an e2e test"})
		statusUpdated, err := plClient.UpdateStatus(ctx, toStatus, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(statusUpdated.Status.Conditions).To(ContainElement(HaveField("Type", flowcontrolv1.PriorityLevelConfigurationConditionType("StatusUpdated"))))

		By("deleting one, then the collection")
		Expect(plClient.Delete(ctx, created.Name, metav1.DeleteOptions{})).To(Succeed())
		_, err = plClient.Get(ctx, created.Name, metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "get after delete: %v", err)
		list, err = plClient.List(ctx, selector)
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(2))
		Expect(plClient.DeleteCollection(ctx, metav1.DeleteOptions{}, selector)).To(Succeed())
		list, err = plClient.List(ctx, selector)
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
	})
})
