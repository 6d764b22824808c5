package proxy

import (
	"bytes"
	"context"
	"encoding/json"
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
	// dual-stack cluster). Off, the syncer never reads or writes an IPv6 route.
	IPv6 bool
}

// NodeRoutes is a host-gateway pod network: for every other Node with a podCIDR and an
// InternalIP it keeps the route "podCIDR via InternalIP" in the main table, so that pods on
// one node reach pods on another whose address is on a directly connected link (several
// kubelets in network namespaces on one machine, or hosts on one L2 segment). It removes the
// routes of Nodes that are gone or changed and touches no route it did not make.
type NodeRoutes struct {
	cfg     RoutesConfig
	nodes   corelisters.NodeLister
	synced  cache.InformerSynced
	changed chan struct{}

	mu sync.Mutex
	// failing holds the routes whose last add failed ("DST via GW" → error), logged once.
	failing map[string]string
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

// Run keeps the routes in step with the Nodes until ctx is done. Routes stay when it returns:
// pod traffic keeps flowing while the syncer restarts, and the next start reconciles them.
func (r *NodeRoutes) Run(ctx context.Context) error {
	slog.Info("starting node routes", "hostname", r.cfg.Hostname, "proto", r.cfg.Protocol)
	defer slog.Info("stopped node routes")
	if !cache.WaitForNamedCacheSync("node-routes", ctx.Done(), r.synced) {
		return nil
	}
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

// Sync makes this node's routes of the syncer's protocol match the Nodes: it deletes the ones
// no Node wants (or wants via another address) and adds the missing ones. A route that cannot
// be added (its gateway not on a directly connected link, or a route of someone else in the
// way) is logged once and retried by the next sync; the error says how many are missing.
func (r *NodeRoutes) Sync(ctx context.Context) error {
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
