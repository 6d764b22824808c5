package conformance

import (
	"encoding/json"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
)

var _ = Describe("[sig-cli] Kubectl client", Label("kubectl"), func() {
	It("should create, get, label, annotate, describe and delete a configmap", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		Expect(mustKubectl(ctx, "-n", ns, "create", "configmap", "everyday", "--from-literal=greeting=hello")).To(ContainSubstring("configmap/everyday created"))
		Expect(mustKubectl(ctx, "-n", ns, "get", "configmap", "everyday", "-o", "jsonpath={.data.greeting}")).To(Equal("hello"))

		out := mustKubectl(ctx, "-n", ns, "get", "configmaps")
		Expect(strings.Fields(strings.SplitN(out, "\n", 2)[0])).To(Equal([]string{"NAME", "DATA", "AGE"}))
		Expect(out).To(MatchRegexp(`(?m)^everyday\s+1\s+`))

		Expect(mustKubectl(ctx, "-n", ns, "label", "configmap", "everyday", "color=blue")).To(ContainSubstring("configmap/everyday labeled"))
		Expect(mustKubectl(ctx, "-n", ns, "annotate", "configmap", "everyday", "note=kept")).To(ContainSubstring("configmap/everyday annotated"))
		Expect(strings.TrimSpace(mustKubectl(ctx, "-n", ns, "get", "cm", "-l", "color=blue", "-o", "name"))).To(Equal("configmap/everyday"))

		var cm corev1.ConfigMap
		Expect(json.Unmarshal([]byte(mustKubectl(ctx, "-n", ns, "get", "cm", "everyday", "-o", "json")), &cm)).To(Succeed())
		Expect(cm.Labels).To(HaveKeyWithValue("color", "blue"))
		Expect(cm.Annotations).To(HaveKeyWithValue("note", "kept"))

		desc := mustKubectl(ctx, "-n", ns, "describe", "configmap", "everyday")
		Expect(desc).To(MatchRegexp(`Name:\s+everyday`))
		Expect(desc).To(ContainSubstring("greeting"))

		Expect(mustKubectl(ctx, "-n", ns, "delete", "configmap", "everyday")).To(ContainSubstring(`configmap "everyday" deleted`))
		_, err := kubectl(ctx, "", "-n", ns, "get", "configmap", "everyday")
		Expect(err).To(MatchError(ContainSubstring(`configmaps "everyday" not found`)))
	})

	It("should create and then configure an object with kubectl apply", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		manifest := func(value string) string {
			return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: " + ns + "\ndata:\n  key: " + value + "\n"
		}
		out, err := kubectl(ctx, manifest("one"), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("configmap/applied created"))
		out, err = kubectl(ctx, manifest("two"), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("configmap/applied configured"))
		out, err = kubectl(ctx, manifest("three"), "apply", "--server-side", "--force-conflicts", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("configmap/applied serverside-applied"))
		Expect(mustKubectl(ctx, "-n", ns, "get", "cm", "applied", "-o", "jsonpath={.data.key}")).To(Equal("three"))
		out, err = kubectl(ctx, manifest("three"), "diff", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), "kubectl diff of an unchanged manifest exits 0")
		Expect(out).To(BeEmpty())
	})

	It("should patch and replace objects", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		mustKubectl(ctx, "-n", ns, "create", "configmap", "patched", "--from-literal=a=1")
		Expect(mustKubectl(ctx, "-n", ns, "patch", "configmap", "patched", "-p", `{"data":{"b":"2"}}`)).To(ContainSubstring("configmap/patched patched"))
		Expect(mustKubectl(ctx, "-n", ns, "patch", "configmap", "patched", "--type=json", "-p", `[{"op":"remove","path":"/data/a"}]`)).To(ContainSubstring("patched"))
		Expect(mustKubectl(ctx, "-n", ns, "get", "cm", "patched", "-o", "jsonpath={.data}")).To(MatchJSON(`{"b":"2"}`))
		yaml := mustKubectl(ctx, "-n", ns, "get", "cm", "patched", "-o", "yaml")
		out, err := kubectl(ctx, strings.Replace(yaml, `b: "2"`, `b: "3"`, 1), "replace", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("configmap/patched replaced"))
		Expect(mustKubectl(ctx, "-n", ns, "get", "cm", "patched", "-o", "jsonpath={.data.b}")).To(Equal("3"))
	})

	It("should list API resources and explain a field from the OpenAPI schema", func(ctx SpecContext) {
		out := mustKubectl(ctx, "api-resources")
		Expect(out).To(MatchRegexp(`(?m)^deployments\s+deploy\s+apps/v1\s+true\s+Deployment`))
		Expect(out).To(MatchRegexp(`(?m)^pods\s+po\s+v1\s+true\s+Pod`))
		Expect(out).To(MatchRegexp(`(?m)^nodes\s+no\s+v1\s+false\s+Node`))
		explain := mustKubectl(ctx, "explain", "pods.spec.containers.image")
		Expect(explain).To(ContainSubstring("FIELD: image <string>"))
		Expect(mustKubectl(ctx, "api-versions")).To(ContainSubstring("apps/v1"))
	})

	It("should report the server version, identity and permissions", func(ctx SpecContext) {
		Expect(mustKubectl(ctx, "version")).To(ContainSubstring("Server Version: v1."))
		Expect(strings.TrimSpace(mustKubectl(ctx, "auth", "can-i", "create", "configmaps"))).To(Equal("yes"))
		Expect(mustKubectl(ctx, "get", "namespaces", "default", "-o", "name")).To(ContainSubstring("namespace/default"))
	})

	It("should say that a new namespace has no pods", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		out, err := kubectl(ctx, "", "-n", ns, "get", "pods")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(BeEmpty(), "the message goes to stderr")
	})
})
