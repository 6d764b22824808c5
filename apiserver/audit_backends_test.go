package apiserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// webhookKubeconfig writes a kubeconfig whose cluster is hs (plus path), as
// --audit-webhook-config-file takes it. Credentials go over TLS only, as client-go sends them.
func webhookKubeconfig(t *testing.T, hs *httptest.Server, path string) string {
	t.Helper()
	url := hs.URL + path
	ca := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}))
	file := filepath.Join(t.TempDir(), "webhook.kubeconfig")
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: audit-sink
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: apiserver
  user: {token: sink-token}
contexts:
- name: default
  context: {cluster: audit-sink, user: apiserver}
current-context: default
`, url, ca)
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func writePolicy(t *testing.T, policy string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// auditSink is an HTTP server that keeps the EventLists POSTed to it.
type auditSink struct {
	mu      sync.Mutex
	batches []auditv1.EventList
	bad     []string
	arrived chan struct{}
}

func (s *auditSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var list auditv1.EventList
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
		r.Header.Get("Authorization") != "Bearer sink-token":
		s.bad = append(s.bad, fmt.Sprintf("%s %s %v", r.Method, r.URL, r.Header))
	case json.Unmarshal(body, &list) != nil || list.APIVersion != "audit.k8s.io/v1" || list.Kind != "EventList":
		s.bad = append(s.bad, string(body))
	default:
		s.batches = append(s.batches, list)
	}
	select {
	case s.arrived <- struct{}{}:
	default:
	}
}

// events are the events received so far.
func (s *auditSink) events() []auditv1.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []auditv1.Event
	for _, b := range s.batches {
		out = append(out, b.Items...)
	}
	return out
}

func TestAuditWebhookReceivesBatchedEventLists(t *testing.T) {
	sink := &auditSink{arrived: make(chan struct{}, 1)}
	hs := httptest.NewTLSServer(sink)
	defer hs.Close()
	policy := writePolicy(t, `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
omitManagedFields: true
rules:
- level: RequestResponse
  resources: [{group: "", resources: [configmaps]}]
- level: RequestResponse
  omitManagedFields: false
  resources: [{group: "", resources: [secrets]}]
- level: None
`)
	logPath := filepath.Join(t.TempDir(), "audit.log")
	s := apiservertest.Start(t, func(c *apiserver.Config) {
		c.AuditPolicyFile, c.AuditLogPath = policy, logPath
		c.AuditWebhook = apiserver.AuditWebhook{ConfigFile: webhookKubeconfig(t, hs, "/audit"),
			MaxBatchSize: 3, MaxBatchWait: 50 * time.Millisecond}
	})
	ctx := context.Background()
	const creates = 7
	for i := range creates {
		if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "cm" + strconv.Itoa(i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	deadline := time.After(30 * time.Second)
	for len(sink.events()) < creates+1 {
		select {
		case <-sink.arrived:
		case <-deadline:
			t.Fatalf("the webhook received %d events, want %d; malformed requests: %q", len(sink.events()), creates+1, sink.bad)
		}
	}
	sink.mu.Lock()
	if len(sink.bad) > 0 {
		t.Errorf("malformed requests: %q", sink.bad)
	}
	for _, b := range sink.batches {
		if len(b.Items) > 3 {
			t.Errorf("a batch of %d events, want at most --audit-webhook-batch-max-size 3", len(b.Items))
		}
	}
	sink.mu.Unlock()
	for _, ev := range sink.events() {
		if ev.Stage != auditv1.StageResponseComplete || ev.Verb != "create" || ev.AuditID == "" || ev.ObjectRef == nil {
			t.Errorf("unexpected event %+v", ev)
			continue
		}
		hasManagedFields := ev.ResponseObject != nil && bytes.Contains(ev.ResponseObject.Raw, []byte(`"managedFields"`))
		if want := ev.ObjectRef.Resource == "secrets"; hasManagedFields != want {
			t.Errorf("%s event has managedFields %v, want %v (the policy omits them, the secrets rule keeps them)",
				ev.ObjectRef.Resource, hasManagedFields, want)
		}
	}
	// the log file receives the same events
	logged, err := os.ReadFile(logPath)
	if err != nil || bytes.Count(logged, []byte("\n")) < creates+1 {
		t.Errorf("the log has %d lines (%v), want the same %d events", bytes.Count(logged, []byte("\n")), err, creates+1)
	}
}

func TestAuditWebhookThatHangsCostsEventsNotRequests(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	hs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer hs.Close()
	defer unblock()
	policy := writePolicy(t, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
	s := apiservertest.Start(t, func(c *apiserver.Config) {
		c.AuditPolicyFile = policy
		c.AuditWebhook = apiserver.AuditWebhook{ConfigFile: webhookKubeconfig(t, hs, ""),
			BufferSize: 2, MaxBatchSize: 1, MaxBatchWait: time.Millisecond}
	})
	t.Cleanup(unblock) // before the server stops, so that its last send returns
	ctx := context.Background()
	// far more events than the buffer holds, while the webhook answers nothing: had a
	// request waited for the webhook, these would never return
	for range 20 {
		if _, err := s.Client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	m := regexp.MustCompile(`apiserver_audit_error_total\{plugin="webhook"\} (\d+)`).FindStringSubmatch(scrapeMetrics(t, s.Config))
	if m == nil {
		t.Fatal("/metrics has no apiserver_audit_error_total for the webhook")
	}
	if n, _ := strconv.Atoi(m[1]); n < 20 {
		t.Errorf("%d events counted dropped, want at least 20 of the 40+ the buffer of 2 could not hold", n)
	}
}

func TestAuditLogRotatesAtMaxSize(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.log")
	policy := writePolicy(t, `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: RequestResponse
  resources: [{group: "", resources: [configmaps]}]
- level: None
`)
	s := apiservertest.Start(t, func(c *apiserver.Config) {
		c.AuditPolicyFile, c.AuditLogPath = policy, logPath
		c.AuditLogRotation = apiserver.AuditLogRotation{MaxSize: 1, MaxBackups: 1}
	})
	big := strings.Repeat("x", 200<<10) // each create records it twice: request and response
	for i := range 8 {
		if _, err := s.Client.CoreV1().ConfigMaps("default").Create(context.Background(), &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "big" + strconv.Itoa(i)}, Data: map[string]string{"v": big}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "audit*.log"))
	if len(files) < 2 {
		t.Fatalf("log files %v, want the log and a rotated backup after 3 MB of events with --audit-log-maxsize 1", files)
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, more than --audit-log-maxsize 1 (MB)", f, fi.Size())
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", f, fi.Mode().Perm())
		}
	}
}
