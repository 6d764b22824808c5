package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// DefaultRouteProtocol marks the routes the node-routes syncer makes (`ip route … proto 77`):
// a number no routing daemon in iproute2's rt_protos uses. A restarted syncer finds its own
// routes by it, and it never touches a route of another protocol.
const DefaultRouteProtocol = 77

// RoutesConfig says where and how the node-routes syncer programs the node.
type RoutesConfig struct {
	// Hostname is this node's name: its own podCIDR gets no route.
	Hostname string
	// IP is the ip command and its leading arguments; {"ip"} when empty. Tests run it in a
	// network namespace with {"ip", "-n", NAME}.
	IP []string
	// Protocol is the routing protocol number that marks the syncer's routes;
	// DefaultRouteProtocol when zero.
	Protocol int
	// SyncPeriod is how often the routes are checked even when no Node changed; 30s when zero.
	SyncPeriod time.Duration
	// IPv6 keeps routes to the Nodes' IPv6 podCIDRs too, via their IPv6 InternalIPs (a
	// dual-stack cluster), and the table `ip6 Table`. Off, the syncer never reads or writes an
	// IPv6 route or table.
	IPv6 bool
	// NFT is the nft command and its leading arguments; {"nft"} when empty. Tests run it in a
	// network namespace with {"ip", "netns", "exec", NAME, "nft"}.
	NFT []string
	// Table is the nftables table of the pod network's masquerade; DefaultPodNetworkTable when
	// empty.
	Table string
	// ClusterCIDRs are the pod network's ranges when known (--cluster-cidr): they join the
	// Nodes' podCIDRs in the masquerade's pod network, so that a Node's pods are in it before
	// the syncer has seen the Node.
	ClusterCIDRs []netip.Prefix
}

// NodeRoutes is a host-gateway pod network: for every other Node with a podCIDR and an
// InternalIP it keeps the route "podCIDR via InternalIP" in the main table, so that pods on
// one node reach pods on another whose address is on a directly connected link (several
// kubelets in network namespaces on one machine, or hosts on one L2 segment). It removes the
// routes of Nodes that are gone or changed and touches no route it did not make.
//
// It also keeps the nftables table `ip skiff-podnet` (podmasquerade.go), which masquerades
// what pods send out of the pod network (every Node's podCIDRs) and nothing they send to
// pods: a pod reached from another node sees the client pod's address, as upstream's
// networks keep it. The node's CNI bridge must then masquerade nothing itself (the kubelet's
// --no-cni-masquerade, which skiff up and skiff agent set).
type NodeRoutes struct {
	cfg     RoutesConfig
	nodes   corelisters.NodeLister
	synced  cache.InformerSynced
	changed chan struct{}

	mu sync.Mutex
	// failing holds the routes whose last add failed ("DST via GW" → error), logged once.
	failing map[string]string
	// podNetwork is the transaction last applied to the pod network's table ("" before the
	// first and after a failed one), tableWritten when; the table is written again when it
	// changes or a sync period later, so that one deleted by hand comes back.
	podNetwork   string
	tableWritten time.Time
}

// route is one route of the syncer: a pod range via a node's address.
type route struct {
	dst netip.Prefix
	via netip.Addr
}

func (r route) String() string { return r.dst.String() + " via " + r.via.String() }

// NewNodeRoutes makes a node-routes syncer on a shared Node informer. Call it before the
// informer starts.
func NewNodeRoutes(nodes coreinformers.NodeInformer, cfg RoutesConfig) (*NodeRoutes, error) {
	if len(cfg.IP) == 0 {
		cfg.IP = []string{"ip"}
	}
	if cfg.Protocol == 0 {
		cfg.Protocol = DefaultRouteProtocol
	}
	if cfg.SyncPeriod == 0 {
		cfg.SyncPeriod = 30 * time.Second
	}
	if len(cfg.NFT) == 0 {
		cfg.NFT = []string{"nft"}
	}
	if cfg.Table == "" {
		cfg.Table = DefaultPodNetworkTable
	}
	r := &NodeRoutes{
		cfg:     cfg,
		nodes:   nodes.Lister(),
		synced:  nodes.Informer().HasSynced,
		changed: make(chan struct{}, 1),
		failing: map[string]string{},
	}
	signal := func() {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
	_, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { signal() },
		UpdateFunc: func(any, any) { signal() },
		DeleteFunc: func(any) { signal() },
	})
	return r, err
}

// Run keeps the routes and the pod network's table in step with the Nodes until ctx is done.
// Routes stay when it returns: pod traffic keeps flowing while the syncer restarts, and the
// next start reconciles them. The table goes, as the proxy's: until the next start, what pods
// send out of the pod network leaves unmasqueraded.
func (r *NodeRoutes) Run(ctx context.Context) error {
	slog.Info("starting node routes", "hostname", r.cfg.Hostname, "proto", r.cfg.Protocol, "table", r.cfg.Table)
	defer slog.Info("stopped node routes")
	if !cache.WaitForNamedCacheSync("node-routes", ctx.Done(), r.synced) {
		return nil
	}
	defer r.deletePodNetworkTable()
	syncLoop(ctx, syncLoopConfig{
		changed: r.changed, period: r.cfg.SyncPeriod, maxBackoff: r.cfg.SyncPeriod,
		sync: r.Sync,
		failed: func(err error, retryIn time.Duration) {
			slog.Debug("node routes incomplete; retrying", "err", err, "retryIn", retryIn)
		},
	})
	return nil
}

// families are the IP families whose routes the syncer keeps.
func (r *NodeRoutes) families() []ipFamily {
	if r.cfg.IPv6 {
		return []ipFamily{ipv4Family, ipv6Family}
	}
	return []ipFamily{ipv4Family}
}

// desired is the route of every other Node with a podCIDR and an InternalIP of one family
// (IPv4; IPv6 too with RoutesConfig.IPv6), by destination.
func (r *NodeRoutes) desired() (map[netip.Prefix]route, error) {
	nodes, err := r.nodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	want := map[netip.Prefix]route{}
	for _, f := range r.families() {
		var own []netip.Prefix
		for _, n := range nodes {
			if n.Name == r.cfg.Hostname {
				own = nodePodCIDRs(n, f)
			}
		}
		for _, n := range nodes {
			if n.Name == r.cfg.Hostname {
				continue
			}
			via, ok := nodeInternalIP(n, f)
			if !ok {
				continue
			}
			for _, cidr := range nodePodCIDRs(n, f) {
				if slices.ContainsFunc(own, cidr.Overlaps) || cidr.Contains(via) {
					continue // our own pods, or a range that would route the node's address away
				}
				want[cidr] = route{dst: cidr, via: via}
			}
		}
	}
	return want, nil
}

// nodePodCIDRs are the Node's pod CIDRs of the family.
func nodePodCIDRs(n *corev1.Node, f ipFamily) []netip.Prefix {
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	var out []netip.Prefix
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err == nil && f.has(p.Addr()) {
			out = append(out, p.Masked())
		}
	}
	return out
}

// nodeInternalIP is the Node's first InternalIP of the family.
func nodeInternalIP(n *corev1.Node, f ipFamily) (netip.Addr, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && f.has(ip) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// Sync makes this node's routes of the syncer's protocol, and its pod network's table, match
// the Nodes (syncRoutes, syncPodNetwork). Either may fail without holding the other back.
func (r *NodeRoutes) Sync(ctx context.Context) error {
	return errors.Join(r.syncPodNetwork(ctx), r.syncRoutes(ctx))
}

// deletePodNetworkTable deletes the syncer's table of each family, and nothing else.
func (r *NodeRoutes) deletePodNetworkTable() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tx strings.Builder
	for _, f := range r.families() {
		// "add" first so that deleting an absent table is no error
		fmt.Fprintf(&tx, "add table %s %s\ndelete table %s %s\n", f.table, r.cfg.Table, f.table, r.cfg.Table)
	}
	if err := runNFT(ctx, r.cfg.NFT, tx.String()); err != nil {
		slog.Warn("deleting the pod network's table failed", "table", r.cfg.Table, "err", err)
	}
}

// syncPodNetwork writes the pod network's table of each family when the pod network changed,
// when the last write failed, or a sync period after the last write.
func (r *NodeRoutes) syncPodNetwork(ctx context.Context) error {
	nodes, err := r.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	var tx strings.Builder
	var ranges []string
	for _, f := range r.families() {
		network := podNetwork(nodes, r.cfg.ClusterCIDRs, f)
		tx.WriteString(podNetworkTable(r.cfg.Table, f, network))
		for _, p := range network {
			ranges = append(ranges, p.String())
		}
	}
	r.mu.Lock()
	prev, written := r.podNetwork, r.tableWritten
	r.mu.Unlock()
	if tx.String() == prev && time.Since(written) < r.cfg.SyncPeriod {
		return nil
	}
	err = runNFT(ctx, r.cfg.NFT, tx.String())
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.podNetwork = ""
		return fmt.Errorf("the pod network's table %s: %w", r.cfg.Table, err)
	}
	r.podNetwork, r.tableWritten = tx.String(), time.Now()
	if tx.String() != prev {
		slog.Info("pod network: traffic from it to outside it is masqueraded", "table", r.cfg.Table, "podNetwork", strings.Join(ranges, ","))
	}
	return nil
}

// syncRoutes makes this node's routes of the syncer's protocol match the Nodes: it deletes
// the ones no Node wants (or wants via another address) and adds the missing ones. A route
// that cannot be added (its gateway not on a directly connected link, or a route of someone
// else in the way) is logged once and retried by the next sync; the error says how many are
// missing.
func (r *NodeRoutes) syncRoutes(ctx context.Context) error {
	want, err := r.desired()
	if err != nil {
		return err
	}
	have, err := r.list(ctx)
	if err != nil {
		return err
	}
	proto := strconv.Itoa(r.cfg.Protocol)
	var failed []string
	for _, h := range have {
		if w, ok := want[h.dst]; ok && w.via == h.via {
			delete(want, h.dst) // in place
			continue
		}
		if _, ok := want[h.dst]; ok {
			continue // ours, via another address: replaced below
		}
		if err := r.ip(ctx, "route", "del", h.dst.String(), "via", h.via.String(), "proto", proto); err != nil {
			failed = append(failed, "del "+h.String())
			slog.Warn("cannot delete a stale node route", "route", h.String(), "err", err)
			continue
		}
		slog.Info("deleted node route", "route", h.String())
	}
	ours := map[netip.Prefix]bool{}
	for _, h := range have {
		ours[h.dst] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	stillFailing := map[string]string{}
	for _, w := range sortedRoutes(want) {
		// replace only a route of ours; add never overwrites someone else's
		verb := "add"
		if ours[w.dst] {
			verb = "replace"
		}
		err := r.ip(ctx, "route", verb, w.dst.String(), "via", w.via.String(), "proto", proto)
		if err != nil {
			failed = append(failed, w.String())
			if _, logged := r.failing[w.String()]; !logged {
				slog.Warn("cannot add a node route; retrying", "route", w.String(), "err", err)
			}
			stillFailing[w.String()] = err.Error()
			continue
		}
		slog.Info("added node route", "route", w.String())
	}
	r.failing = stillFailing
	if len(failed) > 0 {
		return fmt.Errorf("%d node routes not in place: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

func sortedRoutes(m map[netip.Prefix]route) []route {
	out := make([]route, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b route) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// list reads the main table's routes of the syncer's protocol, of each of its families.
func (r *NodeRoutes) list(ctx context.Context) ([]route, error) {
	var routes []route
	for _, f := range r.families() {
		version := "-4"
		if f.table == ipv6Family.table {
			version = "-6"
		}
		rs, err := r.listFamily(ctx, version)
		if err != nil {
			return nil, err
		}
		routes = append(routes, rs...)
	}
	return routes, nil
}

// listFamily reads the main table's routes of the syncer's protocol of one family ("-4", "-6").
func (r *NodeRoutes) listFamily(ctx context.Context, version string) ([]route, error) {
	out, err := r.ipOutput(ctx, version, "-j", "route", "show", "table", "main", "proto", strconv.Itoa(r.cfg.Protocol))
	if err != nil {
		return nil, err
	}
	var entries []struct {
		Dst     string `json:"dst"`
		Gateway string `json:"gateway"`
	}
	if len(bytes.TrimSpace(out)) > 0 {
		if err := json.Unmarshal(out, &entries); err != nil {
			return nil, fmt.Errorf("ip route show: %w", err)
		}
	}
	var routes []route
	for _, e := range entries {
		dst, err := netip.ParsePrefix(e.Dst)
		if err != nil {
			a, aerr := netip.ParseAddr(e.Dst) // a host route is shown without /32
			if aerr != nil {
				continue
			}
			dst = netip.PrefixFrom(a, a.BitLen())
		}
		via, err := netip.ParseAddr(e.Gateway)
		if err != nil {
			continue // not a "via" route; never one of ours
		}
		routes = append(routes, route{dst: dst, via: via})
	}
	return routes, nil
}

func (r *NodeRoutes) ip(ctx context.Context, args ...string) error {
	_, err := r.ipOutput(ctx, args...)
	return err
}

func (r *NodeRoutes) ipOutput(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.cfg.IP[0], append(append([]string{}, r.cfg.IP[1:]...), args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
