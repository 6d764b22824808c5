package endpointslicemirroring

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// What an Endpoints object's slices should hold, computed without the API: the subsets
// repacked into their canonical form (one subset per distinct set of ports an address set
// serves), then one slice per address family of each subset, holding at most maxPerSubset of
// its addresses, the ready ones first.

// sliceKey names the slices of one address type and one port set; existing slices are matched
// to desired ones by it.
type sliceKey struct {
	addressType discoveryv1.AddressType
	ports       string
}

func keyOf(at discoveryv1.AddressType, ports []discoveryv1.EndpointPort) sliceKey {
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		parts = append(parts, fmt.Sprintf("%s/%s/%d/%s", ptr.Deref(p.Name, ""), ptr.Deref(p.Protocol, ""),
			ptr.Deref(p.Port, 0), ptr.Deref(p.AppProtocol, "")))
	}
	slices.Sort(parts)
	return sliceKey{at, strings.Join(parts, ",")}
}

// desiredSlice is the content of one mirrored slice.
type desiredSlice struct {
	addressType discoveryv1.AddressType
	ports       []discoveryv1.EndpointPort
	endpoints   []discoveryv1.Endpoint
}

// mirrorResult is what an Endpoints object mirrors to, and what it could not.
type mirrorResult struct {
	slices map[sliceKey]*desiredSlice
	// invalid counts addresses that are not IPs; overCapacity those beyond maxPerSubset.
	invalid, overCapacity int
}

// desiredSlices mirrors ep's subsets.
func desiredSlices(ep *corev1.Endpoints, maxPerSubset int) mirrorResult {
	out := mirrorResult{slices: map[sliceKey]*desiredSlice{}}
	for _, subset := range repackSubsets(ep.Subsets) {
		ports := make([]discoveryv1.EndpointPort, 0, len(subset.Ports))
		for _, p := range subset.Ports {
			ports = append(ports, discoveryv1.EndpointPort{Name: ptr.To(p.Name), Port: ptr.To(p.Port),
				Protocol: ptr.To(cmp.Or(p.Protocol, corev1.ProtocolTCP)), AppProtocol: p.AppProtocol})
		}
		added := 0
		add := func(a corev1.EndpointAddress, ready bool) {
			if added >= maxPerSubset {
				out.overCapacity++
				return
			}
			e, at, ok := mirroredEndpoint(a, ready)
			if !ok {
				out.invalid++
				return
			}
			k := keyOf(at, ports)
			s := out.slices[k]
			if s == nil {
				s = &desiredSlice{addressType: at, ports: ports}
				out.slices[k] = s
			}
			s.endpoints = append(s.endpoints, e)
			added++
		}
		for _, a := range subset.Addresses {
			add(a, true)
		}
		for _, a := range subset.NotReadyAddresses {
			add(a, false)
		}
	}
	for _, s := range out.slices {
		sortEndpoints(s.endpoints)
	}
	return out
}

// mirroredEndpoint is an Endpoints address as a slice's endpoint: its IP in canonical form,
// ready or not, with its hostname, node and target.
func mirroredEndpoint(a corev1.EndpointAddress, ready bool) (discoveryv1.Endpoint, discoveryv1.AddressType, bool) {
	ip, err := netip.ParseAddr(a.IP)
	if err != nil || ip.Zone() != "" {
		return discoveryv1.Endpoint{}, "", false
	}
	ip = ip.Unmap()
	at := discoveryv1.AddressTypeIPv4
	if ip.Is6() {
		at = discoveryv1.AddressTypeIPv6
	}
	e := discoveryv1.Endpoint{
		Addresses:  []string{ip.String()},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)},
		NodeName:   a.NodeName,
	}
	if a.TargetRef != nil {
		e.TargetRef = a.TargetRef.DeepCopy()
	}
	if a.Hostname != "" {
		e.Hostname = ptr.To(a.Hostname)
	}
	return e, at, true
}

func sortEndpoints(eps []discoveryv1.Endpoint) {
	target := func(e discoveryv1.Endpoint) string {
		if e.TargetRef == nil {
			return ""
		}
		return string(e.TargetRef.UID) + "/" + e.TargetRef.Name
	}
	sort.SliceStable(eps, func(i, j int) bool {
		if eps[i].Addresses[0] != eps[j].Addresses[0] {
			return eps[i].Addresses[0] < eps[j].Addresses[0]
		}
		return target(eps[i]) < target(eps[j])
	})
}

// repackSubsets puts subsets into the canonical form upstream's controllers read them in: an
// address (an IP, told apart by its target's UID) appears once per port set it serves, not
// ready if any subset lists it so for a port, and addresses serving the same ports share one
// subset. A subset with no ports keeps its addresses under an empty port set.
func repackSubsets(subsets []corev1.EndpointSubset) []corev1.EndpointSubset {
	type addrKey struct {
		ip  string
		uid string
	}
	addrs := map[addrKey]corev1.EndpointAddress{}
	noPort := corev1.EndpointPort{Port: -1}
	// port → address → ready
	byPort := map[corev1.EndpointPort]map[addrKey]bool{}
	note := func(p corev1.EndpointPort, a corev1.EndpointAddress, ready bool) {
		k := addrKey{ip: a.IP}
		if a.TargetRef != nil {
			k.uid = string(a.TargetRef.UID)
		}
		if _, ok := addrs[k]; !ok {
			addrs[k] = a
		}
		if byPort[p] == nil {
			byPort[p] = map[addrKey]bool{}
		}
		if was, ok := byPort[p][k]; !ok || was {
			byPort[p][k] = ready
		}
	}
	for _, s := range subsets {
		ports := s.Ports
		if len(ports) == 0 {
			ports = []corev1.EndpointPort{noPort}
		}
		for _, p := range ports {
			for _, a := range s.Addresses {
				note(p, a, true)
			}
			for _, a := range s.NotReadyAddresses {
				note(p, a, false)
			}
		}
	}
	// group the ports by the address set (with readiness) they are served on
	type group struct {
		members map[addrKey]bool
		ports   []corev1.EndpointPort
	}
	groups := map[string]*group{}
	for p, members := range byPort {
		var b strings.Builder
		for _, k := range slices.SortedFunc(maps.Keys(members), func(a, b addrKey) int {
			return strings.Compare(a.ip+"/"+a.uid, b.ip+"/"+b.uid)
		}) {
			fmt.Fprintf(&b, "%s/%s=%t;", k.ip, k.uid, members[k])
		}
		g := groups[b.String()]
		if g == nil {
			g = &group{members: members}
			groups[b.String()] = g
		}
		if p != noPort {
			g.ports = append(g.ports, p)
		}
	}
	var out []corev1.EndpointSubset
	for _, id := range slices.Sorted(maps.Keys(groups)) {
		g := groups[id]
		var s corev1.EndpointSubset
		for k, ready := range g.members {
			if ready {
				s.Addresses = append(s.Addresses, addrs[k])
			} else {
				s.NotReadyAddresses = append(s.NotReadyAddresses, addrs[k])
			}
		}
		byIP := func(a []corev1.EndpointAddress) {
			sort.SliceStable(a, func(i, j int) bool { return a[i].IP < a[j].IP })
		}
		byIP(s.Addresses)
		byIP(s.NotReadyAddresses)
		sort.Slice(g.ports, func(i, j int) bool {
			if g.ports[i].Name != g.ports[j].Name {
				return g.ports[i].Name < g.ports[j].Name
			}
			return g.ports[i].Port < g.ports[j].Port
		})
		s.Ports = g.ports
		out = append(out, s)
	}
	return out
}

// excludedAnnotations are the Endpoints annotations a mirrored slice does not carry, as
// upstream: the trigger time is the Endpoints controller's, the applied configuration kubectl's.
var excludedAnnotations = []string{corev1.EndpointsLastChangeTriggerTime, corev1.LastAppliedConfigAnnotation}

// sliceLabels are the Endpoints' labels with the service name and this controller as manager.
func sliceLabels(ep *corev1.Endpoints) map[string]string {
	l := maps.Clone(ep.Labels)
	if l == nil {
		l = map[string]string{}
	}
	l[discoveryv1.LabelServiceName] = ep.Name
	l[discoveryv1.LabelManagedBy] = ManagedBy
	return l
}

// sliceAnnotations are the Endpoints' annotations but the excluded ones.
func sliceAnnotations(ep *corev1.Endpoints) map[string]string {
	a := maps.Clone(ep.Annotations)
	for _, k := range excludedAnnotations {
		delete(a, k)
	}
	if len(a) == 0 {
		return nil
	}
	return a
}

var endpointsKind = corev1.SchemeGroupVersion.WithKind("Endpoints")

func sliceOwners(ep *corev1.Endpoints) []metav1.OwnerReference {
	return []metav1.OwnerReference{*metav1.NewControllerRef(ep, endpointsKind)}
}
