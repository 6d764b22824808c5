package conformance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Upstream's two CustomResourceConversionWebhook conformance specs
// (test/e2e/apimachinery/crd_conversion_webhook.go, v1.37). Upstream's converter runs as a pod
// behind a Service; here it runs in the test process, over TLS on 127.0.0.1 with a
// self-signed caBundle, registered by URL clientConfig (see admissionwebhook_test.go: only the
// skiff up the suite starts reaches it, elsewhere the specs skip).

// hostPortConverter is upstream's /crdconvert: v1 keeps "hostPort", v2 keeps "host" and "port".
func hostPortConverter() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review apiextensionsv1.ConversionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, fmt.Sprintf("bad ConversionReview: %v", err), http.StatusBadRequest)
			return
		}
		resp := &apiextensionsv1.ConversionResponse{UID: review.Request.UID, Result: metav1.Status{Status: metav1.StatusSuccess}}
		for _, raw := range review.Request.Objects {
			var obj map[string]any
			if err := json.Unmarshal(raw.Raw, &obj); err != nil {
				resp.Result = metav1.Status{Status: metav1.StatusFailure, Message: err.Error()}
				break
			}
			from := obj["apiVersion"].(string)
			switch to := review.Request.DesiredAPIVersion; {
			case from == to:
			case strings.HasSuffix(to, "/v2"):
				if hp, ok := obj["hostPort"].(string); ok {
					host, port, _ := strings.Cut(hp, ":")
					obj["host"], obj["port"] = host, port
					delete(obj, "hostPort")
				}
			case strings.HasSuffix(to, "/v1"):
				host, _ := obj["host"].(string)
				port, _ := obj["port"].(string)
				obj["hostPort"] = host + ":" + port
				delete(obj, "host")
				delete(obj, "port")
			}
			obj["apiVersion"] = review.Request.DesiredAPIVersion
			out, _ := json.Marshal(obj)
			resp.ConvertedObjects = append(resp.ConvertedObjects, runtimeRaw(out))
		}
		review.Response, review.Request = resp, nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&review)
	})
}

// conversionCRD is upstream's multi-version test CRD: v1 (stored) with hostPort, v2 with host
// and port, converted by the webhook at url.
func conversionCRD(url string, ca []byte) *apiextensionsv1.CustomResourceDefinition {
	crd := testCRD("E2eTestCrdWebhook", nil)
	str := apiextensionsv1.JSONSchemaProps{Type: "string"}
	version := func(name string, storage bool, fields ...string) apiextensionsv1.CustomResourceDefinitionVersion {
		props := map[string]apiextensionsv1.JSONSchemaProps{}
		for _, f := range fields {
			props[f] = str
		}
		return apiextensionsv1.CustomResourceDefinitionVersion{Name: name, Served: true, Storage: storage,
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: props}}}
	}
	crd.Spec.Versions = []apiextensionsv1.CustomResourceDefinitionVersion{version("v1", true, "hostPort"), version("v2", false, "host", "port")}
	u := url + "/crdconvert"
	crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{
		Strategy: apiextensionsv1.WebhookConverter,
		Webhook: &apiextensionsv1.WebhookConversion{
			ClientConfig:             &apiextensionsv1.WebhookClientConfig{URL: &u, CABundle: ca},
			ConversionReviewVersions: []string{"v1", "v1beta1"},
		},
	}
	return crd
}

func crdResource(crd *apiextensionsv1.CustomResourceDefinition, version string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: crd.Spec.Group, Version: version, Resource: crd.Spec.Names.Plural}
}

func conversionCR(crd *apiextensionsv1.CustomResourceDefinition, version, name string, fields map[string]any) *unstructured.Unstructured {
	obj := map[string]any{"apiVersion": crd.Spec.Group + "/" + version, "kind": crd.Spec.Names.Kind, "metadata": map[string]any{"name": name}}
	for k, v := range fields {
		obj[k] = v
	}
	return &unstructured.Unstructured{Object: obj}
}

var _ = Describe("[sig-api-machinery] CustomResourceConversionWebhook [Privileged:ClusterAdmin]", Label("api-machinery"), func() {
	It("should be able to convert from CR v1 to CR v2", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		url, ca := webhookServer(webhookPaths(map[string]http.Handler{"/crdconvert": hostPortConverter()}))
		crd := createCRD(ctx, conversionCRD(url, ca))

		By("Creating a v1 custom resource")
		_, err := cluster.dynamic.Resource(crdResource(crd, "v1")).Namespace(ns).Create(ctx,
			conversionCR(crd, "v1", "cr-instance-1", map[string]any{"hostPort": "localhost:8080"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		By("v2 custom resource should be converted")
		v2, err := cluster.dynamic.Resource(crdResource(crd, "v2")).Namespace(ns).Get(ctx, "cr-instance-1", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(v2.GetAPIVersion()).To(Equal(crd.Spec.Group + "/v2"))
		Expect(v2.Object).NotTo(HaveKey("hostPort"))
		Expect(v2.Object).To(HaveKeyWithValue("host", "localhost"))
		Expect(v2.Object).To(HaveKeyWithValue("port", "8080"))
	})

	It("should be able to convert a non homogeneous list of CRs", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		url, ca := webhookServer(webhookPaths(map[string]http.Handler{"/crdconvert": hostPortConverter()}))
		crd := createCRD(ctx, conversionCRD(url, ca))

		By("Creating a v1 custom resource")
		_, err := cluster.dynamic.Resource(crdResource(crd, "v1")).Namespace(ns).Create(ctx,
			conversionCR(crd, "v1", "cr-instance-1", map[string]any{"hostPort": "localhost:8080"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		By("Create a v2 custom resource")
		crds := extensionsClient().ApiextensionsV1().CustomResourceDefinitions()
		_, err = crds.Patch(ctx, crd.Name, types.JSONPatchType,
			[]byte(`[{"op":"replace","path":"/spec/versions/0/storage","value":false},{"op":"replace","path":"/spec/versions/1/storage","value":true}]`),
			metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(ctx, func(g Gomega) {
			_, err := cluster.dynamic.Resource(crdResource(crd, "v2")).Namespace(ns).Create(ctx,
				conversionCR(crd, "v2", "cr-instance-2", map[string]any{"host": "127.0.0.1", "port": "9090"}), metav1.CreateOptions{})
			g.Expect(err).NotTo(HaveOccurred())
		}).WithTimeout(shortWait).WithPolling(poll).Should(Succeed())

		By("List CRs in v1")
		v1, err := cluster.dynamic.Resource(crdResource(crd, "v1")).Namespace(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(v1.Items).To(HaveLen(2))
		Expect(v1.Items[0].Object).To(HaveKeyWithValue("hostPort", "localhost:8080"))
		Expect(v1.Items[1].Object).To(HaveKeyWithValue("hostPort", "127.0.0.1:9090"))

		By("List CRs in v2")
		v2, err := cluster.dynamic.Resource(crdResource(crd, "v2")).Namespace(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(v2.Items).To(HaveLen(2))
		Expect(v2.Items[0].Object).To(And(HaveKeyWithValue("host", "localhost"), HaveKeyWithValue("port", "8080")))
		Expect(v2.Items[1].Object).To(And(HaveKeyWithValue("host", "127.0.0.1"), HaveKeyWithValue("port", "9090")))
	})
})

// runtimeRaw wraps a converted object for the ConversionResponse.
func runtimeRaw(b []byte) runtime.RawExtension { return runtime.RawExtension{Raw: b} }
