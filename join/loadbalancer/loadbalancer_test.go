package loadbalancer

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"slices"
	"testing"
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

func startLB(t *testing.T, fallback, stateFile string) *LoadBalancer {
	t.Helper()
	lb, err := New("127.0.0.1:0", fallback, stateFile)
	if err != nil {
		t.Fatal(err)
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
