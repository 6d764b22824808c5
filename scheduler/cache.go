package scheduler

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// assumedPodTTL is how long an assumed pod whose binding succeeded is counted without the
// informer confirming it. The informer normally confirms within milliseconds; this only
// reclaims a pod whose confirmation was lost (for example deleted before it was ever seen
// bound, across a relist).
const assumedPodTTL = 15 * time.Minute

// schedulerCache is what every node has committed: the pods the informer has seen bound to it,
// and the pods this scheduler has assumed onto it because it sent their binding. Counting an
// assumed pod at once is what keeps two pods in a row from overbooking a node while the first
// binding is in flight.
//
// Informer handlers, the scheduling loop and the binding goroutines all call it; one mutex
// guards it. The scheduling loop reads it only through a snapshot.
type schedulerCache struct {
	mu    sync.Mutex
	nodes map[string]*nodeInfo
	// nodeOrder is the order nodes were added in, which is the order filtering walks them.
	nodeOrder []string
	pods      map[types.UID]*cachedPod
	// generation increases with every change; each nodeInfo records the one of its last change.
	generation int64
	// dirty names the nodes changed since the last snapshot update; nodeSetChanged says nodes
	// came or went.
	dirty          map[string]struct{}
	nodeSetChanged bool
}

type cachedPod struct {
	info *podInfo
	node string
	// assumed: this scheduler sent the binding and the informer has not yet shown it bound.
	assumed bool
	// expires is set once the binding succeeded; an assumed pod past it is dropped.
	expires time.Time
}

func newSchedulerCache() *schedulerCache {
	return &schedulerCache{
		nodes: make(map[string]*nodeInfo),
		pods:  make(map[types.UID]*cachedPod),
		dirty: make(map[string]struct{}),
	}
}

// touch records that a node changed; the caller holds mu.
func (c *schedulerCache) touch(n *nodeInfo) {
	c.generation++
	n.generation = c.generation
	c.dirty[n.name] = struct{}{}
}

// nodeFor returns the named node's info, creating a placeholder for a node not yet seen.
func (c *schedulerCache) nodeFor(name string) *nodeInfo {
	n, ok := c.nodes[name]
	if !ok {
		n = newNodeInfo(name)
		c.nodes[name] = n
	}
	return n
}

// addNode adds or replaces a node and says whether it changed in a way that could let a pod
// fit that did not before (see nodeChangeMayHelp).
func (c *schedulerCache) addNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodeFor(node.Name)
	if n.node == nil {
		c.nodeOrder = append(c.nodeOrder, node.Name)
		c.nodeSetChanged = true
	}
	n.setNode(node)
	c.touch(n)
}

func (c *schedulerCache) removeNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[name]
	if !ok || n.node == nil {
		return
	}
	for i, o := range c.nodeOrder {
		if o == name {
			c.nodeOrder = append(c.nodeOrder[:i:i], c.nodeOrder[i+1:]...)
			break
		}
	}
	c.nodeSetChanged = true
	// pods still bound to a deleted node keep being counted until they go, as upstream
	n.node = nil
	if len(n.pods) == 0 {
		delete(c.nodes, name)
	}
	c.touch(n)
}

// assume counts pod on node before its binding is sent. The pod must not be in the cache.
func (c *schedulerCache) assume(pi *podInfo, node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pods[pi.pod.UID]; ok {
		return
	}
	n := c.nodeFor(node)
	n.addPod(pi)
	c.touch(n)
	c.pods[pi.pod.UID] = &cachedPod{info: pi, node: node, assumed: true}
}

// finishBinding starts the expiry clock of an assumed pod whose binding succeeded.
func (c *schedulerCache) finishBinding(uid types.UID, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pods[uid]; ok && p.assumed {
		p.expires = now.Add(assumedPodTTL)
	}
}

// forget takes back an assumed pod whose binding failed.
func (c *schedulerCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pods[uid]; ok && p.assumed {
		c.removeLocked(p)
	}
}

func (c *schedulerCache) isAssumed(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pods[uid]
	return ok && p.assumed
}

// has says whether the cache counts the pod, assumed or bound.
func (c *schedulerCache) has(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pods[uid]
	return ok
}

// addPod counts a pod the informer shows bound; it confirms the pod if it was assumed.
func (c *schedulerCache) addPod(pi *podInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pods[pi.pod.UID]; ok {
		// assumed (or seen before a relist): replace with what the API says
		c.removeLocked(p)
	}
	c.addLocked(pi)
}

// updatePod replaces a bound pod's info.
func (c *schedulerCache) updatePod(pi *podInfo) {
	c.addPod(pi)
}

// removePod stops counting a pod that was deleted or finished.
func (c *schedulerCache) removePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pods[uid]; ok {
		c.removeLocked(p)
	}
}

func (c *schedulerCache) addLocked(pi *podInfo) {
	n := c.nodeFor(pi.pod.Spec.NodeName)
	n.addPod(pi)
	c.touch(n)
	c.pods[pi.pod.UID] = &cachedPod{info: pi, node: n.name}
}

func (c *schedulerCache) removeLocked(p *cachedPod) {
	delete(c.pods, p.info.pod.UID)
	n, ok := c.nodes[p.node]
	if !ok {
		return
	}
	n.removePod(p.info)
	c.touch(n)
	if n.node == nil && len(n.pods) == 0 {
		delete(c.nodes, n.name)
	}
}

// expireAssumed drops assumed pods whose binding succeeded long ago but never showed up.
func (c *schedulerCache) expireAssumed(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pods {
		if p.assumed && !p.expires.IsZero() && now.After(p.expires) {
			c.removeLocked(p)
		}
	}
}

// counts returns how many nodes and pods the cache holds, for tests and logs.
func (c *schedulerCache) counts() (nodes, pods int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodeOrder), len(c.pods)
}

// snapshot is the cluster as one scheduling cycle sees it: a copy of the cache's nodes that
// nothing changes while the cycle runs. Only the scheduling loop uses it.
type snapshot struct {
	nodes map[string]*nodeInfo
	// list holds the nodes that exist (not placeholders), in the cache's order; index is the
	// position of each in list.
	list  []*nodeInfo
	index map[string]int
	// havePodsWithAffinity and havePodsWithRequiredAntiAffinity are the nodes of list that
	// InterPodAffinity must look at.
	havePodsWithAffinity             []*nodeInfo
	havePodsWithRequiredAntiAffinity []*nodeInfo
	generation                       int64
}

func newSnapshot() *snapshot {
	return &snapshot{nodes: make(map[string]*nodeInfo), index: make(map[string]int)}
}

// get returns the named node, or nil.
func (s *snapshot) get(name string) *nodeInfo {
	n := s.nodes[name]
	if n == nil || n.node == nil {
		return nil
	}
	return n
}

// updateSnapshot brings snap up to date with the cache, copying only the nodes that changed.
func (c *schedulerCache) updateSnapshot(snap *snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.dirty) == 0 && !c.nodeSetChanged {
		return
	}
	affinityChanged := false
	for name := range c.dirty {
		old := snap.nodes[name]
		if old != nil && (len(old.podsWithAffinity) > 0 || len(old.podsWithRequiredAntiAffinity) > 0) {
			affinityChanged = true
		}
		n, ok := c.nodes[name]
		if !ok {
			delete(snap.nodes, name)
			continue
		}
		cl := n.clone()
		snap.nodes[name] = cl
		if len(cl.podsWithAffinity) > 0 || len(cl.podsWithRequiredAntiAffinity) > 0 {
			affinityChanged = true
		}
		if i, ok := snap.index[name]; ok && !c.nodeSetChanged {
			snap.list[i] = cl
		}
	}
	clear(c.dirty)
	if c.nodeSetChanged {
		snap.list = make([]*nodeInfo, 0, len(c.nodeOrder))
		clear(snap.index)
		for i, name := range c.nodeOrder {
			snap.list = append(snap.list, snap.nodes[name])
			snap.index[name] = i
		}
		c.nodeSetChanged = false
		affinityChanged = true
	}
	if affinityChanged {
		snap.havePodsWithAffinity = snap.havePodsWithAffinity[:0]
		snap.havePodsWithRequiredAntiAffinity = snap.havePodsWithRequiredAntiAffinity[:0]
		for _, n := range snap.list {
			if len(n.podsWithAffinity) > 0 {
				snap.havePodsWithAffinity = append(snap.havePodsWithAffinity, n)
			}
			if len(n.podsWithRequiredAntiAffinity) > 0 {
				snap.havePodsWithRequiredAntiAffinity = append(snap.havePodsWithRequiredAntiAffinity, n)
			}
		}
	}
	snap.generation = c.generation
}
