package conformance

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/openapi3"
	"k8s.io/utils/ptr"
)

// policyNamespace is a namespace labelled with its own name, which the policies and bindings
// of one spec select, so that they judge nothing of other specs.
func policyNamespace(ctx context.Context) string {
	ns := newNamespace(ctx)
	_, err := cluster.client.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType,
		[]byte(fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, ns)), metav1.PatchOptions{})
	Expect(err).NotTo(HaveOccurred())
	return ns
}

// namespacePolicy is a policy on the creates and updates of resources in the namespace ns.
func namespacePolicy(name, ns string, groups, resources []string, validations ...admissionregistrationv1.Validation) *admissionregistrationv1.ValidatingAdmissionPolicy {
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{ns: "true"}},
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: groups, APIVersions: []string{"v1"}, Resources: resources},
				}}},
			},
			Validations: validations,
		},
	}
}

// createPolicy creates a policy, deleted when the spec ends.
func createPolicy(ctx context.Context, p *admissionregistrationv1.ValidatingAdmissionPolicy) *admissionregistrationv1.ValidatingAdmissionPolicy {
	GinkgoHelper()
	policies := cluster.client.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	created, err := policies.Create(ctx, p, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		if err := policies.Delete(ctx, created.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	})
	return created
}

// bindInNamespace binds the policy with Deny in the namespace ns, deleted when the spec ends.
func bindInNamespace(ctx context.Context, name, policy, ns string) {
	GinkgoHelper()
	bindings := cluster.client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	_, err := bindings.Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{ns: "true"}},
			},
		},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		if err := bindings.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	})
}

// waitUntilDenied creates a one-replica marker Deployment until the policy refuses it (422).
func waitUntilDenied(ctx context.Context, ns string) {
	GinkgoHelper()
	deployments := cluster.client.AppsV1().Deployments(ns)
	Eventually(ctx, func(g Gomega) {
		_, err := deployments.Create(ctx, deployment("marker", 1, map[string]string{"app": "marker"}), metav1.CreateOptions{})
		if err == nil {
			_ = deployments.Delete(ctx, "marker", metav1.DeleteOptions{})
		}
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "marker deployment: %v", err)
	}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
}

// waitForTypeChecking waits until the status controller has checked the policy's generation
// (a non-nil typeChecking marks it done, as upstream's tests take it).
func waitForTypeChecking(ctx context.Context, name string) *admissionregistrationv1.ValidatingAdmissionPolicy {
	GinkgoHelper()
	var p *admissionregistrationv1.ValidatingAdmissionPolicy
	Eventually(ctx, func(g Gomega) {
		var err error
		p, err = cluster.client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(p.Status.TypeChecking).NotTo(BeNil())
	}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	return p
}

var _ = Describe("[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin]", Label("api-machinery"), func() {
	It("should validate against a Deployment", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		p := createPolicy(ctx, namespacePolicy(ns+".policy.example.com", ns, []string{"apps"}, []string{"deployments"},
			admissionregistrationv1.Validation{Expression: "object.spec.replicas > 1", MessageExpression: "'wants replicas > 1, got ' + object.spec.replicas"},
			admissionregistrationv1.Validation{Expression: "namespaceObject.metadata.name == '" + ns + "'", Message: "Internal error! Other namespace should not be allowed."}))
		bindInNamespace(ctx, ns+".binding.example.com", p.Name, ns)
		waitUntilDenied(ctx, ns)

		By("denying a one-replica Deployment; the message expression (string + int) fails, so the expression is the message")
		_, err := cluster.client.AppsV1().Deployments(ns).Create(ctx, deployment("single", 1, map[string]string{"app": "single"}), metav1.CreateOptions{})
		Expect(err).To(MatchError(ContainSubstring("ValidatingAdmissionPolicy '%s' with binding '%s' denied request: failed expression: object.spec.replicas > 1", p.Name, ns+".binding.example.com")))
		By("allowing a replicated Deployment")
		_, err = cluster.client.AppsV1().Deployments(ns).Create(ctx, deployment("replicated", 2, map[string]string{"app": "replicated"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		By("allowing a non-replicated ReplicaSet, which the policy does not match")
		_, err = cluster.client.AppsV1().ReplicaSets(ns).Create(ctx, replicaSet("non-replicated", 1, map[string]string{"app": "non-replicated"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("should allow expressions to refer variables.", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		policy := namespacePolicy(ns+".policy.example.com", ns, []string{"apps"}, []string{"deployments"},
			admissionregistrationv1.Validation{Expression: "variables.replicas > 1"},
			admissionregistrationv1.Validation{Expression: "variables.oddReplicas"})
		policy.Spec.Variables = []admissionregistrationv1.Variable{
			{Name: "replicas", Expression: "object.spec.replicas"},
			{Name: "oddReplicas", Expression: "variables.replicas % 2 == 1"},
		}
		p := createPolicy(ctx, policy)
		bindInNamespace(ctx, ns+".binding.example.com", p.Name, ns)
		waitUntilDenied(ctx, ns)

		_, err := cluster.client.AppsV1().Deployments(ns).Create(ctx, deployment("even", 2, map[string]string{"app": "even"}), metav1.CreateOptions{})
		Expect(err).To(MatchError(ContainSubstring("denied request: failed expression: variables.oddReplicas")))
		_, err = cluster.client.AppsV1().Deployments(ns).Create(ctx, deployment("replicated", 3, map[string]string{"app": "replicated"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = cluster.client.AppsV1().ReplicaSets(ns).Create(ctx, replicaSet("non-replicated", 1, map[string]string{"app": "non-replicated"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("should type check validation expressions", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		By("a policy with correct types gets no warnings")
		correct := createPolicy(ctx, namespacePolicy(ns+".correct-policy.example.com", ns, []string{"apps"}, []string{"deployments"},
			admissionregistrationv1.Validation{Expression: "object.spec.replicas > 1"}))
		Expect(waitForTypeChecking(ctx, correct.Name).Status.TypeChecking.ExpressionWarnings).To(BeEmpty())

		By("a policy with type confusion gets a warning for the expression and one for the message expression")
		confused := createPolicy(ctx, namespacePolicy(ns+".confused-policy.example.com", ns, []string{"apps"}, []string{"deployments"},
			admissionregistrationv1.Validation{Expression: "object.spec.replicas > '1'", MessageExpression: "'wants replicas > 1, got ' + object.spec.replicas"}))
		warnings := waitForTypeChecking(ctx, confused.Name).Status.TypeChecking.ExpressionWarnings
		Expect(warnings).To(HaveLen(2))
		Expect(warnings[0].FieldRef).To(Equal("spec.validations[0].expression"))
		Expect(warnings[0].Warning).To(ContainSubstring("found no matching overload for '_>_' applied to '(int, string)'"))
		Expect(warnings[1].FieldRef).To(Equal("spec.validations[0].messageExpression"))
		Expect(warnings[1].Warning).To(ContainSubstring("found no matching overload for '_+_' applied to '(string, int)'"))
	})

	It("should type check a CRD", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		crd := testCRD("CronTab", &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"cronSpec": {Type: "string"}, "image": {Type: "string"}, "replicas": {Type: "integer"},
			}},
		}})
		createCRD(ctx, crd)
		By("waiting for the definition's OpenAPI to be published")
		Eventually(ctx, func() error {
			_, err := openapi3.NewRoot(cluster.client.Discovery().OpenAPIV3()).GVSpec(schema.GroupVersion{Group: crd.Spec.Group, Version: "v1"})
			return err
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())

		correct := createPolicy(ctx, namespacePolicy(ns+".correct-crd-policy.example.com", ns, []string{crd.Spec.Group}, []string{"crontabs"},
			admissionregistrationv1.Validation{Expression: "object.spec.replicas > 1"}))
		Expect(waitForTypeChecking(ctx, correct.Name).Status.TypeChecking.ExpressionWarnings).To(BeEmpty())

		confused := createPolicy(ctx, namespacePolicy(ns+".confused-crd-policy.example.com", ns, []string{crd.Spec.Group}, []string{"crontabs"},
			admissionregistrationv1.Validation{Expression: "object.spec.replicas > '1'"},
			admissionregistrationv1.Validation{Expression: "object.spec.maxRetries < 10"}))
		warnings := waitForTypeChecking(ctx, confused.Name).Status.TypeChecking.ExpressionWarnings
		Expect(warnings).To(HaveLen(2))
		Expect(warnings[0].FieldRef).To(Equal("spec.validations[0].expression"))
		Expect(warnings[0].Warning).To(ContainSubstring("found no matching overload for '_>_' applied to '(int, string)'"))
		Expect(warnings[1].FieldRef).To(Equal("spec.validations[1].expression"))
		Expect(warnings[1].Warning).To(ContainSubstring("undefined field 'maxRetries'"))
	})

	It("should support ValidatingAdmissionPolicy API operations", func(ctx SpecContext) {
		requireAdmissionRegistrationDiscovery(ctx, "validatingadmissionpolicies", "validatingadmissionpolicies/status")
		policies := cluster.client.AdmissionregistrationV1().ValidatingAdmissionPolicies()
		label := "example-e2e-vap-label=" + rand.String(8)
		template := namespacePolicy("", "unused", []string{"apps"}, []string{"deployments"}, admissionregistrationv1.Validation{Expression: "object.spec.replicas <= 100"})
		template.GenerateName = "e2e-example-vap-"
		template.Labels = labelsOf(label)
		DeferCleanup(func(ctx SpecContext) {
			Expect(policies.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: label})).To(Succeed())
		})

		By("creating, getting, listing and watching")
		var created *admissionregistrationv1.ValidatingAdmissionPolicy
		for range 3 {
			var err error
			created, err = policies.Create(ctx, template, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		read, err := policies.Get(ctx, created.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(read.UID).To(Equal(created.UID))
		list, err := policies.List(ctx, metav1.ListOptions{LabelSelector: label})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(3))
		w, err := policies.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: label})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		By("patching and updating")
		patched, err := policies.Patch(ctx, created.Name, types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"patched":"true"}},"spec":{"failurePolicy":"Ignore"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(patched.Annotations).To(HaveKeyWithValue("patched", "true"))
		Expect(patched.Spec.FailurePolicy).To(HaveValue(Equal(admissionregistrationv1.Ignore)))
		patched.Annotations["updated"] = "true"
		patched.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Fail)
		updated, err := policies.Update(ctx, patched, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.Annotations).To(HaveKeyWithValue("updated", "true"))
		Expect(updated.Spec.FailurePolicy).To(HaveValue(Equal(admissionregistrationv1.Fail)))
		waitForPatchedAnnotation(ctx, w)

		By("getting, patching and updating /status")
		status, err := cluster.dynamic.Resource(admissionregistrationv1.SchemeGroupVersion.WithResource("validatingadmissionpolicies")).
			Get(ctx, created.Name, metav1.GetOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		Expect(status.GetObjectKind().GroupVersionKind()).To(Equal(admissionregistrationv1.SchemeGroupVersion.WithKind("ValidatingAdmissionPolicy")))
		Expect(status.GetUID()).To(Equal(created.UID))
		statusPatched, err := policies.Patch(ctx, created.Name, types.MergePatchType,
			[]byte(`{"status":{"conditions":[{"type":"PatchStatusFailed","status":"False","reason":"e2e","message":"Set from an e2e test","lastTransitionTime":"2024-01-01T00:00:00Z"}]}}`),
			metav1.PatchOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionTypes(statusPatched.Status.Conditions)).To(ContainElement("PatchStatusFailed"))
		statusPatched.Status.Conditions = append(statusPatched.Status.Conditions, metav1.Condition{
			Type: "StatusUpdateFailed", Status: metav1.ConditionFalse, Reason: "E2E", Message: "Set from an e2e test", LastTransitionTime: metav1.Now(),
		})
		statusUpdated, err := policies.UpdateStatus(ctx, statusPatched, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionTypes(statusUpdated.Status.Conditions)).To(ContainElement("StatusUpdateFailed"))

		By("deleting one and then the collection")
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

	It("should support ValidatingAdmissionPolicyBinding API operations", func(ctx SpecContext) {
		requireAdmissionRegistrationDiscovery(ctx, "validatingadmissionpolicybindings")
		bindings := cluster.client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
		label := "example-e2e-vapb-label=" + rand.String(8)
		template := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-example-vapb-", Labels: labelsOf(label)},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        "replicalimit-policy.example.com",
				ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			},
		}
		DeferCleanup(func(ctx SpecContext) {
			Expect(bindings.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: label})).To(Succeed())
		})

		var created *admissionregistrationv1.ValidatingAdmissionPolicyBinding
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
		Expect(list.Items).To(HaveLen(3))
		w, err := bindings.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: label})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		patched, err := bindings.Patch(ctx, created.Name, types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"patched":"true"}},"spec":{"validationActions":["Warn"]}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(patched.Annotations).To(HaveKeyWithValue("patched", "true"))
		Expect(patched.Spec.ValidationActions).To(Equal([]admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn}))
		patched.Annotations["updated"] = "true"
		patched.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}
		updated, err := bindings.Update(ctx, patched, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.Annotations).To(HaveKeyWithValue("updated", "true"))
		Expect(updated.Spec.ValidationActions).To(Equal([]admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}))
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

// requireAdmissionRegistrationDiscovery checks that /apis, /apis/admissionregistration.k8s.io
// and its v1 list admissionregistration.k8s.io/v1 and the named resources.
func requireAdmissionRegistrationDiscovery(ctx context.Context, resources ...string) {
	GinkgoHelper()
	groups, err := cluster.client.Discovery().ServerGroups()
	Expect(err).NotTo(HaveOccurred())
	var versions []string
	for _, g := range groups.Groups {
		if g.Name == admissionregistrationv1.GroupName {
			for _, v := range g.Versions {
				versions = append(versions, v.Version)
			}
		}
	}
	Expect(versions).To(ContainElement("v1"))
	group := &metav1.APIGroup{}
	Expect(cluster.client.Discovery().RESTClient().Get().AbsPath("/apis/admissionregistration.k8s.io").Do(ctx).Into(group)).To(Succeed())
	Expect(group.Versions).To(ContainElement(HaveField("Version", "v1")))
	list, err := cluster.client.Discovery().ServerResourcesForGroupVersion(admissionregistrationv1.SchemeGroupVersion.String())
	Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, r := range list.APIResources {
		names = append(names, r.Name)
	}
	Expect(names).To(ContainElements(resources))
}

func labelsOf(selector string) map[string]string {
	set, err := metav1.ParseToLabelSelector(selector)
	Expect(err).NotTo(HaveOccurred())
	return set.MatchLabels
}

func conditionTypes(conditions []metav1.Condition) []string {
	var names []string
	for _, c := range conditions {
		names = append(names, c.Type)
	}
	return names
}

// waitForPatchedAnnotation reads the watch's events, each a modification, until one shows the
// annotation patched=true.
func waitForPatchedAnnotation(ctx context.Context, w watch.Interface) {
	GinkgoHelper()
	timeout := time.After(longWait)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			Expect(ok).To(BeTrue(), "the watch closed")
			Expect(ev.Type).To(Equal(watch.Modified))
			m, err := meta.Accessor(ev.Object)
			Expect(err).NotTo(HaveOccurred())
			if m.GetAnnotations()["patched"] == "true" {
				return
			}
		case <-timeout:
			Fail("no watch event with the patched annotation")
		case <-ctx.Done():
			Fail("spec ended waiting for the watch event")
		}
	}
}
