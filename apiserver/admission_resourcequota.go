package apiserver

import (
	"context"
	"errors"
	"fmt"
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

// quotaConflictRetries bounds how often a create re-counts against quotas another write
// changed meanwhile.
const quotaConflictRetries = 5

// admitResourceQuota is upstream's ResourceQuota plugin for a new object: each quota of the
// namespace that tracks what the object uses (by status.hard: a quota the controller has not
// yet seen limits nothing) and whose scopes select it must have room for it, or the create is
// refused in upstream's 403 words; otherwise the object's usage is charged to status.used at
// once (compare-and-swap), so that concurrent creates cannot together overshoot. The quota
// controller later recounts, returning what deleted or refused objects held.
func (a admission) admitResourceQuota(ctx context.Context, res *apis.Resource, ns string, obj runtime.Object, dryRun bool) error {
	if !res.Namespaced || ns == "" || a.resourceQuotas == nil || !a.enabled("ResourceQuota") {
		return nil
	}
	gr := res.GroupVersionResource().GroupResource()
	usage := quota.Usage(gr, obj, time.Now())
	name := ""
	if m, ok := obj.(metav1.Object); ok {
		name = m.GetName()
	}
	for attempt := 0; ; attempt++ {
		// the watch cache first; after a conflict, what etcd holds
		opts := registry.ListOptions{ResourceVersion: "0"}
		if attempt > 0 {
			opts.ResourceVersion = ""
		}
		list, err := a.resourceQuotas.List(ctx, ns, opts)
		if err != nil {
			return err
		}
		quotas := list.(*corev1.ResourceQuotaList).Items
		sort.Slice(quotas, func(i, j int) bool { return quotas[i].Name < quotas[j].Name })
		err = a.chargeQuotas(ctx, quotas, gr, name, obj, usage, dryRun || !wouldValidate(ctx, res, ns, obj))
		if apierrors.IsConflict(err) && attempt < quotaConflictRetries {
			continue
		}
		return err
	}
}

// chargeQuotas checks every quota and then charges them, one after the other.
func (a admission) chargeQuotas(ctx context.Context, quotas []corev1.ResourceQuota, gr schema.GroupResource, name string, obj runtime.Object, usage corev1.ResourceList, dryRun bool) error {
	var charged []*corev1.ResourceQuota
	for i := range quotas {
		q := &quotas[i]
		if !quota.Matches(q, obj) {
			continue
		}
		var tracked []corev1.ResourceName
		for k := range q.Status.Hard {
			if _, ok := usage[k]; ok {
				tracked = append(tracked, k)
			}
		}
		if len(tracked) == 0 {
			continue
		}
		sort.Slice(tracked, func(i, j int) bool { return tracked[i] < tracked[j] })
		if err := quota.Constraints(resourceNames(q.Status.Hard), obj); err != nil {
			return apierrors.NewForbidden(gr, name, fmt.Errorf("failed quota: %s: %v", q.Name, err))
		}
		var unknown []string
		for _, k := range tracked {
			if _, ok := q.Status.Used[k]; !ok {
				unknown = append(unknown, string(k))
			}
		}
		if len(unknown) > 0 {
			return apierrors.NewForbidden(gr, name, fmt.Errorf("status unknown for quota: %s, resources: %s", q.Name, strings.Join(unknown, ",")))
		}
		requested, used, limited := corev1.ResourceList{}, corev1.ResourceList{}, corev1.ResourceList{}
		for _, k := range tracked {
			next := q.Status.Used[k].DeepCopy()
			next.Add(usage[k])
			if next.Cmp(q.Status.Hard[k]) > 0 {
				requested[k], used[k], limited[k] = usage[k], q.Status.Used[k], q.Status.Hard[k]
			}
		}
		if len(limited) > 0 {
			return apierrors.NewForbidden(gr, name, fmt.Errorf("exceeded quota: %s, requested: %s, used: %s, limited: %s",
				q.Name, prettyResources(requested), prettyResources(used), prettyResources(limited)))
		}
		charged = append(charged, q)
	}
	if dryRun {
		return nil
	}
	for _, q := range charged {
		if err := a.charge(ctx, q, usage); err != nil {
			return err
		}
	}
	return nil
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

// charge adds usage to the quota's status.used, provided the quota is still as it was read.
func (a admission) charge(ctx context.Context, q *corev1.ResourceQuota, usage corev1.ResourceList) error {
	_, _, err := a.resourceQuotas.Update(ctx, q.Namespace, q.Name, apis.ResourceQuotaStatusStrategy, func(_ context.Context, current runtime.Object) (runtime.Object, error) {
		if current == nil {
			return nil, apierrors.NewNotFound(a.resourceQuotas.GroupResource(), q.Name)
		}
		cur := current.(*corev1.ResourceQuota)
		if cur.ResourceVersion != q.ResourceVersion {
			return nil, apierrors.NewConflict(a.resourceQuotas.GroupResource(), q.Name, errQuotaChanged)
		}
		for k := range cur.Status.Hard {
			if u, ok := usage[k]; ok {
				next := cur.Status.Used[k].DeepCopy()
				next.Add(u)
				cur.Status.Used[k] = next
			}
		}
		return cur, nil
	}, false)
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
