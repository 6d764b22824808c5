package endpointslice

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// endpointGroup is the endpoints of one address type whose ports resolved alike: they share
// slices.
type endpointGroup struct {
	addressType discoveryv1.AddressType
	ports       []discoveryv1.EndpointPort
	// endpoints by address
	endpoints map[string]discoveryv1.Endpoint
}

type groupKey struct {
	addressType discoveryv1.AddressType
	ports       string
}

// desiredEndpoints groups the Service's pods into the endpoints its slices should list.
func (c *Controller) desiredEndpoints(svc *corev1.Service, pods []*corev1.Pod) map[groupKey]*endpointGroup {
	groups := map[groupKey]*endpointGroup{}
	for _, at := range serviceAddressTypes(svc) {
		for _, pod := range pods {
			if !podInEndpoints(pod, true) {
				continue
			}
			addr := podAddress(pod, at)
			if addr == "" {
				continue
			}
			ports := endpointPorts(svc, pod)
			k := groupKey{at, portsKey(ports)}
			g := groups[k]
			if g == nil {
				g = &endpointGroup{addressType: at, ports: ports, endpoints: map[string]discoveryv1.Endpoint{}}
				groups[k] = g
			}
			ep := discoveryv1.Endpoint{
				Addresses:  []string{addr},
				Conditions: endpointConditions(svc, pod),
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name,
					UID: pod.UID},
			}
			if h := podHostname(svc, pod); h != "" {
				ep.Hostname = ptr.To(h)
			}
			if pod.Spec.NodeName != "" {
				ep.NodeName = ptr.To(pod.Spec.NodeName)
				if node, err := c.nodeLister.Get(pod.Spec.NodeName); err == nil {
					if zone, ok := node.Labels[zoneLabel]; ok {
						ep.Zone = ptr.To(zone)
					}
				}
			}
			g.endpoints[addr] = ep
		}
	}
	return groups
}

// sliceMeta is what every slice of the Service carries: its labels (the Service's own, the
// service name, the manager, and the headless mark) and the owner reference.
func sliceMeta(svc *corev1.Service) (map[string]string, []metav1.OwnerReference) {
	l := map[string]string{}
	maps.Copy(l, svc.Labels)
	l[discoveryv1.LabelServiceName] = svc.Name
	l[discoveryv1.LabelManagedBy] = ManagedBy
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		l[headlessLabel] = ""
	} else {
		delete(l, headlessLabel)
	}
	return l, []metav1.OwnerReference{*metav1.NewControllerRef(svc, serviceKind)}
}

// reconcileSlices writes the fewest slices it can: an existing slice keeps the endpoints it
// holds that are still wanted, with their new conditions; new endpoints fill the room left in
// the existing slices of their group, then new slices of at most maxPerSlice; a slice left
// empty is deleted. A Service with no endpoints at all keeps one empty placeholder slice, as
// upstream.
func (c *Controller) reconcileSlices(ctx context.Context, key string, svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice) error {
	groups := c.desiredEndpoints(svc, pods)
	labels, owners := sliceMeta(svc)

	// a stable order: the oldest slices first, so churn lands on the newest
	existing = slices.Clone(existing)
	sort.Slice(existing, func(i, j int) bool {
		if !existing[i].CreationTimestamp.Equal(&existing[j].CreationTimestamp) {
			return existing[i].CreationTimestamp.Before(&existing[j].CreationTimestamp)
		}
		return existing[i].Name < existing[j].Name
	})

	type planned struct {
		slice   *discoveryv1.EndpointSlice // the existing one, or nil
		eps     []discoveryv1.Endpoint
		group   *endpointGroup
		changed bool
	}
	var keep []*planned
	var remove []*discoveryv1.EndpointSlice
	placeholderType := serviceAddressTypes(svc)[0]
	var placeholder *discoveryv1.EndpointSlice
	for _, s := range existing {
		if s.DeletionTimestamp != nil {
			continue
		}
		g := groups[groupKey{s.AddressType, portsKey(s.Ports)}]
		var eps []discoveryv1.Endpoint
		changed := false
		if g != nil {
			for _, ep := range s.Endpoints {
				if len(ep.Addresses) == 0 {
					changed = true
					continue
				}
				want, ok := g.endpoints[ep.Addresses[0]]
				if !ok {
					changed = true
					continue
				}
				if !apiequality.Semantic.DeepEqual(ep, want) {
					changed = true
				}
				eps = append(eps, want)
				delete(g.endpoints, ep.Addresses[0])
			}
		}
		if len(eps) == 0 {
			if len(s.Endpoints) == 0 && placeholder == nil && s.AddressType == placeholderType {
				placeholder = s // a candidate placeholder; kept only if nothing else is
				continue
			}
			remove = append(remove, s)
			continue
		}
		keep = append(keep, &planned{slice: s, eps: eps, group: g, changed: changed})
	}

	// new endpoints: into the room of the kept slices of their group, then new slices
	order := groupsByOrder(groups)
	for _, name := range slices.Sorted(maps.Keys(order)) {
		g := groups[order[name]]
		if len(g.endpoints) == 0 {
			continue
		}
		addrs := slices.Sorted(maps.Keys(g.endpoints))
		for _, p := range keep {
			if p.group != g {
				continue
			}
			for len(p.eps) < c.maxPerSlice && len(addrs) > 0 {
				p.eps = append(p.eps, g.endpoints[addrs[0]])
				addrs = addrs[1:]
				p.changed = true
			}
		}
		for len(addrs) > 0 {
			n := min(len(addrs), c.maxPerSlice)
			p := &planned{group: g, changed: true}
			for _, a := range addrs[:n] {
				p.eps = append(p.eps, g.endpoints[a])
			}
			addrs = addrs[n:]
			keep = append(keep, p)
		}
	}

	var errs []error
	if len(keep) > 0 {
		if placeholder != nil {
			remove = append(remove, placeholder)
		}
	} else {
		// no endpoints: one empty slice says so
		want := &discoveryv1.EndpointSlice{AddressType: placeholderType, Endpoints: []discoveryv1.Endpoint{}, Ports: []discoveryv1.EndpointPort{}}
		if placeholder == nil {
			errs = append(errs, c.createSlice(ctx, key, svc, want, labels, owners))
		} else if !sameMeta(placeholder, labels, owners) {
			errs = append(errs, c.updateSlice(ctx, key, placeholder, placeholder.Endpoints, placeholder.Ports, labels, owners))
		}
	}
	for _, p := range keep {
		switch {
		case p.slice == nil:
			want := &discoveryv1.EndpointSlice{AddressType: p.group.addressType, Endpoints: p.eps, Ports: p.group.ports}
			errs = append(errs, c.createSlice(ctx, key, svc, want, labels, owners))
		case p.changed || !sameMeta(p.slice, labels, owners):
			errs = append(errs, c.updateSlice(ctx, key, p.slice, p.eps, p.group.ports, labels, owners))
		}
	}
	for _, s := range remove {
		errs = append(errs, c.deleteSlice(ctx, key, s))
	}
	return errors.Join(errs...)
}

// groupsByOrder names each group by a sortable string, so that slices are made in the same
// order on every sync.
func groupsByOrder(groups map[groupKey]*endpointGroup) map[string]groupKey {
	out := make(map[string]groupKey, len(groups))
	for k := range groups {
		out[string(k.addressType)+"|"+k.ports] = k
	}
	return out
}

func sameMeta(s *discoveryv1.EndpointSlice, labels map[string]string, owners []metav1.OwnerReference) bool {
	return maps.Equal(s.Labels, labels) && apiequality.Semantic.DeepEqual(s.OwnerReferences, owners)
}

func (c *Controller) createSlice(ctx context.Context, key string, svc *corev1.Service, s *discoveryv1.EndpointSlice, labels map[string]string, owners []metav1.OwnerReference) error {
	s.GenerateName = svc.Name + "-"
	s.Namespace = svc.Namespace
	s.Labels = labels
	s.OwnerReferences = owners
	created, err := c.client.DiscoveryV1().EndpointSlices(svc.Namespace).Create(ctx, s, metav1.CreateOptions{})
	if err != nil {
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil // the namespace is going away, and the Service with it
		}
		return err
	}
	c.written.Wrote(key, created)
	return nil
}

func (c *Controller) updateSlice(ctx context.Context, key string, cur *discoveryv1.EndpointSlice, eps []discoveryv1.Endpoint, ports []discoveryv1.EndpointPort, labels map[string]string, owners []metav1.OwnerReference) error {
	s := cur.DeepCopy()
	s.Endpoints = eps
	if s.Endpoints == nil {
		s.Endpoints = []discoveryv1.Endpoint{}
	}
	s.Ports = ports
	s.Labels = labels
	s.OwnerReferences = owners
	updated, err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	c.written.Wrote(key, updated)
	return nil
}

func (c *Controller) deleteSlice(ctx context.Context, key string, s *discoveryv1.EndpointSlice) error {
	err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &s.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return err
	}
	c.written.Deleted(key, s.Name)
	return nil
}
