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
	// Table is the agent's table in the ip family; DefaultNetworkPolicyTable when empty.
	Table string
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

	// syncMu makes syncs one at a time; it guards rules.
	syncMu sync.Mutex
	rules  policyRuleCache

	mu sync.Mutex
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
	slog.Info("starting the NetworkPolicy agent", "table", "ip "+a.cfg.Table, "hostname", a.cfg.Hostname)
	defer slog.Info("stopped the NetworkPolicy agent")
	// pods on one bridge talk through it, not through the routing path: only with this do
	// their packets meet the forward hook, where policies are judged
	if err := a.cfg.Sysctl("net/bridge/bridge-nf-call-iptables", "1"); err != nil {
		slog.Warn("cannot make bridged traffic pass netfilter; policies will not apply between pods of one node", "err", err)
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

// Sync makes the table match the Pods, Namespaces and NetworkPolicies in the informers'
// caches, in one nft transaction that writes only what changed since the last sync.
func (a *NetworkPolicyAgent) Sync(ctx context.Context) error {
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	start := time.Now()
	st, err := a.state()
	if err != nil {
		return err
	}
	rules := a.rules.build(st)
	built := time.Now()
	a.mu.Lock()
	prev := a.applied
	a.mu.Unlock()
	how := "nft"
	if changes, ok := elementOnlyChanges(prev, rules); ok && a.netlink {
		if len(changes) == 0 {
			return nil
		}
		how = "netlink"
		err = applyElementChanges(a.cfg.NetNS, a.cfg.Table, changes)
	} else {
		tx := rules.transaction("ip", a.cfg.Table, prev)
		if prev != nil && strings.Count(tx, "\n") <= 1 {
			return nil // the only line is "add table"
		}
		err = runNFT(ctx, a.cfg.NFT, tx)
	}
	if err != nil {
		a.mu.Lock()
		a.applied = nil
		a.mu.Unlock()
		return err
	}
	a.mu.Lock()
	a.applied = rules
	a.mu.Unlock()
	slog.Debug("synced NetworkPolicy rules", "policies", len(st.policies), "pods", len(st.pods), "full", prev == nil,
		"written", how, "build", built.Sub(start), "took", time.Since(start))
	return nil
}

// state reads what the rules are built from out of the informers' caches.
func (a *NetworkPolicyAgent) state() (*policyState, error) {
	pods, err := a.pods.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	namespaces, err := a.namespaces.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	policies, err := a.policies.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	return newPolicyState(pods, namespaces, policies, a.cfg.Hostname), nil
}

func newPolicyState(pods []*corev1.Pod, namespaces []*corev1.Namespace, policies []*networkingv1.NetworkPolicy, hostname string) *policyState {
	st := &policyState{namespaces: make(map[string]labels.Set, len(namespaces)), byNamespace: map[string][]*policyPod{}, policies: policies}
	for _, ns := range namespaces {
		st.namespaces[ns.Name] = labels.Set(ns.Labels)
	}
	for _, pod := range pods {
		if p := policyPodFrom(pod, hostname); p != nil {
			st.pods = append(st.pods, p)
			st.byNamespace[p.namespace] = append(st.byNamespace[p.namespace], p)
		}
	}
	return st
}

// cleanup deletes the agent's table, and only it.
func (a *NetworkPolicyAgent) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t := "ip " + a.cfg.Table
	if err := runNFT(ctx, a.cfg.NFT, "add table "+t+"\ndelete table "+t+"\n"); err != nil {
		slog.Warn("deleting the NetworkPolicy table failed", "table", t, "err", err)
	}
	a.mu.Lock()
	a.applied = nil
	a.mu.Unlock()
}
