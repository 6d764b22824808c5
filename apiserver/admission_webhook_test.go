package apiserver_test

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
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// webhookServer serves handler over TLS on 127.0.0.1 with a self-signed certificate for
// 127.0.0.1 and dnsNames, and returns its URL and the certificate as a caBundle.
func webhookServer(t *testing.T, handler http.Handler, dnsNames ...string) (string, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "webhook"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: dnsNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// controller-runtime webhooks: each is the package's admission.Webhook over a handler.
func validatingDenier(denyKey string) http.Handler {
	return &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		var cm corev1.ConfigMap
		if err := json.Unmarshal(req.Object.Raw, &cm); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if _, bad := cm.Data[denyKey]; bad {
			return admission.Denied("the data key " + denyKey + " is not allowed")
		}
		resp := admission.Allowed("").WithWarnings("configmap " + cm.Name + " was checked")
		resp.AuditAnnotations = map[string]string{"checked": "yes"}
		return resp
	})}
}

func labelMutator(key, value string) http.Handler {
	return &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		var obj map[string]any
		if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		md, _ := obj["metadata"].(map[string]any)
		lbls, _ := md["labels"].(map[string]any)
		if lbls == nil {
			lbls = map[string]any{}
		}
		lbls[key] = value
		md["labels"] = lbls
		out, _ := json.Marshal(obj)
		return admission.PatchResponseFromRaw(req.Object.Raw, out)
	})}
}

func ptrTo[T any](v T) *T { return &v }

// validatingConfig registers one webhook for CREATE of configmaps in namespaces labelled
// webhook-test=<test>.
func validatingConfig(name, test, url string, ca []byte, mutate func(*admissionregistrationv1.ValidatingWebhook)) *admissionregistrationv1.ValidatingWebhookConfiguration {
	w := admissionregistrationv1.ValidatingWebhook{
		Name:         name,
		ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca},
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
		}},
		NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"webhook-test": test}},
		SideEffects:             ptrTo(admissionregistrationv1.SideEffectClassNone),
		AdmissionReviewVersions: []string{"v1"},
	}
	if mutate != nil {
		mutate(&w)
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: test + "-" + strings.Split(name, ".")[0]},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{w}}
}

// webhookNamespace makes a namespace labelled for the test's webhooks.
func webhookNamespace(t *testing.T, c kubernetes.Interface, test string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: test, Labels: map[string]string{"webhook-test": test}}}
	if _, err := c.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return test
}

// webhookEventually retries f until it succeeds: webhook configurations reach the server's cache
// a moment after they are written.
func webhookEventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var cmSeq atomic.Int64

func configMap(data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-" + strconv.FormatInt(cmSeq.Add(1), 10)}, Data: data}
}

// warningCollector keeps the warnings a client is sent.
type warningCollector struct {
	mu   sync.Mutex
	seen []string
}

func (w *warningCollector) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warningCollector) has(text string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.seen {
		if s == text {
			return true
		}
	}
	return false
}

func TestAdmissionWebhooks(t *testing.T) {
	dir := t.TempDir()
	policy, auditLog := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "audit.log")
	if err := os.WriteFile(policy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"+
		"rules:\n- level: Metadata\n  resources:\n  - group: \"\"\n    resources: [configmaps]\n- level: None\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := apiservertest.Start(t, func(c *apiserver.Config) { c.AuditPolicyFile, c.AuditLogPath = policy, auditLog })
	ctx := context.Background()
	c := s.Client
	vwc := c.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	mwc := c.AdmissionregistrationV1().MutatingWebhookConfigurations()

	t.Run("a validating webhook denies in upstream's words and passes warnings on", func(t *testing.T) {
		ns := webhookNamespace(t, c, "validating")
		url, ca := webhookServer(t, validatingDenier("forbidden"))
		cfg := validatingConfig("deny.skiff.test", ns, url, ca, nil)
		if _, err := vwc.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer vwc.Delete(ctx, cfg.Name, metav1.DeleteOptions{})
		var err error
		webhookEventually(t, func() error {
			_, err = c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(map[string]string{"forbidden": "x"}), metav1.CreateOptions{})
			if err == nil {
				return fmt.Errorf("a configmap with a forbidden key was stored")
			}
			return nil
		})
		want := `admission webhook "deny.skiff.test" denied the request: the data key forbidden is not allowed`
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("denial = %v (%s), want 403 %q", err, apierrors.ReasonForError(err), want)
		}
		warnings := &warningCollector{}
		cfgCopy := rest.CopyConfig(s.Config)
		cfgCopy.WarningHandler = warnings
		wc := kubernetes.NewForConfigOrDie(cfgCopy)
		ok := configMap(map[string]string{"fine": "x"})
		if _, err := wc.CoreV1().ConfigMaps(ns).Create(ctx, ok, metav1.CreateOptions{}); err != nil {
			t.Fatalf("an allowed configmap: %v", err)
		}
		if !warnings.has("configmap " + ok.Name + " was checked") {
			t.Fatalf("warnings = %v, want the webhook's", warnings.seen)
		}
		webhookEventually(t, func() error {
			data, err := os.ReadFile(auditLog)
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(data), "\n") {
				var ev auditv1.Event
				if json.Unmarshal([]byte(line), &ev) == nil && ev.ObjectRef != nil && ev.ObjectRef.Namespace == ns && ev.Verb == "create" &&
					ev.Stage == auditv1.StageResponseComplete && ev.Annotations["deny.skiff.test/checked"] == "yes" {
					return nil
				}
			}
			return fmt.Errorf("no audit event of a create in %s carries the webhook's annotation", ns)
		})
		metrics, err := c.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, series := range []string{
			`apiserver_admission_webhook_request_total{code="200",name="deny.skiff.test",operation="CREATE",rejected="true",type="validating"}`,
			`apiserver_admission_webhook_request_total{code="200",name="deny.skiff.test",operation="CREATE",rejected="false",type="validating"}`,
			`apiserver_admission_webhook_admission_duration_seconds_count{name="deny.skiff.test",operation="CREATE",rejected="true",type="validating"}`,
		} {
			if !strings.Contains(string(metrics), series) {
				t.Errorf("/metrics has no %s", series)
			}
		}
	})

	t.Run("a mutating webhook's patch is stored and stock kubectl sees it", func(t *testing.T) {
		ns := webhookNamespace(t, c, "mutating")
		url, ca := webhookServer(t, labelMutator("mutated-by", "webhook"))
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "label-configmaps"},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name:         "label.skiff.test",
				ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca},
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
				}},
				NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"webhook-test": ns}},
				SideEffects:             ptrTo(admissionregistrationv1.SideEffectClassNone),
				AdmissionReviewVersions: []string{"v1beta1", "v1"},
			}}}
		created, err := mwc.Create(ctx, cfg, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer mwc.Delete(ctx, cfg.Name, metav1.DeleteOptions{})
		w := created.Webhooks[0]
		if *w.FailurePolicy != admissionregistrationv1.Fail || *w.MatchPolicy != admissionregistrationv1.Equivalent || *w.TimeoutSeconds != 10 ||
			*w.ReinvocationPolicy != admissionregistrationv1.NeverReinvocationPolicy || w.ObjectSelector == nil || *w.Rules[0].Scope != admissionregistrationv1.AllScopes {
			t.Fatalf("defaults not as upstream's: %+v", w)
		}
		webhookEventually(t, func() error {
			got, err := c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(nil), metav1.CreateOptions{})
			if err != nil {
				return err
			}
			if got.Labels["mutated-by"] != "webhook" {
				return fmt.Errorf("labels = %v, want the webhook's", got.Labels)
			}
			return nil
		})
		kubectl := kubectlRunner(t, kubectlOnPath(t), adminKubeconfig(t, s), nil)
		kubectl("-n", ns, "create", "configmap", "from-kubectl", "--from-literal=a=b")
		if out := kubectl("-n", ns, "get", "configmap", "from-kubectl", "-o", "jsonpath={.metadata.labels.mutated-by}"); out != "webhook" {
			t.Fatalf("kubectl sees label %q, want webhook", out)
		}
		if out := kubectl("get", "mutatingwebhookconfigurations"); !strings.Contains(out, "WEBHOOKS") || !strings.Contains(out, "label-configmaps   1") {
			t.Fatalf("kubectl get mutatingwebhookconfigurations:\n%s", out)
		}
	})

	t.Run("a failing webhook fails the request under Fail and not under Ignore", func(t *testing.T) {
		ns := webhookNamespace(t, c, "failing")
		url, ca := webhookServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "broken", http.StatusInternalServerError)
		}))
		cfg := validatingConfig("fail.skiff.test", ns, url, ca, nil)
		if _, err := vwc.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var err error
		webhookEventually(t, func() error {
			if _, err = c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(nil), metav1.CreateOptions{}); err == nil {
				return fmt.Errorf("created through a failing webhook with failurePolicy Fail")
			}
			return nil
		})
		if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), `failed calling webhook "fail.skiff.test": failed to call webhook: `) {
			t.Fatalf("error = %v, want a 500 saying the call failed", err)
		}
		cfg = validatingConfig("fail.skiff.test", ns, url, ca, func(w *admissionregistrationv1.ValidatingWebhook) {
			w.FailurePolicy = ptrTo(admissionregistrationv1.Ignore)
		})
		current, _ := vwc.Get(ctx, cfg.Name, metav1.GetOptions{})
		cfg.ResourceVersion = current.ResourceVersion
		if _, err := vwc.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer vwc.Delete(ctx, cfg.Name, metav1.DeleteOptions{})
		webhookEventually(t, func() error {
			_, err := c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(nil), metav1.CreateOptions{})
			return err
		})
	})

	t.Run("a slow webhook times out: Fail refuses, Ignore lets through", func(t *testing.T) {
		ns := webhookNamespace(t, c, "slow")
		release := make(chan struct{})
		defer close(release)
		url, ca := webhookServer(t, &admission.Webhook{Handler: admission.HandlerFunc(func(ctx context.Context, _ admission.Request) admission.Response {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return admission.Allowed("")
		})})
		for _, policy := range []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Fail, admissionregistrationv1.Ignore} {
			cfg := validatingConfig("slow.skiff.test", ns, url, ca, func(w *admissionregistrationv1.ValidatingWebhook) {
				w.FailurePolicy, w.TimeoutSeconds = &policy, ptrTo(int32(1))
			})
			cfg.Name += strings.ToLower(string(policy))
			if _, err := vwc.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if policy == admissionregistrationv1.Fail {
				var err error
				webhookEventually(t, func() error {
					if _, err = c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(nil), metav1.CreateOptions{}); err == nil {
						return fmt.Errorf("created through a webhook that never answers, with failurePolicy Fail")
					}
					return nil
				})
				if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), `failed calling webhook "slow.skiff.test"`) || !strings.Contains(err.Error(), "deadline exceeded") {
					t.Fatalf("error = %v, want a 500 saying the call timed out", err)
				}
			} else {
				webhookEventually(t, func() error {
					_, err := c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(nil), metav1.CreateOptions{})
					return err
				})
			}
			if err := vwc.Delete(ctx, cfg.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("dry runs reach webhooks without side effects, flagged as dry runs", func(t *testing.T) {
		ns := webhookNamespace(t, c, "dryrun")
		var sawDryRun atomic.Bool
		url, ca := webhookServer(t, &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
			if req.DryRun != nil && *req.DryRun {
				sawDryRun.Store(true)
				return admission.Denied("seen as a dry run")
			}
			return admission.Allowed("")
		})})
		cfg := validatingConfig("dryrun.skiff.test", ns, url, ca, func(w *admissionregistrationv1.ValidatingWebhook) {
			w.SideEffects = ptrTo(admissionregistrationv1.SideEffectClassNoneOnDryRun)
		})
		if _, err := vwc.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer vwc.Delete(ctx, cfg.Name, metav1.DeleteOptions{})
		webhookEventually(t, func() error {
			_, err := c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil || !strings.Contains(err.Error(), "seen as a dry run") {
				return fmt.Errorf("dry run answered %v, want the webhook's denial", err)
			}
			return nil
		})
		if !sawDryRun.Load() {
			t.Fatal("the webhook never saw dryRun: true")
		}
	})

	t.Run("namespaceSelector and CEL matchConditions choose what a webhook sees", func(t *testing.T) {
		ns := webhookNamespace(t, c, "selected")
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "unselected"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		url, ca := webhookServer(t, &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
			return admission.Denied("no")
		})})
		cfg := validatingConfig("cel.skiff.test", ns, url, ca, func(w *admissionregistrationv1.ValidatingWebhook) {
			w.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "deny-prefix", Expression: "object.metadata.name.startsWith('deny-')"}}
		})
		if _, err := vwc.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer vwc.Delete(ctx, cfg.Name, metav1.DeleteOptions{})
		webhookEventually(t, func() error {
			cm := configMap(nil)
			cm.Name = "deny-" + cm.Name
			if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err == nil {
				return fmt.Errorf("a configmap matching the condition was stored")
			}
			return nil
		})
		if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(nil), metav1.CreateOptions{}); err != nil {
			t.Fatalf("a configmap the condition excludes: %v", err)
		}
		cm := configMap(nil)
		cm.Name = "deny-" + cm.Name
		if _, err := c.CoreV1().ConfigMaps("unselected").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("a configmap in a namespace the selector excludes: %v", err)
		}
	})

	t.Run("matchConditions ask the authorizer about the requesting user", func(t *testing.T) {
		// the admin may list secrets: a webhook for those who may sees its writes, a webhook
		// for those who may not does not
		url, ca := webhookServer(t, &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
			return admission.Denied("secret readers may not create configmaps here")
		})})
		for test, expr := range map[string]string{
			"readers":    "authorizer.group('').resource('secrets').namespace(request.namespace).check('list').allowed()",
			"nonreaders": "!authorizer.group('').resource('secrets').namespace(request.namespace).check('list').allowed()",
		} {
			ns := webhookNamespace(t, c, test)
			cfg := validatingConfig("authz.skiff.test", ns, url, ca, func(w *admissionregistrationv1.ValidatingWebhook) {
				w.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "secret-readers", Expression: expr}}
			})
			if _, err := vwc.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			defer vwc.Delete(ctx, cfg.Name, metav1.DeleteOptions{})
		}
		var err error
		webhookEventually(t, func() error {
			if _, err = c.CoreV1().ConfigMaps("readers").Create(ctx, configMap(nil), metav1.CreateOptions{}); err == nil {
				return fmt.Errorf("the admin's configmap was stored: the webhook did not see it")
			}
			return nil
		})
		if want := `admission webhook "authz.skiff.test" denied the request: secret readers may not create configmaps here`; err.Error() != want {
			t.Errorf("the admin's configmap: %v, want %q", err, want)
		}
		if _, err := c.CoreV1().ConfigMaps("nonreaders").Create(ctx, configMap(nil), metav1.CreateOptions{}); err != nil {
			t.Errorf("a configmap the condition excludes for the admin: %v", err)
		}
	})

	t.Run("matchPolicy Equivalent sees autoscaling/v1 writes of a webhook for autoscaling/v2", func(t *testing.T) {
		ns := webhookNamespace(t, c, "equivalent")
		var kinds sync.Map
		url, ca := webhookServer(t, &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
			kinds.Store(req.Kind.Version+"/"+req.RequestKind.Version, true)
			var hpa autoscalingv2.HorizontalPodAutoscaler
			if err := json.Unmarshal(req.Object.Raw, &hpa); err != nil || hpa.Spec.MaxReplicas == 0 {
				return admission.Errored(http.StatusBadRequest, fmt.Errorf("not an autoscaling/v2 object: %v", err))
			}
			return admission.Denied("hpa " + hpa.Name + " seen as " + req.Kind.Version)
		})})
		hpaRule := func(policy admissionregistrationv1.MatchPolicyType) func(*admissionregistrationv1.ValidatingWebhook) {
			return func(w *admissionregistrationv1.ValidatingWebhook) {
				w.MatchPolicy = &policy
				w.Rules[0].Rule = admissionregistrationv1.Rule{APIGroups: []string{"autoscaling"}, APIVersions: []string{"v2"}, Resources: []string{"horizontalpodautoscalers"}}
			}
		}
		cfg := validatingConfig("hpa.skiff.test", ns, url, ca, hpaRule(admissionregistrationv1.Equivalent))
		if _, err := vwc.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		hpaV1 := func(name string) *autoscalingv1.HorizontalPodAutoscaler {
			return &autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: autoscalingv1.HorizontalPodAutoscalerSpec{MaxReplicas: 3,
					ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}}}
		}
		var err error
		webhookEventually(t, func() error {
			if _, err = c.AutoscalingV1().HorizontalPodAutoscalers(ns).Create(ctx, hpaV1("v1-"+strconv.FormatInt(cmSeq.Add(1), 10)), metav1.CreateOptions{}); err == nil {
				return fmt.Errorf("an autoscaling/v1 write passed a webhook for autoscaling/v2 with matchPolicy Equivalent")
			}
			return nil
		})
		if !strings.Contains(err.Error(), "seen as v2") {
			t.Fatalf("error = %v, want the webhook's denial of a v2 object", err)
		}
		if _, ok := kinds.Load("v2/v1"); !ok {
			t.Fatal("the webhook was not told the request was made in autoscaling/v1")
		}
		cfg = validatingConfig("hpa.skiff.test", ns, url, ca, hpaRule(admissionregistrationv1.Exact))
		current, _ := vwc.Get(ctx, cfg.Name, metav1.GetOptions{})
		cfg.ResourceVersion = current.ResourceVersion
		if _, err := vwc.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer vwc.Delete(ctx, cfg.Name, metav1.DeleteOptions{})
		webhookEventually(t, func() error {
			_, err := c.AutoscalingV1().HorizontalPodAutoscalers(ns).Create(ctx, hpaV1("exact-"+strconv.FormatInt(cmSeq.Add(1), 10)), metav1.CreateOptions{})
			return err
		})
	})

	t.Run("a webhook behind a Service is reached through its EndpointSlice", func(t *testing.T) {
		ns := webhookNamespace(t, c, "service")
		url, ca := webhookServer(t, validatingDenier("forbidden"), "webhook-svc.service.svc")
		_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(url, "https://"))
		port, _ := strconv.Atoi(portStr)
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "webhook-svc"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt(port)}}}}
		if _, err := c.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "webhook-svc-1", Labels: map[string]string{discoveryv1.LabelServiceName: "webhook-svc"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptrTo(true)}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptrTo("https"), Port: ptrTo(int32(port))}}}
		if _, err := c.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cfg := validatingConfig("svc.skiff.test", ns, "", ca, func(w *admissionregistrationv1.ValidatingWebhook) {
			w.ClientConfig = admissionregistrationv1.WebhookClientConfig{CABundle: ca,
				Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "webhook-svc", Path: ptrTo("/validate")}}
		})
		if _, err := vwc.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer vwc.Delete(ctx, cfg.Name, metav1.DeleteOptions{})
		webhookEventually(t, func() error {
			_, err := c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(map[string]string{"forbidden": "x"}), metav1.CreateOptions{})
			if err == nil || !strings.Contains(err.Error(), `admission webhook "svc.skiff.test" denied the request`) {
				return fmt.Errorf("through the Service: %v, want the webhook's denial", err)
			}
			return nil
		})
	})

	t.Run("a validating webhook for DELETE sees the stored object and may refuse", func(t *testing.T) {
		ns := webhookNamespace(t, c, "deleting")
		url, ca := webhookServer(t, &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
			var cm corev1.ConfigMap
			if err := json.Unmarshal(req.OldObject.Raw, &cm); err != nil || len(req.Object.Raw) > 0 {
				return admission.Errored(http.StatusBadRequest, fmt.Errorf("a DELETE carries the old object only: %v", err))
			}
			if cm.Labels["protected"] == "true" {
				return admission.Denied(cm.Name + " is protected")
			}
			return admission.Allowed("")
		})})
		cfg := validatingConfig("delete.skiff.test", ns, url, ca, func(w *admissionregistrationv1.ValidatingWebhook) {
			w.Rules[0].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Delete}
		})
		if _, err := vwc.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer vwc.Delete(ctx, cfg.Name, metav1.DeleteOptions{})
		protected := configMap(nil)
		protected.Labels = map[string]string{"protected": "true"}
		if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, protected, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var err error
		webhookEventually(t, func() error {
			if err = c.CoreV1().ConfigMaps(ns).Delete(ctx, protected.Name, metav1.DeleteOptions{}); err == nil {
				return fmt.Errorf("a protected configmap was deleted")
			}
			return nil
		})
		if want := `admission webhook "delete.skiff.test" denied the request: ` + protected.Name + ` is protected`; err.Error() != want {
			t.Fatalf("delete = %v, want %q", err, want)
		}
		plain, err := c.CoreV1().ConfigMaps(ns).Create(ctx, configMap(nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CoreV1().ConfigMaps(ns).Delete(ctx, plain.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("an unprotected configmap: %v", err)
		}
		if _, err := c.CoreV1().ConfigMaps(ns).Get(ctx, protected.Name, metav1.GetOptions{}); err != nil {
			t.Fatalf("the protected configmap is gone: %v", err)
		}
	})

	t.Run("invalid configurations get 422 and nothing is stored", func(t *testing.T) {
		good := func() *admissionregistrationv1.ValidatingWebhookConfiguration {
			return validatingConfig("bad.skiff.test", "bad", "https://127.0.0.1:1/x", nil, nil)
		}
		cases := map[string]struct {
			edit func(*admissionregistrationv1.ValidatingWebhookConfiguration)
			want string
		}{
			"no sideEffects": {func(c *admissionregistrationv1.ValidatingWebhookConfiguration) { c.Webhooks[0].SideEffects = nil },
				"webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"},
			"sideEffects Some": {func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
				c.Webhooks[0].SideEffects = ptrTo(admissionregistrationv1.SideEffectClassSome)
			}, `webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun"`},
			"no admissionReviewVersions": {func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
				c.Webhooks[0].AdmissionReviewVersions = nil
			},
				"webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1"},
			"invalid CEL": {func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
				c.Webhooks[0].MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "broken", Expression: "object.metadata.name ==="}}
			}, "webhooks[0].matchConditions[0].expression: Invalid value: \"object.metadata.name ===\": compilation failed"},
			"http url": {func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
				c.Webhooks[0].ClientConfig.URL = ptrTo("http://127.0.0.1/x")
			},
				`webhooks[0].clientConfig.url: Invalid value: "http": 'https' is the only allowed URL scheme`},
			"a name with two segments": {func(c *admissionregistrationv1.ValidatingWebhookConfiguration) { c.Webhooks[0].Name = "bad.test" },
				`webhooks[0].name: Invalid value: "bad.test": should be a domain with at least three segments separated by dots`},
			"both url and service": {func(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
				c.Webhooks[0].ClientConfig.Service = &admissionregistrationv1.ServiceReference{Namespace: "a", Name: "b"}
			}, "webhooks[0].clientConfig: Required value: exactly one of url or service is required"},
		}
		for name, tc := range cases {
			cfg := good()
			cfg.Name = "invalid-" + strings.ReplaceAll(strings.ToLower(name), " ", "-")
			tc.edit(cfg)
			_, err := vwc.Create(ctx, cfg, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want 422 with %q", name, err, tc.want)
			}
			resp, err := s.Etcd.Get(ctx, "/registry/validatingwebhookconfigurations/"+cfg.Name)
			if err != nil || resp.Count != 0 {
				t.Errorf("%s: stored anyway (%v)", name, err)
			}
		}
	})
}
