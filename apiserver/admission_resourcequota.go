package apiserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apis/quota"
	"github.com/skiff-dev/skiff/registry"
)

// quotaConflictRetries bounds how often a batch re-counts against quotas another write
// changed meanwhile.
const quotaConflictRetries = 5

// admitResourceQuota is upstream's ResourceQuota plugin for a new object: each quota of the
// namespace that tracks what the object uses (by status.hard: a quota the controller has not
// yet seen limits nothing) and whose scopes select it must have room for it, or the create is
// refused in upstream's 403 words; otherwise the object's usage is charged to status.used at
// once (compare-and-swap), so that concurrent creates cannot together overshoot. The quota
// controller later recounts, returning what deleted or refused objects held.
//
// The creates of a namespace are charged in batches (quotaBatches), as upstream's quota
// evaluator charges them: one read and one write of each quota for all the creates that
// arrived while the previous batch was being written.
func (a admission) admitResourceQuota(ctx context.Context, res *apis.Resource, ns string, obj runtime.Object, dryRun bool) error {
	if !res.Namespaced || ns == "" || a.resourceQuotas == nil || !a.enabled("ResourceQuota") {
		return nil
	}
	// as upstream, a namespace without quotas charges nothing: no validation, no batch
	if list, err := a.resourceQuotas.List(ctx, ns, registry.ListOptions{ResourceVersion: "0"}); err != nil {
		return err
	} else if len(list.(*corev1.ResourceQuotaList).Items) == 0 {
		return nil
	}
	gr := res.GroupVersionResource().GroupResource()
	c := &quotaCharge{gr: gr, obj: obj, usage: quota.Usage(gr, obj, time.Now()), done: make(chan error, 1),
		dryRun: dryRun || !wouldValidate(ctx, res, ns, obj)}
	if m, ok := obj.(metav1.Object); ok {
		c.name = m.GetName()
	}
	a.quotaBatches.add(ns, c, func(batch []*quotaCharge) {
		// the batch is its requests', not one of theirs: a client that goes away must not
		// leave the others' charges half written
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		a.chargeBatch(bctx, ns, batch)
	})
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// quotaCharge is one object's admission against its namespace's quotas.
type quotaCharge struct {
	gr     schema.GroupResource
	name   string
	obj    runtime.Object
	usage  corev1.ResourceList
	dryRun bool
	// done receives the answer, once
	done chan error
}

// check says whether c fits the quotas, with used the totals so far of each (by index), and
// which quotas it is to be charged to. Quotas settled for the batch already are skipped.
func (c *quotaCharge) check(quotas []corev1.ResourceQuota, used []corev1.ResourceList, settled map[string]bool) ([]int, error) {
	var charged []int
	for i := range quotas {
		q := &quotas[i]
		if settled[q.Name] || !quota.Matches(q, c.obj) {
			continue
		}
		var tracked []corev1.ResourceName
		for k := range q.Status.Hard {
			if _, ok := c.usage[k]; ok {
				tracked = append(tracked, k)
			}
		}
		if len(tracked) == 0 {
			continue
		}
		sort.Slice(tracked, func(i, j int) bool { return tracked[i] < tracked[j] })
		if err := quota.Constraints(resourceNames(q.Status.Hard), c.obj); err != nil {
			return nil, apierrors.NewForbidden(c.gr, c.name, fmt.Errorf("failed quota: %s: %v", q.Name, err))
		}
		var unknown []string
		for _, k := range tracked {
			if _, ok := q.Status.Used[k]; !ok {
				unknown = append(unknown, string(k))
			}
		}
		if len(unknown) > 0 {
			return nil, apierrors.NewForbidden(c.gr, c.name, fmt.Errorf("status unknown for quota: %s, resources: %s", q.Name, strings.Join(unknown, ",")))
		}
		requested, current, limited := corev1.ResourceList{}, corev1.ResourceList{}, corev1.ResourceList{}
		for _, k := range tracked {
			next := used[i][k].DeepCopy()
			next.Add(c.usage[k])
			if next.Cmp(q.Status.Hard[k]) > 0 {
				requested[k], current[k], limited[k] = c.usage[k], used[i][k], q.Status.Hard[k]
			}
		}
		if len(limited) > 0 {
			return nil, apierrors.NewForbidden(c.gr, c.name, fmt.Errorf("exceeded quota: %s, requested: %s, used: %s, limited: %s",
				q.Name, prettyResources(requested), prettyResources(current), prettyResources(limited)))
		}
		charged = append(charged, i)
	}
	return charged, nil
}

// chargeBatch checks the batch's objects one after the other against the namespace's quotas,
// each counting what those before it were granted, writes each quota's new total once, and
// answers every object. A quota another write changed meanwhile is read again from etcd and
// the batch re-counted; a quota written already stays written (settled), so that nothing is
// charged twice.
func (a admission) chargeBatch(ctx context.Context, ns string, batch []*quotaCharge) {
	settled := map[string]bool{}
	answer := func(errs []error) {
		for i, c := range batch {
			c.done <- errs[i]
		}
	}
	for attempt := 0; ; attempt++ {
		quotas, err := a.quotaBatches.quotas(ctx, a.resourceQuotas, ns, attempt > 0)
		if err != nil {
			answer(slices.Repeat([]error{err}, len(batch)))
			return
		}
		used := make([]corev1.ResourceList, len(quotas))
		for i := range quotas {
			used[i] = quotas[i].Status.Used.DeepCopy()
		}
		changed := make([]bool, len(quotas))
		errs := make([]error, len(batch))
		for j, c := range batch {
			charged, err := c.check(quotas, used, settled)
			if errs[j] = err; err != nil || c.dryRun {
				continue
			}
			for _, i := range charged {
				for k := range quotas[i].Status.Hard {
					if u, ok := c.usage[k]; ok {
						next := used[i][k].DeepCopy()
						next.Add(u)
						used[i][k] = next
						changed[i] = true
					}
				}
			}
		}
		var conflict error
		for i := range quotas {
			if !changed[i] {
				continue
			}
			if err := a.writeQuotaUsed(ctx, &quotas[i], used[i]); err != nil {
				if apierrors.IsConflict(err) && attempt < quotaConflictRetries {
					conflict = err
					break
				}
				answer(slices.Repeat([]error{err}, len(batch)))
				return
			}
			settled[quotas[i].Name] = true
		}
		if conflict == nil {
			answer(errs)
			return
		}
	}
}

var errQuotaChanged = errors.New("quota changed since it was read")

// wouldValidate says whether the object would pass its strategy's validation. Upstream's
// quota admission runs after validation, so an invalid object is never charged; here
// admission runs before it, so the plugin checks first, on a copy prepared as the store will
// prepare it. Kinds stored in another version or without a Go type are charged unchecked:
// their strategies see the stored form.
func wouldValidate(ctx context.Context, res *apis.Resource, ns string, obj runtime.Object) bool {
	if res.Unstructured || res.StorageVersion != res.GroupVersion || res.Strategy == nil {
		return true
	}
	cp := obj.DeepCopyObject()
	m, ok := cp.(metav1.Object)
	if !ok {
		return true
	}
	m.SetNamespace(ns)
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(m.GetGenerateName() + "x")
	}
	res.Strategy.PrepareForCreate(ctx, cp)
	return len(res.Strategy.Validate(ctx, cp)) == 0
}

// writeQuotaUsed sets the quota's status.used to used, provided the quota is still as it was
// read, and remembers what it wrote.
func (a admission) writeQuotaUsed(ctx context.Context, q *corev1.ResourceQuota, used corev1.ResourceList) error {
	out, _, err := a.resourceQuotas.Update(ctx, q.Namespace, q.Name, apis.ResourceQuotaStatusStrategy, func(_ context.Context, current runtime.Object) (runtime.Object, error) {
		if current == nil {
			return nil, apierrors.NewNotFound(a.resourceQuotas.GroupResource(), q.Name)
		}
		cur := current.(*corev1.ResourceQuota)
		if cur.ResourceVersion != q.ResourceVersion {
			return nil, apierrors.NewConflict(a.resourceQuotas.GroupResource(), q.Name, errQuotaChanged)
		}
		for k := range cur.Status.Hard {
			if u, ok := used[k]; ok {
				cur.Status.Used[k] = u
			}
		}
		return cur, nil
	}, false)
	if err == nil {
		a.quotaBatches.remember(out.(*corev1.ResourceQuota))
	}
	return err
}

func resourceNames(list corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(list))
	for k := range list {
		names = append(names, k)
	}
	return names
}

// prettyResources prints a resource list as upstream's quota errors do: "cpu=1,pods=2".
func prettyResources(list corev1.ResourceList) string {
	var parts []string
	for _, k := range sortedNames(list) {
		v := list[k]
		parts = append(parts, fmt.Sprintf("%v=%v", k, v.String()))
	}
	return strings.Join(parts, ",")
}
