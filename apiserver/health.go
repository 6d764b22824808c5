package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// healthCheck is one named check behind /healthz, /livez and /readyz.
type healthCheck struct {
	name  string
	check func(ctx context.Context) error
	// readyOnly checks count for /readyz but not for /livez (a server that is not ready yet
	// is still alive).
	readyOnly bool
}

type healthChecks struct {
	checks []healthCheck
}

func newHealthChecks(etcd *clientv3.Client, ready <-chan struct{}) *healthChecks {
	return &healthChecks{checks: []healthCheck{
		{name: "ping", check: func(context.Context) error { return nil }},
		{name: "log", check: func(context.Context) error { return nil }},
		{name: "etcd", check: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			// a linearizable read proves a quorum answers, as upstream's etcd check
			_, err := etcd.Get(ctx, "health", clientv3.WithCountOnly())
			return err
		}},
		{name: "poststarthook/bootstrap-system-namespaces", readyOnly: true, check: func(context.Context) error {
			select {
			case <-ready:
				return nil
			default:
				return fmt.Errorf("not finished")
			}
		}},
	}}
}

// serve answers /healthz, /livez, /readyz (with ?verbose and ?exclude=) and each check at
// /<endpoint>/<name>, as upstream. It reports false for other paths.
func (h *healthChecks) serve(w http.ResponseWriter, r *http.Request) bool {
	parts := splitPath(r.URL.Path)
	if len(parts) == 0 || (parts[0] != "healthz" && parts[0] != "livez" && parts[0] != "readyz") {
		return false
	}
	endpoint := parts[0]
	checks := h.checks
	if endpoint == "livez" {
		checks = nil
		for _, c := range h.checks {
			if !c.readyOnly {
				checks = append(checks, c)
			}
		}
	}
	if len(parts) > 1 {
		name := strings.Join(parts[1:], "/")
		for _, c := range checks {
			if c.name == name {
				if err := c.check(r.Context()); err != nil {
					http.Error(w, fmt.Sprintf("internal server error: %v", err), http.StatusInternalServerError)
					return true
				}
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("X-Content-Type-Options", "nosniff")
				fmt.Fprint(w, "ok")
				return true
			}
		}
		http.NotFound(w, r)
		return true
	}
	excluded := map[string]bool{}
	for _, e := range r.URL.Query()["exclude"] {
		excluded[e] = true
	}
	var out strings.Builder
	failed := false
	for _, c := range checks {
		if excluded[c.name] {
			fmt.Fprintf(&out, "[+]%s excluded: ok\n", c.name)
			continue
		}
		if err := c.check(r.Context()); err != nil {
			failed = true
			fmt.Fprintf(&out, "[-]%s failed: reason withheld\n", c.name)
		} else {
			fmt.Fprintf(&out, "[+]%s ok\n", c.name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, verbose := r.URL.Query()["verbose"]
	if failed {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "%s%s check failed\n", out.String(), endpoint)
		return true
	}
	if verbose {
		fmt.Fprintf(w, "%s%s check passed\n", out.String(), endpoint)
		return true
	}
	fmt.Fprint(w, "ok")
	return true
}

// writeRawJSON answers with a plain JSON document (version info).
func writeRawJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(body)
}
