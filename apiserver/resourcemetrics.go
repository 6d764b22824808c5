package apiserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// The resource metrics API (metrics.k8s.io/v1beta1 NodeMetrics and PodMetrics), answered as
// metrics-server answers it but on request: the kubelets of the nodes asked about are
// scraped (/metrics/resource, through the same client as logs and exec), and CPU use is the
// rate of their cumulative CPU time against an earlier scrape of the same kubelet. A kubelet
// never scraped before is scraped twice, a second apart; the earlier scrape is renewed once it
// is older than metrics-server's resolution, so the window stays between one and about thirty
// seconds. Memory is the working set. Nothing is stored.

const (
	// metricsResolution is how old the earlier scrape may grow (metrics-server's
	// --metric-resolution).
	metricsResolution = 15 * time.Second
	// firstScrapeGap is how long a first request waits between a kubelet's two scrapes.
	firstScrapeGap = time.Second
)

// usageSample is a cumulative CPU time (core-seconds) and a working set (bytes) and when
// the kubelet measured them.
type usageSample struct {
	cpu, memory float64
	at          time.Time
}

type containerKey struct{ namespace, pod, container string }

// kubeletScrape is what one scrape of a kubelet's /metrics/resource said.
type kubeletScrape struct {
	node       *usageSample
	containers map[containerKey]usageSample
}

// resourceMetricsState keeps the earlier scrape of each kubelet.
type resourceMetricsState struct {
	mu      sync.Mutex
	earlier map[string]*kubeletScrape
}

func (s *Server) serveResourceMetrics(w http.ResponseWriter, r *http.Request, ri *requestInfo, res *apis.Resource) {
	gr := res.GroupVersionResource().GroupResource()
	if ri.Verb != "get" && ri.Verb != "list" {
		writeError(w, r, apierrors.NewMethodNotSupported(gr, ri.Verb))
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	label, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		writeError(w, r, apierrors.NewBadRequest(err.Error()))
		return
	}
	field, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		writeError(w, r, apierrors.NewBadRequest(err.Error()))
		return
	}
	if ri.Name != "" {
		// a get reads the one object as a list of one would
		field = fields.AndSelectors(field, fields.OneTermEqualSelector("metadata.name", ri.Name))
	}
	var items []runtime.Object
	if res.Kind == "NodeMetrics" {
		items, err = s.nodeMetrics(ctx, label, field)
	} else {
		items, err = s.podMetrics(ctx, ri.Namespace, label, field)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if ri.Verb == "get" {
		if len(items) == 0 {
			writeError(w, r, apierrors.NewNotFound(gr, ri.Name))
			return
		}
		writeObject(w, r, http.StatusOK, res.GroupVersion, items[0])
		return
	}
	list := res.NewList()
	if err := meta.SetList(list, items); err != nil {
		writeError(w, r, err)
		return
	}
	writeObject(w, r, http.StatusOK, res.GroupVersion, list)
}

// nodeMetrics are the metrics of the nodes label and field select whose kubelets answer.
func (s *Server) nodeMetrics(ctx context.Context, label labels.Selector, field fields.Selector) ([]runtime.Object, error) {
	obj, err := s.builtinStore(corev1.SchemeGroupVersion, "nodes").List(ctx, "", registry.ListOptions{Label: label, Field: field})
	if err != nil {
		return nil, err
	}
	nodes := obj.(*corev1.NodeList).Items
	ptrs := make([]*corev1.Node, len(nodes))
	for i := range nodes {
		ptrs[i] = &nodes[i]
	}
	scrapes := s.scrapeNodes(ctx, ptrs)
	var out []runtime.Object
	for _, node := range nodes {
		pair := scrapes[node.Name]
		earlier, now := pair[0], pair[1]
		if earlier == nil || now == nil || earlier.node == nil || now.node == nil {
			continue // as metrics-server: a node it cannot measure is left out
		}
		cpu, ok := cpuRate(*earlier.node, *now.node)
		if !ok {
			continue
		}
		out = append(out, &metricsv1beta1.NodeMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: node.Name, Labels: node.Labels, CreationTimestamp: metav1.Now()},
			Timestamp:  metav1.NewTime(now.node.at),
			Window:     metav1.Duration{Duration: now.node.at.Sub(earlier.node.at)},
			Usage:      usage(cpu, now.node.memory),
		})
	}
	return out, nil
}

// podMetrics are the metrics of the scheduled pods of ns (all namespaces for "") label and
// field select, of which every container has been measured twice.
func (s *Server) podMetrics(ctx context.Context, ns string, label labels.Selector, field fields.Selector) ([]runtime.Object, error) {
	obj, err := s.builtinStore(corev1.SchemeGroupVersion, "pods").List(ctx, ns, registry.ListOptions{Label: label, Field: field})
	if err != nil {
		return nil, err
	}
	pods := obj.(*corev1.PodList).Items
	var nodes []*corev1.Node
	seen := map[string]bool{}
	for _, pod := range pods {
		if name := pod.Spec.NodeName; name != "" && pod.Status.Phase == corev1.PodRunning && !seen[name] {
			seen[name] = true
			nodeObj, err := s.builtinStore(corev1.SchemeGroupVersion, "nodes").Get(ctx, "", name, &metav1.GetOptions{})
			if err != nil {
				slog.Debug("pod metrics", "node", name, "err", err)
				continue
			}
			nodes = append(nodes, nodeObj.(*corev1.Node))
		}
	}
	scrapes := s.scrapeNodes(ctx, nodes)
	var out []runtime.Object
	for _, pod := range pods {
		if pod.Spec.NodeName == "" || pod.Status.Phase != corev1.PodRunning {
			continue
		}
		pair := scrapes[pod.Spec.NodeName]
		if pair[0] == nil || pair[1] == nil {
			continue
		}
		pm := &metricsv1beta1.PodMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, Labels: pod.Labels, CreationTimestamp: metav1.Now()},
			Containers: []metricsv1beta1.ContainerMetrics{},
		}
		complete := true
		for _, c := range pod.Spec.Containers {
			key := containerKey{pod.Namespace, pod.Name, c.Name}
			before, ok1 := pair[0].containers[key]
			after, ok2 := pair[1].containers[key]
			cpu, ok3 := cpuRate(before, after)
			if !ok1 || !ok2 || !ok3 {
				complete = false
				break
			}
			if after.at.After(pm.Timestamp.Time) {
				pm.Timestamp = metav1.NewTime(after.at)
				pm.Window = metav1.Duration{Duration: after.at.Sub(before.at)}
			}
			pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{Name: c.Name, Usage: usage(cpu, after.memory)})
		}
		// as metrics-server: a pod with a container not yet measured is left out
		if complete {
			out = append(out, pm)
		}
	}
	return out, nil
}

// usage is a ResourceList of cpu cores and memory bytes as metrics-server writes them: cpu
// in nanocores, memory in bytes (kubectl top rounds them).
func usage(cpuCores, memoryBytes float64) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewScaledQuantity(int64(math.Round(cpuCores*1e9)), resource.Nano),
		corev1.ResourceMemory: *resource.NewQuantity(int64(memoryBytes), resource.BinarySI),
	}
}

// cpuRate is the CPU cores used between two samples; false when they cannot give one.
func cpuRate(before, after usageSample) (float64, bool) {
	window := after.at.Sub(before.at)
	if window <= 0 || after.cpu < before.cpu {
		return 0, false
	}
	return (after.cpu - before.cpu) / window.Seconds(), true
}

// scrapeNodes scrapes the nodes' kubelets at once (a first scrape waits), each as
// scrapeTwice; a kubelet that cannot be scraped has no entry.
func (s *Server) scrapeNodes(ctx context.Context, nodes []*corev1.Node) map[string][2]*kubeletScrape {
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := make(map[string][2]*kubeletScrape, len(nodes))
	for _, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			earlier, now, err := s.scrapeTwice(ctx, node)
			if err != nil {
				slog.Debug("resource metrics", "node", node.Name, "err", err)
				return
			}
			mu.Lock()
			out[node.Name] = [2]*kubeletScrape{earlier, now}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// scrapeTwice scrapes node's kubelet and returns it with the earlier scrape to measure CPU
// against, scraping again after firstScrapeGap when there is none.
func (s *Server) scrapeTwice(ctx context.Context, node *corev1.Node) (earlier, now *kubeletScrape, err error) {
	now, err = s.scrapeKubelet(ctx, node)
	if err != nil {
		return nil, nil, err
	}
	st := &s.resourceMetrics
	st.mu.Lock()
	if st.earlier == nil {
		st.earlier = map[string]*kubeletScrape{}
	}
	earlier = st.earlier[node.Name]
	if earlier == nil || earlier.node == nil || now.node == nil || !now.node.at.After(earlier.node.at) {
		st.earlier[node.Name] = now
		st.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(firstScrapeGap):
		}
		earlier = now
		if now, err = s.scrapeKubelet(ctx, node); err != nil {
			return nil, nil, err
		}
		return earlier, now, nil
	}
	if now.node.at.Sub(earlier.node.at) >= metricsResolution {
		st.earlier[node.Name] = now
	}
	st.mu.Unlock()
	return earlier, now, nil
}

// scrapeKubelet reads node's kubelet's /metrics/resource.
func (s *Server) scrapeKubelet(ctx context.Context, node *corev1.Node) (*kubeletScrape, error) {
	host, err := kubeletAddress(node)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := &url.URL{Scheme: "https", Host: host, Path: "/metrics/resource"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.kubeletTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("kubelet %s answered %s", node.Name, resp.Status)
	}
	return parseResourceMetrics(resp.Body, time.Now())
}

// parseResourceMetrics reads the Prometheus text of /metrics/resource; samples without a
// timestamp are taken as measured at scraped.
func parseResourceMetrics(body io.Reader, scraped time.Time) (*kubeletScrape, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(body)
	if err != nil {
		return nil, err
	}
	at := func(m *dto.Metric) time.Time {
		if ms := m.GetTimestampMs(); ms != 0 {
			return time.UnixMilli(ms)
		}
		return scraped
	}
	value := func(m *dto.Metric) float64 {
		if m.Counter != nil {
			return m.GetCounter().GetValue()
		}
		if m.Gauge != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetUntyped().GetValue()
	}
	out := &kubeletScrape{containers: map[containerKey]usageSample{}}
	if cpu, mem := families["node_cpu_usage_seconds_total"], families["node_memory_working_set_bytes"]; cpu != nil && mem != nil &&
		len(cpu.Metric) == 1 && len(mem.Metric) == 1 {
		out.node = &usageSample{cpu: value(cpu.Metric[0]), memory: value(mem.Metric[0]), at: at(cpu.Metric[0])}
	}
	key := func(m *dto.Metric) containerKey {
		var k containerKey
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "namespace":
				k.namespace = l.GetValue()
			case "pod":
				k.pod = l.GetValue()
			case "container":
				k.container = l.GetValue()
			}
		}
		return k
	}
	if f := families["container_cpu_usage_seconds_total"]; f != nil {
		for _, m := range f.Metric {
			out.containers[key(m)] = usageSample{cpu: value(m), at: at(m)}
		}
	}
	if f := families["container_memory_working_set_bytes"]; f != nil {
		for _, m := range f.Metric {
			if c, ok := out.containers[key(m)]; ok {
				c.memory = value(m)
				out.containers[key(m)] = c
			}
		}
	}
	return out, nil
}
