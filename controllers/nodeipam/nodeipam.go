// Package nodeipam is the node IPAM controller with upstream's range allocator: every node gets
// spec.podCIDR (and spec.podCIDRs, one per cluster CIDR) from --cluster-cidr, one subnet of
// --node-cidr-mask-size each, never the same one to two nodes. A node's CIDR is written once; the
// controller never changes or takes back a CIDR a node has.
package nodeipam

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "nodeipam"
	// Component names the controller in the Events it records.
	Component = "cidrAllocator"
	// DefaultClusterCIDR is skiff's --cluster-cidr default.
	DefaultClusterCIDR = "10.244.0.0/16"
)

// Controller is the node IPAM controller.
type Controller struct {
	client   kubernetes.Interface
	lister   corelisters.NodeLister
	synced   cache.InformerSynced
	queue    controllers.Queue
	recorder record.EventRecorder
	metrics  *controllers.Metrics

	mu   sync.Mutex
	sets []*cidrSet
	// allocated remembers what this controller gave each node, so that a node whose update the
	// informer has not shown yet gets the same CIDRs again, never new ones.
	allocated map[string][]netip.Prefix
	// occupiedBy remembers which node holds each subnet, to release it when the node goes.
	occupiedBy map[netip.Prefix]string
	// primed: the CIDRs of every existing node are marked taken.
	primed bool
}

// ParseClusterCIDRs parses --cluster-cidr (one CIDR, or one per IP family separated by commas).
func ParseClusterCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("--cluster-cidr %q: %w", s, err)
		}
		out = append(out, p.Masked())
	}
	if len(out) == 0 || len(out) > 2 || (len(out) == 2 && out[0].Addr().Is4() == out[1].Addr().Is4()) {
		return nil, fmt.Errorf("--cluster-cidr %q: want one CIDR, or one IPv4 and one IPv6", s)
	}
	return out, nil
}

// DefaultMaskSize is upstream's --node-cidr-mask-size per family: /24 for IPv4, /64 for IPv6.
func DefaultMaskSize(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 24
	}
	return 64
}

// New makes a node IPAM controller handing out subnets of maskSizes[i] bits from
// clusterCIDRs[i].
func New(nodeInformer coreinformers.NodeInformer, client kubernetes.Interface, clusterCIDRs []netip.Prefix, maskSizes []int, r controllers.Reporting) (*Controller, error) {
	if len(clusterCIDRs) != len(maskSizes) || len(clusterCIDRs) == 0 {
		return nil, fmt.Errorf("want one mask size per cluster CIDR")
	}
	c := &Controller{
		client:     client,
		lister:     nodeInformer.Lister(),
		synced:     nodeInformer.Informer().HasSynced,
		queue:      controllers.NewQueue(Name, r),
		recorder:   r.EventRecorder(Component),
		metrics:    r.Metrics,
		allocated:  map[string][]netip.Prefix{},
		occupiedBy: map[netip.Prefix]string{},
	}
	for i, p := range clusterCIDRs {
		s, err := newCIDRSet(p, maskSizes[i])
		if err != nil {
			return nil, err
		}
		c.sets = append(c.sets, s)
	}
	_, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	})
	return c, err
}

func (c *Controller) enqueue(obj any) {
	if key, err := controllers.KeyOf(obj); err == nil {
		c.queue.Add(key)
	}
}

// Run allocates with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: []cache.InformerSynced{c.synced}}.Run(ctx, workers)
}

// prime marks the CIDRs of every node in the cache taken, once, before the first allocation.
func (c *Controller) prime() error {
	if c.primed {
		return nil
	}
	nodes, err := c.lister.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, n := range nodes {
		c.occupy(n)
	}
	c.primed = true
	return nil
}

// occupy marks a node's CIDRs taken; c.mu is held.
func (c *Controller) occupy(n *corev1.Node) {
	for _, s := range podCIDRsOf(n) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			continue
		}
		for _, set := range c.sets {
			if set.occupy(p.Masked()) {
				c.occupiedBy[p.Masked()] = n.Name
			}
		}
	}
}

func podCIDRsOf(n *corev1.Node) []string {
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs
	}
	if n.Spec.PodCIDR != "" {
		return []string{n.Spec.PodCIDR}
	}
	return nil
}

// sync gives the node named key its CIDRs if it has none, and frees the CIDRs of a node gone.
func (c *Controller) sync(ctx context.Context, key string) error {
	c.mu.Lock()
	if err := c.prime(); err != nil {
		c.mu.Unlock()
		return err
	}
	node, err := c.lister.Get(key)
	if apierrors.IsNotFound(err) {
		c.releaseNode(key)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		c.mu.Unlock()
		return err
	}
	if len(podCIDRsOf(node)) > 0 {
		c.occupy(node)
		delete(c.allocated, node.Name)
		c.mu.Unlock()
		return nil
	}
	cidrs, ok := c.allocated[node.Name]
	if !ok {
		for _, set := range c.sets {
			p, err := set.allocateNext()
			if err != nil {
				for _, taken := range cidrs {
					c.releasePrefix(taken)
				}
				c.mu.Unlock()
				c.recorder.Eventf(node, corev1.EventTypeNormal, "CIDRNotAvailable", "Node %s status is now: CIDRNotAvailable", node.Name)
				return fmt.Errorf("allocate a CIDR for node %s: %w", node.Name, err)
			}
			c.occupiedBy[p] = node.Name
			cidrs = append(cidrs, p)
		}
		c.allocated[node.Name] = cidrs
	}
	c.mu.Unlock()
	return c.writeCIDRs(ctx, node, cidrs)
}

// writeCIDRs patches the node's spec.podCIDR and spec.podCIDRs.
func (c *Controller) writeCIDRs(ctx context.Context, node *corev1.Node, cidrs []netip.Prefix) error {
	strs := make([]string, len(cidrs))
	for i, p := range cidrs {
		strs[i] = p.String()
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": node.UID},
		"spec":     map[string]any{"podCIDR": strs[0], "podCIDRs": strs},
	})
	if err != nil {
		return err
	}
	_, err = c.client.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	switch {
	case err == nil:
		slog.Debug("allocated pod CIDRs", "controller", Name, "node", node.Name, "cidrs", strs)
		return nil
	case apierrors.IsNotFound(err):
		return nil // the delete event frees them
	default:
		c.recorder.Eventf(node, corev1.EventTypeWarning, "CIDRAssignmentFailed", "Node %s status is now: CIDRAssignmentFailed", node.Name)
		return fmt.Errorf("set pod CIDRs %v on node %s: %w", strs, node.Name, err)
	}
}

// releaseNode frees what a deleted node held; c.mu is held.
func (c *Controller) releaseNode(name string) {
	delete(c.allocated, name)
	for p, holder := range c.occupiedBy {
		if holder == name {
			c.releasePrefix(p)
		}
	}
}

func (c *Controller) releasePrefix(p netip.Prefix) {
	delete(c.occupiedBy, p)
	for _, set := range c.sets {
		set.release(p)
	}
}
