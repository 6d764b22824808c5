// Package loadbalancer is a node's client-side load balancer in front of the cluster's API
// servers, as k3s's agent keeps one: a TCP listener on the node's loopback (127.0.0.1:6444)
// that the node's own clients (kubelet, proxy, NetworkPolicy agent) use as their server, and
// that passes each connection on to one live API server. It learns the servers from the
// default/kubernetes Service's endpoints (which name every API server that runs), stays with
// the one that answers, goes to the next when a dial fails, and closes the connections to a
// server that leaves the endpoints so that their clients reconnect to another. The server
// the node joined through stays the last resort. With a health check (SetHealthCheck; the
// agent's asks each server's /readyz) it also checks every server periodically, as k3s's
// does, and passes no connection to one that fails while another passes: a server that
// still accepts TCP but cannot serve (its etcd gone) is skipped, and its open connections
// are closed so that their clients (watches) come back through a healthy one.
//
// It only moves bytes: TLS is between the clients and the servers, which verify each other as
// before (every server's serving certificate names 127.0.0.1). It never terminates TLS nor
// reads what it passes on.
package loadbalancer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// dialTimeout is how long a server may take to accept a connection before the next is
// tried: long enough for a loaded machine, short enough that a dead one costs little.
const dialTimeout = 5 * time.Second

// HealthCheck says whether the server (host:port) can serve: nil when it can. It returns
// when ctx is done at the latest.
type HealthCheck func(ctx context.Context, server string) error

// LoadBalancer passes connections on to the API servers.
type LoadBalancer struct {
	listener net.Listener
	// fallback is the server the node joined through (host:port), dialled when no learned one
	// answers
	fallback string
	// stateFile keeps the learned servers for the next start, when fallback may be gone
	stateFile string

	mu sync.Mutex
	// servers are the learned servers (host:port), sorted; current is the one connections
	// go to first
	servers []string
	current string
	// conns are the open connections to the servers, by server
	conns map[string]map[net.Conn]struct{}
	// check and checkEvery are the health check (nil: none) and its period
	check      HealthCheck
	checkEvery time.Duration
	// failing are the servers whose last health check failed, with its error; a server
	// never checked counts as healthy
	failing map[string]string
}

// New listens on listen (host:port) and passes connections on to fallback (host:port) and to
// the servers kept in stateFile by an earlier run, if any, until it learns others.
func New(listen, fallback, stateFile string) (*LoadBalancer, error) {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	lb := &LoadBalancer{listener: l, fallback: fallback, stateFile: stateFile, current: fallback,
		conns: map[string]map[net.Conn]struct{}{}, failing: map[string]string{}}
	if b, err := os.ReadFile(stateFile); err == nil {
		var kept []string
		if err := json.Unmarshal(b, &kept); err == nil && len(kept) > 0 {
			lb.servers = kept
			slog.Info("API servers from the last run", "servers", kept, "file", stateFile)
		}
	}
	return lb, nil
}

// URL is the https URL the node's clients reach the servers by.
func (lb *LoadBalancer) URL() string { return "https://" + lb.listener.Addr().String() }

// Servers are the servers connections may go to, in the order they are tried.
func (lb *LoadBalancer) Servers() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.candidates()
}

// candidates are current, then the other learned servers, then fallback; those that failed
// their last health check come after all the others, as a last resort. Called with mu held.
func (lb *LoadBalancer) candidates() []string {
	var out []string
	for _, s := range lb.all() {
		if _, failing := lb.failing[s]; !failing {
			out = append(out, s)
		}
	}
	for _, s := range lb.all() {
		if _, failing := lb.failing[s]; failing {
			out = append(out, s)
		}
	}
	return out
}

// all are current, the other learned servers and fallback, each once. Called with mu held.
func (lb *LoadBalancer) all() []string {
	out := []string{lb.current}
	for _, s := range append(slices.Clone(lb.servers), lb.fallback) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// SetHealthCheck makes Serve check every server with check each period (5 s when not
// positive), and pass connections to those that passed their last check first. Call it
// before Serve. Until its first check a server counts as healthy.
func (lb *LoadBalancer) SetHealthCheck(check HealthCheck, every time.Duration) {
	if every <= 0 {
		every = 5 * time.Second
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.check, lb.checkEvery = check, every
}

// checkHealth checks every server once, at the same time, and records the outcome: one log
// line per server whose state changed. A server that starts failing while another passes
// stops being current and has its connections closed. It returns when every check has.
func (lb *LoadBalancer) checkHealth(ctx context.Context) {
	lb.mu.Lock()
	check, servers := lb.check, lb.all()
	lb.mu.Unlock()
	if check == nil {
		return
	}
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			errs[i] = check(ctx, s)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // stopping: a check cut short says nothing of the server
	}

	lb.mu.Lock()
	var failed []string
	for i, s := range servers {
		_, was := lb.failing[s]
		switch {
		case errs[i] != nil && !was:
			slog.Warn("API server failed its health check; skipped while another passes", "server", s, "err", errs[i])
			failed = append(failed, s)
		case errs[i] == nil && was:
			slog.Info("API server passes its health check again", "server", s)
		}
		if errs[i] != nil {
			lb.failing[s] = errs[i].Error()
		} else {
			delete(lb.failing, s)
		}
	}
	for s := range lb.failing {
		if !slices.Contains(servers, s) {
			delete(lb.failing, s) // neither learned nor fallback any more
		}
	}
	healthy := lb.candidates()[0]
	if _, failing := lb.failing[healthy]; failing {
		lb.mu.Unlock()
		return // none passes: connections stay where they are, new ones try every server
	}
	if lb.current != healthy {
		slog.Info("API server failover", "from", lb.current, "to", healthy)
		lb.current = healthy
	}
	var gone []net.Conn
	for _, s := range failed {
		for c := range lb.conns[s] {
			gone = append(gone, c)
		}
	}
	lb.mu.Unlock()
	for _, c := range gone {
		c.Close()
	}
}

// checkHealthEvery runs checkHealth each period until ctx is done.
func (lb *LoadBalancer) checkHealthEvery(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		lb.checkHealth(ctx)
	}
}

// Readyz is the health check of an API server: GET https://SERVER/readyz answers 200. It
// sends no client certificate (/readyz is open to everyone, as upstream's
// system:public-info-viewer allows), and trusts a server whose certificate caPEM signed,
// whatever names it holds: the check asks whether a server of this cluster is ready, and
// the servers are reached by the addresses the Endpoints give.
func Readyz(caPEM []byte) (HealthCheck, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate in the cluster CA")
	}
	client := &http.Client{Transport: &http.Transport{
		Proxy: nil,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// the chain is verified below, without a host name
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("the server sent no certificate")
				}
				intermediates := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					intermediates.AddCert(c)
				}
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates})
				return err
			},
		},
		DisableKeepAlives: true, // a check is a new connection, as a client's would be
	}}
	return func(ctx context.Context, server string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+server+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answered %s: %s", resp.Status, body)
		}
		return nil
	}, nil
}

// SetServers makes servers (host:port) the learned servers. Connections to a server no longer
// among them (nor the fallback) are closed, so that their clients come back through another.
func (lb *LoadBalancer) SetServers(servers []string) {
	servers = slices.Clone(servers)
	slices.Sort(servers)
	servers = slices.Compact(servers)
	lb.mu.Lock()
	if slices.Equal(servers, lb.servers) {
		lb.mu.Unlock()
		return
	}
	lb.servers = servers
	var gone []net.Conn
	for s, conns := range lb.conns {
		if s == lb.fallback || slices.Contains(servers, s) {
			continue
		}
		for c := range conns {
			gone = append(gone, c)
		}
	}
	if !slices.Contains(servers, lb.current) && len(servers) > 0 {
		lb.current = servers[0]
	}
	current := lb.current
	lb.mu.Unlock()

	slog.Info("API servers", "servers", servers, "current", current, "closing", len(gone))
	for _, c := range gone {
		c.Close()
	}
	if b, err := json.Marshal(servers); err == nil && len(servers) > 0 {
		if err := os.WriteFile(lb.stateFile, b, 0o600); err != nil {
			slog.Warn("cannot keep the API servers for the next start", "file", lb.stateFile, "err", err)
		}
	}
}

// Serve accepts connections until ctx is done, then closes the listener and every connection.
// With a health check it checks the servers meanwhile.
func (lb *LoadBalancer) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx) // canceled before the wait: a failed Accept ends the checks too
	defer cancel()
	lb.mu.Lock()
	check, every := lb.check, lb.checkEvery
	lb.mu.Unlock()
	if check != nil {
		wg.Go(func() { lb.checkHealthEvery(ctx, every) })
	}
	go func() {
		<-ctx.Done()
		lb.listener.Close()
		lb.mu.Lock()
		defer lb.mu.Unlock()
		for _, conns := range lb.conns {
			for c := range conns {
				c.Close()
			}
		}
	}()
	for {
		c, err := lb.listener.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() { lb.pass(ctx, c) })
	}
}

// pass dials a server for the client connection c and copies both ways until either side
// closes.
func (lb *LoadBalancer) pass(ctx context.Context, c net.Conn) {
	defer c.Close()
	server, s, err := lb.dial(ctx)
	if err != nil {
		slog.Warn("no API server answers", "err", err)
		return
	}
	defer lb.forget(server, s)
	done := make(chan struct{}, 2)
	copyAndClose := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go copyAndClose(s, c)
	go copyAndClose(c, s)
	<-done
	// one side is done: the other gets a moment to finish its half, then both go
	select {
	case <-done:
	case <-time.After(dialTimeout):
	}
	s.Close()
}

// dial connects to the first candidate that answers and makes it current.
func (lb *LoadBalancer) dial(ctx context.Context) (string, net.Conn, error) {
	lb.mu.Lock()
	candidates := lb.candidates()
	lb.mu.Unlock()
	var errs []error
	for _, server := range candidates {
		d := net.Dialer{Timeout: dialTimeout}
		s, err := d.DialContext(ctx, "tcp", server)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lb.mu.Lock()
		if lb.current != server {
			slog.Info("API server failover", "from", lb.current, "to", server)
			lb.current = server
		}
		if lb.conns[server] == nil {
			lb.conns[server] = map[net.Conn]struct{}{}
		}
		lb.conns[server][s] = struct{}{}
		lb.mu.Unlock()
		return server, s, nil
	}
	return "", nil, errors.Join(errs...)
}

func (lb *LoadBalancer) forget(server string, s net.Conn) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	delete(lb.conns[server], s)
}

// WatchServers learns the servers from the default/kubernetes Endpoints, read with client
// (which may itself go through lb), until ctx is done.
func (lb *LoadBalancer) WatchServers(ctx context.Context, client kubernetes.Interface) {
	lw := cache.NewListWatchFromClient(client.CoreV1().RESTClient(), "endpoints", "default", fields.OneTermEqualSelector("metadata.name", "kubernetes"))
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &corev1.Endpoints{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { lb.learn(obj) },
			UpdateFunc: func(_, obj any) { lb.learn(obj) },
		},
	})
	informer.Run(ctx.Done())
}

// learn takes the servers from the kubernetes Service's Endpoints: each address with the
// https port.
func (lb *LoadBalancer) learn(obj any) {
	ep, ok := obj.(*corev1.Endpoints)
	if !ok {
		return
	}
	var servers []string
	for _, ss := range ep.Subsets {
		for _, p := range ss.Ports {
			if p.Name != "https" && len(ss.Ports) > 1 {
				continue
			}
			for _, a := range ss.Addresses {
				servers = append(servers, net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	if len(servers) > 0 {
		lb.SetServers(servers)
	}
}
