package conformance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Upstream's AdmissionWebhook conformance specs (test/e2e/apimachinery/webhook.go, v1.37).
// Upstream deploys its webhook server as a pod behind a Service; these mirrors run the webhook
// server inside the test process instead (controller-runtime's webhook package, over TLS with
// a self-signed certificate given as caBundle) and register it by URL clientConfig on
// 127.0.0.1: the suite's `skiff up` runs in the test process's network namespace, so its API
// server reaches that address. Against a cluster given by --kubeconfig the API server cannot
// reach the test process, and these specs skip.

// The webhook servers log nothing: controller-runtime otherwise complains, with a stack,
// into the suite's output that no logger was set.
func init() { ctrllog.SetLogger(logr.Discard()) }

// requireWebhookServerReachable skips the spec when the cluster's API server cannot reach a
// webhook server in this process: only the skiff up the suite starts shares its network.
func requireWebhookServerReachable() {
	if cluster.skiff == nil {
		Skip("the webhook servers run in the test process, on 127.0.0.1, which only the skiff up the suite starts reaches")
	}
}

// webhookServer serves handler over TLS on 127.0.0.1 until the spec ends, and returns its URL
// and the certificate to trust as caBundle.
func webhookServer(handler http.Handler) (string, []byte) {
	GinkgoHelper()
	requireWebhookServerReachable()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "e2e-test-webhook"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	DeferCleanup(srv.Close)
	return srv.URL, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// admissionHandler is a controller-runtime admission webhook over f.
func admissionHandler(f func(admission.Request) admission.Response) http.Handler {
	return &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		return f(req)
	})}
}

// webhookPaths serves each handler at its path.
func webhookPaths(handlers map[string]http.Handler) http.Handler {
	mux := http.NewServeMux()
	for p, h := range handlers {
		mux.Handle(p, h)
	}
	return mux
}

// The data key and value upstream's webhook refuses in configmaps, and the container name it
// refuses in pods.
const (
	disallowedKey       = "webhook-e2e-test"
	disallowedValue     = "webhook-disallow"
	disallowedContainer = "webhook-disallow"
)

// denyingHandler refuses pods with the disallowed container and configmaps with the
// disallowed data, as upstream's sample webhook's /pods and /configmaps do.
func denyingHandler() http.Handler {
	return webhookPaths(map[string]http.Handler{
		"/pods": admissionHandler(func(req admission.Request) admission.Response {
			var pod corev1.Pod
			if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
				return admission.Errored(http.StatusBadRequest, err)
			}
			for _, c := range pod.Spec.Containers {
				if c.Name == disallowedContainer {
					return admission.Denied("the pod contains unwanted container name;")
				}
			}
			return admission.Allowed("")
		}),
		"/configmaps": admissionHandler(func(req admission.Request) admission.Response {
			var cm corev1.ConfigMap
			if err := json.Unmarshal(req.Object.Raw, &cm); err != nil {
				return admission.Errored(http.StatusBadRequest, err)
			}
			if cm.Data[disallowedKey] == disallowedValue {
				return admission.Denied("the configmap contains unwanted key and value")
			}
			return admission.Allowed("")
		}),
	})
}

// webhookRule is one rule on a core v1 resource.
func webhookRule(resource string, ops ...admissionregistrationv1.OperationType) []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: ops,
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{resource}},
	}}
}

// validatingWebhook calls url+path for rules on the namespace ns (labelled by policyNamespace).
func validatingWebhook(name, ns, url, path string, ca []byte, rules []admissionregistrationv1.RuleWithOperations) admissionregistrationv1.ValidatingWebhook {
	u := url + path
	return admissionregistrationv1.ValidatingWebhook{
		Name:                    name,
		ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &u, CABundle: ca},
		Rules:                   rules,
		NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{ns: "true"}},
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		AdmissionReviewVersions: []string{"v1", "v1beta1"},
		FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
	}
}

// mutatingWebhook is validatingWebhook's mutating twin.
func mutatingWebhook(name, ns, url, path string, ca []byte, rules []admissionregistrationv1.RuleWithOperations) admissionregistrationv1.MutatingWebhook {
	v := validatingWebhook(name, ns, url, path, ca, rules)
	return admissionregistrationv1.MutatingWebhook{Name: v.Name, ClientConfig: v.ClientConfig, Rules: v.Rules,
		NamespaceSelector: v.NamespaceSelector, SideEffects: v.SideEffects,
		AdmissionReviewVersions: v.AdmissionReviewVersions, FailurePolicy: v.FailurePolicy}
}

// createValidatingConfig creates the configuration and deletes it when the spec ends.
func createValidatingConfig(ctx context.Context, name string, webhooks ...admissionregistrationv1.ValidatingWebhook) *admissionregistrationv1.ValidatingWebhookConfiguration {
	GinkgoHelper()
	configs := cluster.client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	c, err := configs.Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e-framework": "skiff-conformance"}},
		Webhooks:   webhooks,
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		if err := configs.Delete(ctx, c.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	})
	return c
}

// createMutatingConfig creates the configuration and deletes it when the spec ends.
func createMutatingConfig(ctx context.Context, name string, webhooks ...admissionregistrationv1.MutatingWebhook) *admissionregistrationv1.MutatingWebhookConfiguration {
	GinkgoHelper()
	configs := cluster.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	c, err := configs.Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"e2e-framework": "skiff-conformance"}},
		Webhooks:   webhooks,
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		if err := configs.Delete(ctx, c.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	})
	return c
}

// disallowedConfigMap is a configmap upstream's webhook refuses.
func disallowedConfigMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{disallowedKey: disallowedValue}}
}

// configMapCreateDenied creates a disallowed configmap and says whether the webhook refused
// it; a configmap that got through is deleted again.
func configMapCreateDenied(ctx context.Context, ns string) (bool, error) {
	cms := cluster.client.CoreV1().ConfigMaps(ns)
	_, err := cms.Create(ctx, disallowedConfigMap("webhook-marker"), metav1.CreateOptions{})
	if err == nil {
		return false, cms.Delete(ctx, "webhook-marker", metav1.DeleteOptions{})
	}
	if apierrors.IsForbidden(err) {
		return true, nil
	}
	return false, err
}

// waitForConfigMapCreate waits until the webhook's verdict on a disallowed configmap is denied.
func waitForConfigMapCreate(ctx context.Context, ns string, denied bool) {
	GinkgoHelper()
	Eventually(ctx, func(g Gomega) {
		got, err := configMapCreateDenied(ctx, ns)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got).To(Equal(denied))
	}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
}

var _ = Describe("[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin]", Label("api-machinery"), func() {
	// upstream also refuses an update to a disallowed configmap, by PUT and by PATCH, and leaves
	// namespaces its selector does not match alone
	It("should be able to deny pod and configmap creation", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		url, ca := webhookServer(denyingHandler())
		createValidatingConfig(ctx, ns+"-deny",
			validatingWebhook("deny-unwanted-pod-container-name-and-label.k8s.io", ns, url, "/pods", ca, webhookRule("pods", admissionregistrationv1.Create)),
			validatingWebhook("deny-unwanted-configmap-data.k8s.io", ns, url, "/configmaps", ca,
				webhookRule("configmaps", admissionregistrationv1.Create, admissionregistrationv1.Update)))
		waitForConfigMapCreate(ctx, ns, true)

		By("creating a pod the webhook refuses")
		pod := pausePod("disallowed-pod", nil)
		pod.Spec.Containers[0].Name = disallowedContainer
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "pod create: %v", err)
		Expect(err.Error()).To(ContainSubstring("the pod contains unwanted container name"))

		By("creating a configmap the webhook refuses")
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		_, err = cms.Create(ctx, disallowedConfigMap("disallowed-configmap"), metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "configmap create: %v", err)
		Expect(err.Error()).To(ContainSubstring("the configmap contains unwanted key and value"))

		By("updating a configmap to data the webhook refuses, by PUT and by PATCH")
		allowed, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "allowed-configmap"}, Data: map[string]string{"admit": "this"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		allowed.Data[disallowedKey] = disallowedValue
		_, err = cms.Update(ctx, allowed, metav1.UpdateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "configmap update: %v", err)
		_, err = cms.Patch(ctx, allowed.Name, types.StrategicMergePatchType,
			[]byte(fmt.Sprintf(`{"data":{%q:%q}}`, disallowedKey, disallowedValue)), metav1.PatchOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "configmap patch: %v", err)

		By("creating the refused configmap in a namespace the webhook's selector does not match")
		other := newNamespace(ctx)
		_, err = cluster.client.CoreV1().ConfigMaps(other).Create(ctx, disallowedConfigMap("disallowed-configmap"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("should be able to deny attaching pod", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		url, ca := webhookServer(admissionHandler(func(req admission.Request) admission.Response {
			if req.Kind.Kind != "PodAttachOptions" {
				return admission.Errored(http.StatusBadRequest, fmt.Errorf("expected PodAttachOptions, got %s", req.Kind.Kind))
			}
			return admission.Denied(fmt.Sprintf("attaching to pod '%s' is not allowed", req.Name))
		}))
		createValidatingConfig(ctx, ns+"-deny-attach",
			validatingWebhook("deny-attaching-pod.k8s.io", ns, url, "/pods/attach", ca, webhookRule("pods/attach", admissionregistrationv1.Connect)))
		pod, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pausePod("to-be-attached-pod", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		By("attaching to the pod, as kubectl attach asks")
		Eventually(ctx, func(g Gomega) {
			err := cluster.client.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(pod.Name).SubResource("attach").
				Param("container", "pause").Param("stdin", "true").Param("stdout", "true").Param("tty", "true").Do(ctx).Error()
			g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "attach: %v", err)
			g.Expect(err.Error()).To(ContainSubstring("attaching to pod 'to-be-attached-pod' is not allowed"))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})

	It("should mutate configmap", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		// upstream's two stages: the second adds its key only after the first did
		url, ca := webhookServer(webhookPaths(map[string]http.Handler{
			"/mutating-configmaps":   configMapMutator("mutation-stage-1", ""),
			"/mutating-configmaps-2": configMapMutator("mutation-stage-2", "mutation-stage-1"),
		}))
		createMutatingConfig(ctx, ns+"-mutate-configmap",
			mutatingWebhook("adding-configmap-data-stage-1.k8s.io", ns, url, "/mutating-configmaps", ca, webhookRule("configmaps", admissionregistrationv1.Create)),
			mutatingWebhook("adding-configmap-data-stage-2.k8s.io", ns, url, "/mutating-configmaps-2", ca, webhookRule("configmaps", admissionregistrationv1.Create)))
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		Eventually(ctx, func(g Gomega) {
			cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "to-be-mutated-"},
				Data: map[string]string{"mutation-start": "yes"}}, metav1.CreateOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cm.Data).To(Equal(map[string]string{"mutation-start": "yes", "mutation-stage-1": "yes", "mutation-stage-2": "yes"}))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})

	It("should mutate pod and apply defaults after mutation", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		url, ca := webhookServer(admissionHandler(func(req admission.Request) admission.Response {
			var pod corev1.Pod
			if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
				return admission.Errored(http.StatusBadRequest, err)
			}
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Name: "webhook-added-init-container", Image: busyboxImage})
			out, err := json.Marshal(pod)
			if err != nil {
				return admission.Errored(http.StatusInternalServerError, err)
			}
			return admission.PatchResponseFromRaw(req.Object.Raw, out)
		}))
		createMutatingConfig(ctx, ns+"-mutate-pod",
			mutatingWebhook("adding-init-container.k8s.io", ns, url, "/mutating-pods", ca, webhookRule("pods", admissionregistrationv1.Create)))
		pods := cluster.client.CoreV1().Pods(ns)
		Eventually(ctx, func(g Gomega) {
			pod := pausePod("", nil)
			pod.GenerateName = "webhook-to-be-mutated-"
			pod, err := pods.Create(ctx, pod, metav1.CreateOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pod.Spec.InitContainers).To(HaveLen(1))
			init := pod.Spec.InitContainers[0]
			g.Expect(init.Name).To(Equal("webhook-added-init-container"))
			// the defaults are applied to what the webhook added
			g.Expect(init.TerminationMessagePolicy).To(Equal(corev1.TerminationMessageReadFile))
			g.Expect(init.TerminationMessagePath).To(Equal(corev1.TerminationMessagePathDefault))
			g.Expect(init.ImagePullPolicy).To(Equal(corev1.PullIfNotPresent))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
	})
})

// configMapMutator adds key: yes to a configmap's data, when it has after (or after is "").
func configMapMutator(key, after string) http.Handler {
	return admissionHandler(func(req admission.Request) admission.Response {
		var cm corev1.ConfigMap
		if err := json.Unmarshal(req.Object.Raw, &cm); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if _, ok := cm.Data[after]; after != "" && !ok {
			return admission.Allowed("")
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[key] = "yes"
		out, err := json.Marshal(cm)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		return admission.PatchResponseFromRaw(req.Object.Raw, out)
	})
}

// The behaviour and the API of the configurations themselves: timeouts, updates, patches,
// lists and collection deletes.
var _ = Describe("[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin]", Label("api-machinery"), func() {
	It("should honor timeout", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		// upstream's /always-allow-delay-5s
		url, ca := webhookServer(admissionHandler(func(admission.Request) admission.Response {
			time.Sleep(5 * time.Second)
			return admission.Allowed("")
		}))
		configs := cluster.client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		slow := func(policy admissionregistrationv1.FailurePolicyType, timeout *int32) {
			GinkgoHelper()
			w := validatingWebhook("allow-configmap-with-delay-webhook.k8s.io", ns, url, "/always-allow-delay-5s", ca,
				webhookRule("configmaps", admissionregistrationv1.Create))
			w.FailurePolicy, w.TimeoutSeconds = &policy, timeout
			createValidatingConfig(ctx, ns+"-slow", w)
		}
		cms := cluster.client.CoreV1().ConfigMaps(ns)
		createConfigMap := func() error {
			cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "slow-webhook-"}}, metav1.CreateOptions{})
			if err == nil {
				return cms.Delete(ctx, cm.Name, metav1.DeleteOptions{})
			}
			return err
		}
		remove := func() {
			GinkgoHelper()
			Expect(configs.Delete(ctx, ns+"-slow", metav1.DeleteOptions{})).To(Succeed())
			Eventually(ctx, createConfigMap).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		}

		By("Setting timeout (1s) shorter than webhook latency (5s)")
		slow(admissionregistrationv1.Fail, ptr.To[int32](1))
		Eventually(ctx, func(g Gomega) {
			err := createConfigMap()
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring("/always-allow-delay-5s?timeout=1s"))
			g.Expect(err.Error()).To(Or(ContainSubstring("context deadline exceeded"), ContainSubstring("timeout")))
		}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
		remove()

		By("Having no error when timeout is shorter than webhook latency and failure policy is ignore")
		slow(admissionregistrationv1.Ignore, ptr.To[int32](1))
		Expect(createConfigMap()).To(Succeed())
		remove()

		By("Having no error when timeout is longer than webhook latency")
		slow(admissionregistrationv1.Fail, ptr.To[int32](10))
		Expect(createConfigMap()).To(Succeed())
		remove()

		By("Having no error when timeout is empty (defaulted to 10s in v1)")
		slow(admissionregistrationv1.Fail, nil)
		Expect(createConfigMap()).To(Succeed())
	})

	It("patching/updating a validating webhook should work", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		url, ca := webhookServer(denyingHandler())
		configs := cluster.client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		c := createValidatingConfig(ctx, ns+"-validating",
			validatingWebhook("deny-unwanted-configmap-data.k8s.io", ns, url, "/configmaps", ca, webhookRule("configmaps", admissionregistrationv1.Create)))
		By("Creating a configMap that does not comply to the validation webhook rules")
		waitForConfigMapCreate(ctx, ns, true)

		By("Updating a validating webhook configuration's rules to not include the create operation")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			got, err := configs.Get(ctx, c.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			got.Webhooks[0].Rules[0].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Update}
			_, err = configs.Update(ctx, got, metav1.UpdateOptions{})
			return err
		})).To(Succeed())
		By("Creating a configMap that does not comply to the validation webhook rules")
		waitForConfigMapCreate(ctx, ns, false)

		By("Patching a validating webhook configuration's rules to include the create operation")
		_, err := configs.Patch(ctx, c.Name, types.JSONPatchType,
			[]byte(`[{"op":"replace","path":"/webhooks/0/rules/0/operations","value":["CREATE"]}]`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		By("Creating a configMap that does not comply to the validation webhook rules")
		waitForConfigMapCreate(ctx, ns, true)
	})

	It("patching/updating a mutating webhook should work", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		url, ca := webhookServer(configMapMutator("mutation-stage-1", ""))
		configs := cluster.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
		c := createMutatingConfig(ctx, ns+"-mutating",
			mutatingWebhook("adding-configmap-data-stage-1.k8s.io", ns, url, "/mutating-configmaps", ca, webhookRule("configmaps", admissionregistrationv1.Create)))
		waitForConfigMapMutation(ctx, ns, true)

		By("Updating a mutating webhook configuration's rules to not include the create operation")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			got, err := configs.Get(ctx, c.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			got.Webhooks[0].Rules[0].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Update}
			_, err = configs.Update(ctx, got, metav1.UpdateOptions{})
			return err
		})).To(Succeed())
		By("Creating a configMap that should not be mutated")
		waitForConfigMapMutation(ctx, ns, false)

		By("Patching a mutating webhook configuration's rules to include the create operation")
		_, err := configs.Patch(ctx, c.Name, types.JSONPatchType,
			[]byte(`[{"op":"replace","path":"/webhooks/0/rules/0/operations","value":["CREATE"]}]`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		By("Creating a configMap that should be mutated")
		waitForConfigMapMutation(ctx, ns, true)
	})

	It("listing validating webhooks should work", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		url, ca := webhookServer(denyingHandler())
		configs := cluster.client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		selector := "e2e-list-test-uuid=" + ns
		By("Creating 10 webhook configurations")
		for i := 0; i < 10; i++ {
			c := createValidatingConfig(ctx, fmt.Sprintf("%s-list-%d", ns, i),
				validatingWebhook("deny-unwanted-configmap-data.k8s.io", ns, url, "/configmaps", ca, webhookRule("configmaps", admissionregistrationv1.Create)))
			_, err := configs.Patch(ctx, c.Name, types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"labels":{"e2e-list-test-uuid":%q}}}`, ns)), metav1.PatchOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		By("Listing all of the created validation webhooks")
		list, err := configs.List(ctx, metav1.ListOptions{LabelSelector: selector})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(10))
		By("Creating a configMap that does not comply to the validation webhook rules")
		waitForConfigMapCreate(ctx, ns, true)
		By("Deleting the collection of validation webhooks")
		Expect(configs.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: selector})).To(Succeed())
		list, err = configs.List(ctx, metav1.ListOptions{LabelSelector: selector})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
		By("Creating a configMap that does not comply to the validation webhook rules")
		waitForConfigMapCreate(ctx, ns, false)
	})

	It("listing mutating webhooks should work", func(ctx SpecContext) {
		ns := policyNamespace(ctx)
		url, ca := webhookServer(configMapMutator("mutation-stage-1", ""))
		configs := cluster.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
		selector := "e2e-list-test-uuid=" + ns
		By("Creating 10 webhook configurations")
		for i := 0; i < 10; i++ {
			c := createMutatingConfig(ctx, fmt.Sprintf("%s-list-%d", ns, i),
				mutatingWebhook("adding-configmap-data-stage-1.k8s.io", ns, url, "/mutating-configmaps", ca, webhookRule("configmaps", admissionregistrationv1.Create)))
			_, err := configs.Patch(ctx, c.Name, types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"labels":{"e2e-list-test-uuid":%q}}}`, ns)), metav1.PatchOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		By("Listing all of the created mutating webhooks")
		list, err := configs.List(ctx, metav1.ListOptions{LabelSelector: selector})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(10))
		By("Creating a configMap that should be mutated")
		waitForConfigMapMutation(ctx, ns, true)
		By("Deleting the collection of mutating webhooks")
		Expect(configs.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: selector})).To(Succeed())
		list, err = configs.List(ctx, metav1.ListOptions{LabelSelector: selector})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
		By("Creating a configMap that should not be mutated")
		waitForConfigMapMutation(ctx, ns, false)
	})
})

// waitForConfigMapMutation creates (and deletes) configmaps until one comes back mutated or
// not, as mutated says.
func waitForConfigMapMutation(ctx context.Context, ns string, mutated bool) {
	GinkgoHelper()
	cms := cluster.client.CoreV1().ConfigMaps(ns)
	Eventually(ctx, func(g Gomega) {
		// a name of its own, not generateName: a webhook's matchConditions may look at the
		// name, which admission sees before a generated one is chosen
		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "to-be-mutated-" + utilrand.String(5)}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cms.Delete(ctx, cm.Name, metav1.DeleteOptions{})).To(Succeed())
		_, got := cm.Data["mutation-stage-1"]
		g.Expect(got).To(Equal(mutated))
	}).WithTimeout(longWait).WithPolling(poll).Should(Succeed())
}
