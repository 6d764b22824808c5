package apiserver_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// stalledWrite opens a TLS connection to the server as the admin and sends the headers of a
// ConfigMap create announcing a 1 MiB body, and nothing of the body.
func stalledWrite(t *testing.T, s *apiservertest.Server) *tls.Conn {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.URL, "https://"), &tls.Config{
		RootCAs: s.PKI.CAPool, Certificates: []tls.Certificate{s.PKI.AdminCert}, NextProtos: []string{"http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: skiff\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", 1<<20)
	return conn
}

func TestStalledBodiesHoldNoWriteSlot(t *testing.T) {
	s := apiservertest.Start(t, func(c *apiserver.Config) { c.MaxMutatingRequestsInFlight = 4 })
	for range 16 {
		stalledWrite(t, s)
	}
	// Give the server the moment it takes to read those headers; with the slots held, every
	// write below is refused with 429 however long it waits.
	time.Sleep(time.Second)
	for i := range 8 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("after-%d", i)}}
		if _, err := s.Client.CoreV1().ConfigMaps("default").Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("a write beside 16 stalled ones: %v", err)
		}
	}
}

func TestStalledBodyGetsTimeoutAndItsConnectionIsClosed(t *testing.T) {
	s := apiservertest.Start(t, func(c *apiserver.Config) { c.RequestTimeout = 2 * time.Second })
	conn := stalledWrite(t, s)
	// Ten seconds is far beyond the request timeout: reaching it means the server never answered.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("answer %d %q: %v", resp.StatusCode, body, err)
	}
	if resp.StatusCode != http.StatusGatewayTimeout || st.Reason != metav1.StatusReasonTimeout ||
		st.Message != "Timeout: request did not complete within requested timeout - context deadline exceeded" {
		t.Errorf("answer %d %+v", resp.StatusCode, st)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection after the answer: %v, want it closed", err)
	}
}

func TestAuditedWriteLargerThanTheAuditBoundReachesTheHandlerWhole(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := apiservertest.Start(t, func(c *apiserver.Config) { c.AuditPolicyFile, c.AuditLogPath = policy, filepath.Join(dir, "audit.log") })
	// 1 MiB of data and 100 kB of labels: a body over the 1 MiB an audit event records.
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "large", Labels: map[string]string{}},
		Data:       map[string]string{"d": strings.Repeat("x", 1<<20-10)},
	}
	for i := range 5000 {
		cm.Labels[fmt.Sprintf("k%05d", i)] = "v"
	}
	got, err := s.Client.CoreV1().ConfigMaps("default").Create(context.Background(), cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(got.Data["d"]) != 1<<20-10 || len(got.Labels) != 5000 {
		t.Errorf("stored %d bytes of data and %d labels", len(got.Data["d"]), len(got.Labels))
	}
}

func TestStalledBodyOverHTTP2GetsTimeout(t *testing.T) {
	s := apiservertest.Start(t, func(c *apiserver.Config) { c.RequestTimeout = 2 * time.Second })
	client, err := rest.HTTPClientFor(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()
	body, stall := io.Pipe()
	defer stall.Close()
	req, err := http.NewRequest("POST", s.URL+"/api/v1/namespaces/default/configmaps", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1 << 20
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("answer %s %d, want HTTP/2 504", resp.Proto, resp.StatusCode)
	}
}
