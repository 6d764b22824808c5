package apiserver_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// fakeKubelet answers the kubelet paths the API server passes requests through to.
func fakeKubelet(t *testing.T) (host string, port int32) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/containerLogs/default/logged/app":
			fmt.Fprintf(w, "log line (tailLines=%s)\n", r.URL.Query().Get("tailLines"))
		case strings.HasPrefix(r.URL.Path, "/exec/default/logged/app") && r.Header.Get("Upgrade") == "skiff-test":
			conn, rw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: skiff-test\r\n\r\n")
			rw.Flush()
			line, _ := rw.ReadString('\n')
			rw.WriteString("echo " + line)
			rw.Flush()
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	h, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	n, _ := strconv.Atoi(p)
	return h, int32(n)
}

func TestLogsAndExecPassThroughToTheKubelet(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	host, port := fakeKubelet(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	node, err := s.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = port
	if _, err := s.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := testPod("logged")
	pod.Spec.Containers[0].Name = "app"
	pod.Spec.NodeName = "n1"
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tail := int64(5)
	logs, err := s.Client.CoreV1().Pods("default").GetLogs("logged", &corev1.PodLogOptions{TailLines: &tail}).DoRaw(ctx)
	if err != nil || string(logs) != "log line (tailLines=5)\n" {
		t.Fatalf("logs %q %v", logs, err)
	}

	// an upgraded connection (what exec does) is passed through both ways
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.URL, "https://"), &tls.Config{RootCAs: s.PKI.CAPool, Certificates: []tls.Certificate{s.PKI.AdminCert}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/namespaces/default/pods/logged/exec?command=sh HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: skiff-test\r\nContent-Length: 0\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("exec upgrade: %d %s", resp.StatusCode, body)
	}
	fmt.Fprintf(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo hello\n" {
		t.Fatalf("through the upgraded connection: %q %v", line, err)
	}
}

func TestExecByGETNeedsCreateAsWellAsGet(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, testPod("target"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "exec", Namespace: "default"},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/attach", "pods/portforward"}}},
	}
	if _, err := s.Client.RbacV1().Roles("default").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "exec", Namespace: "default"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "exec"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "watcher"}},
	}
	if _, err := s.Client.RbacV1().RoleBindings("default").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client, _ := userClient(t, s, "watcher")
	// get answers the Status of a GET of the subresource (what a WebSocket upgrade is)
	get := func(subresource string) metav1.Status {
		body, _ := client.CoreV1().RESTClient().Get().Namespace("default").Resource("pods").Name("target").SubResource(subresource).Param("command", "sh").DoRaw(ctx)
		var status metav1.Status
		_ = json.Unmarshal(body, &status)
		return status
	}

	// the WebSocket upgrade is a GET: "get" lets it through authorization, "create" must too
	for _, sub := range []string{"exec", "attach", "portforward"} {
		want := fmt.Sprintf(`pods "target" is forbidden: User "watcher" cannot create resource "pods/%s" in API group "" in the namespace "default"`, sub)
		eventually(t, "GET pods/"+sub+" with get alone", func() error {
			if got := get(sub); got.Code != http.StatusForbidden || got.Message != want {
				return fmt.Errorf("got %d %q, want %s", got.Code, got.Message, want)
			}
			return nil
		})
	}
	role.Rules[0].Verbs = []string{"get", "create"}
	if _, err := s.Client.RbacV1().Roles("default").Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "GET pods/exec with get and create", func() error {
		// past authorization: the pod has no node to reach
		if got := get("exec"); got.Code != http.StatusBadRequest || got.Message != "pod target does not have a host assigned" {
			return fmt.Errorf("got %d %q", got.Code, got.Message)
		}
		return nil
	})
}
