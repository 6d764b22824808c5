package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The representations of one LIST of the namespace's pods that clients ask for: what kubectl
// get asks (Table), what metadata informers ask (PartialObjectMetadataList), and the full
// objects in JSON and in protobuf. Each is fetched --list-repeats times, one at a time;
// latency runs until the whole body has arrived. Allocation is the server's own: its
// go_memstats_alloc_bytes_total before and after the series, per request.
var listFormats = []struct{ name, accept string }{
	{"list as JSON", "application/json"},
	{"list as protobuf", "application/vnd.kubernetes.protobuf"},
	{"list as Table", "application/json;as=Table;v=v1;g=meta.k8s.io"},
	{"list as metadata", "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"},
}

func (l *load) formats(ctx context.Context) {
	rest := l.client.CoreV1().RESTClient()
	fetch := func(path, accept string) (int, error) {
		raw, err := rest.Get().AbsPath(path).SetHeader("Accept", accept).Do(ctx).Raw()
		return len(raw), err
	}
	series := func(name, path, accept string) {
		errs := newErrorTally(name)
		before, _ := l.serverAllocated(ctx)
		var lat []time.Duration
		size := 0
		for range l.opts.listRepeats {
			start := time.Now()
			n, err := fetch(path, accept)
			if err != nil {
				errs.add(err)
				continue
			}
			lat = append(lat, time.Since(start))
			size = n
		}
		after, _ := l.serverAllocated(ctx)
		r := newRow(name, lat, errs.count(), 0)
		r.Note = fmt.Sprintf("%.1f MiB body", float64(size)/(1<<20))
		if before > 0 && after > before && len(lat) > 0 {
			r.Note += fmt.Sprintf(", server allocates %.1f MiB per request", (after-before)/float64(len(lat))/(1<<20))
		}
		fmt.Fprintf(l.progress, "%s: %d done, p50 %.1f ms\n", name, r.Ops, r.P50Ms)
		l.addRow(r, errs)
	}
	podsPath := "/api/v1/namespaces/" + l.ns + "/pods"
	for _, f := range listFormats {
		if ctx.Err() != nil {
			return
		}
		series(f.name, podsPath, f.accept)
	}
	series("OpenAPI v3 api/v1", "/openapi/v3/api/v1", "application/json")
}

// serverAllocated reads the server's total allocated bytes from its metrics (0 if absent).
func (l *load) serverAllocated(ctx context.Context) (float64, error) {
	raw, err := l.client.CoreV1().RESTClient().Get().AbsPath("/metrics").Do(ctx).Raw()
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_alloc_bytes_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, nil
}
