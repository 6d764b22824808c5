package apiserver

import (
	"context"
	"sort"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/registry"
)

// quotaBatches gathers, per namespace, the creates waiting to be charged to its quotas. One
// goroutine per busy namespace charges them: everything that arrived while it charged the
// last batch is the next. Without it each create would compare-and-swap the same quota, and
// of N concurrent creates all but one would conflict and read again: with 32 clients most
// creates ran out of retries. It also remembers the quotas this server last wrote, which the
// watch cache may not have yet.
type quotaBatches struct {
	mu      sync.Mutex
	waiting map[string][]*quotaCharge                   // by namespace; a key present means a goroutine charges it
	written map[string]map[string]*corev1.ResourceQuota // by namespace and name
}

func newQuotaBatches() *quotaBatches {
	return &quotaBatches{waiting: map[string][]*quotaCharge{}, written: map[string]map[string]*corev1.ResourceQuota{}}
}

// add queues c for ns, starting a goroutine that charges ns's batches with charge when none
// runs.
func (b *quotaBatches) add(ns string, c *quotaCharge, charge func([]*quotaCharge)) {
	b.mu.Lock()
	batch, running := b.waiting[ns]
	b.waiting[ns] = append(batch, c)
	b.mu.Unlock()
	if running {
		return
	}
	go func() {
		for {
			b.mu.Lock()
			batch := b.waiting[ns]
			if len(batch) == 0 {
				delete(b.waiting, ns)
				b.mu.Unlock()
				return
			}
			b.waiting[ns] = batch[:0:0]
			b.mu.Unlock()
			charge(batch)
		}
	}()
}

// quotas are ns's quotas by name: from etcd when fromEtcd, else from the watch cache, each
// replaced by what this server last wrote of it when that is newer.
func (b *quotaBatches) quotas(ctx context.Context, store *registry.Store, ns string, fromEtcd bool) ([]corev1.ResourceQuota, error) {
	opts := registry.ListOptions{ResourceVersion: "0"}
	if fromEtcd {
		opts.ResourceVersion = ""
	}
	list, err := store.List(ctx, ns, opts)
	if err != nil {
		return nil, err
	}
	quotas := list.(*corev1.ResourceQuotaList).Items
	b.mu.Lock()
	kept := map[string]*corev1.ResourceQuota{}
	for i := range quotas {
		if w := b.written[ns][quotas[i].Name]; w != nil && newer(w.ResourceVersion, quotas[i].ResourceVersion) {
			quotas[i] = *w.DeepCopy()
			kept[w.Name] = w
		}
	}
	// what the cache has caught up with, or no longer lists, is forgotten
	if len(kept) > 0 {
		b.written[ns] = kept
	} else {
		delete(b.written, ns)
	}
	b.mu.Unlock()
	sort.Slice(quotas, func(i, j int) bool { return quotas[i].Name < quotas[j].Name })
	return quotas, nil
}

// remember keeps what this server wrote of a quota, until the watch cache has it too.
func (b *quotaBatches) remember(q *corev1.ResourceQuota) {
	b.mu.Lock()
	if b.written[q.Namespace] == nil {
		b.written[q.Namespace] = map[string]*corev1.ResourceQuota{}
	}
	b.written[q.Namespace][q.Name] = q
	b.mu.Unlock()
}

// newer says whether resourceVersion a is later than b: both are etcd revisions.
func newer(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && x > y
}
