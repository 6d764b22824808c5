package conformance

import (
	"encoding/json"
	"errors"
	"os/exec"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
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

var _ = Describe("[sig-cli] Kubectl client", Label("kubectl"), func() {
	It("should print pods as JSON, YAML, a wide table and custom columns", func(ctx SpecContext) {
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		pod := pausePod("printed", map[string]string{"app": "printed"})
		pod.Spec.NodeName = node.Name
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		mustKubectl(ctx, "-n", ns, "wait", "--for=condition=Ready", "pod/printed", "--timeout=120s")

		var list corev1.List
		Expect(json.Unmarshal([]byte(mustKubectl(ctx, "-n", ns, "get", "pods", "-o", "json")), &list)).To(Succeed())
		Expect(list.Kind).To(Equal("List"))
		Expect(list.Items).To(HaveLen(1))
		var one corev1.Pod
		Expect(json.Unmarshal(list.Items[0].Raw, &one)).To(Succeed())
		Expect(one.Name).To(Equal("printed"))

		var fromYAML corev1.Pod
		Expect(yaml.Unmarshal([]byte(mustKubectl(ctx, "-n", ns, "get", "pod", "printed", "-o", "yaml")), &fromYAML)).To(Succeed())
		Expect(fromYAML.Kind).To(Equal("Pod"))
		Expect(fromYAML.Spec.NodeName).To(Equal(node.Name))
		Expect(fromYAML.Labels).To(HaveKeyWithValue("app", "printed"))

		wide := strings.Split(strings.TrimSpace(mustKubectl(ctx, "-n", ns, "get", "pods", "-o", "wide")), "\n")
		Expect(wide).To(HaveLen(2))
		Expect(regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(wide[0]), -1)).To(Equal(
			[]string{"NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"}))
		Expect(strings.Fields(wide[1])).To(HaveExactElements("printed", "1/1", "Running", "0", Not(BeEmpty()), fromYAML.Status.PodIP, node.Name, "<none>", "<none>"))

		custom := mustKubectl(ctx, "-n", ns, "get", "pods", "-o", "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[*].image,PHASE:.status.phase")
		Expect(strings.Split(strings.TrimSpace(custom), "\n")).To(HaveExactElements(
			MatchRegexp(`^NAME\s+IMAGE\s+PHASE$`),
			MatchRegexp(`^printed\s+`+regexp.QuoteMeta(pauseImage)+`\s+Running$`)))
	})

	It("should wait for a condition, a JSONPath value and a deletion with kubectl wait", func(ctx SpecContext) {
		node := schedulableNode(ctx)
		ns := newNamespace(ctx)
		pod := pausePod("awaited", nil)
		pod.Spec.NodeName = node.Name
		// the finalizer holds the deleted pod until the spec lets it go, so that the first wait
		// for its deletion surely finds it still there
		pod.Finalizers = []string{"conformance.skiff.dev/hold"}
		_, err := cluster.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { // lest a failed spec leave its namespace terminating forever
			_, err := cluster.client.CoreV1().Pods(ns).Patch(ctx, "awaited", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				Expect(err).NotTo(HaveOccurred())
			}
		})
		Expect(mustKubectl(ctx, "-n", ns, "wait", "--for=condition=Ready", "pod/awaited", "--timeout=120s")).To(ContainSubstring("pod/awaited condition met"))
		Expect(mustKubectl(ctx, "-n", ns, "wait", "--for=jsonpath={.status.phase}=Running", "pod/awaited", "--timeout=120s")).To(ContainSubstring("pod/awaited condition met"))

		_, err = kubectl(ctx, "", "-n", ns, "wait", "--for=condition=Ready=false", "pod/awaited", "--timeout=1s")
		Expect(err).To(MatchError(ContainSubstring("timed out waiting for the condition")))

		mustKubectl(ctx, "-n", ns, "delete", "pod", "awaited", "--wait=false")
		_, err = kubectl(ctx, "", "-n", ns, "wait", "--for=delete", "pod/awaited", "--timeout=1s")
		Expect(err).To(MatchError(ContainSubstring("timed out waiting for the condition")), "kubectl wait --for=delete returned while the pod was held by its finalizer")
		_, err = cluster.client.CoreV1().Pods(ns).Patch(ctx, "awaited", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		// kubectl prints "condition met" if it saw the pod go, nothing if it was gone already
		mustKubectl(ctx, "-n", ns, "wait", "--for=delete", "pod/awaited", "--timeout=120s")
		_, err = cluster.client.CoreV1().Pods(ns).Get(ctx, "awaited", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "get after kubectl wait --for=delete: %v", err)
	})

	It("should check if kubectl diff finds a difference for Deployments", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		manifest := func(image string) string {
			return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: httpd-deployment
  namespace: ` + ns + `
spec:
  replicas: 1
  selector:
    matchLabels:
      app: httpd
  template:
    metadata:
      labels:
        app: httpd
    spec:
      containers:
      - name: httpd
        image: ` + image + `
`
		}
		_, err := kubectl(ctx, manifest(pauseImage), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		out, err := kubectl(ctx, manifest("registry.k8s.io/pause:3.9"), "diff", "-f", "-")
		var exitErr *exec.ExitError
		Expect(errors.As(err, &exitErr)).To(BeTrue(), "kubectl diff of a changed manifest exits 1, got %v", err)
		Expect(exitErr.ExitCode()).To(Equal(1))
		Expect(out).To(MatchRegexp(`(?m)^-\s+(- )?image: ` + regexp.QuoteMeta(pauseImage) + `$`))
		Expect(out).To(MatchRegexp(`(?m)^\+\s+(- )?image: registry\.k8s\.io/pause:3\.9$`))
		Expect(mustKubectl(ctx, "-n", ns, "get", "deployment", "httpd-deployment", "-o", "jsonpath={.spec.template.spec.containers[0].image}")).To(Equal(pauseImage), "kubectl diff changed the object")
	})

	It("should check if kubectl can dry-run update Pods", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		mustKubectl(ctx, "-n", ns, "run", "e2e-test-pod", "--image="+pauseImage, "--restart=Never", "--labels=run=e2e-test-pod")
		mustKubectl(ctx, "-n", ns, "patch", "pod", "e2e-test-pod", "--dry-run=server", "-p",
			`{"spec":{"containers":[{"name":"e2e-test-pod","image":"registry.k8s.io/pause:3.9"}]}}`)
		Expect(mustKubectl(ctx, "-n", ns, "get", "pod", "e2e-test-pod", "-o", "jsonpath={.spec.containers[0].image}")).To(Equal(pauseImage))
	})

	It("should create a pod from an image when restart is Never with kubectl run", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		Expect(mustKubectl(ctx, "-n", ns, "run", "e2e-test-pod", "--image="+pauseImage, "--restart=Never")).To(ContainSubstring("pod/e2e-test-pod created"))
		p, err := cluster.client.CoreV1().Pods(ns).Get(ctx, "e2e-test-pod", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(p.Spec.RestartPolicy).To(Equal(corev1.RestartPolicyNever))
		Expect(p.Spec.Containers).To(HaveLen(1))
		Expect(p.Spec.Containers[0].Image).To(Equal(pauseImage))
		Expect(p.Labels).To(HaveKeyWithValue("run", "e2e-test-pod"))
	})
})
