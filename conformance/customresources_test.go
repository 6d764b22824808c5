package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
)

// These specs mirror upstream's CustomResourceDefinition conformance tests
// (test/e2e/apimachinery/custom_resource_definition.go, crd_publish_openapi.go, crd_watch.go,
// crd_selectable_fields.go): each defines kinds of its own, in a group of its own, and deletes
// them when it ends.

func extensionsClient() apiextensionsclient.Interface {
	return apiextensionsclient.NewForConfigOrDie(cluster.config)
}

// testCRD is a namespaced definition in a group of its own, served in v1 (the storage
// version) with the given schema, and a status subresource.
func testCRD(kind string, schema *apiextensionsv1.JSONSchemaProps) *apiextensionsv1.CustomResourceDefinition {
	group := "crd-" + rand.String(6) + ".conformance.example.com"
	plural := strings.ToLower(kind) + "s"
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group, Labels: map[string]string{"e2e-framework": "skiff-conformance"}},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Singular: strings.ToLower(kind), Kind: kind, ListKind: kind + "List"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema:       &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: schema},
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			}},
		},
	}
}

// openSchema keeps every field: upstream's e2e CRDs without a schema of their own.
func openSchema() *apiextensionsv1.JSONSchemaProps {
	return &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}
}

// createCRD creates crd, deletes it when the spec ends, and waits until it is Established and
// its objects can be listed in every served version.
func createCRD(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.CustomResourceDefinition {
	GinkgoHelper()
	crds := extensionsClient().ApiextensionsV1().CustomResourceDefinitions()
	_, err := crds.Create(ctx, crd, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		if err := crds.Delete(ctx, crd.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	})
	var got *apiextensionsv1.CustomResourceDefinition
	Eventually(ctx, func(g Gomega) {
		got, err = crds.Get(ctx, crd.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(crdCondition(got, apiextensionsv1.Established)).To(Equal(apiextensionsv1.ConditionTrue))
		for _, v := range got.Spec.Versions {
			if v.Served {
				_, err := cluster.dynamic.Resource(schema.GroupVersionResource{Group: crd.Spec.Group, Version: v.Name, Resource: crd.Spec.Names.Plural}).
					List(ctx, metav1.ListOptions{Limit: 1})
				g.Expect(err).NotTo(HaveOccurred())
			}
		}
	}).WithTimeout(shortWait).WithPolling(poll).Should(Succeed())
	return got
}

func crdCondition(crd *apiextensionsv1.CustomResourceDefinition, t apiextensionsv1.CustomResourceDefinitionConditionType) apiextensionsv1.ConditionStatus {
	for _, c := range crd.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func resourceOf(crd *apiextensionsv1.CustomResourceDefinition, version string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: crd.Spec.Group, Version: version, Resource: crd.Spec.Names.Plural}
}

func customObject(crd *apiextensionsv1.CustomResourceDefinition, version, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": crd.Spec.Group + "/" + version, "kind": crd.Spec.Names.Kind,
		"metadata": map[string]any{"name": name}, "spec": spec,
	}}
}

var _ = Describe("[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin]", Label("api-machinery"), func() {
	Describe("Simple CustomResourceDefinition", func() {
		It("creating/deleting custom resource definition objects works", func(ctx SpecContext) {
			crd := createCRD(ctx, testCRD("Noxu", openSchema()))
			Expect(crd.Status.AcceptedNames.Plural).To(Equal("noxus"))
			crds := extensionsClient().ApiextensionsV1().CustomResourceDefinitions()
			Expect(crds.Delete(ctx, crd.Name, metav1.DeleteOptions{})).To(Succeed())
			Eventually(ctx, func() bool {
				_, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
				return apierrors.IsNotFound(err)
			}).WithTimeout(shortWait).WithPolling(poll).Should(BeTrue())
		})

		It("listing custom resource definition objects works", func(ctx SpecContext) {
			label := "e2e-list-test-" + rand.String(5)
			var names []string
			for range 3 {
				crd := testCRD("Noxu", openSchema())
				crd.Labels[label] = "true"
				names = append(names, createCRD(ctx, crd).Name)
			}
			crds := extensionsClient().ApiextensionsV1().CustomResourceDefinitions()
			list, err := crds.List(ctx, metav1.ListOptions{LabelSelector: label + "=true"})
			Expect(err).NotTo(HaveOccurred())
			var listed []string
			for _, c := range list.Items {
				listed = append(listed, c.Name)
			}
			Expect(listed).To(ConsistOf(names))

			Expect(crds.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: label + "=true"})).To(Succeed())
			Eventually(ctx, func() int {
				list, err := crds.List(ctx, metav1.ListOptions{LabelSelector: label + "=true"})
				Expect(err).NotTo(HaveOccurred())
				return len(list.Items)
			}).WithTimeout(shortWait).WithPolling(poll).Should(BeZero())
		})

		It("getting/updating/patching custom resource definition status sub-resource works", func(ctx SpecContext) {
			crd := createCRD(ctx, testCRD("Noxu", openSchema()))
			crds := extensionsClient().ApiextensionsV1().CustomResourceDefinitions()
			got, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())

			got.Status.Conditions = append(got.Status.Conditions, apiextensionsv1.CustomResourceDefinitionCondition{
				Type: "StatusUpdated", Status: apiextensionsv1.ConditionTrue, Reason: "E2E", Message: "Set from an e2e test",
			})
			updated, err := crds.UpdateStatus(ctx, got, metav1.UpdateOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(crdCondition(updated, "StatusUpdated")).To(Equal(apiextensionsv1.ConditionTrue))

			patch := `{"status":{"conditions":[{"type":"StatusPatched","status":"True","reason":"E2E","message":"Set by a patch"}]}}`
			patched, err := crds.Patch(ctx, crd.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
			Expect(err).NotTo(HaveOccurred())
			Expect(crdCondition(patched, "StatusPatched")).To(Equal(apiextensionsv1.ConditionTrue))

			// the status subresource changes nothing of the spec
			specPatch := `{"spec":{"names":{"shortNames":["nx"]}}}`
			afterSpec, err := crds.Patch(ctx, crd.Name, types.MergePatchType, []byte(specPatch), metav1.PatchOptions{}, "status")
			Expect(err).NotTo(HaveOccurred())
			Expect(afterSpec.Spec.Names.ShortNames).To(BeEmpty())
		})
	})

	It("should include custom resource definition resources in discovery documents", func(ctx SpecContext) {
		groups, err := cluster.client.Discovery().ServerGroups()
		Expect(err).NotTo(HaveOccurred())
		var found *metav1.APIGroup
		for i := range groups.Groups {
			if groups.Groups[i].Name == apiextensionsv1.GroupName {
				found = &groups.Groups[i]
			}
		}
		Expect(found).NotTo(BeNil(), "apiextensions.k8s.io in /apis")
		Expect(found.PreferredVersion.GroupVersion).To(Equal("apiextensions.k8s.io/v1"))
		Expect(found.Versions).To(ContainElement(metav1.GroupVersionForDiscovery{GroupVersion: "apiextensions.k8s.io/v1", Version: "v1"}))

		resources, err := cluster.client.Discovery().ServerResourcesForGroupVersion("apiextensions.k8s.io/v1")
		Expect(err).NotTo(HaveOccurred())
		var crdResource *metav1.APIResource
		for i := range resources.APIResources {
			if resources.APIResources[i].Name == "customresourcedefinitions" {
				crdResource = &resources.APIResources[i]
			}
		}
		Expect(crdResource).NotTo(BeNil(), "customresourcedefinitions in apiextensions.k8s.io/v1")
		Expect(crdResource.Namespaced).To(BeFalse())
		Expect(crdResource.Kind).To(Equal("CustomResourceDefinition"))
		Expect(crdResource.ShortNames).To(ContainElement("crd"))

		// and a definition's own group, version and resource, with its subresource
		crd := createCRD(ctx, testCRD("Noxu", openSchema()))
		Eventually(ctx, func(g Gomega) {
			own, err := cluster.client.Discovery().ServerResourcesForGroupVersion(crd.Spec.Group + "/v1")
			g.Expect(err).NotTo(HaveOccurred())
			var names []string
			for _, r := range own.APIResources {
				names = append(names, r.Name)
			}
			g.Expect(names).To(ConsistOf("noxus", "noxus/status"))
		}).WithTimeout(shortWait).WithPolling(poll).Should(Succeed())
	})

	It("custom resource defaulting for requests and from storage works", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		schemaWithDefault := &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"a": {Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"A"`)}},
		}}
		crd := createCRD(ctx, testCRD("Noxu", schemaWithDefault))
		noxus := cluster.dynamic.Resource(resourceOf(crd, "v1")).Namespace(ns)

		// defaulting on a request
		created, err := noxus.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": crd.Spec.Group + "/v1", "kind": "Noxu", "metadata": map[string]any{"name": "foo"},
		}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(created.Object).To(HaveKeyWithValue("a", "A"))

		// a new default applies to what storage returns, without a write
		crds := extensionsClient().ApiextensionsV1().CustomResourceDefinitions()
		Eventually(ctx, func() error {
			latest, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			latest.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["b"] = apiextensionsv1.JSONSchemaProps{Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"B"`)}}
			_, err = crds.Update(ctx, latest, metav1.UpdateOptions{})
			return err
		}).WithTimeout(shortWait).WithPolling(poll).Should(Succeed())
		Eventually(ctx, func(g Gomega) {
			got, err := noxus.Get(ctx, "foo", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Object).To(HaveKeyWithValue("b", "B"))
			g.Expect(got.GetResourceVersion()).To(Equal(created.GetResourceVersion()))
		}).WithTimeout(shortWait).WithPolling(poll).Should(Succeed())
	})
})

// openAPIV2Definitions returns the definitions the cluster's /openapi/v2 publishes.
func openAPIV2Definitions(ctx context.Context) map[string]json.RawMessage {
	GinkgoHelper()
	raw, err := cluster.client.Discovery().RESTClient().Get().AbsPath("/openapi/v2").SetHeader("Accept", "application/json").DoRaw(ctx)
	Expect(err).NotTo(HaveOccurred())
	var doc struct {
		Definitions map[string]json.RawMessage `json:"definitions"`
	}
	Expect(json.Unmarshal(raw, &doc)).To(Succeed())
	return doc.Definitions
}

// definitionName is upstream's OpenAPI name of a custom resource kind: the group's labels
// reversed, the version and the kind.
func definitionName(group, version, kind string) string {
	labels := strings.Split(group, ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".") + "." + version + "." + kind
}

func waitForDefinition(ctx context.Context, name string, published bool) {
	GinkgoHelper()
	Eventually(ctx, func() bool {
		_, ok := openAPIV2Definitions(ctx)[name]
		return ok
	}).WithTimeout(shortWait).WithPolling(poll).Should(Equal(published), "definition %s published", name)
}

var _ = Describe("[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin]", Label("api-machinery"), func() {
	It("works for CRD with validation schema", func(ctx SpecContext) {
		crd := createCRD(ctx, testCRD("Foo", &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"spec": {Type: "object", Description: "Specification of Foo", Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"bars": {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", Required: []string{"name"}, Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"name": {Type: "string", Description: "Name of Bar."},
						"age":  {Type: "string", Description: "Age of Bar."},
					},
				}}},
			}},
			"status": {Type: "object", Description: "Status of Foo"},
		}}))
		name := definitionName(crd.Spec.Group, "v1", "Foo")
		waitForDefinition(ctx, name, true)
		var def struct {
			Properties map[string]struct {
				Description string `json:"description"`
			} `json:"properties"`
			GVK []map[string]string `json:"x-kubernetes-group-version-kind"`
		}
		Expect(json.Unmarshal(openAPIV2Definitions(ctx)[name], &def)).To(Succeed())
		Expect(def.Properties).To(HaveKey("apiVersion"))
		Expect(def.Properties).To(HaveKey("metadata"))
		Expect(def.Properties["spec"].Description).To(Equal("Specification of Foo"))
		Expect(def.GVK).To(ContainElement(map[string]string{"group": crd.Spec.Group, "version": "v1", "kind": "Foo"}))

		// what the schema refuses, the server refuses; what it allows is kept
		ns := newNamespace(ctx)
		foos := cluster.dynamic.Resource(resourceOf(crd, "v1")).Namespace(ns)
		_, err := foos.Create(ctx, customObject(crd, "v1", "bad", map[string]any{"bars": []any{map[string]any{"age": "10"}}}), metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "create without the required name: %v", err)
		Expect(err.Error()).To(ContainSubstring("spec.bars[0].name: Required value"))
		_, err = foos.Create(ctx, customObject(crd, "v1", "good", map[string]any{"bars": []any{map[string]any{"name": "test-bar"}}}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("works for multiple CRDs of same group and version but different kinds", func(ctx SpecContext) {
		first := createCRD(ctx, testCRD("Foo", openSchema()))
		second := testCRD("Bar", openSchema())
		second.Spec.Group = first.Spec.Group
		second.Name = "bars." + first.Spec.Group
		createCRD(ctx, second)
		waitForDefinition(ctx, definitionName(first.Spec.Group, "v1", "Foo"), true)
		waitForDefinition(ctx, definitionName(first.Spec.Group, "v1", "Bar"), true)
	})

	It("removes definition from spec when one version gets changed to not be served", func(ctx SpecContext) {
		crd := testCRD("Foo", openSchema())
		v2 := crd.Spec.Versions[0]
		v2.Name, v2.Storage = "v2", false
		crd.Spec.Versions = append(crd.Spec.Versions, v2)
		crd = createCRD(ctx, crd)
		waitForDefinition(ctx, definitionName(crd.Spec.Group, "v1", "Foo"), true)
		waitForDefinition(ctx, definitionName(crd.Spec.Group, "v2", "Foo"), true)

		crds := extensionsClient().ApiextensionsV1().CustomResourceDefinitions()
		Eventually(ctx, func() error {
			latest, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			latest.Spec.Versions[1].Served = false
			_, err = crds.Update(ctx, latest, metav1.UpdateOptions{})
			return err
		}).WithTimeout(shortWait).WithPolling(poll).Should(Succeed())
		waitForDefinition(ctx, definitionName(crd.Spec.Group, "v2", "Foo"), false)
		waitForDefinition(ctx, definitionName(crd.Spec.Group, "v1", "Foo"), true)
	})
})

var _ = Describe("[sig-api-machinery] CustomResourceDefinition Watch [Privileged:ClusterAdmin]", Label("api-machinery"), func() {
	It("watch on custom resource definition objects", func(ctx SpecContext) {
		crd := testCRD("Noxu", openSchema())
		crd.Spec.Scope = apiextensionsv1.ClusterScoped
		crd = createCRD(ctx, crd)
		noxus := cluster.dynamic.Resource(resourceOf(crd, "v1"))
		w, err := noxus.Watch(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		expect := func(t watch.EventType, name string, check func(*unstructured.Unstructured)) {
			GinkgoHelper()
			ev := nextEvent(w)
			Expect(ev.Type).To(Equal(t))
			obj := ev.Object.(*unstructured.Unstructured)
			Expect(obj.GetName()).To(Equal(name))
			if check != nil {
				check(obj)
			}
		}
		_, err = noxus.Create(ctx, customObject(crd, "v1", "name1", map[string]any{"content": map[string]any{"key": "value"}}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expect(watch.Added, "name1", nil)
		_, err = noxus.Create(ctx, customObject(crd, "v1", "name2", map[string]any{"content": map[string]any{"key": "value"}}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expect(watch.Added, "name2", nil)

		_, err = noxus.Patch(ctx, "name1", types.MergePatchType, []byte(`{"dummy":"test"}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		expect(watch.Modified, "name1", func(o *unstructured.Unstructured) { Expect(o.Object).To(HaveKeyWithValue("dummy", "test")) })
		_, err = noxus.Patch(ctx, "name2", types.MergePatchType, []byte(`{"dummy":"test"}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		expect(watch.Modified, "name2", nil)

		Expect(noxus.Delete(ctx, "name1", metav1.DeleteOptions{})).To(Succeed())
		expect(watch.Deleted, "name1", nil)
		Expect(noxus.Delete(ctx, "name2", metav1.DeleteOptions{})).To(Succeed())
		expect(watch.Deleted, "name2", nil)
	})
})

var _ = Describe("[sig-api-machinery] CustomResourceFieldSelectors [Privileged:ClusterAdmin]", Label("api-machinery"), func() {
	It("MUST list and watch custom resources matching the field selector", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		// v1 selects by color and quantity, v2 by color and size, each in a schema of its own
		crd := testCRD("Shirt", &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"color": {Type: "string"}, "quantity": {Type: "integer"}, "size": {Type: "string"},
		}})
		v := *crd.Spec.Versions[0].DeepCopy()
		v.Name, v.Storage = "v2", false
		v.Schema.OpenAPIV3Schema.Properties["size"] = apiextensionsv1.JSONSchemaProps{Type: "string", Description: "the size in v2"}
		crd.Spec.Versions[0].SelectableFields = []apiextensionsv1.SelectableField{{JSONPath: ".color"}, {JSONPath: ".quantity"}}
		v.SelectableFields = []apiextensionsv1.SelectableField{{JSONPath: ".color"}, {JSONPath: ".size"}}
		crd.Spec.Versions = append(crd.Spec.Versions, v)
		crd = createCRD(ctx, crd)

		shirts := cluster.dynamic.Resource(resourceOf(crd, "v1")).Namespace(ns)
		w, err := shirts.Watch(ctx, metav1.ListOptions{FieldSelector: "color=blue"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		for _, s := range []struct {
			name, color, size string
			quantity          int64
		}{{"shirt1", "blue", "S", 1}, {"shirt2", "blue", "M", 2}, {"shirt3", "green", "M", 3}} {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": crd.Spec.Group + "/v1", "kind": "Shirt", "metadata": map[string]any{"name": s.name},
				"color": s.color, "quantity": s.quantity, "size": s.size,
			}}
			_, err := shirts.Create(ctx, obj, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		names := func(client dynamic.ResourceInterface, selector string) []string {
			GinkgoHelper()
			list, err := client.List(ctx, metav1.ListOptions{FieldSelector: selector})
			Expect(err).NotTo(HaveOccurred())
			var out []string
			for _, it := range list.Items {
				out = append(out, it.GetName())
			}
			return out
		}
		Expect(names(shirts, "color=blue")).To(ConsistOf("shirt1", "shirt2"))
		Expect(names(shirts, "quantity=3")).To(ConsistOf("shirt3"))
		Expect(names(shirts, "color=blue,quantity=2")).To(ConsistOf("shirt2"))
		shirtsV2 := cluster.dynamic.Resource(resourceOf(crd, "v2")).Namespace(ns)
		Expect(names(shirtsV2, "size=M")).To(ConsistOf("shirt2", "shirt3"))

		// a field only the other version selects by is refused
		_, err = shirtsV2.List(ctx, metav1.ListOptions{FieldSelector: "quantity=1"})
		Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "quantity in v2: %v", err)

		// the watch sees only blue shirts, and a shirt that stops being blue leaves it
		seen := []string{}
		for range 2 {
			ev := nextEvent(w)
			seen = append(seen, fmt.Sprintf("%s %s", ev.Type, ev.Object.(*unstructured.Unstructured).GetName()))
		}
		Expect(seen).To(ConsistOf("ADDED shirt1", "ADDED shirt2"))
		_, err = shirts.Patch(ctx, "shirt1", types.MergePatchType, []byte(`{"color":"green"}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		ev := nextEvent(w)
		Expect(ev.Type).To(Equal(watch.Deleted))
		Expect(ev.Object.(*unstructured.Unstructured).GetName()).To(Equal("shirt1"))
	})
})
