package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/skiff-dev/skiff/bench/stats"
)

func splitPhases(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// print writes what was measured as tables.
func (b *bench) print(w io.Writer) {
	fmt.Fprintf(w, "skiff-proxy-bench, %d CPUs, %s\n", runtime.NumCPU(), runtime.Version())
	if r := b.sync; r != nil {
		fmt.Fprintf(w, "\nrule sync, %d Services x %d endpoints:\n", r.services, r.endpoints)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "informers' initial list\t%v\n", round(r.informers))
		fmt.Fprintf(tw, "initial full sync (to the first nft transaction's end)\t%v\n", round(r.initial))
		fmt.Fprintf(tw, "  of which nft -f and building the rules (the proxy's sync histogram)\t%v\n", round(r.nftInitial))
		fmt.Fprintf(tw, "Services nft shows in service-ips\t%d of %d\n", r.confirmed, r.services)
		fmt.Fprintf(tw, "EndpointSlice change to rules applied, p50\t%v\n", round(stats.Percentile(r.changes, 50)))
		fmt.Fprintf(tw, "  p99\t%v\n", round(stats.Percentile(r.changes, 99)))
		fmt.Fprintf(tw, "  max\t%v\n", round(stats.Percentile(r.changes, 100)))
		fmt.Fprintf(tw, "  changes timed / missed\t%d / %d\n", len(r.changes), r.missed)
		tw.Flush()
	}
	if len(b.throughput) > 0 {
		fmt.Fprintf(w, "\nHTTP throughput, %d clients, %v per run:\n", b.o.conns, b.o.duration)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\tkeep-alive\tround\trequests/s\tp50 ms\tp99 ms\terrors\t")
		for _, r := range b.throughput {
			fmt.Fprintf(tw, "%s\t%v\t%d\t%.0f\t%.3f\t%.3f\t%d\t\n", r.Target, r.KeepAlive, r.Round, r.PerSecond, r.P50Ms, r.P99Ms, r.Errors)
		}
		tw.Flush()
		for _, ka := range []bool{false, true} {
			direct, svc := b.meanPerSecond("pod IP", ka), b.meanPerSecond("cluster IP", ka)
			if direct > 0 {
				fmt.Fprintf(w, "keep-alive %v: pod IP %.0f/s, cluster IP %.0f/s (mean of rounds): the proxy costs %.1f%%\n",
					ka, direct, svc, 100*(direct-svc)/direct)
			}
		}
	}
	if r := b.dns; r != nil {
		fmt.Fprintf(w, "\nDNS, A queries for %d Service names, %d clients over UDP:\n", r.services, r.conns)
		fmt.Fprintf(w, "%.0f queries/s, p50 %v, p99 %v, %d queries, %d errors\n", r.perSecond, round(r.p50), round(r.p99), r.queries, r.errors)
	}
}

func (b *bench) meanPerSecond(target string, keepAlive bool) float64 {
	sum, n := 0.0, 0
	for _, r := range b.throughput {
		if r.Target == target && r.KeepAlive == keepAlive {
			sum += r.PerSecond
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}
