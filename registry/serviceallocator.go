package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/registry/storage"
)

// Allocator reserves what an object holds outside its own key (a service's cluster IP and
// node ports). Reservations are keyed by the object, so reserving again what an object
// already holds succeeds: the store may call Allocate more than once for one write.
type Allocator interface {
	// Allocate reserves what obj needs beyond what old (nil on create) holds, writing what it
	// chose into obj. With dryRun it only checks.
	Allocate(ctx context.Context, obj, old runtime.Object, dryRun bool) error
	// Release frees what free holds and keep (nil to free everything) does not.
	Release(ctx context.Context, keep, free runtime.Object)
}

// ServiceAllocator gives services cluster IPs and node ports, each reserved by creating one
// etcd key, so two services never get the same one. Cluster IPs of a family come from its
// range (CIDR or SecondaryCIDR), then from the other Ready ServiceCIDRs of the family when it
// is full:
//
//	/registry/ipaddresses/<ip>        networking.k8s.io/v1 IPAddress, as upstream's allocator
//	/registry/servicenodeports/<port> a v1 RangeAllocation naming the owner (skiff's own)
type ServiceAllocator struct {
	Storage storage.Interface // etcd itself, not a cache: reservations must be exact
	// CIDR is the primary range: its family is the one a Service gets when it names none.
	CIDR netip.Prefix
	// SecondaryCIDR, of the other family, makes the cluster dual-stack; zero when it is not.
	SecondaryCIDR netip.Prefix
	PortBase      int
	PortCount     int
}

var _ Allocator = &ServiceAllocator{}

// KubernetesServiceIP is the first address of the range, the kubernetes Service's.
func (a *ServiceAllocator) KubernetesServiceIP() netip.Addr { return KubernetesServiceIP(a.CIDR) }

// KubernetesServiceIP is the kubernetes Service's cluster IP in the service range cidr: its
// first address, as upstream's.
func KubernetesServiceIP(cidr netip.Prefix) netip.Addr { return cidr.Masked().Addr().Next() }

func ipKey(ip netip.Addr) string { return "/registry/ipaddresses/" + ip.String() }
func portKey(port int) string    { return "/registry/servicenodeports/" + strconv.Itoa(port) }

func owner(svc *corev1.Service) string { return svc.Namespace + "/" + svc.Name }

// needsClusterIP reports whether a service gets an allocated cluster IP.
func needsClusterIP(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

// needsNodePorts reports whether a service's ports get node ports.
func needsNodePorts(svc *corev1.Service) bool {
	switch svc.Spec.Type {
	case corev1.ServiceTypeNodePort:
		return true
	case corev1.ServiceTypeLoadBalancer:
		return svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts
	}
	return false
}

func invalid(svc *corev1.Service, errs ...*field.Error) error {
	return apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, svc.Name, field.ErrorList(errs))
}

// Allocate implements Allocator.
func (a *ServiceAllocator) Allocate(ctx context.Context, obj, oldObj runtime.Object, dryRun bool) error {
	svc := obj.(*corev1.Service)
	var old *corev1.Service
	if oldObj != nil {
		old = oldObj.(*corev1.Service)
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs, svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy = "", nil, nil, nil
	} else {
		if err := a.initIPFamilies(svc, old); err != nil {
			return err
		}
		if needsClusterIP(svc) {
			if err := a.allocateIPs(ctx, svc, old, dryRun); err != nil {
				return err
			}
		} else {
			svc.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
		}
	}
	if needsNodePorts(svc) {
		for i := range svc.Spec.Ports {
			if err := a.allocatePort(ctx, svc, i, old, dryRun); err != nil {
				return err
			}
		}
	} else {
		for i := range svc.Spec.Ports {
			svc.Spec.Ports[i].NodePort = 0
		}
	}
	return a.allocateHealthCheckNodePort(ctx, svc, old, dryRun)
}

// allocateIPs reserves a cluster IP of each of the service's families: the one requested at
// the same index of clusterIPs, or a random free one of that family's range. What it reserved
// goes back when a later family fails, unless old holds it.
func (a *ServiceAllocator) allocateIPs(ctx context.Context, svc, old *corev1.Service, dryRun bool) error {
	ips := make([]string, len(svc.Spec.IPFamilies))
	copy(ips, svc.Spec.ClusterIPs)
	svc.Spec.ClusterIPs = ips
	var taken []netip.Addr
	for i, family := range svc.Spec.IPFamilies {
		cidr, _ := a.cidrOf(family) // initIPFamilies refused the families the cluster lacks
		ip, err := a.allocateIP(ctx, svc, cidr, ips[i], dryRun)
		if err != nil {
			if !dryRun {
				for _, ip := range taken {
					if old == nil || !slices.Contains(old.Spec.ClusterIPs, ip.String()) {
						a.releaseIP(ctx, ip, svc)
					}
				}
			}
			return err
		}
		taken = append(taken, ip)
		ips[i] = ip.String()
	}
	if len(ips) > 0 {
		svc.Spec.ClusterIP = ips[0]
	}
	return nil
}

// allocateIP reserves the requested cluster IP, or a free one, of cidr's family: from cidr, the
// API server's own range of that family, first, then from the other ServiceCIDRs of the family
// (serviceRanges) when it is full.
func (a *ServiceAllocator) allocateIP(ctx context.Context, svc *corev1.Service, cidr netip.Prefix, requested string, dryRun bool) (netip.Addr, error) {
	fail := func(ip string, msg string) error {
		return invalid(svc, field.Invalid(field.NewPath("spec", "clusterIPs"), svc.Spec.ClusterIPs, fmt.Sprintf("failed to allocate IP %s: %s", ip, msg)))
	}
	ranges, err := a.serviceRanges(ctx, cidr)
	if err != nil {
		return netip.Addr{}, err
	}
	if requested != "" {
		ip, err := netip.ParseAddr(requested)
		if err != nil {
			return netip.Addr{}, fail(requested, "not a valid IP")
		}
		if !slices.ContainsFunc(ranges, func(p netip.Prefix) bool { return allocatable(p, ip) }) {
			valid := make([]string, len(ranges))
			for i, p := range ranges {
				valid[i] = p.String()
			}
			return netip.Addr{}, fail(ip.String(), fmt.Sprintf("the provided IP (%s) is not in the valid range. The range of valid IPs is %s", ip, strings.Join(valid, ",")))
		}
		ok, err := a.reserveIP(ctx, ip, svc, dryRun)
		if err != nil {
			return netip.Addr{}, err
		}
		if !ok {
			return netip.Addr{}, fail(ip.String(), "provided IP is already allocated")
		}
		return ip, nil
	}
	for i, p := range ranges {
		// the API server's range's second address is the kubernetes Service's, never given out
		first := uint64(1)
		if i == 0 {
			first = 2
		}
		ip, err := a.allocateFrom(ctx, p, first, svc, dryRun)
		if err != nil {
			return netip.Addr{}, err
		}
		if ip.IsValid() {
			return ip, nil
		}
	}
	return netip.Addr{}, fail("", "range is full")
}

// serviceRanges are the ranges cluster IPs of own's family come from, read from etcd itself:
// own, the API server's range of that family (the default ServiceCIDR's), first, then, by
// name, every other ServiceCIDR range of the family that the ServiceCIDR controller marked
// Ready and that is not being deleted.
func (a *ServiceAllocator) serviceRanges(ctx context.Context, own netip.Prefix) ([]netip.Prefix, error) {
	ranges := []netip.Prefix{own.Masked()}
	var list networkingv1.ServiceCIDRList
	if err := a.Storage.GetList(ctx, "/registry/servicecidrs/", storage.ListOptions{Recursive: true}, &list); err != nil {
		return nil, err
	}
	for _, c := range list.Items { // sorted by key, so by name
		ready := meta.IsStatusConditionTrue(c.Status.Conditions, networkingv1.ServiceCIDRConditionReady)
		if c.DeletionTimestamp != nil || !ready {
			continue
		}
		for _, cidr := range c.Spec.CIDRs {
			p, err := netip.ParsePrefix(cidr)
			if err != nil || p.Addr().Is4() != own.Addr().Is4() || slices.Contains(ranges, p.Masked()) {
				continue
			}
			ranges = append(ranges, p.Masked())
		}
	}
	return ranges, nil
}

// allocatable reports whether ip may be a cluster IP of range p: inside it, and neither its
// network nor its last (broadcast) address.
func allocatable(p netip.Prefix, ip netip.Addr) bool {
	return p.Contains(ip) && ip != p.Masked().Addr() && ip != lastAddr(p)
}

// allocateFrom reserves a free address of p for svc, at offset first or later, and returns
// it; the zero Addr when p is full. Random offsets first, as upstream spreads its
// allocations; when those are taken, the addresses that no IPAddress holds, in order.
func (a *ServiceAllocator) allocateFrom(ctx context.Context, p netip.Prefix, first uint64, svc *corev1.Service, dryRun bool) (netip.Addr, error) {
	size := uint64(1) << 20 // a large (IPv6) range is only searched in its first addresses
	if bits := p.Addr().BitLen() - p.Bits(); bits < 20 {
		size = 1 << bits
	}
	if size <= first+1 {
		return netip.Addr{}, nil // no address between the reserved ones
	}
	base := p.Masked().Addr()
	for attempt := 0; attempt < 64; attempt++ {
		ip := addrAdd(base, first+rand.Uint64N(size-first-1))
		ok, err := a.reserveIP(ctx, ip, svc, dryRun)
		if err != nil {
			return netip.Addr{}, err
		}
		if ok {
			return ip, nil
		}
	}
	var taken networkingv1.IPAddressList
	if err := a.Storage.GetList(ctx, "/registry/ipaddresses/", storage.ListOptions{Recursive: true}, &taken); err != nil {
		return netip.Addr{}, err
	}
	held := make(map[netip.Addr]bool, len(taken.Items))
	for _, t := range taken.Items {
		if ip, err := netip.ParseAddr(t.Name); err == nil {
			held[ip] = true
		}
	}
	for off := first; off < size-1; off++ {
		ip := addrAdd(base, off)
		if held[ip] {
			continue
		}
		ok, err := a.reserveIP(ctx, ip, svc, dryRun)
		if err != nil {
			return netip.Addr{}, err
		}
		if ok {
			return ip, nil
		}
	}
	return netip.Addr{}, nil
}

// reserveIP creates the IPAddress of ip for svc; false when another object holds it.
func (a *ServiceAllocator) reserveIP(ctx context.Context, ip netip.Addr, svc *corev1.Service, dryRun bool) (bool, error) {
	addr := &networkingv1.IPAddress{
		ObjectMeta: metav1.ObjectMeta{
			// served as networking.k8s.io/v1 IPAddresses, so they carry what every object does
			Name: ip.String(), UID: uuid.NewUUID(), CreationTimestamp: metav1.Now(),
			Labels: map[string]string{
				networkingv1.LabelIPAddressFamily: familyOf(ip),
				networkingv1.LabelManagedBy:       "ipallocator.k8s.io",
			},
		},
		Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Resource: "services", Namespace: svc.Namespace, Name: svc.Name}},
	}
	return a.reserve(ctx, ipKey(ip), addr, &networkingv1.IPAddress{}, dryRun, func(existing runtime.Object) bool {
		ref := existing.(*networkingv1.IPAddress).Spec.ParentRef
		return ref != nil && ref.Resource == "services" && ref.Namespace == svc.Namespace && ref.Name == svc.Name
	})
}

// allocatePort reserves port i's requested node port, the one old had for it, or a random one.
func (a *ServiceAllocator) allocatePort(ctx context.Context, svc *corev1.Service, i int, old *corev1.Service, dryRun bool) error {
	p := &svc.Spec.Ports[i]
	path := field.NewPath("spec", "ports").Index(i).Child("nodePort")
	if p.NodePort == 0 && old != nil {
		for _, op := range old.Spec.Ports {
			if op.Port == p.Port && op.Protocol == p.Protocol && op.NodePort != 0 {
				p.NodePort = op.NodePort
			}
		}
	}
	if p.NodePort != 0 {
		port := int(p.NodePort)
		if port < a.PortBase || port >= a.PortBase+a.PortCount {
			return invalid(svc, field.Invalid(path, p.NodePort, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", a.PortBase, a.PortBase+a.PortCount-1)))
		}
		ok, err := a.reservePort(ctx, port, svc, dryRun)
		if err != nil {
			return err
		}
		if !ok && !sharedByProtocol(svc, i) {
			return invalid(svc, field.Invalid(path, p.NodePort, "provided port is already allocated"))
		}
		return nil
	}
	start := rand.IntN(a.PortCount)
	for n := 0; n < a.PortCount; n++ {
		port := a.PortBase + (start+n)%a.PortCount
		ok, err := a.reservePort(ctx, port, svc, dryRun)
		if err != nil {
			return err
		}
		if ok {
			p.NodePort = int32(port)
			return nil
		}
	}
	return invalid(svc, field.Invalid(path, p.NodePort, "range is full"))
}

// sharedByProtocol reports whether port i's node port is also port j's (j < i) under another
// protocol, which upstream allows (one node port for TCP and UDP of the same port).
func sharedByProtocol(svc *corev1.Service, i int) bool {
	for j := 0; j < i; j++ {
		if svc.Spec.Ports[j].NodePort == svc.Spec.Ports[i].NodePort && svc.Spec.Ports[j].Protocol != svc.Spec.Ports[i].Protocol {
			return true
		}
	}
	return false
}

func (a *ServiceAllocator) reservePort(ctx context.Context, port int, svc *corev1.Service, dryRun bool) (bool, error) {
	ra := &corev1.RangeAllocation{
		ObjectMeta: metav1.ObjectMeta{Name: strconv.Itoa(port)},
		Range:      strconv.Itoa(port),
		Data:       []byte(owner(svc)),
	}
	return a.reserve(ctx, portKey(port), ra, &corev1.RangeAllocation{}, dryRun, func(existing runtime.Object) bool {
		return string(existing.(*corev1.RangeAllocation).Data) == owner(svc)
	})
}

// reserve creates key for its owner; an existing key is a success only when mine says it is
// the same owner's.
func (a *ServiceAllocator) reserve(ctx context.Context, key string, obj, into runtime.Object, dryRun bool, mine func(runtime.Object) bool) (bool, error) {
	if dryRun {
		err := a.Storage.Get(ctx, key, storage.GetOptions{}, into)
		if storage.HasCode(err, storage.ErrCodeKeyNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return mine(into), nil
	}
	err := a.Storage.Create(ctx, key, obj, into)
	if err == nil {
		return true, nil
	}
	if !storage.HasCode(err, storage.ErrCodeKeyExists) {
		return false, err
	}
	if err := a.Storage.Get(ctx, key, storage.GetOptions{}, into); err != nil {
		if storage.HasCode(err, storage.ErrCodeKeyNotFound) {
			return a.reserve(ctx, key, obj, into, dryRun, mine) // released meanwhile
		}
		return false, err
	}
	return mine(into), nil
}

// Release implements Allocator.
func (a *ServiceAllocator) Release(ctx context.Context, keepObj, freeObj runtime.Object) {
	free := freeObj.(*corev1.Service)
	var keep *corev1.Service
	if keepObj != nil {
		keep = keepObj.(*corev1.Service)
	}
	for _, s := range append([]string{free.Spec.ClusterIP}, free.Spec.ClusterIPs...) {
		ip, err := netip.ParseAddr(s)
		if err != nil || (keep != nil && (keep.Spec.ClusterIP == s || slices.Contains(keep.Spec.ClusterIPs, s))) {
			continue
		}
		a.releaseIP(ctx, ip, free)
	}
	kept := map[int32]bool{}
	if keep != nil {
		for _, p := range keep.Spec.Ports {
			kept[p.NodePort] = true
		}
		kept[keep.Spec.HealthCheckNodePort] = true
	}
	freed := append([]corev1.ServicePort{{NodePort: free.Spec.HealthCheckNodePort}}, free.Spec.Ports...)
	for _, p := range freed {
		if p.NodePort != 0 && !kept[p.NodePort] {
			a.releaseKey(ctx, portKey(int(p.NodePort)), &corev1.RangeAllocation{}, func(o runtime.Object) bool {
				return string(o.(*corev1.RangeAllocation).Data) == owner(free)
			})
		}
	}
}

// releaseIP deletes ip's IPAddress if svc still holds it.
func (a *ServiceAllocator) releaseIP(ctx context.Context, ip netip.Addr, svc *corev1.Service) {
	a.releaseKey(ctx, ipKey(ip), &networkingv1.IPAddress{}, func(o runtime.Object) bool {
		ref := o.(*networkingv1.IPAddress).Spec.ParentRef
		return ref != nil && ref.Namespace == svc.Namespace && ref.Name == svc.Name
	})
}

// releaseKey deletes key if it still belongs to the owner mine recognises.
func (a *ServiceAllocator) releaseKey(ctx context.Context, key string, into runtime.Object, mine func(runtime.Object) bool) {
	_ = a.Storage.Delete(ctx, key, into, nil, func(_ context.Context, current runtime.Object) error {
		if !mine(current) {
			return fmt.Errorf("held by another owner")
		}
		return nil
	}, nil)
}

func familyOf(ip netip.Addr) string {
	if ip.Is4() {
		return string(corev1.IPv4Protocol)
	}
	return string(corev1.IPv6Protocol)
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range a {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 1 << (7 - b)
			}
		}
	}
	out, _ := netip.AddrFromSlice(a)
	return out
}

func addrAdd(a netip.Addr, n uint64) netip.Addr {
	b := a.AsSlice()
	for i := len(b) - 1; i >= 0 && n > 0; i-- {
		sum := uint64(b[i]) + n&0xff
		b[i] = byte(sum)
		n = n>>8 + sum>>8
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

// ParseNodePortRange reads "30000-32767".
func ParseNodePortRange(s string) (base, count int, err error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("node port range %q: want FROM-TO", s)
	}
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || l < 1 || h > 65535 || h < l {
		return 0, 0, fmt.Errorf("node port range %q: want FROM-TO within 1-65535", s)
	}
	return l, h - l + 1, nil
}
