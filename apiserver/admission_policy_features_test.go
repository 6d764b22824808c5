package apiserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// configMapPolicy is a policy on configmaps labelled policy=<name>, so that the policies of
// one test server do not see each other's objects.
func configMapPolicy(name string, validations ...admissionregistrationv1.Validation) *admissionregistrationv1.ValidatingAdmissionPolicy {
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"policy": name}},
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
				}}},
			},
			Validations: validations,
		},
	}
}

func policyBinding(name, policy string, actions ...admissionregistrationv1.ValidationAction) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy, ValidationActions: actions},
	}
}

func labelledConfigMap(name, policy string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"policy": policy}}, Data: data}
}

// bindPolicy stores a policy and its binding and waits until the server enforces them: until
// a create of probe is refused.
func bindPolicy(t *testing.T, cs kubernetes.Interface, p *admissionregistrationv1.ValidatingAdmissionPolicy, b *admissionregistrationv1.ValidatingAdmissionPolicyBinding, probe func() error) {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if probe != nil {
		eventually(t, "policy "+p.Name+" enforced", func() error {
			if err := probe(); err == nil {
				return fmt.Errorf("probe allowed")
			}
			return nil
		})
	}
}

func TestValidatingAdmissionPolicyActionsAndExpressions(t *testing.T) {
	dir := t.TempDir()
	auditPolicy, logPath := filepath.Join(dir, "audit-policy.yaml"), filepath.Join(dir, "audit.log")
	if err := os.WriteFile(auditPolicy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources:\n  - group: \"\"\n    resources: [configmaps]\n- level: None\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := apiservertest.Start(t, func(c *apiserver.Config) { c.AuditPolicyFile, c.AuditLogPath = auditPolicy, logPath })
	ctx := context.Background()
	seen := &warnings{}
	cfg := rest.CopyConfig(s.Config)
	cfg.WarningHandler = seen
	cs := kubernetes.NewForConfigOrDie(cfg)
	cms := cs.CoreV1().ConfigMaps("default")

	t.Run("Deny with message, messageExpression and reason", func(t *testing.T) {
		p := configMapPolicy("deny-policy",
			admissionregistrationv1.Validation{Expression: "has(object.data) && 'owner' in object.data", Message: "an owner is required"},
			admissionregistrationv1.Validation{Expression: "!has(object.data) || !('color' in object.data) || object.data.color != 'red'",
				MessageExpression: "'color ' + object.data.color + ' is not allowed in ' + request.namespace", Reason: ptr.To(metav1.StatusReasonForbidden)},
			admissionregistrationv1.Validation{Expression: "object.metadata.name.size() < 10"})
		bindPolicy(t, cs, p, policyBinding("deny-binding", "deny-policy", admissionregistrationv1.Deny), func() error {
			_, err := cms.Create(ctx, labelledConfigMap("probe", "deny-policy", nil), metav1.CreateOptions{DryRun: []string{"All"}})
			return err
		})
		_, err := cms.Create(ctx, labelledConfigMap("a", "deny-policy", map[string]string{"color": "blue"}), metav1.CreateOptions{})
		if want := `configmaps "a" is forbidden: ValidatingAdmissionPolicy 'deny-policy' with binding 'deny-binding' denied request: an owner is required`; err == nil || err.Error() != want || !apierrors.IsInvalid(err) {
			t.Errorf("no owner: %v", err)
		}
		_, err = cms.Create(ctx, labelledConfigMap("b", "deny-policy", map[string]string{"owner": "me", "color": "red"}), metav1.CreateOptions{})
		if want := `configmaps "b" is forbidden: ValidatingAdmissionPolicy 'deny-policy' with binding 'deny-binding' denied request: color red is not allowed in default`; err == nil || err.Error() != want || !apierrors.IsForbidden(err) {
			t.Errorf("red: %v", err)
		}
		_, err = cms.Create(ctx, labelledConfigMap("a-long-name", "deny-policy", map[string]string{"owner": "me"}), metav1.CreateOptions{})
		if err == nil || !strings.HasSuffix(err.Error(), "denied request: failed expression: object.metadata.name.size() < 10") {
			t.Errorf("long name: %v", err)
		}
		if _, err := cms.Create(ctx, labelledConfigMap("ok", "deny-policy", map[string]string{"owner": "me"}), metav1.CreateOptions{}); err != nil {
			t.Errorf("valid configmap: %v", err)
		}
	})

	t.Run("Warn", func(t *testing.T) {
		p := configMapPolicy("warn-policy", admissionregistrationv1.Validation{Expression: "object.data.size() < 2"})
		bindPolicy(t, cs, p, policyBinding("warn-binding", "warn-policy", admissionregistrationv1.Warn), nil)
		want := "Validation failed for ValidatingAdmissionPolicy 'warn-policy' with binding 'warn-binding': failed expression: object.data.size() < 2"
		eventually(t, "warning", func() error {
			seen.take()
			cm := labelledConfigMap("", "warn-policy", map[string]string{"a": "1", "b": "2"})
			cm.GenerateName = "warned-"
			if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Fatalf("Warn must not deny: %v", err)
			}
			if got := seen.take(); len(got) != 1 || got[0] != want {
				return fmt.Errorf("warnings %q", got)
			}
			return nil
		})
	})

	t.Run("Audit and audit annotations", func(t *testing.T) {
		p := configMapPolicy("audit-policy", admissionregistrationv1.Validation{Expression: "!('secret' in object.data)", Message: "no secrets in configmaps"})
		p.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: "keys", ValueExpression: "string(object.data.size()) + ' keys'"}}
		bindPolicy(t, cs, p, policyBinding("audit-binding", "audit-policy", admissionregistrationv1.Audit), nil)
		eventually(t, "audit annotation", func() error {
			cm := labelledConfigMap("", "audit-policy", map[string]string{"secret": "x"})
			cm.GenerateName = "audited-"
			if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Fatalf("Audit must not deny: %v", err)
			}
			ev := lastConfigMapCreate(t, logPath)
			if ev == nil {
				return fmt.Errorf("no audit event")
			}
			var failures []map[string]any
			if err := json.Unmarshal([]byte(ev.Annotations["validation.policy.admission.k8s.io/validation_failure"]), &failures); err != nil || len(failures) != 1 {
				return fmt.Errorf("annotations %v", ev.Annotations)
			}
			f := failures[0]
			if f["message"] != "no secrets in configmaps" || f["policy"] != "audit-policy" || f["binding"] != "audit-binding" ||
				f["expressionIndex"] != float64(0) || fmt.Sprint(f["validationActions"]) != "[Audit]" {
				t.Errorf("validation failure %v", f)
			}
			if got := ev.Annotations["audit-policy/keys"]; got != "1 keys" {
				t.Errorf("audit annotation %q", got)
			}
			return nil
		})
	})

	t.Run("variables", func(t *testing.T) {
		p := configMapPolicy("variables-policy", admissionregistrationv1.Validation{Expression: "variables.size <= 1",
			MessageExpression: "'too many keys: ' + string(variables.size)"})
		p.Spec.Variables = []admissionregistrationv1.Variable{{Name: "size", Expression: "has(object.data) ? object.data.size() : 0"}}
		bindPolicy(t, cs, p, policyBinding("variables-binding", "variables-policy", admissionregistrationv1.Deny), func() error {
			_, err := cms.Create(ctx, labelledConfigMap("probe", "variables-policy", map[string]string{"a": "1", "b": "2"}), metav1.CreateOptions{DryRun: []string{"All"}})
			return err
		})
		_, err := cms.Create(ctx, labelledConfigMap("three", "variables-policy", map[string]string{"a": "1", "b": "2", "c": "3"}), metav1.CreateOptions{})
		if err == nil || !strings.HasSuffix(err.Error(), "denied request: too many keys: 3") {
			t.Errorf("three keys: %v", err)
		}
		if _, err := cms.Create(ctx, labelledConfigMap("one", "variables-policy", map[string]string{"a": "1"}), metav1.CreateOptions{}); err != nil {
			t.Errorf("one key: %v", err)
		}
	})

	t.Run("failurePolicy on a runtime error", func(t *testing.T) {
		fail := configMapPolicy("fail-policy", admissionregistrationv1.Validation{Expression: "object.data.missing == 'x'"})
		bindPolicy(t, cs, fail, policyBinding("fail-binding", "fail-policy", admissionregistrationv1.Deny), func() error {
			_, err := cms.Create(ctx, labelledConfigMap("probe", "fail-policy", map[string]string{"a": "1"}), metav1.CreateOptions{DryRun: []string{"All"}})
			return err
		})
		_, err := cms.Create(ctx, labelledConfigMap("err", "fail-policy", map[string]string{"a": "1"}), metav1.CreateOptions{})
		if want := `configmaps "err" is forbidden: ValidatingAdmissionPolicy 'fail-policy' with binding 'fail-binding' denied request: expression 'object.data.missing == 'x'' resulted in error: no such key: missing`; err == nil || err.Error() != want {
			t.Errorf("Fail: %v", err)
		}
		ignore := configMapPolicy("ignore-policy", admissionregistrationv1.Validation{Expression: "object.data.missing == 'x'"},
			admissionregistrationv1.Validation{Expression: "object.data.size() < 3"})
		ignore.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
		bindPolicy(t, cs, ignore, policyBinding("ignore-binding", "ignore-policy", admissionregistrationv1.Deny), func() error {
			_, err := cms.Create(ctx, labelledConfigMap("probe", "ignore-policy", map[string]string{"a": "1", "b": "2", "c": "3"}), metav1.CreateOptions{DryRun: []string{"All"}})
			return err
		})
		if _, err := cms.Create(ctx, labelledConfigMap("ignored", "ignore-policy", map[string]string{"a": "1"}), metav1.CreateOptions{}); err != nil {
			t.Errorf("Ignore must let the error pass: %v", err)
		}
	})
}

// lastConfigMapCreate is the ResponseComplete event of the last configmap create, or nil.
func lastConfigMapCreate(t *testing.T, logPath string) *auditv1.Event {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var last *auditv1.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Verb == "create" && ev.Stage == auditv1.StageResponseComplete && ev.ObjectRef != nil && ev.ObjectRef.Resource == "configmaps" {
			last = &ev
		}
	}
	return last
}
