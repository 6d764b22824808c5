package endpointslice

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The v1 Endpoints of a Service with a selector, as upstream's endpoints controller writes
// them: one subset per set of resolved ports, ready pods under addresses and the others under
// notReadyAddresses, terminating pods left out unless the Service publishes not-ready
// addresses, at most 1000 addresses.

// desiredSubsets are the Endpoints subsets of the Service's pods, sorted so that equal sets
// compare equal.
func desiredSubsets(svc *corev1.Service, pods []*corev1.Pod) (subsets []corev1.EndpointSubset, truncated bool) {
	type subset struct {
		ports           []corev1.EndpointPort
		ready, notReady []corev1.EndpointAddress
	}
	byPorts := map[string]*subset{}
	total := 0
	for _, pod := range pods {
		if !podInEndpoints(pod, svc.Spec.PublishNotReadyAddresses) {
			continue
		}
		ip := podAddress(pod, serviceAddressTypes(svc)[0])
		if ip == "" {
			continue
		}
		eps := endpointPorts(svc, pod)
		if len(svc.Spec.Ports) > 0 && len(eps) == 0 {
			continue // none of the Service's ports lands on this pod
		}
		k := portsKey(eps)
		s := byPorts[k]
		if s == nil {
			s = &subset{}
			for _, p := range eps {
				s.ports = append(s.ports, corev1.EndpointPort{Name: ptr.Deref(p.Name, ""), Port: ptr.Deref(p.Port, 0),
					Protocol: ptr.Deref(p.Protocol, corev1.ProtocolTCP), AppProtocol: p.AppProtocol})
			}
			byPorts[k] = s
		}
		addr := corev1.EndpointAddress{IP: ip, Hostname: podHostname(svc, pod),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}}
		if pod.Spec.NodeName != "" {
			addr.NodeName = ptr.To(pod.Spec.NodeName)
		}
		if svc.Spec.PublishNotReadyAddresses || isPodReady(pod) {
			s.ready = append(s.ready, addr)
		} else {
			s.notReady = append(s.notReady, addr)
		}
		total++
	}
	byIP := func(a []corev1.EndpointAddress) {
		sort.Slice(a, func(i, j int) bool { return a[i].IP < a[j].IP })
	}
	for _, k := range slices.Sorted(maps.Keys(byPorts)) {
		s := byPorts[k]
		byIP(s.ready)
		byIP(s.notReady)
		sort.Slice(s.ports, func(i, j int) bool { return s.ports[i].Name < s.ports[j].Name })
		subsets = append(subsets, corev1.EndpointSubset{Addresses: s.ready, NotReadyAddresses: s.notReady, Ports: s.ports})
	}
	if total > maxEndpointsAddresses {
		subsets = truncateSubsets(subsets, maxEndpointsAddresses)
		truncated = true
	}
	return subsets, truncated
}

// truncateSubsets keeps max addresses, ready ones first, taking from each subset in
// proportion to its size, as upstream.
func truncateSubsets(subsets []corev1.EndpointSubset, max int) []corev1.EndpointSubset {
	total := 0
	for _, s := range subsets {
		total += len(s.Addresses) + len(s.NotReadyAddresses)
	}
	left := max
	for i := range subsets {
		s := &subsets[i]
		n := len(s.Addresses) + len(s.NotReadyAddresses)
		share := n * max / total
		if i == len(subsets)-1 || share > left {
			share = min(left, n)
		}
		left -= share
		if len(s.Addresses) >= share {
			s.Addresses = s.Addresses[:share]
			s.NotReadyAddresses = nil
		} else {
			s.NotReadyAddresses = s.NotReadyAddresses[:share-len(s.Addresses)]
		}
	}
	return subsets
}

// endpointsLabels are the Service's labels, the headless mark, and the mark that tells the
// mirroring controller not to make slices of these Endpoints (this controller makes them).
func endpointsLabels(svc *corev1.Service) map[string]string {
	l := map[string]string{}
	maps.Copy(l, svc.Labels)
	l[discoveryv1.LabelSkipMirror] = "true"
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		l[headlessLabel] = ""
	} else {
		delete(l, headlessLabel)
	}
	return l
}

func (c *Controller) reconcileEndpoints(ctx context.Context, svc *corev1.Service, pods []*corev1.Pod) error {
	subsets, truncated := desiredSubsets(svc, pods)
	labels := endpointsLabels(svc)
	cur, err := c.endpointLister.Endpoints(svc.Namespace).Get(svc.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if cur == nil {
		ep := &corev1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: labels},
			Subsets:    subsets,
		}
		if truncated {
			ep.Annotations = map[string]string{overCapacityAnnotation: "truncated"}
		}
		_, err := c.client.CoreV1().Endpoints(svc.Namespace).Create(ctx, ep, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil // the cache is behind (it will tell us), or the namespace is going
		}
		return err
	}
	wasTruncated := cur.Annotations[overCapacityAnnotation] == "truncated"
	if apiequality.Semantic.DeepEqual(normalizeSubsets(cur.Subsets), normalizeSubsets(subsets)) &&
		maps.Equal(cur.Labels, labels) && wasTruncated == truncated {
		return nil
	}
	ep := cur.DeepCopy()
	ep.Subsets = subsets
	ep.Labels = labels
	if truncated {
		if ep.Annotations == nil {
			ep.Annotations = map[string]string{}
		}
		ep.Annotations[overCapacityAnnotation] = "truncated"
	} else {
		delete(ep.Annotations, overCapacityAnnotation)
	}
	_, err = c.client.CoreV1().Endpoints(svc.Namespace).Update(ctx, ep, metav1.UpdateOptions{})
	return err
}

// normalizeSubsets makes empty and nil lists alike and orders addresses, so that what the
// server returns compares equal to what we would write.
func normalizeSubsets(in []corev1.EndpointSubset) []corev1.EndpointSubset {
	if len(in) == 0 {
		return nil
	}
	out := make([]corev1.EndpointSubset, len(in))
	for i, s := range in {
		s = *s.DeepCopy()
		if len(s.Addresses) == 0 {
			s.Addresses = nil
		}
		if len(s.NotReadyAddresses) == 0 {
			s.NotReadyAddresses = nil
		}
		if len(s.Ports) == 0 {
			s.Ports = nil
		}
		out[i] = s
	}
	sort.Slice(out, func(i, j int) bool { return subsetKey(out[i]) < subsetKey(out[j]) })
	return out
}

func subsetKey(s corev1.EndpointSubset) string {
	var b strings.Builder
	for _, p := range s.Ports {
		b.WriteString(p.Name + "/" + string(p.Protocol) + ";")
	}
	return b.String()
}
