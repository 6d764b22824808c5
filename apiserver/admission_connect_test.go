package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
