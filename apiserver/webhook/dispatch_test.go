package webhook

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// staticConfigurations are configurations held in memory.
type staticConfigurations struct {
	validating []*admissionregistrationv1.ValidatingWebhookConfiguration
	mutating   []*admissionregistrationv1.MutatingWebhookConfiguration
}

func (c staticConfigurations) ValidatingWebhookConfigurations() []*admissionregistrationv1.ValidatingWebhookConfiguration {
	return c.validating
}
func (c staticConfigurations) MutatingWebhookConfigurations() []*admissionregistrationv1.MutatingWebhookConfiguration {
	return c.mutating
}

// configMapKinds knows one kind, v1 ConfigMap.
type configMapKinds struct{}

func (configMapKinds) Convert(_ context.Context, obj runtime.Object, _ schema.GroupVersionKind) (runtime.Object, error) {
	return obj, nil
}
func (configMapKinds) Decode(data []byte, _ schema.GroupVersionKind) (runtime.Object, error) {
	cm := &corev1.ConfigMap{}
	err := json.Unmarshal(data, cm)
	cm.TypeMeta = metav1.TypeMeta{}
	return cm, err
}

var configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// tlsWebhook serves a controller-runtime webhook and returns its URL and caBundle.
func tlsWebhook(t *testing.T, h admission.HandlerFunc) (string, []byte) {
	srv := httptest.NewTLSServer(&admission.Webhook{Handler: h})
	t.Cleanup(srv.Close)
	return srv.URL, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func mutatingWebhook(name, url string, ca []byte, reinvoke admissionregistrationv1.ReinvocationPolicyType, side admissionregistrationv1.SideEffectClass) admissionregistrationv1.MutatingWebhook {
	return admissionregistrationv1.MutatingWebhook{
		Name:         name,
		ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca},
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
		}},
		SideEffects:             &side,
		AdmissionReviewVersions: []string{"v1"},
		ReinvocationPolicy:      &reinvoke,
	}
}

func createConfigMap(dryRun bool) *Request {
	return &Request{Resource: configMaps, Kind: configMaps.GroupVersion().WithKind("ConfigMap"), Namespace: "default", Name: "cm",
		Operation: admissionv1.Create, DryRun: dryRun, Object: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default"}}}
}

// labeller adds a label if it is missing, counting its calls.
func labeller(key string, calls *atomic.Int32) admission.HandlerFunc {
	return func(_ context.Context, req admission.Request) admission.Response {
		calls.Add(1)
		var cm corev1.ConfigMap
		_ = json.Unmarshal(req.Object.Raw, &cm)
		if cm.Labels == nil {
			cm.Labels = map[string]string{}
		}
		cm.Labels[key] = "set"
		out, _ := json.Marshal(&cm)
		return admission.PatchResponseFromRaw(req.Object.Raw, out)
	}
}

func TestIfNeededWebhookIsCalledAgainWhenALaterWebhookChangesTheObject(t *testing.T) {
	for _, policy := range []admissionregistrationv1.ReinvocationPolicyType{admissionregistrationv1.IfNeededReinvocationPolicy, admissionregistrationv1.NeverReinvocationPolicy} {
		var first, second atomic.Int32
		url1, ca1 := tlsWebhook(t, labeller("first", &first))
		url2, ca2 := tlsWebhook(t, labeller("second", &second))
		d := &Dispatcher{Kinds: configMapKinds{}, Clients: &Clients{}, Configurations: staticConfigurations{mutating: []*admissionregistrationv1.MutatingWebhookConfiguration{
			{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "a"}, Webhooks: []admissionregistrationv1.MutatingWebhook{
				mutatingWebhook("first.skiff.test", url1, ca1, policy, admissionregistrationv1.SideEffectClassNone)}},
			{ObjectMeta: metav1.ObjectMeta{Name: "b", UID: "b"}, Webhooks: []admissionregistrationv1.MutatingWebhook{
				mutatingWebhook("second.skiff.test", url2, ca2, admissionregistrationv1.NeverReinvocationPolicy, admissionregistrationv1.SideEffectClassNone)}},
		}}}
		out, err := d.Mutate(context.Background(), createConfigMap(false))
		if err != nil {
			t.Fatal(err)
		}
		if l := out.(*corev1.ConfigMap).Labels; l["first"] != "set" || l["second"] != "set" {
			t.Fatalf("labels = %v, want both webhooks'", l)
		}
		want := int32(1)
		if policy == admissionregistrationv1.IfNeededReinvocationPolicy {
			want = 2
		}
		if first.Load() != want || second.Load() != 1 {
			t.Fatalf("%s: first webhook called %d times, second %d; want %d and 1", policy, first.Load(), second.Load(), want)
		}
	}
}

func TestDryRunIsRefusedByWebhooksWithSideEffects(t *testing.T) {
	var calls atomic.Int32
	url, ca := tlsWebhook(t, labeller("x", &calls))
	d := &Dispatcher{Kinds: configMapKinds{}, Clients: &Clients{}, Configurations: staticConfigurations{mutating: []*admissionregistrationv1.MutatingWebhookConfiguration{
		{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "a"}, Webhooks: []admissionregistrationv1.MutatingWebhook{
			mutatingWebhook("sideeffects.skiff.test", url, ca, admissionregistrationv1.NeverReinvocationPolicy, admissionregistrationv1.SideEffectClassSome)}},
	}}}
	_, err := d.Mutate(context.Background(), createConfigMap(true))
	if !apierrors.IsBadRequest(err) || err.Error() != `admission webhook "sideeffects.skiff.test" does not support dry run` {
		t.Fatalf("dry run = %v, want upstream's 400", err)
	}
	if calls.Load() != 0 {
		t.Fatal("the webhook was called for a dry run")
	}
	if _, err := d.Mutate(context.Background(), createConfigMap(false)); err != nil {
		t.Fatalf("a real write: %v", err)
	}
}

func TestDenialWithoutMessageIsA400WithoutExplanation(t *testing.T) {
	err := denied("quiet.skiff.test", &metav1.Status{Code: http.StatusOK})
	if err.ErrStatus.Code != http.StatusBadRequest || err.Error() != `admission webhook "quiet.skiff.test" denied the request without explanation` {
		t.Fatalf("denial = %d %q", err.ErrStatus.Code, err.Error())
	}
	err = denied("reason.skiff.test", &metav1.Status{Code: 422, Reason: "NotAcceptable"})
	if err.ErrStatus.Code != 422 || !strings.HasSuffix(err.Error(), "denied the request: NotAcceptable") {
		t.Fatalf("denial = %d %q", err.ErrStatus.Code, err.Error())
	}
}

func TestMatchConditionErrorsFailOnlyUnderFail(t *testing.T) {
	var calls atomic.Int32
	url, ca := tlsWebhook(t, labeller("x", &calls))
	for _, policy := range []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Fail, admissionregistrationv1.Ignore} {
		w := mutatingWebhook("cel.skiff.test", url, ca, admissionregistrationv1.NeverReinvocationPolicy, admissionregistrationv1.SideEffectClassNone)
		w.FailurePolicy = &policy
		// a missing key is an evaluation error, not false
		w.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "missing", Expression: "object.metadata.labels['absent'] == 'x'"}}
		d := &Dispatcher{Kinds: configMapKinds{}, Clients: &Clients{}, Configurations: staticConfigurations{mutating: []*admissionregistrationv1.MutatingWebhookConfiguration{
			{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: k8stypes.UID(policy)}, Webhooks: []admissionregistrationv1.MutatingWebhook{w}}}}}
		_, err := d.Mutate(context.Background(), createConfigMap(false))
		if policy == admissionregistrationv1.Fail && !apierrors.IsForbidden(err) {
			t.Fatalf("Fail: %v, want 403", err)
		}
		if policy == admissionregistrationv1.Ignore && err != nil {
			t.Fatalf("Ignore: %v", err)
		}
	}
	if calls.Load() != 0 {
		t.Fatal("the webhook was called though its condition did not evaluate")
	}
}
