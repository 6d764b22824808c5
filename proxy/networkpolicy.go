package proxy

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	networkinginformers "k8s.io/client-go/informers/networking/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
)

// DefaultNetworkPolicyTable is the name of the NetworkPolicy agent's table in the ip family.
const DefaultNetworkPolicyTable = "skiff-netpol"

// NetworkPolicyConfig says where and how the NetworkPolicy agent programs the node.
type NetworkPolicyConfig struct {
	// Hostname is this node's name: the pods whose nodeName is it are the ones isolated here.
	Hostname string
	// Table is the agent's table in the ip family (and the ip6 one); DefaultNetworkPolicyTable
	// when empty.
	Table string
	// IPv6 polices the pods' IPv6 addresses too, as every network plugin of a dual-stack
	// cluster must: the same rules in a second table, `ip6 Table`, written in the same
	// transaction, with ipBlocks of each family in their own family's table. Off, the agent
	// never touches an ip6 table, and a pod's IPv6 address is open to every pod.
	IPv6 bool
	// NFT is the nft command and its leading arguments; {"nft"} when empty.
	NFT []string
	// NetNS is the network namespace (a path such as /var/run/netns/NAME) that set elements
	// are written to through netlink; empty for this process's own. When NFT is given and
	// NetNS is not, every change goes through NFT, so both always reach one namespace.
	NetNS string
	// Sysctl sets a kernel parameter; writing /proc/sys when nil.
	Sysctl func(name, value string) error
	// SyncPeriod is how often the rules are checked even when no event came; 30s when zero.
	SyncPeriod time.Duration
	// MinSyncInterval is the least time between two syncs: events arriving meanwhile are
	// applied together. 100ms when zero.
	MinSyncInterval time.Duration
}

// NetworkPolicyAgent enforces the cluster's NetworkPolicies on this node's pods in an
// nftables table of its own (networkpolicyrules.go says which rules). It keeps no state the
// API cannot rebuild: the first sync rebuilds its table, and it deletes the table on exit.
type NetworkPolicyAgent struct {
	cfg        NetworkPolicyConfig
	pods       corelisters.PodLister
	namespaces corelisters.NamespaceLister
	policies   networkinglisters.NetworkPolicyLister
	synced     []cache.InformerSynced
	changed    chan struct{}
	// netlink says whether element changes may bypass nft (setelements.go).
	netlink bool

	// syncMu makes syncs one at a time; it guards the families' rules.
	syncMu sync.Mutex
	// families are the tables the agent keeps: IPv4's, then IPv6's when Config.IPv6.
	families []*policyFamilyTable

	// mu guards the families' applied.
	mu sync.Mutex
}

// policyFamilyTable is the agent's table of one IP family.
type policyFamilyTable struct {
	family ipFamily
	rules  policyRuleCache
	// applied is the ruleset in the kernel after the last successful sync; nil when the next
	// sync must rebuild the table.
	applied *ruleset
}

// NewNetworkPolicyAgent makes an agent on shared informers of Pods, Namespaces and
// NetworkPolicies (all of the cluster's: peers may be anywhere). Call it before the informers
// start.
func NewNetworkPolicyAgent(pods coreinformers.PodInformer, namespaces coreinformers.NamespaceInformer,
	policies networkinginformers.NetworkPolicyInformer, cfg NetworkPolicyConfig) (*NetworkPolicyAgent, error) {
	if cfg.Table == "" {
		cfg.Table = DefaultNetworkPolicyTable
	}
	netlink := len(cfg.NFT) == 0 || cfg.NetNS != ""
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
	a := &NetworkPolicyAgent{
		netlink:    netlink,
		cfg:        cfg,
		pods:       pods.Lister(),
		namespaces: namespaces.Lister(),
		policies:   policies.Lister(),
		synced:     []cache.InformerSynced{pods.Informer().HasSynced, namespaces.Informer().HasSynced, policies.Informer().HasSynced},
		changed:    make(chan struct{}, 1),
		families:   []*policyFamilyTable{{family: ipv4Family}},
	}
	if cfg.IPv6 {
		a.families = append(a.families, &policyFamilyTable{family: ipv6Family})
	}
	signal := func() {
		select {
		case a.changed <- struct{}{}:
		default:
		}
	}
	always := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { signal() },
		UpdateFunc: func(any, any) { signal() },
		DeleteFunc: func(any) { signal() },
	}
	// a pod's status changes often (conditions, container states); only what the rules read
	// is worth a sync
	podHandler := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { signal() },
		UpdateFunc: func(old, new any) {
			o, ok1 := old.(*corev1.Pod)
			n, ok2 := new.(*corev1.Pod)
			if !ok1 || !ok2 || policyRelevantChange(o, n) {
				signal()
			}
		},
		DeleteFunc: func(any) { signal() },
	}
	nsHandler := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { signal() },
		UpdateFunc: func(old, new any) {
			o, ok1 := old.(*corev1.Namespace)
			n, ok2 := new.(*corev1.Namespace)
			if !ok1 || !ok2 || !maps.Equal(o.Labels, n.Labels) {
				signal()
			}
		},
		DeleteFunc: func(any) { signal() },
	}
	if _, err := pods.Informer().AddEventHandler(podHandler); err != nil {
		return nil, err
	}
	if _, err := namespaces.Informer().AddEventHandler(nsHandler); err != nil {
		return nil, err
	}
	if _, err := policies.Informer().AddEventHandler(always); err != nil {
		return nil, err
	}
	return a, nil
}

// policyRelevantChange says whether a pod update changes what the rules read of it.
func policyRelevantChange(o, n *corev1.Pod) bool {
	return o.Spec.NodeName != n.Spec.NodeName || o.Status.Phase != n.Status.Phase || o.Status.PodIP != n.Status.PodIP ||
		!slices.Equal(o.Status.PodIPs, n.Status.PodIPs) || !maps.Equal(o.Labels, n.Labels)
}

// Run prepares the node (bridged traffic through netfilter), waits for the informers, then
// keeps the table in step with the API until ctx is done, and deletes the table on the way
// out. Failed syncs are logged and retried, never fatal.
func (a *NetworkPolicyAgent) Run(ctx context.Context) error {
	if a.cfg.IPv6 {
		slog.Info("starting the NetworkPolicy agent", "table", "ip "+a.cfg.Table, "ipv6Table", "ip6 "+a.cfg.Table, "hostname", a.cfg.Hostname)
	} else {
		slog.Info("starting the NetworkPolicy agent", "table", "ip "+a.cfg.Table, "hostname", a.cfg.Hostname)
	}
	defer slog.Info("stopped the NetworkPolicy agent")
	// pods on one bridge talk through it, not through the routing path: only with this do
	// their packets meet the forward hook, where policies are judged
	if err := a.cfg.Sysctl("net/bridge/bridge-nf-call-iptables", "1"); err != nil {
		slog.Warn("cannot make bridged traffic pass netfilter; policies will not apply between pods of one node", "err", err)
	}
	if a.cfg.IPv6 {
		if err := a.cfg.Sysctl("net/bridge/bridge-nf-call-ip6tables", "1"); err != nil {
			slog.Warn("cannot make bridged IPv6 traffic pass netfilter; policies will not apply between pods of one node over IPv6", "err", err)
		}
	}
	if !cache.WaitForNamedCacheSync("networkpolicy", ctx.Done(), a.synced...) {
		return nil
	}
	defer a.cleanup()
	syncLoop(ctx, syncLoopConfig{
		changed: a.changed, period: a.cfg.SyncPeriod, maxBackoff: time.Minute, minInterval: a.cfg.MinSyncInterval,
		sync: a.Sync,
		failed: func(err error, retryIn time.Duration) {
			slog.Warn("syncing the NetworkPolicy rules failed; the next sync rebuilds the table", "err", err, "retryIn", retryIn)
		},
	})
	return nil
}

// Sync makes the tables match the Pods, Namespaces and NetworkPolicies in the informers'
// caches, in one nft transaction that writes only what changed since the last sync.
func (a *NetworkPolicyAgent) Sync(ctx context.Context) error {
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	start := time.Now()
	pods, namespaces, policies, err := a.list()
	if err != nil {
		return err
	}
	built := make([]*ruleset, len(a.families))
	changes := make([][]setElementChange, len(a.families))
	elementsOnly := a.netlink
	a.mu.Lock()
	prev := make([]*ruleset, len(a.families))
	for i, f := range a.families {
		prev[i] = f.applied
	}
	a.mu.Unlock()
	for i, f := range a.families {
		built[i] = f.rules.build(newFamilyPolicyState(f.family, pods, namespaces, policies, a.cfg.Hostname))
		var ok bool
		if changes[i], ok = elementOnlyChanges(prev[i], built[i]); !ok {
			elementsOnly = false
		}
	}
	buildTime := time.Now()
	how := "nft"
	if elementsOnly {
		if !slices.ContainsFunc(changes, func(c []setElementChange) bool { return len(c) > 0 }) {
			return nil
		}
		how = "netlink"
		for i, f := range a.families {
			if len(changes[i]) > 0 && err == nil {
				err = applyElementChanges(a.cfg.NetNS, f.family, a.cfg.Table, changes[i])
			}
		}
	} else {
		var tx strings.Builder
		for i, f := range a.families {
			t := built[i].transaction(f.family.table, a.cfg.Table, prev[i])
			if prev[i] != nil && strings.Count(t, "\n") <= 1 {
				continue // the only line is "add table"
			}
			tx.WriteString(t)
		}
		if tx.Len() == 0 {
			return nil
		}
		err = runNFT(ctx, a.cfg.NFT, tx.String())
	}
	a.mu.Lock()
	for i, f := range a.families {
		if err != nil {
			f.applied = nil
		} else {
			f.applied = built[i]
		}
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	slog.Debug("synced NetworkPolicy rules", "policies", len(policies), "pods", len(pods), "full", prev[0] == nil,
		"written", how, "build", buildTime.Sub(start), "took", time.Since(start))
	return nil
}

// list reads what the rules are built from out of the informers' caches.
func (a *NetworkPolicyAgent) list() ([]*corev1.Pod, []*corev1.Namespace, []*networkingv1.NetworkPolicy, error) {
	pods, err := a.pods.List(labels.Everything())
	if err != nil {
		return nil, nil, nil, err
	}
	namespaces, err := a.namespaces.List(labels.Everything())
	if err != nil {
		return nil, nil, nil, err
	}
	policies, err := a.policies.List(labels.Everything())
	if err != nil {
		return nil, nil, nil, err
	}
	return pods, namespaces, policies, nil
}

// newPolicyState is the state of the IPv4 rules.
func newPolicyState(pods []*corev1.Pod, namespaces []*corev1.Namespace, policies []*networkingv1.NetworkPolicy, hostname string) *policyState {
	return newFamilyPolicyState(ipv4Family, pods, namespaces, policies, hostname)
}

// newFamilyPolicyState is the state of one family's rules: its pods are those with an address
// of the family, by that address.
func newFamilyPolicyState(family ipFamily, pods []*corev1.Pod, namespaces []*corev1.Namespace, policies []*networkingv1.NetworkPolicy,
	hostname string) *policyState {
	st := &policyState{family: family, namespaces: make(map[string]labels.Set, len(namespaces)), byNamespace: map[string][]*policyPod{}, policies: policies}
	for _, ns := range namespaces {
		st.namespaces[ns.Name] = labels.Set(ns.Labels)
	}
	for _, pod := range pods {
		if p := policyPodFrom(pod, hostname, family); p != nil {
			st.pods = append(st.pods, p)
			st.byNamespace[p.namespace] = append(st.byNamespace[p.namespace], p)
		}
	}
	return st
}

// cleanup deletes the agent's tables, and only them.
func (a *NetworkPolicyAgent) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tx strings.Builder
	for _, f := range a.families {
		t := f.family.table + " " + a.cfg.Table
		// "add" first so that deleting an absent table is no error
		tx.WriteString("add table " + t + "\ndelete table " + t + "\n")
	}
	if err := runNFT(ctx, a.cfg.NFT, tx.String()); err != nil {
		slog.Warn("deleting the NetworkPolicy tables failed", "table", a.cfg.Table, "err", err)
	}
	a.mu.Lock()
	for _, f := range a.families {
		f.applied = nil
	}
	a.mu.Unlock()
}
