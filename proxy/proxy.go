// Package proxy is skiff's service proxy, the node agent that upstream calls kube-proxy in its
// nftables mode: it watches Services and EndpointSlices and programs one nftables table of its
// own so that traffic to a Service's cluster IP, node ports and external IPs reaches one of its
// ready endpoints, chosen at random (rules.go says which rules and why).
//
// Each change batch becomes one `nft -f -` transaction, so the kernel never holds half a
// change. The first sync rebuilds the table from nothing, so a restarted proxy leaves no stale
// rule; a failed sync makes the next one rebuild it too. On exit the proxy deletes its table
// and nothing else: it must never touch another table, chain or rule of the host.
//
// The package also holds the NetworkPolicy agent (networkpolicy.go), which shares the proxy's
// ruleset diff and sync loop but runs apart, as its own user, on a table of its own, and
// likewise touches nothing else.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// DefaultTable is the name of the proxy's table in the ip family.
const DefaultTable = "skiff"

// Config says where and how the proxy programs the node.
type Config struct {
	// Hostname is this node's name: endpoints whose nodeName is it are local.
	Hostname string
	// ClusterCIDR is the pods' address range; traffic to cluster IPs from outside it is
	// masqueraded. Unset (the zero Prefix) masquerades none of it.
	ClusterCIDR netip.Prefix
	// Table is the proxy's table in the ip family; DefaultTable when empty.
	Table string
	// NFT is the nft command and its leading arguments; {"nft"} when empty. Tests run it in a
	// network namespace with {"ip", "netns", "exec", NAME, "nft"}.
	NFT []string
	// Sysctl sets a kernel parameter ("net/ipv4/ip_forward"); writing /proc/sys when nil.
	Sysctl func(name, value string) error
	// SyncPeriod is how often the rules are checked against the API's objects even when no
	// event came; 30s when zero.
	SyncPeriod time.Duration
	// MinSyncInterval is the least time between two syncs: events arriving meanwhile are
	// applied together. 100ms when zero.
	MinSyncInterval time.Duration
}

// Proxy programs this node's nftables for the cluster's Services.
type Proxy struct {
	cfg      Config
	services corelisters.ServiceLister
	slices   cache.Indexer
	synced   []cache.InformerSynced
	// changed holds one pending "something changed" signal.
	changed chan struct{}
	metrics *Metrics

	mu sync.Mutex
	// applied is the ruleset in the kernel after the last successful sync; nil when the next
	// sync must rebuild the table.
	applied *ruleset
	// lastSync is when the last sync succeeded.
	lastSync time.Time
}

const serviceIndex = "service"

// New makes a proxy on shared informers of Services and EndpointSlices. Call it before the
// informers start.
func New(services coreinformers.ServiceInformer, slices discoveryinformers.EndpointSliceInformer, cfg Config) (*Proxy, error) {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if len(cfg.NFT) == 0 {
		cfg.NFT = []string{"nft"}
	}
	if cfg.Sysctl == nil {
		cfg.Sysctl = writeProcSys
	}
	if cfg.SyncPeriod == 0 {
		cfg.SyncPeriod = 30 * time.Second
	}
	if cfg.MinSyncInterval == 0 {
		cfg.MinSyncInterval = 100 * time.Millisecond
	}
	p := &Proxy{
		cfg:      cfg,
		services: services.Lister(),
		slices:   slices.Informer().GetIndexer(),
		synced:   []cache.InformerSynced{services.Informer().HasSynced, slices.Informer().HasSynced},
		changed:  make(chan struct{}, 1),
		metrics:  newMetrics(),
	}
	if _, ok := slices.Informer().GetIndexer().GetIndexers()[serviceIndex]; !ok {
		if err := slices.Informer().AddIndexers(cache.Indexers{serviceIndex: sliceServiceKey}); err != nil {
			return nil, err
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.signal() },
		UpdateFunc: func(any, any) { p.signal() },
		DeleteFunc: func(any) { p.signal() },
	}
	for _, inf := range []cache.SharedIndexInformer{services.Informer(), slices.Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func sliceServiceKey(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + name}, nil
}

func (p *Proxy) signal() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Metrics are the proxy's series, named as kube-proxy's.
func (p *Proxy) Metrics() *Metrics { return p.metrics }

// Healthy reports whether the rules were synced successfully within the last two sync periods
// (kube-proxy's healthz rule), and when.
func (p *Proxy) Healthy() (bool, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.lastSync.IsZero() && time.Since(p.lastSync) < 2*p.cfg.SyncPeriod, p.lastSync
}

// Run prepares the node (ip_forward), waits for the informers, then keeps the table in step
// with the API until ctx is done, and deletes the table on the way out. It returns nil once
// stopped; failed syncs are logged and retried, never fatal.
func (p *Proxy) Run(ctx context.Context) error {
	slog.Info("starting proxy", "table", "ip "+p.cfg.Table, "hostname", p.cfg.Hostname, "clusterCIDR", p.cfg.ClusterCIDR)
	defer slog.Info("stopped proxy")
	// forwarding to pods needs ip_forward; bridged replies of pods reaching a pod on the
	// same bridge through a Service must pass conntrack to be un-NATed
	if err := p.cfg.Sysctl("net/ipv4/ip_forward", "1"); err != nil {
		slog.Warn("cannot enable IP forwarding; traffic to pods will not be forwarded", "err", err)
	}
	if err := p.cfg.Sysctl("net/bridge/bridge-nf-call-iptables", "1"); err != nil {
		slog.Debug("cannot make bridged traffic pass netfilter", "err", err)
	}
	if !cache.WaitForNamedCacheSync("proxy", ctx.Done(), p.synced...) {
		return nil
	}
	defer p.cleanup()

	syncLoop(ctx, syncLoopConfig{
		changed: p.changed, period: p.cfg.SyncPeriod, maxBackoff: time.Minute, minInterval: p.cfg.MinSyncInterval,
		sync: p.Sync,
		failed: func(err error, retryIn time.Duration) {
			slog.Warn("syncing the proxy rules failed; the next sync rebuilds the table", "err", err, "retryIn", retryIn)
		},
	})
	return nil
}

// syncLoopConfig is what syncLoop needs.
type syncLoopConfig struct {
	changed            <-chan struct{}
	period, maxBackoff time.Duration
	minInterval        time.Duration // after a sync, to let a burst of events gather
	sync               func(context.Context) error
	failed             func(err error, retryIn time.Duration)
}

// syncLoop runs sync at once, then on every signal on changed and every period, and after a
// failure again with a back-off doubling from 1 s to maxBackoff, until ctx is done. The proxy
// and the node routes are each one such loop.
func syncLoop(ctx context.Context, cfg syncLoopConfig) {
	tick := time.NewTicker(cfg.period)
	defer tick.Stop()
	retry := time.NewTimer(0) // the first sync right away
	defer retry.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-cfg.changed:
		case <-tick.C:
		case <-retry.C:
		}
		if err := cfg.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, time.Second), cfg.maxBackoff)
			cfg.failed(err, backoff)
			retry.Reset(backoff)
		} else {
			backoff = 0
		}
		if cfg.minInterval > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(cfg.minInterval):
			}
		}
	}
}

// Sync makes the table match the Services and EndpointSlices in the informers' caches, in one
// nft transaction.
func (p *Proxy) Sync(ctx context.Context) error {
	start := time.Now()
	services, err := p.services.List(labels.Everything())
	if err != nil {
		return err
	}
	var ports []*servicePort
	for _, svc := range services {
		objs, err := p.slices.ByIndex(serviceIndex, svc.Namespace+"/"+svc.Name)
		if err != nil {
			return err
		}
		slices := make([]*discoveryv1.EndpointSlice, 0, len(objs))
		for _, o := range objs {
			slices = append(slices, o.(*discoveryv1.EndpointSlice))
		}
		ports = append(ports, servicePorts(svc, slices, p.cfg.Hostname)...)
	}
	rules := buildRules(ports, ruleConfig{clusterCIDR: p.cfg.ClusterCIDR})

	p.mu.Lock()
	prev := p.applied
	p.mu.Unlock()
	tx := rules.transaction("ip", p.cfg.Table, prev)
	if prev != nil && strings.Count(tx, "\n") <= 1 {
		p.markSynced(rules, start, false)
		return nil // nothing changed: the only line is "add table"
	}
	if err := p.nft(ctx, tx); err != nil {
		p.mu.Lock()
		p.applied = nil
		p.mu.Unlock()
		p.metrics.syncErrors.Inc()
		return err
	}
	p.markSynced(rules, start, true)
	slog.Debug("synced proxy rules", "servicePorts", len(ports), "full", prev == nil, "took", time.Since(start))
	return nil
}

func (p *Proxy) markSynced(rules *ruleset, start time.Time, wrote bool) {
	p.mu.Lock()
	p.applied = rules
	p.lastSync = time.Now()
	p.mu.Unlock()
	if wrote {
		p.metrics.syncDuration.Observe(time.Since(start).Seconds())
	}
	p.metrics.lastSync.SetToCurrentTime()
}

// nft applies a transaction with `nft -f -`.
func (p *Proxy) nft(ctx context.Context, tx string) error { return runNFT(ctx, p.cfg.NFT, tx) }

// runNFT applies a transaction with the nft command (and its leading arguments) given.
func runNFT(ctx context.Context, nft []string, tx string) error {
	args := append(append([]string{}, nft[1:]...), "-f", "-")
	cmd := exec.CommandContext(ctx, nft[0], args...)
	cmd.Stdin = strings.NewReader(tx)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft -f: %w: %s", err, firstLines(stderr.String(), 8))
	}
	return nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

// cleanup deletes the proxy's table, and only it.
func (p *Proxy) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// "add" first so that deleting an absent table is no error
	tx := fmt.Sprintf("add table ip %s\ndelete table ip %s\n", p.cfg.Table, p.cfg.Table)
	if err := p.nft(ctx, tx); err != nil {
		slog.Warn("deleting the proxy's table failed", "table", "ip "+p.cfg.Table, "err", err)
	}
	p.mu.Lock()
	p.applied = nil
	p.mu.Unlock()
}

// writeProcSys sets a sysctl by writing /proc/sys/NAME.
func writeProcSys(name, value string) error {
	path := filepath.Join("/proc/sys", name)
	cur, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(cur)) == value {
		return nil
	}
	if err != nil && errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.WriteFile(path, []byte(value+"\n"), 0o644)
}

// Metrics are the proxy's half of /metrics.
type Metrics struct {
	// Registry holds every series.
	Registry     *prometheus.Registry
	syncDuration prometheus.Histogram
	lastSync     prometheus.Gauge
	syncErrors   prometheus.Counter
}

func newMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Subsystem: "kubeproxy", Name: "sync_proxy_rules_duration_seconds",
			Help:    "SyncProxyRules latency in seconds",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Subsystem: "kubeproxy", Name: "sync_proxy_rules_last_timestamp_seconds",
			Help: "The last time proxy rules were successfully synced",
		}),
		syncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Subsystem: "kubeproxy", Name: "sync_proxy_rules_nftables_sync_failures_total",
			Help: "Total number of nftables transactions that failed",
		}),
	}
	m.Registry.MustRegister(m.syncDuration, m.lastSync, m.syncErrors)
	return m
}
