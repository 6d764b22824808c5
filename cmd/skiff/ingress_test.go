package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/ingress"
)

// The ingress controller's status port: /healthz says 503 until the routes are built from
// the API's objects, then 200; /metrics has its series.
func TestIngressStatusPortServesHealthzAndMetrics(t *testing.T) {
	client := fake.NewClientset()
	f := ingress.NewFactories(client, "node-1")
	c, err := ingress.NewFromFactories(client, f, ingress.Config{NodeName: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := serveIngressStatus(ctx, c, addr); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz before the first sync: want 503, got %d %q", code, body)
	}

	f.Start(ctx.Done())
	ran := make(chan struct{})
	go func() { defer close(ran); c.Run(ctx) }()
	defer func() { cancel(); <-ran; f.Shutdown() }()
	deadline := time.Now().Add(time.Minute)
	for code, _ := get("/healthz"); code != http.StatusOK; code, _ = get("/healthz") {
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still answers %d after the controller synced", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "skiff_ingress_routes 0") {
		t.Errorf("/metrics: want skiff_ingress_routes, got %d:\n%s", code, body)
	}
}
