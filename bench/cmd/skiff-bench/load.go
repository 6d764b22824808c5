package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/bench/benchpods"
)

const (
	// seqAnnotation carries the sequence number of the patch that last changed the watched pod.
	seqAnnotation = "bench.skiff.dev/seq"
	// patchPace is the longest the patcher waits for every watcher to see an update before
	// sending the next one.
	patchPace = 50 * time.Millisecond
	// progressEvery is how often a running phase prints how far it got.
	progressEvery = 2 * time.Second
)

// load runs the phases against one namespace and fills res.
type load struct {
	client   kubernetes.Interface
	config   *rest.Config
	opts     options
	progress io.Writer
	ns       string
	res      *results
	// createdCRDs are the definitions the customresources scenario made, for cleanup
	createdCRDs []string
	// prefix goes before the created pods' names, for a scenario that creates pods in rounds
	prefix string
	// pid is the server's process, 0 when unknown; the quota scenario measures its CPU
	pid int
	// pids are all the server's processes (kube-apiserver's etcd too), whose memory the
	// listflood scenario samples
	pids []int
}

func (l *load) run(ctx context.Context) error {
	ns, err := l.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "skiff-bench-"},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating the namespace: %w", err)
	}
	l.ns, l.res.Namespace = ns.Name, ns.Name
	fmt.Fprintf(l.progress, "namespace %s\n", l.ns)
	if err := createDefaultServiceAccount(ctx, l.client, l.ns); err != nil {
		return err
	}
	if l.opts.scenario == "customresources" {
		return l.customResources(ctx)
	}
	if l.opts.scenario == "webhook" {
		return l.webhookScenario(ctx)
	}
	if l.opts.scenario == "quota" {
		return l.quotaScenario(ctx)
	}
	if l.opts.scenario == "listflood" {
		return l.listFloodScenario(ctx)
	}

	created := l.creates(ctx)
	if len(created) == 0 {
		return fmt.Errorf("no pod could be created")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.gets(ctx, created)
	l.lists(ctx, len(created))
	if l.opts.formats {
		l.formats(ctx)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.watches(ctx, created[0])
}

func podName(i int) string { return benchpods.Name("", i) }

// creates makes the pods and returns the names of those created.
func (l *load) creates(ctx context.Context) []string {
	pods := l.client.CoreV1().Pods(l.ns)
	ok := make([]bool, l.opts.pods)
	lat, errs, wall := l.parallel(ctx, "create", l.opts.pods, func(ctx context.Context, i int) error {
		_, err := pods.Create(ctx, benchpods.Small(l.prefix+podName(i), i), metav1.CreateOptions{})
		ok[i] = err == nil
		return err
	})
	l.addRow(newRow("create", lat, errs.count(), wall), errs)
	var names []string
	for i, done := range ok {
		if done {
			names = append(names, l.prefix+podName(i))
		}
	}
	return names
}

// gets reads as many pods as were asked to be created, spread over those that were.
func (l *load) gets(ctx context.Context, names []string) {
	pods := l.client.CoreV1().Pods(l.ns)
	lat, errs, wall := l.parallel(ctx, "get", l.opts.pods, func(ctx context.Context, i int) error {
		_, err := pods.Get(ctx, names[i%len(names)], metav1.GetOptions{})
		return err
	})
	l.addRow(newRow("get", lat, errs.count(), wall), errs)
}

// lists lists the namespace's pods, from etcd (resourceVersion unset) and from the server's
// cache (resourceVersion "0"), one request at a time. The latency is the server's time to the
// last byte: from sending the request until the whole body, as sent, has arrived. Like
// client-go the request asks for gzip (which both servers apply to answers over 128 KiB), but
// by hand, so that the transport hands the body over as it came; decompressing and decoding it
// are timed apart, as the client's cost.
// The phases of the two LIST modes.
const (
	listConsistent = `list rv=""`
	listAny        = `list rv="0"`
)

func (l *load) lists(ctx context.Context, want int) {
	l.res.ListItems = map[string][]int{}
	httpClient, err := rest.HTTPClientFor(l.config)
	if err != nil {
		l.res.Problems = append(l.res.Problems, fmt.Sprintf("lists: no HTTP client: %v", err))
		return
	}
	accept := l.config.AcceptContentTypes
	if accept == "" {
		accept = runtime.ContentTypeJSON
	}
	for _, mode := range []struct{ name, rv string }{{listConsistent, ""}, {listAny, "0"}} {
		errs := newErrorTally(mode.name)
		var lat, decode []time.Duration
		var wrong []int
		var wire int
		for range l.opts.listRepeats {
			if ctx.Err() != nil {
				return
			}
			start := time.Now()
			raw, encoding, err := l.getRaw(ctx, httpClient, accept, "/api/v1/namespaces/"+l.ns+"/pods?resourceVersion="+mode.rv)
			took := time.Since(start)
			if err != nil {
				errs.add(err)
				continue
			}
			wire = len(raw)
			start = time.Now()
			if encoding == "gzip" {
				if raw, err = gunzip(raw); err != nil {
					errs.add(fmt.Errorf("decompressing the list: %w", err))
					continue
				}
			}
			obj, err := runtime.Decode(scheme.Codecs.UniversalDeserializer(), raw)
			decode = append(decode, time.Since(start))
			list, isList := obj.(*corev1.PodList)
			if err != nil || !isList {
				errs.add(fmt.Errorf("decoding the list (%d bytes): %v, got %T", len(raw), err, obj))
				continue
			}
			lat = append(lat, took)
			l.res.ListItems[mode.name] = append(l.res.ListItems[mode.name], len(list.Items))
			if len(list.Items) != want {
				wrong = append(wrong, len(list.Items))
			}
		}
		r := newRow(mode.name, lat, errs.count(), 0)
		r.Note = fmt.Sprintf("%d items", want)
		if len(wrong) > 0 {
			r.Note = fmt.Sprintf("WRONG item counts %v, want %d", wrong, want)
			l.res.Problems = append(l.res.Problems, fmt.Sprintf("%s returned %v items, want %d", mode.name, wrong, want))
		}
		decodeRow := newRow("", decode, 0, 0)
		r.Note += fmt.Sprintf(", %d KB on the wire, client decode p50 %.1f ms", wire/1000, decodeRow.P50Ms)
		fmt.Fprintf(l.progress, "%s: %d done, p50 %.1f ms\n", mode.name, r.Ops, r.P50Ms)
		l.addRow(r, errs)
	}
}

// getRaw GETs path with Accept accept and Accept-Encoding gzip, and returns the body as it
// arrived and its Content-Encoding; an answer other than 200 is an error.
func (l *load) getRaw(ctx context.Context, c *http.Client, accept, path string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(l.config.Host, "/")+path, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s: %.200s", path, resp.Status, body)
	}
	return body, resp.Header.Get("Content-Encoding"), nil
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// watches opens the watchers on one pod, makes sure every one of them delivers, then patches
// the pod one update at a time and measures how long each update takes to reach each watcher:
// from just before its PATCH request is sent until the watcher has the decoded event.
func (l *load) watches(ctx context.Context, name string) error {
	pods := l.client.CoreV1().Pods(l.ns)
	pod, err := pods.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("getting the watched pod: %w", err)
	}
	m, u := l.opts.watchers, l.opts.updates
	// Update 0 is a warm-up that proves every watcher is delivering; 1..u are measured.
	base := time.Now()
	sent := make([]atomic.Int64, u+1) // since base, just before sending the patch
	seen := make([]atomic.Int32, u+1)
	allSeen := make([]chan struct{}, u+1)
	for i := range allSeen {
		allSeen[i] = make(chan struct{})
	}
	watchErrs := newErrorTally("watch")
	var (
		stopping   atomic.Bool
		wg         sync.WaitGroup
		mu         sync.Mutex
		deliveries []time.Duration
		delivered  atomic.Int64
		oddEvents  atomic.Int64
	)
	opts := metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
		ResourceVersion: pod.ResourceVersion,
	}
	watchers := make([]watch.Interface, 0, m)
	defer func() {
		for _, w := range watchers {
			w.Stop()
		}
	}()
	start := time.Now()
	for range m {
		w, err := pods.Watch(ctx, opts)
		if err != nil {
			watchErrs.add(err)
			continue
		}
		watchers = append(watchers, w)
		wg.Go(func() {
			got := make([]bool, u+1)
			var mine []time.Duration
			defer func() {
				mu.Lock()
				deliveries = append(deliveries, mine...)
				mu.Unlock()
			}()
			for ev := range w.ResultChan() {
				now := time.Since(base)
				switch ev.Type {
				case watch.Modified:
				case watch.Bookmark:
					continue
				case watch.Error:
					// client-go reports its own closing of the stream as an error event
					if !stopping.Load() {
						watchErrs.add(fmt.Errorf("ERROR event: %v", ev.Object))
					}
					continue
				default:
					oddEvents.Add(1)
					continue
				}
				seq := -1
				if p, isPod := ev.Object.(*corev1.Pod); isPod {
					if n, err := strconv.Atoi(p.Annotations[seqAnnotation]); err == nil {
						seq = n
					}
				}
				if seq < 0 || seq > u || got[seq] {
					oddEvents.Add(1)
					continue
				}
				got[seq] = true
				if seq > 0 {
					mine = append(mine, now-time.Duration(sent[seq].Load()))
					delivered.Add(1)
				}
				if seen[seq].Add(1) == int32(m) {
					close(allSeen[seq])
				}
			}
			if !stopping.Load() {
				watchErrs.add(fmt.Errorf("a watch ended before the bench stopped it"))
			}
		})
	}
	fmt.Fprintf(l.progress, "watch: %d/%d watches open in %s\n", len(watchers), m, time.Since(start).Round(time.Millisecond))

	patchErrs := newErrorTally("patch")
	var patchLat []time.Duration
	patched := 0
	ticker := time.NewTicker(progressEvery)
	defer ticker.Stop()
	for seq := 0; seq <= u && ctx.Err() == nil; seq++ {
		body := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, seqAnnotation, strconv.Itoa(seq))
		sent[seq].Store(int64(time.Since(base)))
		t0 := time.Now()
		_, err := pods.Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{})
		took := time.Since(t0)
		wait := max(patchPace-took, 0)
		switch {
		case err != nil:
			patchErrs.add(err)
			continue
		case seq == 0:
			wait = 30 * time.Second
		default:
			patchLat = append(patchLat, took)
			patched++
		}
		select {
		case <-allSeen[seq]:
		case <-time.After(wait):
			if seq == 0 {
				l.res.Problems = append(l.res.Problems, fmt.Sprintf(
					"only %d of %d watchers delivered the warm-up update within %s", seen[0].Load(), m, wait))
			}
		case <-ctx.Done():
		}
		if seq == 0 {
			fmt.Fprintf(l.progress, "watch: %d/%d watchers delivered the warm-up update\n", seen[0].Load(), m)
		}
		select {
		case <-ticker.C:
			fmt.Fprintf(l.progress, "watch: %d/%d updates, %d deliveries\n", seq, u, delivered.Load())
		default:
		}
	}
	// Let stragglers arrive, then stop the watches.
	if patched > 0 {
		select {
		case <-allSeen[u]:
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		}
	}
	stopping.Store(true)
	for _, w := range watchers {
		w.Stop()
	}
	wg.Wait()

	l.addRow(newRow("patch (watched pod)", patchLat, patchErrs.count(), 0), patchErrs)
	r := newRow("watch delivery", deliveries, watchErrs.count(), 0)
	r.Note = "from just before the PATCH is sent"
	l.addRow(r, watchErrs)
	l.res.WatchDeliveries = len(deliveries)
	l.res.WatchMissed = len(watchers)*patched - len(deliveries)
	if n := oddEvents.Load(); n > 0 {
		l.res.Problems = append(l.res.Problems, fmt.Sprintf("%d unexpected watch events (duplicates, other types or unknown sequence numbers)", n))
	}
	return nil
}

// parallel runs op for 0 <= i < n on opts.workers goroutines, printing progress as it goes. It
// returns the latencies of the operations that succeeded, the errors of the others and the
// wall time of the whole.
func (l *load) parallel(ctx context.Context, phase string, n int, op func(context.Context, int) error) ([]time.Duration, *errorTally, time.Duration) {
	errs := newErrorTally(phase)
	lat := make([]time.Duration, n)
	failed := make([]bool, n)
	var next, done atomic.Int64
	start := time.Now()
	stopProgress := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		ticker := time.NewTicker(progressEvery)
		defer ticker.Stop()
		for {
			select {
			case <-ticker.C:
				d := done.Load()
				fmt.Fprintf(l.progress, "%s: %d/%d, %.0f/s, %d errors\n",
					phase, d, n, float64(d)/time.Since(start).Seconds(), errs.count())
			case <-stopProgress:
				return
			}
		}
	})
	var workers sync.WaitGroup
	for range l.opts.workers {
		workers.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				err := op(ctx, i)
				lat[i] = time.Since(t0)
				if err != nil {
					failed[i] = true
					errs.add(err)
				}
				done.Add(1)
			}
		})
	}
	workers.Wait()
	wall := time.Since(start)
	close(stopProgress)
	wg.Wait()
	var ok []time.Duration
	for i := range int(done.Load()) {
		if !failed[i] {
			ok = append(ok, lat[i])
		}
	}
	fmt.Fprintf(l.progress, "%s: %d done in %s, %d errors\n", phase, done.Load(), wall.Round(time.Millisecond), errs.count())
	return ok, errs, wall
}

func (l *load) addRow(r row, errs *errorTally) {
	l.res.Rows = append(l.res.Rows, r)
	l.res.ErrorGroups = append(l.res.ErrorGroups, errs.list()...)
}

// deleteCRDs deletes the definitions the bench created (and so their objects).
func (l *load) deleteCRDs(ctx context.Context) error {
	if len(l.createdCRDs) == 0 {
		return nil
	}
	ext, err := apiextensionsclient.NewForConfig(l.config)
	if err != nil {
		return err
	}
	for _, name := range l.createdCRDs {
		if err := ext.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// deleteNamespace deletes the bench's pods, without grace, and then its namespace.
func deleteNamespace(ctx context.Context, client kubernetes.Interface, ns string) error {
	zero := int64(0)
	del := metav1.DeleteOptions{GracePeriodSeconds: &zero}
	if err := client.CoreV1().Pods(ns).DeleteCollection(ctx, del, metav1.ListOptions{}); err != nil {
		return err
	}
	return client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
}

// createDefaultServiceAccount makes the namespace's default ServiceAccount, which the
// ServiceAccount admission plugin wants for every pod: an API server benched alone has no
// controller to make it (one that does may have made it first).
func createDefaultServiceAccount(ctx context.Context, client kubernetes.Interface, ns string) error {
	_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the default ServiceAccount of %s: %w", ns, err)
	}
	return nil
}
