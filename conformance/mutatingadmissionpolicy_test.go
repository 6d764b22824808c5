package conformance

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/resourceversion"
)

// Upstream's four MutatingAdmissionPolicy conformance specs (test/e2e/apimachinery/
// mutatingadmissionpolicy.go, v1.36): two mutate a Deployment, two exercise the API of the
// policies and of their bindings.

// mutatingPolicyOnDeployments is a policy with one ApplyConfiguration mutation on the creates
// and updates of deployments in the namespace ns, deleted when the spec ends.
func mutatingPolicyOnDeployments(ctx context.Context, ns, expression string) {
	GinkgoHelper()
	policies := cluster.client.AdmissionregistrationV1().MutatingAdmissionPolicies()
	bindings := cluster.client.AdmissionregistrationV1().MutatingAdmissionPolicyBindings()
	inNamespace := &metav1.LabelSelector{MatchLabels: map[string]string{ns: "true"}}
	p, err := policies.Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: ns + ".policy.example.com"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: inNamespace,
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				}}},
			},
			Mutations: []admissionregistrationv1.Mutation{{PatchType: admissionregistrationv1.PatchTypeApplyConfiguration,
				ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: expression}}},
		},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		Expect(policies.Delete(ctx, p.Name, metav1.DeleteOptions{})).To(Succeed())
	})
	b, err := bindings.Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + ".binding.example.com"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: p.Name,
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: inNamespace}},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		Expect(bindings.Delete(ctx, b.Name, metav1.DeleteOptions{})).To(Succeed())
	})
}

// waitUntilMutated creates (and deletes) a marker Deployment until it comes back mutated.
func waitUntilMutated(ctx context.Context, ns string, mutated func(*appsv1.Deployment) bool) {
	GinkgoHelper()
	deployments := cluster.client.AppsV1().Deployments(ns)
	Eventually(ctx, func(g Gomega) {
		created, err := deployments.Create(ctx, deployment("marker-deployment", 1, map[string]string{"app": "nginx"}), metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		if err := deployments.Delete(ctx, created.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			g.Expect(err).NotTo(HaveOccurred())
		}
		g.Expect(mutated(created)).To(BeTrue(), "marker deployment not mutated: %+v %+v", created.Annotations, created.Spec.Replicas)
	}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
}

var _ = Describe("[sig-api-machinery] MutatingAdmissionPolicy [Privileged:ClusterAdmin]", Label("api-machinery"), func() {
	It("should mutate a Deployment with annotations", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		mutatingPolicyOnDeployments(ctx, ns, `
			Object{
				metadata: Object.metadata{
					annotations: {
						"mutated-by": "admission-policy"
					}
				}
			}`)
		waitUntilMutated(ctx, ns, func(d *appsv1.Deployment) bool { return d.Annotations["mutated-by"] == "admission-policy" })
	})

	It("should mutate a Deployment", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		mutatingPolicyOnDeployments(ctx, ns, `Object{spec: Object.spec{replicas: 1337}}`)
		waitUntilMutated(ctx, ns, func(d *appsv1.Deployment) bool { return d.Spec.Replicas != nil && *d.Spec.Replicas == 1337 })
	})

	It("should support MutatingAdmissionPolicy API operations", func(ctx SpecContext) {
		requireAdmissionRegistrationDiscovery(ctx, "mutatingadmissionpolicies")
		policies := cluster.client.AdmissionregistrationV1().MutatingAdmissionPolicies()
		label := "example-e2e-map-label=" + rand.String(8)
		template := &admissionregistrationv1.MutatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-example-map-", Labels: labelsOf(label)},
			Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
				ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
				Mutations: []admissionregistrationv1.Mutation{{PatchType: admissionregistrationv1.PatchTypeApplyConfiguration,
					ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: `Object{spec: Object.spec{replicas: 100}}`}}},
				MatchConstraints: &admissionregistrationv1.MatchResources{
					ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{"CREATE"},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
					}}},
				},
			},
		}
		DeferCleanup(func(ctx SpecContext) {
			Expect(policies.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: label})).To(Succeed())
		})

		var created *admissionregistrationv1.MutatingAdmissionPolicy
		for range 3 {
			var err error
			created, err = policies.Create(ctx, template, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		read, err := policies.Get(ctx, created.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(read.UID).To(Equal(created.UID))
		Expect(read.ResourceVersion).NotTo(BeEmpty())
		list, err := policies.List(ctx, metav1.ListOptions{LabelSelector: label})
		Expect(err).NotTo(HaveOccurred())
		w, err := policies.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: label})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		patched, err := policies.Patch(ctx, created.Name, types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"patched":"true"}},"spec":{"reinvocationPolicy":"IfNeeded"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(patched.Annotations).To(HaveKeyWithValue("patched", "true"))
		Expect(patched.Spec.ReinvocationPolicy).To(Equal(admissionregistrationv1.IfNeededReinvocationPolicy))
		Expect(resourceversion.CompareResourceVersion(read.ResourceVersion, patched.ResourceVersion)).To(Equal(-1))
		patched.Annotations["updated"] = "true"
		patched.Spec.ReinvocationPolicy = admissionregistrationv1.NeverReinvocationPolicy
		updated, err := policies.Update(ctx, patched, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.Annotations).To(HaveKeyWithValue("updated", "true"))
		Expect(updated.Spec.ReinvocationPolicy).To(Equal(admissionregistrationv1.NeverReinvocationPolicy))
		waitForPatchedAnnotation(ctx, w)

		Expect(policies.Delete(ctx, created.Name, metav1.DeleteOptions{})).To(Succeed())
		_, err = policies.Get(ctx, created.Name, metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "get after delete: %v", err)
		list, err = policies.List(ctx, metav1.ListOptions{LabelSelector: label})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(2))
		Expect(policies.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: label})).To(Succeed())
		list, err = policies.List(ctx, metav1.ListOptions{LabelSelector: label})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
	})

	It("should support MutatingAdmissionPolicyBinding API operations", func(ctx SpecContext) {
		requireAdmissionRegistrationDiscovery(ctx, "mutatingadmissionpolicybindings")
		bindings := cluster.client.AdmissionregistrationV1().MutatingAdmissionPolicyBindings()
		label := "example-e2e-mapb-label=" + rand.String(8)
		template := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-example-mapb-", Labels: labelsOf(label)},
			Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: "replicalimit-policy.example.com"},
		}
		DeferCleanup(func(ctx SpecContext) {
			Expect(bindings.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: label})).To(Succeed())
		})

		var created *admissionregistrationv1.MutatingAdmissionPolicyBinding
		for range 3 {
			var err error
			created, err = bindings.Create(ctx, template, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		read, err := bindings.Get(ctx, created.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(read.UID).To(Equal(created.UID))
		list, err := bindings.List(ctx, metav1.ListOptions{LabelSelector: label})
		Expect(err).NotTo(HaveOccurred())
		w, err := bindings.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: label})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		patched, err := bindings.Patch(ctx, created.Name, types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"patched":"true"}},"spec":{"policyName":"new-policy.example.com"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(patched.Annotations).To(HaveKeyWithValue("patched", "true"))
		Expect(patched.Spec.PolicyName).To(Equal("new-policy.example.com"))
		Expect(resourceversion.CompareResourceVersion(read.ResourceVersion, patched.ResourceVersion)).To(Equal(-1))
		patched.Annotations["updated"] = "true"
		patched.Spec.PolicyName = "replicalimit-policy.example.com"
		updated, err := bindings.Update(ctx, patched, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.Annotations).To(HaveKeyWithValue("updated", "true"))
		Expect(updated.Spec.PolicyName).To(Equal("replicalimit-policy.example.com"))
		waitForPatchedAnnotation(ctx, w)

		Expect(bindings.Delete(ctx, created.Name, metav1.DeleteOptions{})).To(Succeed())
		_, err = bindings.Get(ctx, created.Name, metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "get after delete: %v", err)
		list, err = bindings.List(ctx, metav1.ListOptions{LabelSelector: label})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(2))
		Expect(bindings.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: label})).To(Succeed())
		list, err = bindings.List(ctx, metav1.ListOptions{LabelSelector: label})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
	})
})
