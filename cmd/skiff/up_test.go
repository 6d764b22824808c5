package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// lockedBuffer is a stdout that a test reads while runUp writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// upCluster is one `skiff up` running in the test process.
type upCluster struct {
	stdout *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

func startUp(t *testing.T, dataDir string, port int, adjust ...func(*upOptions)) *upCluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &upCluster{stdout: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	o := &upOptions{dataDir: dataDir, port: port, readyTimeout: time.Minute,
		// no real containers wanted here: the fake runtime starts at once
		runtimeEndpoint: fakeRuntimeEndpoint}
	for _, a := range adjust {
		a(o)
	}
	go func() { c.done <- runUp(ctx, o, 0, c.stdout) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.done:
		case <-time.After(time.Minute):
			t.Error("skiff up did not stop within a minute of being asked")
		}
	})
	return c
}

// waitForLine waits until stdout has a line containing word, or up returned.
func (c *upCluster) waitForLine(t *testing.T, word string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(c.stdout.String(), word) {
			return
		}
		select {
		case err := <-c.done:
			c.done <- err
			t.Fatalf("skiff up returned %v before printing %q; stdout:\n%s", err, word, c.stdout.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("skiff up printed no %q line; stdout:\n%s", word, c.stdout.String())
}

// stop interrupts up as Ctrl-C would and returns what it returned.
func (c *upCluster) stop(t *testing.T) error {
	t.Helper()
	c.cancel()
	select {
	case err := <-c.done:
		c.done <- err // for Cleanup
		return err
	case <-time.After(time.Minute):
		t.Fatal("skiff up did not stop within a minute of being asked")
		return nil
	}
}

func readyzThrough(t *testing.T, kubeconfig string) int {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(cfg.Host + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestUpServesUntilInterruptedAndResumesOnRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "skiff")
	port := freePort(t)
	kubeconfig := filepath.Join(dataDir, "kubeconfig")

	first := startUp(t, dataDir, port)
	first.waitForLine(t, "ready")

	out := first.stdout.String()
	if !strings.Contains(out, "export KUBECONFIG="+kubeconfig+"\n") {
		t.Errorf("stdout does not tell where the kubeconfig is:\n%s", out)
	}
	if code := readyzThrough(t, kubeconfig); code != http.StatusOK {
		t.Errorf("/readyz through the admin kubeconfig answered %d", code)
	}
	fi, err := os.Stat(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %o, want 600", fi.Mode().Perm())
	}
	caBefore, err := os.ReadFile(filepath.Join(dataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}

	if err := first.stop(t); err != nil {
		t.Fatalf("skiff up stopped with %v, want a clean stop", err)
	}
	// the port is free again: the server is gone, not leaked
	l, err := net.Listen("tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("port %d still taken after skiff up stopped: %v", port, err)
	}
	l.Close()

	second := startUp(t, dataDir, port)
	second.waitForLine(t, "ready")
	caAfter, err := os.ReadFile(filepath.Join(dataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(caBefore, caAfter) {
		t.Error("the restarted cluster has another CA: old kubeconfigs no longer work")
	}
	if code := readyzThrough(t, kubeconfig); code != http.StatusOK {
		t.Errorf("/readyz after restart answered %d", code)
	}
	if err := second.stop(t); err != nil {
		t.Fatalf("second skiff up stopped with %v", err)
	}
}

func TestUpFailsCleanlyWhenThePortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	o := &upOptions{dataDir: t.TempDir(), port: port, readyTimeout: time.Minute,
		// no real containers wanted here: the fake runtime starts at once
		runtimeEndpoint: fakeRuntimeEndpoint}
	done := make(chan error, 1)
	go func() { done <- runUp(context.Background(), o, 0, &lockedBuffer{}) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "apiserver") {
			t.Errorf("skiff up on a taken port = %v, want the API server's error", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("skiff up on a taken port neither failed nor stopped")
	}
}

func TestTheAPIServerOutlivesTheDNSServersStop(t *testing.T) {
	dnsStopped := make(chan struct{})
	otherDoneWhenStopped := make(chan bool, 1)
	apiserver := outliving(func(ctx context.Context) error {
		<-ctx.Done()
		select {
		case <-dnsStopped:
			otherDoneWhenStopped <- true
		default:
			otherDoneWhenStopped <- false
		}
		return nil
	}, dnsStopped)
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan error, 1)
	go func() { returned <- apiserver(ctx) }()
	cancel()
	close(dnsStopped)
	if err := <-returned; err != nil {
		t.Fatal(err)
	}
	if !<-otherDoneWhenStopped {
		t.Errorf("the API server stopped before the DNS server had")
	}

	// a component that stops on its own is not held up
	failed := errors.New("failed")
	if err := outliving(func(context.Context) error { return failed }, make(chan struct{}))(context.Background()); err != failed {
		t.Errorf("outliving returned %v, want the component's own error", err)
	}
}
