// Package profiling serves the Go runtime's profiles under /debug/pprof/, as upstream's
// components do with --profiling (on by default): heap, goroutine, allocs and the rest by name,
// and a CPU profile or execution trace over ?seconds=N.
package profiling

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// Prefix is the path the profiles are served under.
const Prefix = "/debug/pprof/"

// Handler answers every path under Prefix.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, Prefix) {
		case "cmdline":
			pprof.Cmdline(w, r)
		case "profile":
			pprof.Profile(w, r)
		case "symbol":
			pprof.Symbol(w, r)
		case "trace":
			pprof.Trace(w, r)
		default:
			pprof.Index(w, r)
		}
	})
}
