package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/skiff-dev/skiff/bench/stats"
)

// row is one line of the results table. Latencies are in milliseconds.
type row struct {
	Phase     string  `json:"phase"`
	Ops       int     `json:"ops"`
	Errors    int     `json:"errors"`
	OpsPerSec float64 `json:"ops_per_sec,omitempty"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	Note      string  `json:"note,omitempty"`
}

// newRow summarises the latencies of the successful operations of a phase; wall, when not
// zero, gives the throughput.
func newRow(phase string, latencies []time.Duration, errs int, wall time.Duration) row {
	s := slices.Clone(latencies)
	slices.Sort(s)
	r := row{
		Phase:  phase,
		Ops:    len(s),
		Errors: errs,
		P50Ms:  ms(stats.Percentile(s, 50)),
		P99Ms:  ms(stats.Percentile(s, 99)),
		MaxMs:  ms(stats.Percentile(s, 100)),
	}
	if wall > 0 {
		r.OpsPerSec = math.Round(float64(len(s))/wall.Seconds()*10) / 10
	}
	return r
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// results is everything a run measured; --json prints it as is.
type results struct {
	Server      string `json:"server"`
	ContentType string `json:"content_type"`
	Namespace   string `json:"namespace"`
	Pods        int    `json:"pods"`
	Workers     int    `json:"workers"`
	Watchers    int    `json:"watchers"`
	Updates     int    `json:"updates"`
	ListRepeats int    `json:"list_repeats"`
	Scenario    string `json:"scenario"`
	CRDs        int    `json:"crds,omitempty"`
	Bindings    int    `json:"bindings,omitempty"`
	Rounds      int    `json:"rounds,omitempty"`
	// the listflood scenario's clients, their users and each mode's duration
	Clients         int     `json:"clients,omitempty"`
	FloodUsers      int     `json:"flood_users,omitempty"`
	DurationSeconds float64 `json:"duration_seconds,omitempty"`

	Rows []row `json:"rows"`
	// ListItems is the item count of every LIST, by resourceVersion mode.
	ListItems map[string][]int `json:"list_items"`
	// WatchDeliveries counts (watcher, update) pairs delivered; WatchMissed those expected
	// (every watcher, every successful patch) and never delivered.
	WatchDeliveries int `json:"watch_deliveries"`
	WatchMissed     int `json:"watch_missed"`
	// RSS of the server process in MiB: once ready (idle), after the load, and its peak (VmHWM).
	IdleRSSMiB  float64      `json:"idle_rss_mib,omitempty"`
	RSSMiB      float64      `json:"rss_mib,omitempty"`
	PeakRSSMiB  float64      `json:"peak_rss_mib,omitempty"`
	ServerLog   []string     `json:"server_log_problems,omitempty"`
	ErrorGroups []errorGroup `json:"errors,omitempty"`
	Problems    []string     `json:"problems,omitempty"`
}

func (r *results) printTable(w io.Writer) {
	if r.Scenario == "authorization" {
		fmt.Fprintf(w, "\nskiff-bench authorization: %d pod creates and gets per round as an ordinary user, %d workers, %s, %d RBAC bindings, %d rounds per mode alternating between the two servers, against %s\n",
			r.Pods, r.Workers, r.ContentType, r.Bindings, r.Rounds, r.Server)
		fmt.Fprintf(w, "(p50 and p99 are medians of the rounds' percentiles, max ms the highest round p99)\n\n")
	} else if r.Scenario == "quota" {
		fmt.Fprintf(w, "\nskiff-bench quota: %d pod creates per namespace per round, %d rounds, %d workers, %s, against %s\n\n",
			r.Pods, r.Rounds, r.Workers, r.ContentType, r.Server)
	} else if r.Scenario == "listflood" {
		fmt.Fprintf(w, "\nskiff-bench listflood: %d pods, then %d clients as %d users LISTing them all for %.0f s per mode while another user GETs one pod every 100 ms, %s, against %s\n\n",
			r.Pods, r.Clients, r.FloodUsers, r.DurationSeconds, r.ContentType, r.Server)
	} else if r.Scenario == "customresources" {
		fmt.Fprintf(w, "\nskiff-bench customresources: %d CRDs, %d ConfigMaps and %d custom resources, %d workers, %s, against %s\n\n",
			r.CRDs, r.Pods, r.Pods, r.Workers, r.ContentType, r.Server)
	} else {
		fmt.Fprintf(w, "\nskiff-bench: %d pods, %d workers, %d watchers, %d updates, %d lists per mode, %s, against %s\n\n",
			r.Pods, r.Workers, r.Watchers, r.Updates, r.ListRepeats, r.ContentType, r.Server)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tops\terrors\tops/s\tp50 ms\tp99 ms\tmax ms\t\t")
	for _, x := range r.Rows {
		rate := "-"
		if x.OpsPerSec > 0 {
			rate = fmt.Sprintf("%.0f", x.OpsPerSec)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.2f\t%.2f\t%.2f\t\t%s\n",
			x.Phase, x.Ops, x.Errors, rate, x.P50Ms, x.P99Ms, x.MaxMs, x.Note)
	}
	tw.Flush()
	if r.Scenario != "customresources" && r.Scenario != "authorization" && r.Scenario != "listflood" {
		fmt.Fprintf(w, "\nwatch deliveries: %d, missed: %d\n", r.WatchDeliveries, r.WatchMissed)
	} else {
		fmt.Fprintln(w)
	}
	if r.RSSMiB > 0 {
		fmt.Fprintf(w, "server RSS: %.0f MiB after the load (idle %.0f MiB, peak %.0f MiB)\n", r.RSSMiB, r.IdleRSSMiB, r.PeakRSSMiB)
	} else if r.Scenario != "authorization" {
		fmt.Fprintln(w, "server RSS: not measured (no --pid)")
	}
	if len(r.ErrorGroups) > 0 {
		fmt.Fprintln(w, "\nerrors:")
		for _, g := range r.ErrorGroups {
			fmt.Fprintf(w, "  %s: %d× %s, e.g. %s\n", g.Phase, g.Count, g.Kind, g.Example)
		}
	}
	if len(r.ServerLog) > 0 {
		fmt.Fprintln(w, "\nserver log warnings and errors (first ones):")
		for _, l := range r.ServerLog {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	if len(r.Problems) > 0 {
		fmt.Fprintln(w, "\nproblems:")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}

// errorGroup is how many errors of one kind a phase saw, with the first one's message.
type errorGroup struct {
	Phase   string `json:"phase"`
	Kind    string `json:"kind"`
	Count   int    `json:"count"`
	Example string `json:"example"`
}

// errorTally groups a phase's errors by HTTP status code and reason.
type errorTally struct {
	phase  string
	mu     sync.Mutex
	total  int
	groups map[string]*errorGroup
}

func newErrorTally(phase string) *errorTally {
	return &errorTally{phase: phase, groups: map[string]*errorGroup{}}
}

func (t *errorTally) add(err error) {
	kind := "client error"
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		s := status.Status()
		kind = fmt.Sprintf("%d %s", s.Code, s.Reason)
	} else if strings.Contains(err.Error(), "context deadline exceeded") {
		kind = "client timeout"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total++
	g := t.groups[kind]
	if g == nil {
		g = &errorGroup{Phase: t.phase, Kind: kind, Example: err.Error()}
		t.groups[kind] = g
	}
	g.Count++
}

func (t *errorTally) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

func (t *errorTally) list() []errorGroup {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []errorGroup
	for _, g := range t.groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out
}
