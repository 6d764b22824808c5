package conformance

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// Upstream's AdmissionWebhook conformance specs on matchConditions (test/e2e/apimachinery/
// webhook.go, v1.37). The first four only store configurations, whose webhooks are never
// called; the last calls a mutating webhook served in the test process (controller-runtime's
// webhook package, by URL clientConfig) where upstream runs it as a pod behind a Service.

var (
	initialMatchConditions = []admissionregistrationv1.MatchCondition{{Name: "expression-1", Expression: "object.metadata.namespace == 'production'"}}
	updatedMatchConditions = []admissionregistrationv1.MatchCondition{
		{Name: "expression-1", Expression: "object.metadata.namespace == 'production'"},
		{Name: "expression-2", Expression: "object.metadata.namespace == 'staging'"},
	}
	invalidMatchConditions = []admissionregistrationv1.MatchCondition{{Name: "invalid-expression-1", Expression: "... [] bad expression"}}
)

// unreachableWebhookURL is a URL the stored-only configurations name: no spec calls them, as
// their rules match pods in a namespace nothing creates pods in.
const unreachableWebhookURL = "https://127.0.0.1:1"

// storedOnlyRules match pods created in namespace ns, which the specs that use them never do.
func storedOnlyRules() []admissionregistrationv1.RuleWithOperations {
	return webhookRule("pods", admissionregistrationv1.Create)
}

var _ = Describe("[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin]", Label("api-machinery"), func() {
	It("should be able to create and update validating webhook configurations with match conditions", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		configs := cluster.client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		By("creating a validating webhook with match conditions")
		w := validatingWebhook("validating-match-conditions.k8s.io", ns, unreachableWebhookURL, "/pods", nil, storedOnlyRules())
		w.MatchConditions = initialMatchConditions
		c := createValidatingConfig(ctx, ns+"-match-conditions", w)
		By("verifying the validating webhook match conditions")
		got, err := configs.Get(ctx, c.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Webhooks[0].MatchConditions).To(Equal(initialMatchConditions))
		By("updating the validating webhook match conditions")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			got, err := configs.Get(ctx, c.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			got.Webhooks[0].MatchConditions = updatedMatchConditions
			_, err = configs.Update(ctx, got, metav1.UpdateOptions{})
			return err
		})).To(Succeed())
		By("verifying the validating webhook match conditions")
		got, err = configs.Get(ctx, c.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Webhooks[0].MatchConditions).To(Equal(updatedMatchConditions))
	})

	It("should be able to create and update mutating webhook configurations with match conditions", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		configs := cluster.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
		By("creating a mutating webhook with match conditions")
		w := mutatingWebhook("mutating-match-conditions.k8s.io", ns, unreachableWebhookURL, "/pods", nil, storedOnlyRules())
		w.MatchConditions = initialMatchConditions
		c := createMutatingConfig(ctx, ns+"-match-conditions", w)
		By("verifying the mutating webhook match conditions")
		got, err := configs.Get(ctx, c.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Webhooks[0].MatchConditions).To(Equal(initialMatchConditions))
		By("updating the mutating webhook match conditions")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			got, err := configs.Get(ctx, c.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			got.Webhooks[0].MatchConditions = updatedMatchConditions
			_, err = configs.Update(ctx, got, metav1.UpdateOptions{})
			return err
		})).To(Succeed())
		By("verifying the mutating webhook match conditions")
		got, err = configs.Get(ctx, c.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Webhooks[0].MatchConditions).To(Equal(updatedMatchConditions))
	})

	It("should reject validating webhook configurations with invalid match conditions", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		w := validatingWebhook("validating-invalid-match-conditions.k8s.io", ns, unreachableWebhookURL, "/pods", nil, storedOnlyRules())
		w.MatchConditions = invalidMatchConditions
		_, err := cluster.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-invalid"}, Webhooks: []admissionregistrationv1.ValidatingWebhook{w}}, metav1.CreateOptions{})
		Expect(err).To(MatchError(ContainSubstring("compilation failed")))
	})

	It("should reject mutating webhook configurations with invalid match conditions", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		w := mutatingWebhook("mutating-invalid-match-conditions.k8s.io", ns, unreachableWebhookURL, "/pods", nil, storedOnlyRules())
		w.MatchConditions = invalidMatchConditions
		_, err := cluster.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-invalid"}, Webhooks: []admissionregistrationv1.MutatingWebhook{w}}, metav1.CreateOptions{})
		Expect(err).To(MatchError(ContainSubstring("compilation failed")))
	})

	It("should mutate everything except 'skip-me' configmaps", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		url, ca := webhookServer(configMapMutator("mutation-stage-1", ""))
		w := mutatingWebhook("adding-configmap-data-stage-1.k8s.io", ns, url, "/mutating-configmaps", ca, webhookRule("configmaps", admissionregistrationv1.Create))
		w.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "skip-me", Expression: "object.metadata.name != 'skip-me'"}}
		createMutatingConfig(ctx, ns+"-skip-me", w)
		waitForConfigMapMutation(ctx, ns, true)

		create := func(name string) map[string]string {
			GinkgoHelper()
			cm, err := cluster.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name},
				Data: map[string]string{"mutation-start": "yes"}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			return cm.Data
		}
		By("create the configmap with a random name")
		Expect(create("random-" + ns)).To(Equal(map[string]string{"mutation-start": "yes", "mutation-stage-1": "yes"}))
		By("create the configmap with 'skip-me' name")
		Expect(create("skip-me")).To(Equal(map[string]string{"mutation-start": "yes"}))
	})
})
