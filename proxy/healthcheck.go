package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Health checks of externalTrafficPolicy: Local load balancers, as kube-proxy serves them: for
// every LoadBalancer Service with that policy the proxy answers HTTP on the Service's
// spec.healthCheckNodePort, 200 while this node has a ready endpoint of it (and the rules are
// synced) and 503 otherwise, so that a load balancer in front of the nodes sends traffic only
// to nodes that keep it. The body and headers are upstream's.

// ListenFunc opens a listening socket, as net.Listen.
type ListenFunc func(network, address string) (net.Listener, error)

// healthCheckServers keeps one HTTP server per health check node port.
type healthCheckServers struct {
	listen  ListenFunc
	healthy func() bool

	mu sync.Mutex
	// servers by port
	servers map[int32]*healthCheckServer
}

type healthCheckServer struct {
	namespace, name string
	server          *http.Server
	// localEndpoints is read by the handler and written by sync, under healthCheckServers.mu.
	localEndpoints int
}

// healthCheck is one Service's health check: its port and this node's ready endpoints of it.
type healthCheck struct {
	namespace, name string
	port            int32
	localEndpoints  int
}

func newHealthCheckServers(listen ListenFunc, healthy func() bool) *healthCheckServers {
	if listen == nil {
		listen = net.Listen
	}
	return &healthCheckServers{listen: listen, healthy: healthy, servers: map[int32]*healthCheckServer{}}
}

// healthChecks are the health checks the Services ask for; local counts this node's ready
// endpoint IPs of each Service (an IP serving two ports counts once, as upstream). Ports of
// both IP families count the endpoints of the family that has more, so that a dual-stack pod,
// with an address of each, counts once.
func healthChecks(services []*corev1.Service, ports []*servicePort) []healthCheck {
	localIPs := map[string]map[string]bool{}   // by Service, the IPv4 ones
	localIPv6s := map[string]map[string]bool{} // by Service
	for _, sp := range ports {
		key := sp.namespace + "/" + sp.name
		for _, e := range sp.endpoints {
			if e.local && e.ready {
				byService := localIPs
				if !e.ip.Is4() {
					byService = localIPv6s
				}
				if byService[key] == nil {
					byService[key] = map[string]bool{}
				}
				byService[key][e.ip.String()] = true
			}
		}
	}
	for key, v6 := range localIPv6s {
		if len(v6) > len(localIPs[key]) {
			localIPs[key] = v6
		}
	}
	var out []healthCheck
	for _, svc := range services {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.HealthCheckNodePort == 0 ||
			svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
			continue
		}
		out = append(out, healthCheck{namespace: svc.Namespace, name: svc.Name, port: svc.Spec.HealthCheckNodePort,
			localEndpoints: len(localIPs[svc.Namespace+"/"+svc.Name])})
	}
	return out
}

// sync serves exactly the given health checks: new ports are opened, gone ones closed, counts
// updated. A port that cannot be opened is logged and tried again on the next sync.
func (h *healthCheckServers) sync(checks []healthCheck) {
	h.mu.Lock()
	defer h.mu.Unlock()
	want := map[int32]healthCheck{}
	for _, c := range checks {
		want[c.port] = c
	}
	for port, s := range h.servers {
		if c, ok := want[port]; !ok || c.namespace != s.namespace || c.name != s.name {
			s.server.Close()
			delete(h.servers, port)
		}
	}
	for port, c := range want {
		if s := h.servers[port]; s != nil {
			s.localEndpoints = c.localEndpoints
			continue
		}
		l, err := h.listen("tcp", ":"+strconv.Itoa(int(port)))
		if err != nil {
			slog.Warn("cannot serve a load balancer's health check", "service", c.namespace+"/"+c.name, "port", port, "err", err)
			continue
		}
		s := &healthCheckServer{namespace: c.namespace, name: c.name, localEndpoints: c.localEndpoints}
		s.server = &http.Server{Handler: h.handler(s), ReadHeaderTimeout: 10 * time.Second}
		h.servers[port] = s
		go func() {
			if err := s.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				slog.Warn("health check server stopped", "port", port, "err", err)
			}
		}()
	}
}

func (h *healthCheckServers) handler(s *healthCheckServer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		count := s.localEndpoints
		h.mu.Unlock()
		healthy := h.healthy()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Load-Balancing-Endpoint-Weight", strconv.Itoa(count))
		if count != 0 && healthy {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintf(w, "{\n\t\"service\": {\n\t\t\"namespace\": %q,\n\t\t\"name\": %q\n\t},\n\t\"localEndpoints\": %d,\n\t\"serviceProxyHealthy\": %v\n}",
			s.namespace, s.name, count, healthy)
	})
}

// close stops every health check server.
func (h *healthCheckServers) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for port, s := range h.servers {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.server.Shutdown(ctx)
		cancel()
		delete(h.servers, port)
	}
}
