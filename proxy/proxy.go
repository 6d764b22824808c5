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
	"slices"
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
	// IPv6 makes the proxy dual-stack, as kube-proxy is on a node of both families: the
	// Services' IPv6 cluster IPs, node ports and external IPs reach their IPv6 endpoints
	// through the same rules in a second table, `ip6 Table`, written in the same transaction.
	// Off, the proxy never touches an ip6 table.
	IPv6 bool
	// IPv6ClusterCIDR is the pods' IPv6 range, for IPv6 what ClusterCIDR is for IPv4.
	IPv6ClusterCIDR netip.Prefix
	// Table is the proxy's table in the ip family (and the ip6 one); DefaultTable when empty.
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
	// HealthCheckListen opens the health check node ports of Local load balancers
	// (healthcheck.go); net.Listen when nil.
	HealthCheckListen ListenFunc
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
	// healthChecks serves the health check node ports.
	healthChecks *healthCheckServers

	// families are the IP families the proxy programs, each in a table of its own: IPv4, and
	// IPv6 when Config.IPv6.
	families []familyTable

	mu sync.Mutex
	// applied is the ruleset of each family's table in the kernel after the last successful
	// sync, by the family's table; nil when the next sync must rebuild the tables.
	applied map[string]*ruleset
	// lastSync is when the last sync succeeded.
	lastSync time.Time
}

const serviceIndex = "service"

// familyTable is one IP family's table and what its rules depend on.
type familyTable struct {
	family      ipFamily
	clusterCIDR netip.Prefix
}

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
		families: []familyTable{{family: ipv4Family, clusterCIDR: cfg.ClusterCIDR}},
	}
	if cfg.IPv6 {
		p.families = append(p.families, familyTable{family: ipv6Family, clusterCIDR: cfg.IPv6ClusterCIDR})
	}
	p.healthChecks = newHealthCheckServers(cfg.HealthCheckListen, func() bool { ok, _ := p.Healthy(); return ok })
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
	if p.cfg.IPv6 {
		slog.Info("starting proxy", "table", "ip "+p.cfg.Table, "ipv6Table", "ip6 "+p.cfg.Table, "hostname", p.cfg.Hostname,
			"clusterCIDR", p.cfg.ClusterCIDR, "ipv6ClusterCIDR", p.cfg.IPv6ClusterCIDR)
	} else {
		slog.Info("starting proxy", "table", "ip "+p.cfg.Table, "hostname", p.cfg.Hostname, "clusterCIDR", p.cfg.ClusterCIDR)
	}
	defer slog.Info("stopped proxy")
	// forwarding to pods needs ip_forward; bridged replies of pods reaching a pod on the
	// same bridge through a Service must pass conntrack to be un-NATed
	if err := p.cfg.Sysctl("net/ipv4/ip_forward", "1"); err != nil {
		slog.Warn("cannot enable IP forwarding; traffic to pods will not be forwarded", "err", err)
	}
	if err := p.cfg.Sysctl("net/bridge/bridge-nf-call-iptables", "1"); err != nil {
		slog.Debug("cannot make bridged traffic pass netfilter", "err", err)
	}
	if p.cfg.IPv6 {
		if err := p.cfg.Sysctl("net/ipv6/conf/all/forwarding", "1"); err != nil {
			slog.Warn("cannot enable IPv6 forwarding; IPv6 traffic to pods will not be forwarded", "err", err)
		}
		if err := p.cfg.Sysctl("net/bridge/bridge-nf-call-ip6tables", "1"); err != nil {
			slog.Debug("cannot make bridged IPv6 traffic pass netfilter", "err", err)
		}
	}
	if !cache.WaitForNamedCacheSync("proxy", ctx.Done(), p.synced...) {
		return nil
	}
	defer p.cleanup()
	defer p.healthChecks.close()

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

// Sync makes the tables match the Services and EndpointSlices in the informers' caches, in one
// nft transaction.
func (p *Proxy) Sync(ctx context.Context) error {
	start := time.Now()
	services, err := p.services.List(labels.Everything())
	if err != nil {
		return err
	}
	ports := make([][]*servicePort, len(p.families))
	for _, svc := range services {
		objs, err := p.slices.ByIndex(serviceIndex, svc.Namespace+"/"+svc.Name)
		if err != nil {
			return err
		}
		epSlices := make([]*discoveryv1.EndpointSlice, 0, len(objs))
		for _, o := range objs {
			epSlices = append(epSlices, o.(*discoveryv1.EndpointSlice))
		}
		for i, ft := range p.families {
			ports[i] = append(ports[i], familyServicePorts(svc, epSlices, p.cfg.Hostname, ft.family)...)
		}
	}
	p.healthChecks.sync(healthChecks(services, slices.Concat(ports...)))

	p.mu.Lock()
	prev := p.applied
	p.mu.Unlock()
	applied := map[string]*ruleset{}
	var tx strings.Builder
	changed, portCount := false, 0
	for i, ft := range p.families {
		rules := buildRules(ports[i], ruleConfig{clusterCIDR: ft.clusterCIDR, family: ft.family})
		applied[ft.family.table] = rules
		var prevRules *ruleset
		if prev != nil {
			prevRules = prev[ft.family.table]
		}
		t := rules.transaction(ft.family.table, p.cfg.Table, prevRules)
		// the only line of an unchanged table is "add table"
		changed = changed || prevRules == nil || strings.Count(t, "\n") > 1
		tx.WriteString(t)
		portCount += len(ports[i])
	}
	if !changed {
		p.markSynced(applied, start, false)
		return nil
	}
	if err := p.nft(ctx, tx.String()); err != nil {
		p.mu.Lock()
		p.applied = nil
		p.mu.Unlock()
		p.metrics.syncErrors.Inc()
		return err
	}
	p.markSynced(applied, start, true)
	slog.Debug("synced proxy rules", "servicePorts", portCount, "full", prev == nil, "took", time.Since(start))
	return nil
}

func (p *Proxy) markSynced(rules map[string]*ruleset, start time.Time, wrote bool) {
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

// cleanup deletes the proxy's tables, and only them.
func (p *Proxy) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// "add" first so that deleting an absent table is no error
	var tx strings.Builder
	for _, ft := range p.families {
		fmt.Fprintf(&tx, "add table %s %s\ndelete table %s %s\n", ft.family.table, p.cfg.Table, ft.family.table, p.cfg.Table)
	}
	if err := p.nft(ctx, tx.String()); err != nil {
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
