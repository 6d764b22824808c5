package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// Upstream's conformance spec "should be able to deny attaching pod": a webhook registered
// for CONNECT on pods/attach sees the PodAttachOptions of `kubectl attach` and refuses it
// before the kubelet is reached; other subresources are not its business.
func TestAWebhookDeniesAttachingToAPod(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	c := s.Client
	ns := webhookNamespace(t, c, "connect")
	var mu sync.Mutex
	var seen []admission.Request
	url, ca := webhookServer(t, &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		mu.Lock()
		seen = append(seen, req)
		mu.Unlock()
		return admission.Denied(fmt.Sprintf("attaching to pod '%s' is not allowed", req.Name))
	})})
	cfg := validatingConfig("deny-attach.skiff.test", ns, url, ca, func(w *admissionregistrationv1.ValidatingWebhook) {
		w.Rules = []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Connect},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/attach"}},
		}}
	})
	if _, err := c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "to-be-attached-pod"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "container1", Image: "busybox"}}}}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	connect := func(subresource string) error {
		return c.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(pod.Name).SubResource(subresource).
			Param("container", "container1").Param("stdin", "true").Param("stdout", "true").Param("tty", "true").
			Do(ctx).Error()
	}
	var err error
	webhookEventually(t, func() error {
		if err = connect("attach"); !apierrors.IsForbidden(err) {
			return fmt.Errorf("attach: %v", err)
		}
		return nil
	})
	want := `admission webhook "deny-attach.skiff.test" denied the request: attaching to pod 'to-be-attached-pod' is not allowed`
	if err.Error() != want {
		t.Errorf("attach: %v, want %q", err, want)
	}
	mu.Lock()
	req := seen[len(seen)-1]
	mu.Unlock()
	var opts corev1.PodAttachOptions
	if err := json.Unmarshal(req.Object.Raw, &opts); err != nil {
		t.Fatal(err)
	}
	if req.Operation != admissionv1.Connect || req.SubResource != "attach" || req.Kind.Kind != "PodAttachOptions" || req.Namespace != ns ||
		opts.Kind != "PodAttachOptions" || opts.APIVersion != "v1" || !opts.Stdin || !opts.Stdout || !opts.TTY || opts.Container != "container1" {
		t.Errorf("the webhook saw %s %s/%s %s, object %+v", req.Operation, req.Resource.Resource, req.SubResource, req.Kind, opts)
	}

	// exec is not matched: it goes on (to a pod with no node, so a 400)
	if err := connect("exec"); !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "does not have a host assigned") {
		t.Errorf("exec: %v, want the pod's own 400", err)
	}
}

// A ValidatingAdmissionPolicy matching CONNECT on pods/exec judges the PodExecOptions of an
// exec, as upstream's: the everyday "no shells into production pods" policy. An exec it allows
// goes on to the pod's own answer.
func TestAnAdmissionPolicyJudgesExecByItsCommand(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	c := s.Client
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-shells.skiff.test"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Connect},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/exec"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: `request.operation == "CONNECT" && request.subResource == "exec" && !object.command.exists(c, c == "sh")`,
				Message:    "no shells",
			}},
		},
	}
	if _, err := c.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "no-shells.skiff.test"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}},
	}
	if _, err := c.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "target"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if _, err := c.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	exec := func(command ...string) error {
		req := c.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name(pod.Name).SubResource("exec").
			Param("container", "c").Param("stdout", "true")
		for _, arg := range command {
			req = req.Param("command", arg)
		}
		return req.Do(ctx).Error()
	}
	var err error
	webhookEventually(t, func() error {
		// a validation's failure is 422 Invalid unless it names another reason, as upstream
		if err = exec("sh", "-c", "id"); !apierrors.IsInvalid(err) {
			return fmt.Errorf("exec sh: %v", err)
		}
		return nil
	})
	want := `pods "target" is forbidden: ValidatingAdmissionPolicy 'no-shells.skiff.test' with binding 'no-shells.skiff.test' denied request: no shells`
	if err.Error() != want {
		t.Errorf("exec sh: %q\nwant %q", err.Error(), want)
	}
	// another command passes the policy and gets the pod's own answer: it has no node
	if err := exec("date"); !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "does not have a host assigned") {
		t.Errorf("exec date: %v, want the pod's own 400", err)
	}
}

// Creates of pods/eviction and pods/binding go to webhooks with their own object, an Eviction
// or a Binding, as upstream's admission shows them: a webhook can refuse evictions (what
// disruption guards do) and see the scheduler's bindings.
func TestWebhooksSeeEvictionsAndBindingsAsTheirOwnKinds(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	c := s.Client
	ns := webhookNamespace(t, c, "subresources")
	var mu sync.Mutex
	seen := map[string]admission.Request{}
	url, ca := webhookServer(t, &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		mu.Lock()
		seen[req.SubResource] = req
		mu.Unlock()
		if req.SubResource == "eviction" {
			return admission.Denied("evictions wait for the maintenance window")
		}
		return admission.Allowed("")
	})})
	cfg := validatingConfig("subresources.skiff.test", ns, url, ca, func(w *admissionregistrationv1.ValidatingWebhook) {
		w.Rules = []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/eviction", "pods/binding"}},
		}}
	})
	if _, err := c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "guarded"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var err error
	webhookEventually(t, func() error {
		err = c.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: ns}})
		if !apierrors.IsForbidden(err) {
			return fmt.Errorf("evict: %v", err)
		}
		return nil
	})
	if want := `admission webhook "subresources.skiff.test" denied the request: evictions wait for the maintenance window`; err.Error() != want {
		t.Errorf("evict: %v, want %q", err, want)
	}
	if _, err := c.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("the pod after a refused eviction: %v", err)
	}
	if err := c.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: pod.Name},
		Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for sub, kind := range map[string]string{"eviction": "policy/v1, Kind=Eviction", "binding": "/v1, Kind=Binding"} {
		req, ok := seen[sub]
		if !ok {
			t.Errorf("the webhook never saw pods/%s", sub)
			continue
		}
		gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
		if req.Operation != admissionv1.Create || req.Resource.Resource != "pods" || req.Name != pod.Name || req.Namespace != ns || gvk.String() != kind {
			t.Errorf("pods/%s: the webhook saw %s %s/%s %s %s/%s", sub, req.Operation, req.Resource.Resource, req.SubResource, req.Kind, req.Namespace, req.Name)
		}
	}
}

// A write of deployments/scale goes to validating webhooks as an autoscaling/v1 Scale, old and
// new, as upstream's: a webhook capping replicas sees kubectl scale.
func TestAValidatingWebhookJudgesAScaleAsAScale(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	c := s.Client
	ns := webhookNamespace(t, c, "scale")
	var mu sync.Mutex
	var seen []admission.Request
	url, ca := webhookServer(t, &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		mu.Lock()
		seen = append(seen, req)
		mu.Unlock()
		var scale autoscalingv1.Scale
		if err := json.Unmarshal(req.Object.Raw, &scale); err != nil {
			return admission.Errored(400, err)
		}
		if scale.Spec.Replicas > 5 {
			return admission.Denied(fmt.Sprintf("%d replicas are more than 5", scale.Spec.Replicas))
		}
		return admission.Allowed("")
	})})
	cfg := validatingConfig("scale.skiff.test", ns, url, ca, func(w *admissionregistrationv1.ValidatingWebhook) {
		w.Rules = []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments/scale"}},
		}}
	})
	if _, err := c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, policyDeployment("web", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	scaleTo := func(n int32) error {
		_, err := c.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: n}}, metav1.UpdateOptions{})
		return err
	}
	var err error
	webhookEventually(t, func() error {
		if err = scaleTo(6); !apierrors.IsForbidden(err) {
			return fmt.Errorf("scale to 6: %v", err)
		}
		return nil
	})
	if want := `admission webhook "scale.skiff.test" denied the request: 6 replicas are more than 5`; err.Error() != want {
		t.Errorf("scale to 6: %v, want %q", err, want)
	}
	if err := scaleTo(3); err != nil {
		t.Errorf("scale to 3: %v", err)
	}
	// a write of the Deployment itself is not a scale's: the webhook does not see it
	d, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas after the scales: %v, want 3", d.Spec.Replicas)
	}
	d.Spec.Replicas = ptr.To[int32](7)
	if _, err := c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Errorf("update of the deployment to 7: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	last := seen[len(seen)-1]
	var old autoscalingv1.Scale
	if err := json.Unmarshal(last.OldObject.Raw, &old); err != nil {
		t.Fatal(err)
	}
	if last.Kind.Group != "autoscaling" || last.Kind.Version != "v1" || last.Kind.Kind != "Scale" || last.SubResource != "scale" ||
		last.Resource.Resource != "deployments" || last.Operation != admissionv1.Update || old.Spec.Replicas != 1 {
		t.Errorf("the webhook's last request: %s %s/%s %s, old replicas %d", last.Operation, last.Resource.Resource, last.SubResource, last.Kind, old.Spec.Replicas)
	}
}

// A mutating webhook on deployments/scale patches the Scale, and the Deployment gets the
// replicas it left, as upstream's scale subresource applies the admitted Scale.
func TestAMutatingWebhookCapsAScale(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	c := s.Client
	ns := webhookNamespace(t, c, "scalecap")
	url, ca := webhookServer(t, &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		var scale autoscalingv1.Scale
		if err := json.Unmarshal(req.Object.Raw, &scale); err != nil {
			return admission.Errored(400, err)
		}
		scale.Spec.Replicas = min(scale.Spec.Replicas, 5)
		out, _ := json.Marshal(scale)
		return admission.PatchResponseFromRaw(req.Object.Raw, out)
	})})
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "cap-scale"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "cap.skiff.test",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments/scale"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"webhook-test": ns}},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}}}
	if _, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, policyDeployment("web", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	webhookEventually(t, func() error {
		got, err := c.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 9}}, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		if got.Spec.Replicas != 5 {
			return fmt.Errorf("the scale answered %d replicas, want 5", got.Spec.Replicas)
		}
		return nil
	})
	d, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 5 {
		t.Errorf("the deployment's replicas: %d, want the webhook's 5", *d.Spec.Replicas)
	}
}

// A MutatingAdmissionPolicy on pods/binding patches the Binding before the pod is bound: the
// pod lands where the policy sends it.
func TestAMutatingPolicyRedirectsABinding(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	c := s.Client
	policy := deploymentMutatingPolicy("redirect.skiff.test", admissionregistrationv1.Mutation{PatchType: admissionregistrationv1.PatchTypeJSONPatch,
		JSONPatch: &admissionregistrationv1.JSONPatch{Expression: `[JSONPatch{op: "replace", path: "/target/name", value: "n2"}]`}})
	policy.Spec.MatchConstraints.ResourceRules[0].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
	policy.Spec.MatchConstraints.ResourceRules[0].Rule = admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/binding"}}
	if _, err := c.AdmissionregistrationV1().MutatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "redirect.skiff.test"},
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: policy.Name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// a probe pod per attempt: the policy reaches the server's cache a moment after it is written
	for i := 0; ; i++ {
		name := fmt.Sprintf("probe-%d", i)
		if _, err := c.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := c.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: name},
			Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("bind %s: %v", name, err)
		}
		pod, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod.Spec.NodeName == "n2" {
			return
		}
		if i == 200 {
			t.Fatalf("pod %s is bound to %q, want the policy's n2", name, pod.Spec.NodeName)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
