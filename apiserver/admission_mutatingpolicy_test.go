package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// sidecarPolicy is upstream's documentation example of a MutatingAdmissionPolicy (its JSON
// patch variant, at v1) with its Sidecar param kind, a Sidecar and a binding: pods created
// get the mesh-proxy sidecar as an init container, once.
const sidecarPolicy = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: sidecars.mutations.example.com
spec:
  group: mutations.example.com
  scope: Namespaced
  names: {plural: sidecars, singular: sidecar, kind: Sidecar}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata:
  name: "sidecar-policy.example.com"
spec:
  paramKind:
    kind: Sidecar
    apiVersion: mutations.example.com/v1
  matchConstraints:
    resourceRules:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["pods"]
  matchConditions:
    - name: does-not-already-have-sidecar
      expression: "!object.spec.initContainers.exists(ic, ic.name == \"mesh-proxy\")"
  failurePolicy: Fail
  reinvocationPolicy: IfNeeded
  mutations:
    - patchType: "JSONPatch"
      jsonPatch:
        expression: >
          [
            JSONPatch{
              op: "add", path: "/spec/initContainers/-",
              value: Object.spec.initContainers{
                name: "mesh-proxy",
                image: "mesh-proxy/v1.0.0",
                restartPolicy: "Always"
              }
            }
          ]
`

const sidecarBinding = `apiVersion: mutations.example.com/v1
kind: Sidecar
metadata:
  name: meshproxy-sidecar
  namespace: default
spec:
  name: mesh-proxy
  image: mesh-proxy/v1.0.0
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata:
  name: "sidecar-binding-test.example.com"
spec:
  policyName: "sidecar-policy.example.com"
  paramRef:
    name: "meshproxy-sidecar"
    namespace: "default"
    parameterNotFoundAction: Deny
`

const webPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  initContainers:
  - name: setup
    image: busybox
  containers:
  - name: web
    image: busybox
`

func TestKubectlAppliesUpstreamsMutatingPolicyExampleAndPodsGetTheSidecar(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	kubeconfig := adminKubeconfig(t, s)
	run := kubectlRunner(t, kubectlOnPath(t), kubeconfig, nil)
	kubectl := kubectlCommand(t, kubectlOnPath(t), kubeconfig, nil)
	dir := t.TempDir()
	out := applyManifest(t, run, dir, "policy", sidecarPolicy)
	if !strings.Contains(out, "mutatingadmissionpolicy.admissionregistration.k8s.io/sidecar-policy.example.com created") {
		t.Fatalf("apply:\n%s", out)
	}
	eventually(t, "sidecars served", func() error {
		_, err := kubectl("get", "sidecars")
		return err
	})
	out = applyManifest(t, run, dir, "binding", sidecarBinding)
	if !strings.Contains(out, "mutatingadmissionpolicybinding.admissionregistration.k8s.io/sidecar-binding-test.example.com created") {
		t.Fatalf("apply:\n%s", out)
	}
	if out := run("get", "mutatingadmissionpolicies"); !strings.Contains(out, "MUTATIONS") ||
		!strings.Contains(out, "mutations.example.com/v1/Sidecar") {
		t.Errorf("get mutatingadmissionpolicies:\n%s", out)
	}
	if out := run("get", "mutatingadmissionpolicybindings"); !strings.Contains(out, "POLICYNAME") ||
		!strings.Contains(out, "default/meshproxy-sidecar") {
		t.Errorf("get mutatingadmissionpolicybindings:\n%s", out)
	}
	mp, err := s.Client.AdmissionregistrationV1().MutatingAdmissionPolicies().Get(ctx, "sidecar-policy.example.com", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mc := mp.Spec.MatchConstraints; *mc.MatchPolicy != admissionregistrationv1.Equivalent || mc.NamespaceSelector == nil ||
		*mc.ResourceRules[0].Scope != admissionregistrationv1.AllScopes || mp.Generation != 1 {
		t.Errorf("defaults: %+v", mp.Spec)
	}

	// the example's match condition reads spec.initContainers, which a pod without init
	// containers does not have: upstream answers so too
	out, err = kubectl("run", "bare", "--image=busybox", "--restart=Never")
	if err == nil || !strings.Contains(out, `The pods "bare" is invalid: : policy 'sidecar-policy.example.com' with binding 'sidecar-binding-test.example.com' denied request: expression '!object.spec.initContainers.exists(ic, ic.name == "mesh-proxy")' resulted in error: no such key: initContainers`) {
		t.Errorf("run without init containers: %v\n%s", err, out)
	}
	eventually(t, "the sidecar injected", func() error {
		defer func() { _, _ = kubectl("delete", "pod", "web", "--grace-period=0") }()
		out := applyManifest(t, run, dir, "pod", webPod)
		if !strings.Contains(out, "pod/web created") {
			return errorf("apply:\n%s", out)
		}
		pod, err := s.Client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		ics := pod.Spec.InitContainers
		if len(ics) != 2 || ics[1].Name != "mesh-proxy" || ics[1].Image != "mesh-proxy/v1.0.0" ||
			ics[1].RestartPolicy == nil || *ics[1].RestartPolicy != corev1.ContainerRestartPolicyAlways {
			return errorf("init containers: %+v", ics)
		}
		// defaulted as a pod written with the sidecar would be
		if ics[1].TerminationMessagePath != corev1.TerminationMessagePathDefault {
			return errorf("the injected container is not defaulted: %+v", ics[1])
		}
		return nil
	})
	// custom resources merge by their definition's schema: a policy pins the sidecar image
	pin := &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "pin-image.example.com"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"mutations.example.com"}, APIVersions: []string{"v1"}, Resources: []string{"sidecars"}},
				}}},
			},
			Mutations: []admissionregistrationv1.Mutation{applyConfiguration(`Object{spec: Object.spec{image: "mesh-proxy/v2.0.0"}}`)},
		},
	}
	if _, err := s.Client.AdmissionregistrationV1().MutatingAdmissionPolicies().Create(ctx, pin, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "pin-image-binding.example.com"},
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: pin.Name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the sidecar's image pinned", func() error {
		defer func() { _, _ = kubectl("delete", "sidecar", "pinned", "--ignore-not-found") }()
		out := applyManifest(t, run, dir, "pinned", strings.Replace(strings.SplitN(sidecarBinding, "---", 2)[0], "meshproxy-sidecar", "pinned", 1))
		if !strings.Contains(out, "sidecar.mutations.example.com/pinned created") {
			return errorf("apply:\n%s", out)
		}
		if image := run("get", "sidecar", "pinned", "-o", "jsonpath={.spec.image} {.spec.name}"); image != "mesh-proxy/v2.0.0 mesh-proxy" {
			return errorf("spec.image, spec.name: %q", image)
		}
		return nil
	})
	// without its param, the binding refuses pods, as parameterNotFoundAction Deny says
	run("delete", "sidecar", "meshproxy-sidecar")
	eventually(t, "refused without the param", func() error {
		out, err := kubectl("run", "lonely", "--image=busybox", "--restart=Never")
		if err == nil {
			run("delete", "pod", "lonely", "--grace-period=0")
			return errorf("created:\n%s", out)
		}
		// upstream's message is the policy's alone, without the usual "is forbidden" prefix
		want := `Error from server (Forbidden): policy 'sidecar-policy.example.com' with binding 'sidecar-binding-test.example.com' denied request: failed to configure binding: no params found for policy binding with ` + "`Deny`" + ` parameterNotFoundAction`
		if !strings.Contains(out, want) {
			return errorf("got:\n%s", out)
		}
		return nil
	})
}

func deploymentMutatingPolicy(name string, mutations ...admissionregistrationv1.Mutation) *admissionregistrationv1.MutatingAdmissionPolicy {
	return &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				}}},
			},
			Mutations: mutations,
		},
	}
}

func mutatingBinding(name, policy, namespaceLabel string) *admissionregistrationv1.MutatingAdmissionPolicyBinding {
	return &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: policy,
			MatchResources: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{namespaceLabel: "true"}},
			}},
	}
}

func applyConfiguration(expr string) admissionregistrationv1.Mutation {
	return admissionregistrationv1.Mutation{PatchType: admissionregistrationv1.PatchTypeApplyConfiguration,
		ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: expr}}
}

// The conformance specs' behaviour: a policy bound to a labelled namespace mutates the
// deployments created there, before validation and validating policies see them.
func TestMutatingAdmissionPolicyMutatesDeploymentsBeforeValidation(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cs := s.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "mutated", Labels: map[string]string{"mutate-here": "true"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	policy := deploymentMutatingPolicy("replicas.example.com", applyConfiguration(`Object{
		metadata: Object.metadata{annotations: {"mutated-by": "admission-policy"}},
		spec: Object.spec{replicas: 1337}}`))
	policy.Spec.MatchConstraints.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"mutate-here": "true"}}
	if _, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Create(ctx,
		mutatingBinding("replicas-binding.example.com", policy.Name, "mutate-here"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// a validating policy that only passes what the mutating one made
	vap := deploymentPolicy("only-1337.example.com", nil, "object.spec.replicas == 1337", "")
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, vap, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	vb := policyBinding("only-1337-binding.example.com", vap.Name, admissionregistrationv1.Deny)
	vb.Spec.MatchResources = &admissionregistrationv1.MatchResources{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"mutate-here": "true"}}}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, vb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deployment mutated", func() error {
		created, err := cs.AppsV1().Deployments("mutated").Create(ctx, policyDeployment("marker", 1), metav1.CreateOptions{})
		if err != nil {
			return err
		}
		_ = cs.AppsV1().Deployments("mutated").Delete(ctx, "marker", metav1.DeleteOptions{})
		if created.Annotations["mutated-by"] != "admission-policy" || *created.Spec.Replicas != 1337 {
			return errorf("not mutated: %v %d", created.Annotations, *created.Spec.Replicas)
		}
		return nil
	})
	// elsewhere nothing changes
	other, err := cs.AppsV1().Deployments("default").Create(ctx, policyDeployment("plain", 1), metav1.CreateOptions{})
	if err != nil || *other.Spec.Replicas != 1 || other.Annotations["mutated-by"] != "" {
		t.Errorf("outside the namespace: %v %+v", err, other)
	}
	// a mutation that fails under failurePolicy Fail refuses the write with upstream's status
	broken := deploymentMutatingPolicy("broken.example.com", admissionregistrationv1.Mutation{PatchType: admissionregistrationv1.PatchTypeJSONPatch,
		JSONPatch: &admissionregistrationv1.JSONPatch{Expression: `[JSONPatch{op: "remove", path: "/spec/missing"}]`}})
	if _, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicies().Create(ctx, broken, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Create(ctx,
		mutatingBinding("broken-binding.example.com", broken.Name, "mutate-here"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the broken policy refuses", func() error {
		_, err := cs.AppsV1().Deployments("mutated").Create(ctx, policyDeployment("refused", 1), metav1.CreateOptions{})
		if err == nil {
			_ = cs.AppsV1().Deployments("mutated").Delete(ctx, "refused", metav1.DeleteOptions{})
			return errorf("created")
		}
		status, ok := err.(apierrors.APIStatus)
		if !ok || status.Status().Code != 403 || status.Status().Reason != metav1.StatusReasonInvalid ||
			!strings.HasPrefix(status.Status().Message, `policy 'broken.example.com' with binding 'broken-binding.example.com' denied request: JSON Patch:`) {
			return errorf("err = %v", err)
		}
		return nil
	})
}

func TestMutatingAdmissionPolicyBadInput(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	policies := s.Client.AdmissionregistrationV1().MutatingAdmissionPolicies()
	for _, tc := range []struct {
		name   string
		mutate func(*admissionregistrationv1.MutatingAdmissionPolicy)
		want   string
	}{{
		name: "uncompilable",
		mutate: func(p *admissionregistrationv1.MutatingAdmissionPolicy) {
			p.Spec.Mutations[0].ApplyConfiguration.Expression = "Object{spec: "
		},
		want: `MutatingAdmissionPolicy.admissionregistration.k8s.io "bad" is invalid: spec.mutations[0].applyConfiguration.expression: Invalid value: "Object{spec:": compilation failed: ERROR: <input>:1:13: Syntax error:`,
	}, {
		name: "a JSON patch returning an Object",
		mutate: func(p *admissionregistrationv1.MutatingAdmissionPolicy) {
			p.Spec.Mutations[0] = admissionregistrationv1.Mutation{PatchType: admissionregistrationv1.PatchTypeJSONPatch,
				JSONPatch: &admissionregistrationv1.JSONPatch{Expression: "Object{}"}}
		},
		want: `spec.mutations[0].jsonPatch.expression: Invalid value: "Object{}": must evaluate to list(JSONPatch)`,
	}, {
		name: "deletes",
		mutate: func(p *admissionregistrationv1.MutatingAdmissionPolicy) {
			p.Spec.MatchConstraints.ResourceRules[0].Operations = []admissionregistrationv1.OperationType{"DELETE"}
			p.Spec.ReinvocationPolicy = ""
			p.Spec.Mutations[0].PatchType = "Merge"
		},
		want: `[spec.matchConstraints.resourceRules.operations: Unsupported value: "DELETE": supported values: "*", "CONNECT", "CREATE", "UPDATE", spec.mutations[0].patchType: Unsupported value: "Merge": supported values: "ApplyConfiguration", "JSONPatch", spec.reinvocationPolicy: Required value]`,
	}, {
		name:   "no mutations",
		mutate: func(p *admissionregistrationv1.MutatingAdmissionPolicy) { p.Spec.Mutations = nil },
		want:   `spec.mutations: Required value: mutations must contain at least one item`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := deploymentMutatingPolicy("bad", applyConfiguration(`Object{spec: Object.spec{replicas: 1}}`))
			tc.mutate(p)
			_, err := policies.Create(ctx, p, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
	_, err := s.Client.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "b"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: "p",
			ParamRef: &admissionregistrationv1.ParamRef{Name: "x"}}}, metav1.CreateOptions{})
	if want := `MutatingAdmissionPolicyBinding.admissionregistration.k8s.io "b" is invalid: spec.paramRef.parameterNotFoundAction: Required value`; err == nil || err.Error() != want {
		t.Errorf("binding: %v", err)
	}
}

// policyWatcher is a controller-runtime mutating webhook that labels a ConfigMap with what
// it saw of the policy's label: webhook=saw-<value>.
func policyWatcher() http.Handler {
	return &crwebhook.Webhook{Handler: crwebhook.HandlerFunc(func(_ context.Context, req crwebhook.Request) crwebhook.Response {
		var cm corev1.ConfigMap
		if err := json.Unmarshal(req.Object.Raw, &cm); err != nil {
			return crwebhook.Errored(http.StatusBadRequest, err)
		}
		if cm.Labels == nil {
			cm.Labels = map[string]string{}
		}
		cm.Labels["webhook"] = "saw-" + cm.Labels["policy"]
		out, _ := json.Marshal(&cm)
		return crwebhook.PatchResponseFromRaw(req.Object.Raw, out)
	})}
}

// Upstream's order and reinvocation: the policies run before the webhooks, and a policy with
// reinvocationPolicy IfNeeded runs again when a webhook changed the object after it.
func TestMutatingPoliciesRunBeforeWebhooksAndAgainAfterTheirChanges(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cs := s.Client
	ns := webhookNamespace(t, cs, "mutating-order")
	url, ca := webhookServer(t, policyWatcher())
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "policy-watcher"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "watcher.skiff.test",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"webhook-test": ns}},
			SideEffects:             ptrTo(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	policy := &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "label-and-record.example.com"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy,
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
				}}},
			},
			Variables: []admissionregistrationv1.Variable{{Name: "webhookLabel", Expression: `object.metadata.?labels.?webhook.orValue("none")`}},
			Mutations: []admissionregistrationv1.Mutation{applyConfiguration(`Object{
				metadata: Object.metadata{labels: {"policy": "ran"}},
				data: {"webhook-label": variables.webhookLabel}}`)},
		},
	}
	if _, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Create(ctx,
		mutatingBinding("label-and-record-binding.example.com", policy.Name, "policies-here"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(`{"metadata":{"labels":{"policies-here":"true"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both ran, the policy twice", func() error {
		cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, configMap(nil), metav1.CreateOptions{})
		if err != nil {
			return err
		}
		_ = cs.CoreV1().ConfigMaps(ns).Delete(ctx, cm.Name, metav1.DeleteOptions{})
		// the webhook saw the policy's label; the policy, run again, saw the webhook's
		if cm.Labels["policy"] != "ran" || cm.Labels["webhook"] != "saw-ran" || cm.Data["webhook-label"] != "saw-ran" {
			return errorf("labels %v, data %v", cm.Labels, cm.Data)
		}
		return nil
	})
}
