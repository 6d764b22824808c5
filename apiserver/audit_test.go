package apiserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestAuditLogRecordsRequestsAsThePolicySays(t *testing.T) {
	dir := t.TempDir()
	policy, logPath := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "audit.log")
	if err := os.WriteFile(policy, []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version"]
- level: RequestResponse
  resources:
  - group: ""
    resources: [configmaps]
- level: Metadata
  resources:
  - group: ""
    resources: [secrets]
- level: None
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := apiservertest.Start(t, func(c *apiserver.Config) { c.AuditPolicyFile, c.AuditLogPath = policy, logPath })
	ctx := context.Background()
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "audited"},
		Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	alice, _ := userClient(t, s, "alice")
	alice.CoreV1().Secrets("default").Get(ctx, "nope", metav1.GetOptions{})
	_, cfg := userClient(t, s, "admin", "system:masters")
	cfg.Impersonate.UserName = "bob"
	kubernetes.NewForConfigOrDie(cfg).CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if _, err := s.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []auditv1.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		events = append(events, ev)
	}
	find := func(verb, resource, user string) *auditv1.Event {
		for i, ev := range events {
			if ev.Verb == verb && ev.ObjectRef != nil && ev.ObjectRef.Resource == resource && ev.User.Username == user {
				return &events[i]
			}
		}
		return nil
	}
	for _, ev := range events {
		if ev.APIVersion != "audit.k8s.io/v1" || ev.Kind != "Event" || ev.AuditID == "" || ev.Stage != auditv1.StageResponseComplete {
			t.Errorf("event %+v: want audit.k8s.io/v1 Events of the ResponseComplete stage only", ev)
		}
		if ev.ObjectRef != nil && ev.ObjectRef.Resource == "pods" {
			t.Errorf("pods are not to be audited: %+v", ev)
		}
	}
	if ev := find("create", "configmaps", "admin"); ev == nil || ev.Level != auditv1.LevelRequestResponse || ev.RequestObject == nil ||
		ev.ResponseObject == nil || ev.ResponseStatus == nil || ev.ResponseStatus.Code != 201 || ev.Annotations["authorization.k8s.io/decision"] != "allow" {
		t.Errorf("the config map's create: %+v", ev)
	}
	if ev := find("get", "secrets", "alice"); ev == nil || ev.Level != auditv1.LevelMetadata || ev.RequestObject != nil ||
		ev.ResponseStatus.Code != 403 || ev.Annotations["authorization.k8s.io/decision"] != "forbid" {
		t.Errorf("alice's forbidden get: %+v", ev)
	}
	if ev := find("list", "secrets", "admin"); ev == nil || ev.ImpersonatedUser == nil || ev.ImpersonatedUser.Username != "bob" {
		t.Errorf("the admin's list as bob: %+v", ev)
	}
}
