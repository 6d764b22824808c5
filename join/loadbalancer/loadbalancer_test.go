package loadbalancer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// server answers each connection with its name, then echoes what it reads.
type server struct {
	name string
	l    net.Listener
}

func startServer(t *testing.T, name string) *server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte(name))
				io.Copy(c, c)
			}()
		}
	}()
	return &server{name: name, l: l}
}

func (s *server) addr() string { return s.l.Addr().String() }

// reach connects through lb and returns the name of the server that answered, and the
// connection.
func reach(t *testing.T, lb *LoadBalancer) (string, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", lb.listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		return "", c
	}
	return string(buf), c
}

// startLB serves a load balancer until the test ends; before, configure (if any) sets it up.
func startLB(t *testing.T, fallback, stateFile string, configure ...func(*LoadBalancer)) *LoadBalancer {
	t.Helper()
	lb, err := New("127.0.0.1:0", fallback, stateFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range configure {
		f(lb)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := lb.Serve(ctx); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return lb
}

func TestConnectionsGoToALiveServerAndLeaveOneThatLeavesTheEndpoints(t *testing.T) {
	a, b, c := startServer(t, "a"), startServer(t, "b"), startServer(t, "c")
	state := filepath.Join(t.TempDir(), "servers.json")
	lb := startLB(t, a.addr(), state)

	// before it learns anything, the server it joined through
	if got, _ := reach(t, lb); got != "a" {
		t.Errorf("before learning the servers: answered by %q, want a", got)
	}
	// it stays with the server that answers
	lb.SetServers([]string{a.addr(), b.addr(), c.addr()})
	for range 3 {
		if got, _ := reach(t, lb); got != "a" {
			t.Errorf("with every server live: answered by %q, want a, the one in use", got)
		}
	}

	// a dies: the next connection goes to another server
	a.l.Close()
	got, _ := reach(t, lb)
	if got != "b" && got != "c" {
		t.Fatalf("after a died: answered by %q, want b or c", got)
	}
	current := map[string]*server{"b": b, "c": c}[got]
	other := map[string]*server{"b": c, "c": b}[got]

	// the current server leaves the endpoints: its open connection closes, new ones go on
	_, open := reach(t, lb)
	lb.SetServers([]string{other.addr()})
	if _, err := io.ReadAll(open); err != nil {
		t.Errorf("reading the connection to a server that left: %v", err)
	}
	if got, _ := reach(t, lb); got != other.name {
		t.Errorf("after %s left the endpoints: answered by %q, want %s", current.name, got, other.name)
	}

	// the next start knows the learned servers even if the one joined through is gone
	again := startLB(t, a.addr(), state)
	if got := again.Servers(); !slices.Contains(got, other.addr()) {
		t.Errorf("servers after a restart: %v, want %s among them", got, other.addr())
	}
	if got, _ := reach(t, again); got != other.name {
		t.Errorf("after a restart with the server joined through dead: answered by %q, want %s", got, other.name)
	}
}

func TestAServerThatAcceptsButFailsItsHealthCheckIsSkipped(t *testing.T) {
	a, b := startServer(t, "a"), startServer(t, "b")
	var mu sync.Mutex
	unready := map[string]bool{}
	setUnready := func(s *server, v bool) {
		mu.Lock()
		defer mu.Unlock()
		unready[s.addr()] = v
	}
	check := func(_ context.Context, server string) error {
		mu.Lock()
		defer mu.Unlock()
		if unready[server] {
			return errors.New("not ready")
		}
		return nil
	}
	// checks run when the test says (checkHealth): the period is longer than any test
	lb := startLB(t, a.addr(), filepath.Join(t.TempDir(), "servers.json"), func(lb *LoadBalancer) { lb.SetHealthCheck(check, 24*time.Hour) })
	lb.SetServers([]string{a.addr(), b.addr()})
	ctx := context.Background()

	lb.checkHealth(ctx)
	if got, _ := reach(t, lb); got != "a" {
		t.Errorf("with every server healthy: answered by %q, want a, the one in use", got)
	}
	// a still accepts connections but fails its check: its open connection is closed and
	// new ones go to b
	_, open := reach(t, lb)
	setUnready(a, true)
	lb.checkHealth(ctx)
	if _, err := io.ReadAll(open); err != nil {
		t.Errorf("reading the connection to the unhealthy server: %v", err)
	}
	for range 3 {
		if got, _ := reach(t, lb); got != "b" {
			t.Errorf("a failing its health check: answered by %q, want b", got)
		}
	}
	if got := lb.Servers(); !slices.Equal(got, []string{b.addr(), a.addr()}) {
		t.Errorf("servers in the order tried: %v, want b then a", got)
	}

	// every server fails: connections still go to one that accepts, and none is closed
	_, open = reach(t, lb)
	setUnready(b, true)
	lb.checkHealth(ctx)
	if got, _ := reach(t, lb); got != "b" {
		t.Errorf("every server failing its check: answered by %q, want b, still in use", got)
	}
	if _, err := open.Write([]byte("x")); err != nil {
		t.Errorf("the connection to b was closed though no server passes: %v", err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(open, buf); err != nil || string(buf) != "x" {
		t.Errorf("echo through the connection to b: %q, %v", buf, err)
	}

	// a passes again, b still fails: new connections go to a
	setUnready(a, false)
	lb.checkHealth(ctx)
	if got, _ := reach(t, lb); got != "a" {
		t.Errorf("only a passing: answered by %q, want a", got)
	}
}

func TestReadyzPassesOnlyAReadyServerOfTheCluster(t *testing.T) {
	serve := func(code int) *httptest.Server {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" || r.TLS == nil || len(r.TLS.PeerCertificates) > 0 {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.WriteHeader(code)
		}))
		s.StartTLS()
		t.Cleanup(s.Close)
		return s
	}
	ready, unready := serve(http.StatusOK), serve(http.StatusInternalServerError)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ready.Certificate().Raw})
	check, err := Readyz(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "https://") }
	if err := check(ctx, host(ready)); err != nil {
		t.Errorf("a ready server: %v", err)
	}
	if err := check(ctx, host(unready)); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("a server whose /readyz answers 500: %v, want an error saying so", err)
	}
	// a server the cluster CA did not sign (another httptest certificate is another key)
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	other.TLS = &tls.Config{Certificates: []tls.Certificate{otherCertificate(t)}}
	other.StartTLS()
	t.Cleanup(other.Close)
	if err := check(ctx, host(other)); err == nil {
		t.Errorf("a server of another CA passed")
	}
	// nothing listening
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if err := check(ctx, addr); err == nil {
		t.Errorf("a closed port passed")
	}
}

// otherCertificate is a self-signed serving certificate for 127.0.0.1 of a key of its own.
func otherCertificate(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// a real API server answers /readyz to the check, which has no credentials, through the
// certificate its cluster CA signed
func TestReadyzPassesARunningSkiffAPIServer(t *testing.T) {
	srv := apiservertest.Start(t)
	caPEM, err := os.ReadFile(srv.PKI.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	check, err := Readyz(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(context.Background(), strings.TrimPrefix(srv.URL, "https://")); err != nil {
		t.Errorf("a running API server: %v", err)
	}
}
