package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// More of upstream's AdmissionWebhook conformance specs (test/e2e/apimachinery/webhook.go,
// v1.37): discovery, a fail-closed webhook, webhooks on the webhook configurations themselves,
// and webhooks on custom resources. As in admissionwebhook_test.go, the webhook servers run in
// the test process (controller-runtime's webhook package) and are registered by URL, where
// upstream runs them as a pod behind a Service.

// customResourceRule is one rule on every operation the specs need on the CRD's resource.
func customResourceRule(crd *apiextensionsv1.CustomResourceDefinition, ops ...admissionregistrationv1.OperationType) []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: ops,
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{crd.Spec.Group}, APIVersions: []string{"v1"}, Resources: []string{crd.Spec.Names.Plural}},
	}}
}

// customResourceData is the data map of a custom resource in an admission request.
func customResourceData(raw []byte) (map[string]any, error) {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	data, _ := obj["data"].(map[string]any)
	return data, nil
}

var _ = Describe("[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin]", Label("api-machinery"), func() {
	It("should include webhook resources in discovery documents", func(ctx SpecContext) {
		By("fetching the /apis discovery document")
		groups, err := cluster.client.Discovery().ServerGroups()
		Expect(err).NotTo(HaveOccurred())
		var found bool
		for _, g := range groups.Groups {
			if g.Name == admissionregistrationv1.GroupName {
				found = true
				Expect(g.Versions).To(ContainElement(metav1.GroupVersionForDiscovery{GroupVersion: "admissionregistration.k8s.io/v1", Version: "v1"}))
			}
		}
		Expect(found).To(BeTrue(), "admissionregistration.k8s.io is not in /apis")

		By("fetching the /apis/admissionregistration.k8s.io/v1 discovery document")
		resources, err := cluster.client.Discovery().ServerResourcesForGroupVersion("admissionregistration.k8s.io/v1")
		Expect(err).NotTo(HaveOccurred())
		names := map[string]bool{}
		for _, r := range resources.APIResources {
			names[r.Name] = true
		}
		Expect(names).To(HaveKey("mutatingwebhookconfigurations"))
		Expect(names).To(HaveKey("validatingwebhookconfigurations"))
	})

	It("should unconditionally reject operations on fail closed webhook", func(ctx SpecContext) {
		requireWebhookServerReachable()
		ns := policyNamespace(ctx)
		// an address nothing listens on: every call fails
		l, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		url := "https://" + l.Addr().String()
		Expect(l.Close()).To(Succeed())
		createValidatingConfig(ctx, ns+"-fail-closed",
			validatingWebhook("fail-closed.k8s.io", ns, url, "/configmaps", nil, webhookRule("configmaps", admissionregistrationv1.Create)))
		Eventually(ctx, func(g Gomega) {
			_, err := cluster.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "fail-closed-"}}, metav1.CreateOptions{})
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(`failed calling webhook "fail-closed.k8s.io"`))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})

	It("should not be able to mutate or prevent deletion of webhook configuration objects", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		url, ca := webhookServer(webhookPaths(map[string]http.Handler{
			"/always-deny": admissionHandler(func(admission.Request) admission.Response {
				return admission.Denied("this webhook denies all requests")
			}),
			"/add-label": admissionHandler(func(req admission.Request) admission.Response {
				var obj map[string]any
				if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
					return admission.Errored(http.StatusBadRequest, err)
				}
				md, _ := obj["metadata"].(map[string]any)
				md["labels"] = map[string]any{"added-by-webhook": "true"}
				out, _ := json.Marshal(obj)
				return admission.PatchResponseFromRaw(req.Object.Raw, out)
			}),
			"/configmaps": denyingHandler(),
		}))
		configRules := []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Delete},
			Rule: admissionregistrationv1.Rule{APIGroups: []string{"admissionregistration.k8s.io"}, APIVersions: []string{"*"},
				Resources: []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations"}},
		}}
		By("Registering a webhook that denies, and one that mutates, every webhook configuration")
		deny := validatingWebhook("deny-webhook-configuration-deletions.k8s.io", ns, url, "/always-deny", ca, configRules)
		deny.NamespaceSelector = nil // cluster-scoped objects: a selector would not matter
		createValidatingConfig(ctx, ns+"-deny-configs", deny)
		mutate := mutatingWebhook("add-label-to-webhook-configurations.k8s.io", ns, url, "/add-label", ca, configRules)
		mutate.NamespaceSelector = nil
		createMutatingConfig(ctx, ns+"-mutate-configs", mutate)

		By("Creating a dummy validating-webhook-configuration object")
		configs := cluster.client.AdmissionregistrationV1()
		dummy := validatingWebhook("dummy-validating-webhook.k8s.io", ns, url, "/configmaps", ca, webhookRule("configmaps", admissionregistrationv1.Create))
		v, err := configs.ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-dummy-validating"}, Webhooks: []admissionregistrationv1.ValidatingWebhook{dummy}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(v.Labels).NotTo(HaveKey("added-by-webhook"))
		By("Deleting the validating-webhook-configuration, which should be possible to remove")
		Expect(configs.ValidatingWebhookConfigurations().Delete(ctx, v.Name, metav1.DeleteOptions{})).To(Succeed())

		By("Creating a dummy mutating-webhook-configuration object")
		m, err := configs.MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-dummy-mutating"},
			Webhooks:   []admissionregistrationv1.MutatingWebhook{mutatingWebhook("dummy-mutating-webhook.k8s.io", ns, url, "/add-label", ca, webhookRule("configmaps", admissionregistrationv1.Create))},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Labels).NotTo(HaveKey("added-by-webhook"))
		By("Deleting the mutating-webhook-configuration, which should be possible to remove")
		Expect(configs.MutatingWebhookConfigurations().Delete(ctx, m.Name, metav1.DeleteOptions{})).To(Succeed())
	})

	It("should be able to deny custom resource creation, update and deletion", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		url, ca := webhookServer(admissionHandler(func(req admission.Request) admission.Response {
			raw := req.Object.Raw
			if req.Operation == "DELETE" {
				raw = req.OldObject.Raw
			}
			data, err := customResourceData(raw)
			if err != nil {
				return admission.Errored(http.StatusBadRequest, err)
			}
			switch {
			case req.Operation == "DELETE" && data[disallowedKey] == "webhook-nondeletable":
				return admission.Denied("the custom resource cannot be deleted because it contains unwanted key and value")
			case req.Operation != "DELETE" && data[disallowedKey] == disallowedValue:
				return admission.Denied("the custom resource contains unwanted data")
			}
			return admission.Allowed("")
		}))
		crd := createCRD(ctx, testCRD("E2eTestWebhookCrd", openSchema()))
		createValidatingConfig(ctx, ns+"-deny-cr",
			validatingWebhook("deny-unwanted-custom-resource-data.k8s.io", ns, url, "/custom-resource", ca,
				customResourceRule(crd, admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete)))
		crs := cluster.dynamic.Resource(crdResource(crd, "v1")).Namespace(ns)
		cr := func(name, value string) *unstructured.Unstructured {
			return &unstructured.Unstructured{Object: map[string]any{"apiVersion": crd.Spec.Group + "/v1", "kind": crd.Spec.Names.Kind,
				"metadata": map[string]any{"name": name}, "data": map[string]any{disallowedKey: value}}}
		}

		By("Creating a custom resource that should be denied by the webhook")
		Eventually(ctx, func(g Gomega) {
			_, err := crs.Create(ctx, cr("cr-instance-1", disallowedValue), metav1.CreateOptions{})
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring("the custom resource contains unwanted data"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		By("Creating a custom resource whose deletion would be denied by the webhook")
		_, err := crs.Create(ctx, cr("cr-instance-2", "webhook-nondeletable"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		By("Updating the custom resource with disallowed data should be denied")
		_, err = crs.Patch(ctx, "cr-instance-2", types.MergePatchType, []byte(fmt.Sprintf(`{"data":{%q:%q}}`, disallowedKey, disallowedValue)), metav1.PatchOptions{})
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("the custom resource contains unwanted data"))
		By("Deleting the custom resource should be denied")
		err = crs.Delete(ctx, "cr-instance-2", metav1.DeleteOptions{})
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("the custom resource cannot be deleted because it contains unwanted key and value"))
		By("Remove the offending key and value from the custom resource data")
		_, err = crs.Patch(ctx, "cr-instance-2", types.MergePatchType, []byte(fmt.Sprintf(`{"data":{%q:null}}`, disallowedKey)), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		By("Deleting the updated custom resource should be successful")
		Expect(crs.Delete(ctx, "cr-instance-2", metav1.DeleteOptions{})).To(Succeed())
	})

	It("should mutate custom resource", func(ctx SpecContext) {
		testMutatingCustomResourceWebhook(ctx, testCRD("E2eTestWebhookMutatedCrd", openSchema()),
			map[string]any{"mutation-start": "yes", "mutation-stage-1": "yes", "mutation-stage-2": "yes"})
	})

	It("should mutate custom resource with pruning", func(ctx SpecContext) {
		// mutation-stage-2 is not in the schema: what the second webhook adds is pruned
		str := apiextensionsv1.JSONSchemaProps{Type: "string"}
		testMutatingCustomResourceWebhook(ctx, testCRD("E2eTestWebhookPrunedCrd", &apiextensionsv1.JSONSchemaProps{Type: "object",
			Properties: map[string]apiextensionsv1.JSONSchemaProps{"data": {Type: "object",
				Properties: map[string]apiextensionsv1.JSONSchemaProps{"mutation-start": str, "mutation-stage-1": str}}}}),
			map[string]any{"mutation-start": "yes", "mutation-stage-1": "yes"})
	})

	It("should deny crd creation", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		url, ca := webhookServer(admissionHandler(func(req admission.Request) admission.Response {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := json.Unmarshal(req.Object.Raw, &crd); err != nil {
				return admission.Errored(http.StatusBadRequest, err)
			}
			if crd.Labels[disallowedKey] == disallowedValue {
				return admission.Denied("the crd contains unwanted label")
			}
			return admission.Allowed("")
		}))
		w := validatingWebhook("deny-crd-with-unwanted-label.k8s.io", ns, url, "/crd", ca, []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apiextensions.k8s.io"}, APIVersions: []string{"*"}, Resources: []string{"customresourcedefinitions"}},
		}})
		// CRDs are cluster-scoped: this spec's webhook sees only the CRDs labelled for it
		w.NamespaceSelector = nil
		w.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"e2e-test-webhook": ns}}
		createValidatingConfig(ctx, ns+"-deny-crd", w)

		By("Creating a custom resource definition that should be denied by the webhook")
		crds := extensionsClient().ApiextensionsV1().CustomResourceDefinitions()
		Eventually(ctx, func(g Gomega) {
			crd := testCRD("E2eTestDeniedCrd", openSchema())
			crd.Labels = map[string]string{"e2e-test-webhook": ns, disallowedKey: disallowedValue}
			created, err := crds.Create(ctx, crd, metav1.CreateOptions{})
			if err == nil {
				_ = crds.Delete(ctx, created.Name, metav1.DeleteOptions{})
			}
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring("the crd contains unwanted label"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})

// testMutatingCustomResourceWebhook registers upstream's two stages of mutating webhooks on
// the custom resources of crd, creates one, and expects its data to come back as want.
func testMutatingCustomResourceWebhook(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition, want map[string]any) {
	GinkgoHelper()
	ns := policyNamespace(ctx)
	url, ca := webhookServer(webhookPaths(map[string]http.Handler{
		"/mutating-custom-resource":   customResourceMutator("mutation-stage-1", ""),
		"/mutating-custom-resource-2": customResourceMutator("mutation-stage-2", "mutation-stage-1"),
	}))
	crd = createCRD(ctx, crd)
	createMutatingConfig(ctx, ns+"-mutate-cr",
		mutatingWebhook("mutate-custom-resource-data-stage-1.k8s.io", ns, url, "/mutating-custom-resource", ca, customResourceRule(crd, admissionregistrationv1.Create)),
		mutatingWebhook("mutate-custom-resource-data-stage-2.k8s.io", ns, url, "/mutating-custom-resource-2", ca, customResourceRule(crd, admissionregistrationv1.Create)))
	crs := cluster.dynamic.Resource(crdResource(crd, "v1")).Namespace(ns)
	Eventually(ctx, func(g Gomega) {
		created, err := crs.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": crd.Spec.Group + "/v1", "kind": crd.Spec.Names.Kind,
			"metadata": map[string]any{"generateName": "cr-instance-"}, "data": map[string]any{"mutation-start": "yes"}}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		if err := crs.Delete(ctx, created.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			g.Expect(err).NotTo(HaveOccurred())
		}
		g.Expect(created.Object["data"]).To(Equal(want))
	}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
}

// customResourceMutator adds key: yes to a custom resource's data, when it has after (or after
// is "").
func customResourceMutator(key, after string) http.Handler {
	return admissionHandler(func(req admission.Request) admission.Response {
		var obj map[string]any
		if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		data, _ := obj["data"].(map[string]any)
		if _, ok := data[after]; after != "" && !ok {
			return admission.Allowed("")
		}
		if data == nil {
			data = map[string]any{}
		}
		data[key] = "yes"
		obj["data"] = data
		out, _ := json.Marshal(obj)
		return admission.PatchResponseFromRaw(req.Object.Raw, out)
	})
}
