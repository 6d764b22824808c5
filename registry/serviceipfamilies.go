package registry

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/apis"
)

// IPFamilies lists the families the cluster gives cluster IPs of, the primary first.
func (a *ServiceAllocator) IPFamilies() []corev1.IPFamily {
	families := []corev1.IPFamily{familyOfPrefix(a.CIDR)}
	if a.SecondaryCIDR.IsValid() {
		families = append(families, familyOfPrefix(a.SecondaryCIDR))
	}
	return families
}

// CIDRs are the cluster's service ranges, the primary first.
func (a *ServiceAllocator) CIDRs() []netip.Prefix {
	if a.SecondaryCIDR.IsValid() {
		return []netip.Prefix{a.CIDR, a.SecondaryCIDR}
	}
	return []netip.Prefix{a.CIDR}
}

func (a *ServiceAllocator) dualStack() bool { return a.SecondaryCIDR.IsValid() }

// cidrOf is the cluster's range of family; false when the cluster has none.
func (a *ServiceAllocator) cidrOf(family corev1.IPFamily) (netip.Prefix, bool) {
	for _, c := range a.CIDRs() {
		if familyOfPrefix(c) == family {
			return c, true
		}
	}
	return netip.Prefix{}, false
}

func familyOfPrefix(p netip.Prefix) corev1.IPFamily {
	if p.Addr().Is4() {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}

func otherFamily(f corev1.IPFamily) corev1.IPFamily {
	if f == corev1.IPv4Protocol {
		return corev1.IPv6Protocol
	}
	return corev1.IPv4Protocol
}

// initIPFamilies settles a (non-ExternalName) service's ipFamilyPolicy and ipFamilies against
// the cluster's ranges, as upstream's service storage does before it allocates: the policy
// defaults to SingleStack (RequireDualStack for a headless service without selector), the
// families follow the requested cluster IPs, then the cluster's primary family, and a
// dual-stack policy on a dual-stack cluster gets the other family too. old is nil on create.
func (a *ServiceAllocator) initIPFamilies(svc, old *corev1.Service) error {
	headlessSelectorless := svc.Spec.ClusterIP == corev1.ClusterIPNone && len(svc.Spec.Selector) == 0
	if svc.Spec.IPFamilyPolicy == nil {
		policy := corev1.IPFamilyPolicySingleStack
		switch {
		case old != nil && old.Spec.IPFamilyPolicy != nil:
			policy = *old.Spec.IPFamilyPolicy
		case headlessSelectorless:
			policy = corev1.IPFamilyPolicyRequireDualStack
		}
		svc.Spec.IPFamilyPolicy = &policy
	}
	policy := *svc.Spec.IPFamilyPolicy
	policyPath := field.NewPath("spec", "ipFamilyPolicy")
	var errs field.ErrorList
	if old != nil {
		if policy == corev1.IPFamilyPolicySingleStack {
			// SingleStack on a service that kept its two IPs or families asks to drop the
			// secondary (the primary never changes)
			if slices.Equal(svc.Spec.ClusterIPs, old.Spec.ClusterIPs) && len(svc.Spec.ClusterIPs) > 1 {
				svc.Spec.ClusterIPs = svc.Spec.ClusterIPs[:1]
			}
			if slices.Equal(svc.Spec.IPFamilies, old.Spec.IPFamilies) && len(svc.Spec.IPFamilies) > 1 {
				svc.Spec.IPFamilies = svc.Spec.IPFamilies[:1]
			}
		} else {
			if len(svc.Spec.ClusterIPs) > 0 && len(svc.Spec.ClusterIPs) < len(old.Spec.ClusterIPs) {
				errs = append(errs, field.Invalid(policyPath, svc.Spec.IPFamilyPolicy, "must be 'SingleStack' to release the secondary cluster IP"))
			}
			if len(svc.Spec.IPFamilies) > 0 && len(svc.Spec.IPFamilies) < len(old.Spec.IPFamilies) {
				errs = append(errs, field.Invalid(policyPath, svc.Spec.IPFamilyPolicy, "must be 'SingleStack' to release the secondary IP family"))
			}
		}
	}
	if policy == corev1.IPFamilyPolicySingleStack {
		if len(svc.Spec.ClusterIPs) == 2 {
			errs = append(errs, field.Invalid(policyPath, svc.Spec.IPFamilyPolicy, "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"))
		}
		if len(svc.Spec.IPFamilies) == 2 {
			errs = append(errs, field.Invalid(policyPath, svc.Spec.IPFamilyPolicy, "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"))
		}
	}
	// families follow the cluster IPs the client asked for
	for i, ip := range svc.Spec.ClusterIPs {
		if ip == corev1.ClusterIPNone {
			break
		}
		if i < len(svc.Spec.IPFamilies) {
			continue
		}
		family := apis.IPFamilyOf(ip)
		if _, ok := a.cidrOf(family); !ok {
			errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(i), svc.Spec.ClusterIPs, fmt.Sprintf("%s is not configured on this cluster", family)))
		} else {
			svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, family)
		}
	}
	if len(errs) > 0 {
		return invalid(svc, errs...)
	}
	primary := familyOfPrefix(a.CIDR)
	if headlessSelectorless {
		// a headless service without selector may name families the cluster lacks: its
		// endpoints are the client's
		if len(svc.Spec.IPFamilies) == 0 {
			svc.Spec.IPFamilies = []corev1.IPFamily{primary}
		}
		if len(svc.Spec.IPFamilies) < 2 && policy != corev1.IPFamilyPolicySingleStack {
			svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, otherFamily(svc.Spec.IPFamilies[0]))
		}
		return nil
	}
	if policy == corev1.IPFamilyPolicyRequireDualStack && !a.dualStack() {
		errs = append(errs, field.Invalid(policyPath, svc.Spec.IPFamilyPolicy, "this cluster is not configured for dual-stack services"))
	}
	for i, family := range svc.Spec.IPFamilies {
		if _, ok := a.cidrOf(family); !ok {
			errs = append(errs, field.Invalid(field.NewPath("spec", "ipFamilies").Index(i), family, "not configured on this cluster"))
		}
	}
	if len(errs) > 0 {
		return invalid(svc, errs...)
	}
	if len(svc.Spec.IPFamilies) == 0 {
		svc.Spec.IPFamilies = []corev1.IPFamily{primary}
	}
	if policy != corev1.IPFamilyPolicySingleStack && len(svc.Spec.IPFamilies) == 1 && a.dualStack() {
		svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, otherFamily(svc.Spec.IPFamilies[0]))
	}
	return nil
}

// ParseServiceCIDRs reads --service-cluster-ip-range: one CIDR, or two of different families
// (dual-stack, the first primary); secondary is zero for one.
func ParseServiceCIDRs(s string) (primary, secondary netip.Prefix, err error) {
	parts := strings.Split(s, ",")
	if len(parts) > 2 {
		return primary, secondary, fmt.Errorf("--service-cluster-ip-range %q: want one CIDR, or one IPv4 and one IPv6", s)
	}
	var cidrs []netip.Prefix
	for _, p := range parts {
		c, err := netip.ParsePrefix(strings.TrimSpace(p))
		if err != nil {
			return primary, secondary, fmt.Errorf("--service-cluster-ip-range %q: %w", s, err)
		}
		cidrs = append(cidrs, c.Masked())
	}
	if len(cidrs) == 2 {
		if familyOfPrefix(cidrs[0]) == familyOfPrefix(cidrs[1]) {
			return primary, secondary, fmt.Errorf("--service-cluster-ip-range %q: the two CIDRs must be of different IP families", s)
		}
		return cidrs[0], cidrs[1], nil
	}
	return cidrs[0], netip.Prefix{}, nil
}
