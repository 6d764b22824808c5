package apiserver_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/openapi3"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// kubectl prints explain from the OpenAPI v3 documents (1.27 and later); this is its text for
// a server on k8s.io/api v0.37, word for word.
const explainPods = `KIND:       Pod
VERSION:    v1

DESCRIPTION:
    Pod is a collection of containers that can run on a host. This resource is
    created by clients and scheduled onto hosts.
    
FIELDS:
  apiVersion	<string>
    APIVersion defines the versioned schema of this representation of an object.
    Servers should convert recognized schemas to the latest internal value, and
    may reject unrecognized values. More info:
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources

  kind	<string>
    Kind is a string value representing the REST resource this object
    represents. Servers may infer this from the endpoint the client submits
    requests to. Cannot be updated. In CamelCase. More info:
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds

  metadata	<ObjectMeta>
    Standard object's metadata. More info:
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata

  spec	<PodSpec>
    Specification of the desired behavior of the pod. More info:
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status

  status	<PodStatus>
    Most recently observed status of the pod. This data may not be up to date.
    Populated by the system. Read-only. More info:
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status


`

const explainLivenessProbe = `KIND:       Pod
VERSION:    v1

FIELD: livenessProbe <Probe>


DESCRIPTION:
    Periodic probe of container liveness. Container will be restarted if the
    probe fails. Cannot be updated. More info:
    https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle#container-probes
    Probe describes a health check to be performed against a container to
    determine whether it is alive or ready to receive traffic.
    
FIELDS:
  exec	<ExecAction>
    Exec specifies a command to execute in the container.

  failureThreshold	<integer>
    Minimum consecutive failures for the probe to be considered failed after
    having succeeded. Defaults to 3. Minimum value is 1.

  grpc	<GRPCAction>
    GRPC specifies a GRPC HealthCheckRequest.

  httpGet	<HTTPGetAction>
    HTTPGet specifies an HTTP GET request to perform.

  initialDelaySeconds	<integer>
    Number of seconds after the container has started before liveness probes are
    initiated. More info:
    https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle#container-probes

  periodSeconds	<integer>
    How often (in seconds) to perform the probe. Default to 10 seconds. Minimum
    value is 1.

  successThreshold	<integer>
    Minimum consecutive successes for the probe to be considered successful
    after having failed. Defaults to 1. Must be 1 for liveness and startup.
    Minimum value is 1.

  tcpSocket	<TCPSocketAction>
    TCPSocket specifies a connection to a TCP port.

  terminationGracePeriodSeconds	<integer>
    Optional duration in seconds the pod needs to terminate gracefully upon
    probe failure. The grace period is the duration in seconds after the
    processes running in the pod are sent a termination signal and the time when
    the processes are forcibly halted with a kill signal. Set this value longer
    than the expected cleanup time for your process. If this value is nil, the
    pod's terminationGracePeriodSeconds will be used. Otherwise, this value
    overrides the value provided by the pod spec. Value must be non-negative
    integer. The value zero indicates stop immediately via the kill signal (no
    opportunity to shut down). This is a beta field and requires enabling
    ProbeTerminationGracePeriod feature gate. Minimum value is 1.
    spec.terminationGracePeriodSeconds is used if unset.

  timeoutSeconds	<integer>
    Number of seconds after which the probe times out. Defaults to 1 second.
    Minimum value is 1. More info:
    https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle#container-probes


`

func startForKubectl(t *testing.T) (*apiservertest.Server, string) {
	s := apiservertest.Start(t)
	return s, adminKubeconfig(t, s)
}

func TestOpenAPIKubectlExplainPrintsUpstreamsText(t *testing.T) {
	_, kubeconfig := startForKubectl(t)
	for _, bin := range kubectlBinaries(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			kubectl := kubectlCommand(t, bin, kubeconfig, nil)
			for args, want := range map[string]string{
				"explain pods": explainPods,
				"explain pods.spec.containers.livenessProbe": explainLivenessProbe,
			} {
				out, err := kubectl(strings.Fields(args)...)
				if err != nil {
					t.Fatalf("kubectl %s: %v\n%s", args, err, out)
				}
				// kubectl 1.30 and later leave a line for a field's enum values after FIELD
				field := strings.NewReplacer("\n\n\nDESCRIPTION:", "\n\nDESCRIPTION:")
				if field.Replace(out) != field.Replace(want) {
					t.Errorf("kubectl %s printed:\n%s\nwant:\n%s", args, out, want)
				}
			}
			// a group's kinds carry the GROUP line
			out, err := kubectl("explain", "replicasets.spec.template.spec.containers.ports")
			if err != nil {
				t.Fatalf("explain replicasets: %v\n%s", err, out)
			}
			if !strings.HasPrefix(out, "GROUP:      apps\nKIND:       ReplicaSet\nVERSION:    v1\n\nFIELD: ports <[]ContainerPort>\n") ||
				!strings.Contains(out, "  containerPort\t<integer> -required-\n") {
				t.Errorf("explain replicasets...ports:\n%s", out)
			}
		})
	}
}

func TestOpenAPIKubectlCreateAndApplyValidateManifests(t *testing.T) {
	s, kubeconfig := startForKubectl(t)
	for _, bin := range kubectlBinaries(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			kubectl := kubectlCommand(t, bin, kubeconfig, nil)
			name := "oa" + strings.ReplaceAll(strings.TrimPrefix(filepath.Base(bin), "kubectl"), ".", "-")
			dir := t.TempDir()
			write := func(file, content string) string {
				p := filepath.Join(dir, file)
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			pod := write("pod.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: `+name+`
  labels: {app: web}
spec:
  containers:
  - name: web
    image: nginx:1.27
    ports:
    - containerPort: 80
    resources:
      limits: {cpu: 100m, memory: 64Mi}
    livenessProbe:
      httpGet: {path: /, port: 80}
`)
			if out, err := kubectl("create", "-f", pod); err != nil || !strings.Contains(out, "pod/"+name+" created") {
				t.Fatalf("create: %v\n%s", err, out)
			}
			relabeled := write("pod2.yaml", strings.Replace(mustRead(t, pod), "app: web", "app: web2", 1))
			if out, err := kubectl("apply", "-f", relabeled); err != nil || !strings.Contains(out, "pod/"+name+" configured") {
				t.Fatalf("apply: %v\n%s", err, out)
			}

			bad := write("bad.yaml", strings.NewReplacer(name, name+"-bad", "image: nginx:1.27", "image: nginx:1.27\n    imagePullPolicyy: Always").Replace(mustRead(t, pod)))
			for _, verb := range []string{"create", "apply"} {
				out, err := kubectl(verb, "-f", bad)
				if err == nil || !strings.Contains(out, "imagePullPolicyy") {
					t.Errorf("%s with an unknown field: %v\n%s", verb, err, out)
				}
			}
			if _, err := s.Client.CoreV1().Pods("default").Get(context.Background(), name+"-bad", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("the pod with an unknown field was stored: %v", err)
			}
			if out, err := kubectl("delete", "pod", name, "--wait=false"); err != nil {
				t.Errorf("delete: %v\n%s", err, out)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenAPIClientGoReadsBothVersions(t *testing.T) {
	s := apiservertest.Start(t)
	dc, err := discovery.NewDiscoveryClientForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}

	// OpenAPI v3, through client-go's openapi3 root
	root := openapi3.NewRoot(dc.OpenAPIV3())
	gvs, err := root.GroupVersions()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []schema.GroupVersion{{Version: "v1"}, {Group: "apps", Version: "v1"}, {Group: "coordination.k8s.io", Version: "v1"}} {
		found := false
		for _, gv := range gvs {
			found = found || gv == want
		}
		if !found {
			t.Errorf("openapi3 group versions %v lack %v", gvs, want)
		}
	}
	core, err := root.GVSpec(schema.GroupVersion{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	pod := core.Components.Schemas["io.k8s.api.core.v1.Pod"]
	if pod == nil || pod.Properties["spec"].AllOf[0].Ref.String() != "#/components/schemas/io.k8s.api.core.v1.PodSpec" {
		t.Errorf("v1 Pod schema: %+v", pod)
	}
	patch := core.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}"].Patch
	hasFieldValidation := false
	for _, p := range patch.Parameters {
		hasFieldValidation = hasFieldValidation || p.Name == "fieldValidation"
	}
	if !hasFieldValidation {
		t.Errorf("pod patch does not take fieldValidation, so kubectl would validate on the client")
	}
	if _, err := root.GVSpec(schema.GroupVersion{Group: "apps", Version: "v1"}); err != nil {
		t.Fatal(err)
	}

	// OpenAPI v2 in protobuf, as discovery fetches it for kubectl
	doc, err := dc.OpenAPISchema()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, def := range doc.GetDefinitions().GetAdditionalProperties() {
		names[def.GetName()] = true
	}
	for _, want := range []string{"io.k8s.api.core.v1.Pod", "io.k8s.api.apps.v1.ReplicaSet", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"} {
		if !names[want] {
			t.Errorf("v2 document has no %s", want)
		}
	}
}
